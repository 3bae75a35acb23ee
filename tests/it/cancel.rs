//! `runbook cancel RUN --reason TEXT`: the operator (or anyone) ends a run waiting at an
//! approval gate; the cancellation is recorded in the audit chain and the state store, and the
//! run's rollback runs as for a rejection. And the wait at a terminal says so once, not at
//! every poll.

use crate::stable;
use crate::support::{Project, Target, Terminal};
use std::time::Duration;

const CONFIG: &str = "environments:\n  dev:\n    target: { sqlite: target.db }\n";

const PLAYBOOK: &str = r#"name: p
steps:
  - id: make
    sql: { query: "CREATE TABLE made (id INTEGER)" }
    rollback:
      - id: unmake
        sql: { query: "DROP TABLE made" }
  - id: ship
    gate: { approval: { message: "ship it" } }
  - id: after
    sql: { query: "CREATE TABLE after_gate (id INTEGER)" }
"#;

fn waiting_project() -> (Project, String) {
    let p = Project::new(Target::sqlite);
    std::fs::write(p.path().join("runbook.yaml"), CONFIG).unwrap();
    p.playbook("p", PLAYBOOK);
    let out = p.as_user("alice", &["run", "p"]);
    assert_eq!(out.code, 3, "{}", out.combined());
    let (run, status) = p.last_run();
    assert_eq!(status, "waiting_approval");
    (p, run)
}

fn tables(p: &Project) -> Vec<String> {
    p.target
        .query("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('made', 'after_gate') ORDER BY name")
}

#[test]
fn the_operator_cancels_their_own_waiting_run_and_its_rollback_runs() {
    let (p, run) = waiting_project();
    assert_eq!(tables(&p), ["made"]);

    // Approving their own run is refused, and the message says how to end it instead.
    let own = p.as_user("alice", &["approve", &run, "ship", "--yes"]);
    assert_eq!(own.code, 7, "{}", own.combined());
    assert!(
        own.stderr
            .contains(&format!("runbook cancel {run} --reason")),
        "{}",
        own.combined()
    );

    let out = p.as_user(
        "alice",
        &["cancel", &run, "--reason", "wrong release", "--yes"],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    stable!({ insta::assert_snapshot!(out.combined()) });
    // The rollback ran; nothing past the gate ran.
    assert!(tables(&p).is_empty(), "{:?}", tables(&p));

    let status = p.status_json(&run);
    assert_eq!(status["run"]["status"], "refused", "{status}");
    let text = p.cmd(&["status", &run]);
    assert!(
        text.stdout.contains("cancelled by alice: wrong release"),
        "{}",
        text.combined()
    );
    // Recorded in the audit chain, which still verifies.
    let export = p.cmd(&["audit", "export", &run, "--format", "json"]);
    assert!(
        export.stdout.contains("\"decision\": \"cancel\"")
            && export.stdout.contains("wrong release"),
        "{}",
        export.combined()
    );
    let verify = p.cmd(&["audit", "verify", &run]);
    assert_eq!(verify.code, 0, "{}", verify.combined());
}

#[test]
fn cancel_needs_a_reason_and_a_waiting_run() {
    let (p, run) = waiting_project();
    let no_reason = p.cmd(&["cancel", &run]);
    assert_eq!(no_reason.code, 2, "{}", no_reason.combined());
    assert!(
        no_reason.stderr.contains("--reason"),
        "{}",
        no_reason.combined()
    );
    assert_eq!(tables(&p), ["made"], "nothing was rolled back");

    let done = p.as_user("bob", &["cancel", &run, "--reason", "stop", "--yes"]);
    assert_eq!(done.code, 0, "{}", done.combined());
    let again = p.as_user("bob", &["cancel", &run, "--reason", "again", "--yes"]);
    assert_eq!(again.code, 2, "{}", again.combined());
    assert!(again.stderr.contains("is refused"), "{}", again.combined());
}

/// At a terminal, the wait for approvals is said once, not every two seconds.
#[test]
fn waiting_at_a_terminal_says_so_once() {
    let p = Project::new(Target::sqlite);
    std::fs::write(p.path().join("runbook.yaml"), CONFIG).unwrap();
    p.playbook("p", PLAYBOOK);
    let term = Terminal::start(&p, "run p", "alice");
    std::thread::sleep(Duration::from_secs(7));
    let text = term.screen();
    drop(term);
    assert_eq!(text.matches("waiting for approval").count(), 1, "{text}");
    assert!(text.contains("runbook cancel"), "{text}");
}
