//! An approval given with `runbook approve` while the run waits at its gate at a terminal (the
//! run polls for it): the approver's process and the run's both append to the run's audit
//! chain, one after the other, and the chain stays one chain: it verifies, and the run goes
//! on past the gate.

use crate::support::{Project, Target};
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

/// The terminal's process, ended when the test ends however it ends (a failed assertion
/// leaves no run polling).
struct Terminal(std::process::Child);

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_approval_given_while_the_run_polls_keeps_its_chain_whole() {
    let p = Project::new(Target::sqlite);
    std::fs::write(p.path().join("runbook.yaml"), CONFIG).unwrap();
    p.playbook("p", PLAYBOOK);
    let bin = env!("CARGO_BIN_EXE_runbook");
    let command = format!("{bin} --color never -C {} run p", p.path().display());
    // util-linux `script` gives runbook a terminal, so it waits at the gate polling for
    // approvals rather than stopping there.
    let log = p.path().join("terminal.log");
    let mut child = Terminal(
        std::process::Command::new("script")
            .args(["-qfec", &command])
            .arg(&log)
            .env("RUNBOOK_ACTOR", "alice")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("util-linux `script` runs (apt-get install bsdutils)"),
    );
    let mut waited = 0;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("waiting for approval")
    {
        assert!(waited < 400, "the run never waited at its gate");
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
    }
    let (run, status) = p.last_run();
    assert_eq!(status, "running");
    let approved = p.as_user("bob", &["approve", &run, "ship", "--yes"]);
    assert_eq!(approved.code, 0, "{}", approved.combined());
    let mut waited = 0;
    while child.0.try_wait().unwrap().is_none() {
        assert!(waited < 400, "the run did not end after the approval");
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
    }
    let (_, status) = p.last_run();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status, "succeeded", "{text}");
    let verified = p.cmd(&["audit", "verify", &run]);
    assert_eq!(verified.code, 0, "{}", verified.combined());
    assert_eq!(
        p.target
            .query("SELECT name FROM sqlite_master WHERE name = 'after_gate'"),
        ["after_gate"]
    );
}
