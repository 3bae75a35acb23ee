//! Engine overhead per step: a 1,000-step playbook of `shell: {argv: [true]}` run with durable
//! state (SQLite, WAL, synchronous=FULL: every step's start and finish are fsynced), against
//! the same 1,000 processes spawned bare. Goal (issue 3): at most 2 ms of overhead per step.
//!
//! Run with `cargo build --release && cargo bench --bench executor`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const STEPS: usize = 1_000;
const ROUNDS: usize = 3;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/runbook");
    assert!(
        bin.is_file(),
        "build the release binary first: cargo build --release"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("playbooks")).expect("playbooks");
    let mut text = String::from("name: bench\nsteps:\n");
    for i in 0..STEPS {
        text.push_str(&format!(
            "  - id: s{i}\n    shell: {{ argv: [\"true\"] }}\n"
        ));
    }
    std::fs::write(dir.path().join("playbooks/bench.yaml"), text).expect("write");
    let true_bin = which("true");

    let mut bare = Vec::new();
    let mut engine = Vec::new();
    for round in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..STEPS {
            let status = Command::new(&true_bin).status().expect("true runs");
            assert!(status.success());
        }
        bare.push(start.elapsed());

        let state = dir.path().join(format!("state-{round}.db"));
        let start = Instant::now();
        let out = Command::new(&bin)
            .args(["-q", "run", "bench", "--state"])
            .arg(format!("sqlite:{}", state.display()))
            .current_dir(dir.path())
            .output()
            .expect("runbook runs");
        engine.push(start.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bare = median(bare);
    let engine = median(engine);
    let per_step = |d: Duration| d.as_secs_f64() * 1e3 / STEPS as f64;
    let overhead = per_step(engine) - per_step(bare);
    println!("{STEPS} shell steps running `true`, median of {ROUNDS} rounds");
    println!(
        "  bare spawns:         {:>8.1} ms total, {:.3} ms per process",
        bare.as_secs_f64() * 1e3,
        per_step(bare)
    );
    println!(
        "  runbook run (state): {:>8.1} ms total, {:.3} ms per step",
        engine.as_secs_f64() * 1e3,
        per_step(engine)
    );
    println!(
        "  engine overhead:     {overhead:.3} ms per step (goal: at most 2 ms) -> {}",
        if overhead <= 2.0 { "met" } else { "NOT met" }
    );
}

fn which(name: &str) -> std::path::PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    std::path::PathBuf::from(name)
}
