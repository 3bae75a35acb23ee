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

#[test]
fn an_approval_given_while_the_run_polls_keeps_its_chain_whole() {
    let p = Project::new(Target::sqlite);
    std::fs::write(p.path().join("runbook.yaml"), CONFIG).unwrap();
    p.playbook("p", PLAYBOOK);
    // At a terminal runbook waits at the gate polling for approvals rather than stopping.
    let mut term = Terminal::start(&p, "run p", "alice");
    term.wait_for("waiting for approval");
    let (run, status) = p.last_run();
    assert_eq!(status, "running");
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
