//! Ctrl-C at a gate's prompt at a terminal: the run stops waiting for the answer at once and
//! is recorded as interrupted (exit 5), with nothing past the gate run; `resume` continues it.
//! Before, the prompt's read of the terminal went on until Enter, and the empty answer then
//! refused the run (exit 7) as if the operator had typed a wrong confirmation. A terminal that
//! gives no answer (Ctrl-D; a hung-up one ends the read the same way before its SIGHUP comes)
//! interrupts the run too, and Ctrl-C at `runbook approve`'s own question records nothing.

use crate::support::{Project, Target, Terminal};
use std::time::Duration;

/// Runs runbook with `args` at a terminal as `actor`, waits for `prompt` on its screen, types
/// `keys`, and returns runbook's exit code and the screen (it must end within 10 s).
fn at_prompt(
    p: &Project,
    args: &str,
    actor: &str,
    prompt: &str,
    keys: &[u8],
) -> (Option<i32>, String) {
    let mut term = Terminal::start(p, args, actor);
    term.wait_for(prompt);
    term.keys(keys);
    let status = term.wait_exit(Duration::from_secs(10));
    (status.code(), term.screen())
}

const CTRL_C: &[u8] = b"\x03";
const CTRL_D: &[u8] = b"\x04";

const CONFIRM: &str = "name: p\nsteps:\n  - id: sure\n    gate: { confirm: { message: \"really?\", expect: go-on } }\n  - id: after\n    sql: { query: \"CREATE TABLE after_gate (id INTEGER)\" }\n";

const APPROVAL: &str = "name: p\nsteps:\n  - id: ship\n    gate: { approval: { message: \"ship it\" } }\n  - id: after\n    sql: { query: \"CREATE TABLE after_gate (id INTEGER)\" }\n";

const DEV: &str = "environments:\n  dev:\n    target: { sqlite: target.db }\n";

fn project(config: &str, playbook: &str) -> Project {
    let p = Project::new(Target::sqlite);
    std::fs::write(p.path().join("runbook.yaml"), config).unwrap();
    p.playbook("p", playbook);
    p
}

/// A run stopped at its approval gate without a terminal, waiting (exit 3), and its id.
fn waiting_at_approval() -> (Project, String) {
    let p = project(DEV, APPROVAL);
    let waiting = p.cmd(&["run", "p"]);
    assert_eq!(waiting.code, 3, "{}", waiting.combined());
    let (run, _) = p.last_run();
    (p, run)
}

fn made(p: &Project) -> Vec<String> {
    p.target
        .query("SELECT name FROM sqlite_master WHERE name = 'after_gate'")
}

#[test]
fn ctrl_c_at_a_confirm_prompt_interrupts_the_run() {
    let p = project(DEV, CONFIRM);
    let (code, screen) = at_prompt(&p, "run p", "alice", "Type `go-on` to go on", CTRL_C);
    assert_eq!(code, Some(5), "{screen}");
    let (run, status) = p.last_run();
    assert_eq!(status, "interrupted", "{screen}");
    assert!(made(&p).is_empty(), "the step past the gate ran");
    let resumed = p.cmd(&["resume", &run, "--confirm", "go-on"]);
    assert_eq!(resumed.code, 0, "{}", resumed.combined());
    assert_eq!(made(&p), ["after_gate"]);
}

#[test]
fn a_terminal_that_gives_no_answer_interrupts_the_run() {
    let p = project(DEV, CONFIRM);
    let (code, screen) = at_prompt(&p, "run p", "alice", "Type `go-on` to go on", CTRL_D);
    assert_eq!(code, Some(5), "{screen}");
    let (_, status) = p.last_run();
    assert_eq!(status, "interrupted", "{screen}");
    assert!(made(&p).is_empty(), "the step past the gate ran");
}

const SELF_APPROVAL: &str = "environments:\n  dev:\n    target: { sqlite: target.db }\n    protections: { self_approval: true }\n";

#[test]
fn ctrl_c_at_an_approval_prompt_interrupts_the_run() {
    let p = project(SELF_APPROVAL, APPROVAL);
    let (code, screen) = at_prompt(&p, "run p", "alice", "Approve as alice? [y/N]", CTRL_C);
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

#[test]
fn ctrl_c_at_the_approve_commands_question_records_nothing() {
    let (p, run) = waiting_at_approval();
    let (code, screen) = at_prompt(
        &p,
        &format!("approve {run} ship"),
        "bob",
        "Record this approval? [y/N]",
        CTRL_C,
    );
    assert_eq!(code, Some(5), "{screen}");
    assert!(screen.contains("nothing was recorded"), "{screen}");
    let shown = p.status_json(&run);
    assert!(
        !shown.to_string().contains("bob"),
        "bob's approval was recorded: {shown}"
    );
    assert_eq!(p.last_run().1, "waiting_approval");
}

/// `runbook cancel` said exit 0 (the run cancelled) when its question was not answered yes.
#[test]
fn ctrl_c_at_the_cancel_commands_question_records_nothing_and_says_so() {
    let (p, run) = waiting_at_approval();
    let (code, screen) = at_prompt(
        &p,
        &format!("cancel {run} --reason changed-my-mind"),
        "alice",
        "Record this cancellation? [y/N]",
        CTRL_C,
    );
    assert_eq!(code, Some(5), "{screen}");
    assert!(screen.contains("nothing was recorded"), "{screen}");
    assert_eq!(p.last_run().1, "waiting_approval");
    let (code, screen) = at_prompt(
        &p,
        &format!("cancel {run} --reason changed-my-mind"),
        "carol",
        "Record this cancellation? [y/N]",
        b"n\r",
    );
    assert_eq!(code, Some(7), "{screen}");
    assert_eq!(p.last_run().1, "waiting_approval");
}
