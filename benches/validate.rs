//! Validates 1,000 generated playbooks, in process and through the CLI, and prints the time.
//! Goal (issue 2): under 1 second for all 1,000.
//!
//! Run with `cargo bench --bench validate`. Each playbook has 12 steps of mixed actions with
//! templates, params, a gate, rollback compensations and a finally block, like the shipped
//! ones. The figure printed is the median of several rounds.

use runbook::project::Project;
use std::path::Path;
use std::time::{Duration, Instant};

const PLAYBOOKS: usize = 1_000;
const ROUNDS: usize = 5;

fn playbook(i: usize) -> String {
    format!(
        r#"# yaml-language-server: $schema=../schemas/playbook.schema.json
name: generated-{i}
description: Generated playbook number {i}
params:
  backup_dir: {{ type: string, default: backups/{i} }}
  count: {{ type: integer, default: {i} }}
  token: {{ type: string, secret: true, from_env: BENCH_TOKEN }}
steps:
  - id: preflight
    health: {{ checks: [connection, disk_space, long_running_queries] }}
  - id: users_before
    sql:
      query: SELECT count(*) AS n FROM "User" WHERE id > $1
      params: ["{{{{ params.count }}}}"]
      expect: {{ min_rows: 1 }}
  - id: disk
    shell: {{ argv: [df, --output=pcent, "{{{{ params.backup_dir }}}}"], expect_exit: [0] }}
    outputs:
      pcent: {{ regex: '(\d+)%' }}
  - id: pending
    migrate: {{ action: status }}
  - id: approve
    gate:
      approval:
        message: "Apply {{{{ steps.pending.outputs.pending | length }}}} migrations to {{{{ env.name }}}}"
  - id: backup
    backup: {{ dir: "{{{{ params.backup_dir }}}}", retention_days: 30 }}
  - id: migrate
    migrate: {{ action: apply, lock_timeout: 5s }}
    retry: {{ attempts: 3, delay: 1s, backoff: 2 }}
    timeout: 10m
    rollback:
      - restore: {{ from: "{{{{ steps.backup.outputs.path }}}}" }}
  - id: seed
    seed: {{ set: production }}
    when: steps.pending.outputs.count > 0
  - id: wait
    wait_for: {{ sql: "SELECT 1", until: "result == 1", interval: 1s, deadline: 30s }}
  - id: check
    gate:
      condition:
        expr: steps.users_before.outputs.scalar >= 0
        message: "users disappeared"
  - id: verify
    health: {{ checks: all }}
  - id: note
    log: {{ message: "done with {{{{ steps.verify.outputs.status }}}} on {{{{ env.name }}}}" }}
    tags: [report]
finally:
  - id: summary
    log: {{ message: "generated {i} finished" }}
"#
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let playbooks = dir.path().join("playbooks");
    std::fs::create_dir_all(&playbooks).expect("playbooks dir");
    for i in 0..PLAYBOOKS {
        std::fs::write(playbooks.join(format!("generated-{i}.yaml")), playbook(i)).expect("write");
    }
    let project = Project::open(dir.path()).expect("project");
    let files = project.playbook_files();
    assert_eq!(files.len(), PLAYBOOKS);

    // In process: load, schema, typed model, semantic checks, for each file.
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for f in &files {
            let pb = project.load_playbook(f);
            assert!(
                pb.is_ok(),
                "{} did not validate: {:?}",
                f.display(),
                pb.err()
            );
        }
        rounds.push(start.elapsed());
    }
    let lib = median(rounds);

    // Through the CLI, as CI would run it: one process for all files.
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/runbook");
    let cli = if bin.is_file() {
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            let start = Instant::now();
            let status = std::process::Command::new(&bin)
                .args(["-q", "validate"])
                .current_dir(dir.path())
                .status()
                .expect("runbook starts");
            assert!(status.success());
            rounds.push(start.elapsed());
        }
        Some(median(rounds))
    } else {
        None
    };

    println!("validate {PLAYBOOKS} playbooks (12 steps each), median of {ROUNDS} rounds");
    println!(
        "  in process: {:>8.1} ms total, {:>6.1} us per playbook",
        lib.as_secs_f64() * 1e3,
        lib.as_secs_f64() * 1e6 / PLAYBOOKS as f64
    );
    match cli {
        Some(d) => println!(
            "  runbook validate (one process): {:>8.1} ms total",
            d.as_secs_f64() * 1e3
        ),
        None => println!(
            "  runbook validate: skipped, build target/release/runbook first (cargo build --release)"
        ),
    }
    let goal = Duration::from_secs(1);
    println!(
        "  goal: under {} ms -> {}",
        goal.as_millis(),
        if lib < goal { "met" } else { "NOT met" }
    );
}
