//! Ctrl-C at a gate's prompt at a terminal: the run stops waiting for the answer at once and
//! is recorded as interrupted (exit 5), with nothing past the gate run; `resume` continues it.
//! Before, the prompt's read of the terminal went on until Enter, and the empty answer then
//! refused the run (exit 7) as if the operator had typed a wrong confirmation.

use crate::support::{Project, Target};
use std::io::Write;
use std::time::Duration;

/// The terminal's process, ended when the test ends however it ends (a failed assertion
/// leaves no run at its prompt).
struct Terminal(std::process::Child);

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `playbook` at a terminal (util-linux `script`), waits for `prompt` on its screen,
/// types Ctrl-C, and returns the terminal's exit code (runbook's, `-e`) and its screen.
fn interrupt_at_prompt(p: &Project, playbook: &str, prompt: &str) -> (Option<i32>, String) {
    let bin = env!("CARGO_BIN_EXE_runbook");
    let command = format!(
        "{bin} --color never -C {} run {playbook}",
        p.path().display()
    );
    let log = p.path().join("terminal.log");
    let mut term = Terminal(
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
        .contains(prompt)
    {
        assert!(waited < 400, "the run never asked `{prompt}`");
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
    }
    // The terminal turns ^C into SIGINT for runbook, as a person's Ctrl-C does.
    let stdin = term.0.stdin.as_mut().expect("script's stdin");
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
    let mut waited = 0;
    let status = loop {
        if let Some(status) = term.0.try_wait().unwrap() {
            break status;
        }
        let screen = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            waited < 200,
            "the run was still at its prompt 10 s after Ctrl-C:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
    };
    (
        status.code(),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

fn made(p: &Project) -> Vec<String> {
    p.target
        .query("SELECT name FROM sqlite_master WHERE name = 'after_gate'")
}

#[test]
fn ctrl_c_at_a_confirm_prompt_interrupts_the_run() {
    let p = Project::new(Target::sqlite);
    std::fs::write(
        p.path().join("runbook.yaml"),
        "environments:\n  dev:\n    target: { sqlite: target.db }\n",
    )
    .unwrap();
    p.playbook(
        "p",
        "name: p\nsteps:\n  - id: sure\n    gate: { confirm: { message: \"really?\", expect: go-on } }\n  - id: after\n    sql: { query: \"CREATE TABLE after_gate (id INTEGER)\" }\n",
    );
    let (code, screen) = interrupt_at_prompt(&p, "p", "Type `go-on` to go on");
    assert_eq!(code, Some(5), "{screen}");
    let (run, status) = p.last_run();
    assert_eq!(status, "interrupted", "{screen}");
    assert!(made(&p).is_empty(), "the step past the gate ran");
    let resumed = p.cmd(&["resume", &run, "--confirm", "go-on"]);
    assert_eq!(resumed.code, 0, "{}", resumed.combined());
    assert_eq!(made(&p), ["after_gate"]);
}

#[test]
fn ctrl_c_at_an_approval_prompt_interrupts_the_run() {
    let p = Project::new(Target::sqlite);
    std::fs::write(
        p.path().join("runbook.yaml"),
        "environments:\n  dev:\n    target: { sqlite: target.db }\n    protections: { self_approval: true }\n",
    )
    .unwrap();
    p.playbook(
        "p",
        "name: p\nsteps:\n  - id: ship\n    gate: { approval: { message: \"ship it\" } }\n  - id: after\n    sql: { query: \"CREATE TABLE after_gate (id INTEGER)\" }\n",
    );
    let (code, screen) = interrupt_at_prompt(&p, "p", "Approve as alice? [y/N]");
    assert_eq!(code, Some(5), "{screen}");
    let (run, status) = p.last_run();
    assert_eq!(status, "interrupted", "{screen}");
    assert!(made(&p).is_empty(), "the step past the gate ran");
    // No rejection was recorded for the operator's Ctrl-C: the gate is still open.
    let shown = p.status_json(&run);
    assert!(
        !shown.to_string().contains("\"reject\""),
        "a rejection was recorded: {shown}"
    );
}
