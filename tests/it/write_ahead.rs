//! The write-ahead order at the level of system calls (issue 20), traced with strace: a step's
//! program starts only once everything written to the state store before it is fsynced (its
//! `step_started` and the previous step's verdict), and one fsync per step does it; before a
//! gate (which may wait for a person) the verdicts are fsynced on their own.

use crate::support::{Project, Target, repo};
use std::process::Command;

/// What the trace shows, in order: writes to and fsyncs of the state store's write-ahead log,
/// and the start and end of each step's program.
#[derive(Debug, PartialEq)]
enum Seen {
    WalWrite,
    /// SQLite's fsync at a commit.
    WalSync,
    /// runbook's own fdatasync of the log (`Journal::settle`).
    WalSettle,
    Exec(String),
    Exit(String),
}

/// Reads `strace -f -y` output: the state store's WAL writes and fsyncs (by the lines that
/// start them), and the `printf sN` programs' starts (runbook gives the resolved path as
/// `argv[0]`) and ends.
fn seen(trace: &str) -> Vec<Seen> {
    let mut steps: Vec<(String, String)> = Vec::new(); // (pid, step)
    let mut out = Vec::new();
    for line in trace.lines() {
        let Some((pid, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        if call.starts_with("execve(") && call.contains("printf\", \"s") {
            let step = call
                .split("printf\", \"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_default()
                .to_owned();
            steps.push((pid.to_owned(), step.clone()));
            out.push(Seen::Exec(step));
        } else if call.starts_with("exit_group(") {
            if let Some((_, step)) = steps.iter().find(|(p, _)| p == pid) {
                out.push(Seen::Exit(step.clone()));
            }
        } else if call.contains("state.db-wal>") {
            if call.starts_with("fsync(") {
                out.push(Seen::WalSync);
            } else if call.starts_with("fdatasync(") {
                out.push(Seen::WalSettle);
            } else if call.starts_with("pwrite64(") || call.starts_with("write(") {
                out.push(Seen::WalWrite);
            }
        }
    }
    out
}

/// Each step's program starts after an fsync that follows every write to the log before it
/// (its start record and the last verdict are on the disk before it acts); between one step's
/// end and the next one's start the log is written (the verdict) and fsynced once.
fn check_order(seen: &[Seen], steps: &[&str]) -> Result<(), String> {
    let at = |s: &Seen| seen.iter().position(|x| x == s);
    let synced = |s: &Seen| matches!(s, Seen::WalSync | Seen::WalSettle);
    for (k, step) in steps.iter().enumerate() {
        let exec = at(&Seen::Exec((*step).to_owned())).ok_or(format!("{step} never started"))?;
        let last_write = seen[..exec]
            .iter()
            .rposition(|s| *s == Seen::WalWrite)
            .ok_or(format!("nothing written to the store before {step}"))?;
        if !seen[last_write..exec].iter().any(synced) {
            return Err(format!(
                "{step} started with a write to the store not yet fsynced: {:?}",
                &seen[last_write..exec]
            ));
        }
        if k == 0 {
            continue;
        }
        let prev = Seen::Exit(steps[k - 1].to_owned());
        let exit = at(&prev).ok_or(format!("{} never ended", steps[k - 1]))?;
        let between = &seen[exit..exec];
        let syncs = between.iter().filter(|s| synced(s)).count();
        let first_sync = between.iter().position(synced);
        let written = first_sync.is_some_and(|i| between[..i].contains(&Seen::WalWrite));
        if syncs != 1 || !written {
            return Err(format!(
                "between the end of {} and the start of {step}: {between:?} (want the verdict written, then one fsync)",
                steps[k - 1]
            ));
        }
    }
    Ok(())
}

#[test]
fn a_step_acts_only_after_its_start_and_the_last_verdict_are_fsynced_once() {
    let p = Project::new(Target::sqlite);
    let steps = ["s1", "s2", "s3", "s4"];
    let mut yaml = String::from("name: order\nsteps:\n");
    for s in steps {
        yaml.push_str(&format!(
            "  - id: {s}\n    shell: {{ argv: [\"printf\", \"{s}\"] }}\n"
        ));
    }
    p.playbook("order", &yaml);
    let seen = traced(&p, "order");
    if let Err(e) = check_order(&seen, &steps) {
        panic!("{e}\n{seen:?}");
    }
    // Nothing to settle: the run's last record is fsynced with its commit, so no fsync of
    // runbook's own follows it.
    assert!(!seen.contains(&Seen::WalSettle), "{seen:?}");
}

/// Traces `runbook run NAME` of project `p` and gives what the trace shows.
fn traced(p: &Project, name: &str) -> Vec<Seen> {
    let trace = p.path().join(format!("{name}.trace"));
    let target = p.target.arg();
    let out = Command::new("strace")
        .args(["-f", "-y", "-qq", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=fsync,fdatasync,pwrite64,write,execve,exit_group",
            env!("CARGO_BIN_EXE_runbook"),
            "--color",
            "never",
            "-C",
        ])
        .arg(p.path())
        .args(["run", name, "--target", &target])
        .current_dir(repo())
        .output()
        .expect("strace runs (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    seen(&std::fs::read_to_string(&trace).unwrap())
}

#[test]
fn a_gate_fsyncs_the_verdicts_before_it_decides_and_a_plain_step_does_not() {
    let p = Project::new(Target::sqlite);
    p.playbook(
        "gated",
        "name: gated\nsteps:\n  - id: s1\n    shell: { argv: [\"printf\", \"s1\"] }\n  - id: s2\n    shell: { argv: [\"printf\", \"s2\"] }\n  - id: check\n    gate: { condition: { expr: \"1 == 1\", message: \"never\" } }\n  - id: s3\n    shell: { argv: [\"printf\", \"s3\"] }\n",
    );
    let seen = traced(&p, "gated");
    let pos = |s: Seen| seen.iter().position(|x| *x == s).expect("in the trace");
    let settles = |from: Seen, to: Seen| {
        seen[pos(from)..pos(to)]
            .iter()
            .filter(|s| **s == Seen::WalSettle)
            .count()
    };
    let s = |n: &str| n.to_owned();
    assert_eq!(
        settles(Seen::Exit(s("s1")), Seen::Exec(s("s2"))),
        0,
        "{seen:?}"
    );
    assert_eq!(
        settles(Seen::Exit(s("s2")), Seen::Exec(s("s3"))),
        1,
        "the gate settles once: {seen:?}"
    );
    // The gate's settle comes right after s2's verdict is written, before the gate records.
    let after = &seen[pos(Seen::Exit(s("s2")))..];
    let settle = after.iter().position(|x| *x == Seen::WalSettle).unwrap();
    assert!(
        after[..settle].contains(&Seen::WalWrite) && !after[..settle].contains(&Seen::WalSync),
        "{after:?}"
    );
}

#[test]
fn the_order_check_refuses_a_start_before_the_fsync_and_two_fsyncs_per_step() {
    use Seen::*;
    let s = |n: &str| n.to_owned();
    // s1 started on a synced start record and ended; then `rest`.
    let after_s1 = |rest: Vec<Seen>| {
        let mut all = vec![WalWrite, WalSync, Exec(s("s1")), Exit(s("s1"))];
        all.extend(rest);
        all
    };
    let good = after_s1(vec![
        WalWrite,
        WalWrite,
        WalSync,
        Exec(s("s2")),
        Exit(s("s2")),
    ]);
    assert_eq!(check_order(&good, &["s1", "s2"]), Ok(()));
    // The start written but not fsynced before the step acts.
    let unsynced = after_s1(vec![WalWrite, WalSync, WalWrite, Exec(s("s2"))]);
    assert!(check_order(&unsynced, &["s1", "s2"]).is_err());
    // Two fsyncs between steps (a verdict and a start each fsynced: the old cost).
    let twice = after_s1(vec![WalWrite, WalSync, WalWrite, WalSync, Exec(s("s2"))]);
    assert!(check_order(&twice, &["s1", "s2"]).is_err());
    // A verdict never written before the next step starts.
    let no_verdict = after_s1(vec![WalSync, Exec(s("s2"))]);
    assert!(check_order(&no_verdict, &["s1", "s2"]).is_err());
}
