//! An approval given with `runbook approve` while the run waits at its gate at a terminal (the
//! run polls for it): the approver's process and the run's both append to the run's audit
//! chain, one after the other, and the chain stays one chain: it verifies, and the run goes
//! on past the gate.

use crate::support::{Project, Target, Terminal};
use std::time::Duration;

const CONFIG: &str = "environments:\n  dev:\n    target: { sqlite: target.db }\n";

const PLAYBOOK: &str = r#"name: p
steps:
  - id: make
    sql: { query: "CREATE TABLE made (id INTEGER)" }
  - id: ship
    gate: { approval: { message: "ship it" } }
  - id: after
    sql: { query: "CREATE TABLE after_gate (id INTEGER)" }
"#;

/// Starts `run p` of `playbook` (other playbooks already written by `more`) at a terminal as
/// alice, on the SQLite target of [`CONFIG`], and waits for `shown` on its screen; gives the
/// project, the terminal and the run's id.
fn at_terminal(
    playbook: &str,
    more: impl Fn(&Project),
    shown: &str,
) -> (Project, Terminal, String) {
    let p = Project::new(Target::sqlite);
    std::fs::write(p.path().join("runbook.yaml"), CONFIG).unwrap();
    p.playbook("p", playbook);
    more(&p);
    let term = Terminal::start(&p, "run p", "alice");
    term.wait_for(shown);
    let (run, _) = p.last_run();
    (p, term, run)
}

#[test]
fn an_approval_given_while_the_run_polls_keeps_its_chain_whole() {
    // At a terminal runbook waits at the gate polling for approvals rather than stopping.
    let (p, mut term, run) = at_terminal(PLAYBOOK, |_| {}, "waiting for approval");
    assert_eq!(p.last_run().1, "running");
    let approved = p.as_user("bob", &["approve", &run, "ship", "--yes"]);
    assert_eq!(approved.code, 0, "{}", approved.combined());
    term.wait_exit(Duration::from_secs(20));
    let (_, status) = p.last_run();
    assert_eq!(status, "succeeded", "{}", term.screen());
    let verified = p.cmd(&["audit", "verify", &run]);
    assert_eq!(verified.code, 0, "{}", verified.combined());
    assert_eq!(
        p.target
            .query("SELECT name FROM sqlite_master WHERE name = 'after_gate'"),
        ["after_gate"]
    );
}

/// `runbook cancel` of a run that waits at its gate at a terminal: the running process reads
/// the cancellation at its gate and rolls the run back itself. The cancel waits for that
/// outcome and says it (exit 0: the run ended refused, as asked) rather than trying to
/// resume a run another process holds (exit 4, "nothing ran", while the rollback ran).
#[test]
fn a_cancellation_of_a_run_waiting_at_a_terminal_waits_for_its_rollback() {
    // An include's `finally` (recorded in the `finally` phase) runs before the gate: the run is
    // still at its main steps.
    let (p, mut term, run) = at_terminal(
        "name: p\nsteps:\n  - id: make\n    sql: { query: \"CREATE TABLE made (id INTEGER)\" }\n    rollback:\n      - sql: { query: \"DROP TABLE made\" }\n  - id: part\n    include: { playbook: sub }\n  - id: ship\n    gate: { approval: { message: \"ship it\" } }\n  - id: after\n    sql: { query: \"CREATE TABLE after_gate (id INTEGER)\" }\n",
        |p| {
            p.playbook(
                "sub",
                "name: sub\nsteps:\n  - id: inner\n    log: { message: inner }\nfinally:\n  - id: tidy\n    log: { message: tidy }\n",
            );
        },
        "waiting for approval",
    );
    let cancelled = p.as_user("bob", &["cancel", &run, "--reason", "wrong day", "--yes"]);
    term.wait_exit(Duration::from_secs(20));
    assert_eq!(cancelled.code, 0, "{}", cancelled.combined());
    let (_, status) = p.last_run();
    assert_eq!(status, "refused", "{}", term.screen());
    assert!(
        p.target
            .query("SELECT name FROM sqlite_master WHERE name IN ('made', 'after_gate')")
            .is_empty(),
        "{}",
        term.screen()
    );
    let verified = p.cmd(&["audit", "verify", &run]);
    assert_eq!(verified.code, 0, "{}", verified.combined());
}

/// A live run that is not at an approval gate (here at a `confirm` gate's prompt, its approval
/// gate next) cannot be cancelled: refused, exit 2, nothing recorded; the run goes on.
#[test]
fn a_live_run_not_at_an_approval_gate_cannot_be_cancelled() {
    let (p, mut term, run) = at_terminal(
        "name: p\nsteps:\n  - id: sure\n    gate: { confirm: { message: \"really?\", expect: go-on } }\n  - id: ship\n    gate: { approval: { message: \"ship it\" } }\n",
        |_| {},
        "go-on",
    );
    let refused = p.as_user("bob", &["cancel", &run, "--reason", "wrong day", "--yes"]);
    assert_eq!(refused.code, 2, "{}", refused.combined());
    assert!(
        refused
            .stderr
            .contains("its next step, sure, is not an approval gate"),
        "{}",
        refused.stderr
    );
    term.keys(b"\x03");
    term.wait_exit(Duration::from_secs(20));
    let events = p.cmd(&["audit", "show", &run]);
    assert!(!events.stdout.contains("wrong day"), "{}", events.stdout);
}
