//! What a person sees at a terminal: runbook runs in a real pseudo-terminal (tmux), and the
//! screen (`capture-pane`) is compared with snapshots while a step runs, while the run waits
//! at a confirm gate, and at the end (the summary table).

use crate::support::{Project, Target};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PLAYBOOK: &str = r#"name: show
steps:
  - id: prepare
    sql: { query: "CREATE TABLE t (a INTEGER)" }
  - id: a_rather_long_step_name
    shell: { argv: [sleep, "3"] }
  - id: sure
    gate: { confirm: { message: "This drops table t", expect: drop-it } }
  - id: drop
    sql: { query: "DROP TABLE t" }
"#;

/// A tmux server of its own (its own socket), 100x30, running one command.
struct Screen {
    socket: std::path::PathBuf,
}

impl Screen {
    fn start(dir: &Path, command: &str) -> Screen {
        let socket = dir.join("tmux.sock");
        let status = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "100",
                "-y",
                "30",
            ])
            .arg(command)
            .env_remove("TMUX")
            .env("NO_COLOR", "1")
            .status()
            .expect("tmux is installed");
        assert!(status.success());
        Screen { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen's text, trailing blank lines and spaces dropped.
    fn capture(&self) -> String {
        let text = self.tmux(&["capture-pane", "-p"]);
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        let end = lines
            .iter()
            .rposition(|l| !l.is_empty())
            .map_or(0, |i| i + 1);
        lines[..end].join("\n") + "\n"
    }

    /// The screen once `ready` holds for it (within 30 s).
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.capture();
            if ready(&screen) {
                return screen;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the screen never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// Spinner frames, the clock and elapsed times vary from run to run; the rest must not.
fn stable(screen: &str) -> String {
    let spinner = regex::Regex::new(r"(?m)^[\u{2800}-\u{28FF}] ").unwrap();
    let elapsed = regex::Regex::new(r"\b\d+(\.\d)?s\b").unwrap();
    let run = regex::Regex::new(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b").unwrap();
    let dir = regex::Regex::new(r"/tmp/\.tmp[A-Za-z0-9]+").unwrap();
    let text = spinner.replace_all(screen, "[spinner] ");
    let text = elapsed.replace_all(&text, "[secs]");
    let text = run.replace_all(&text, "[run]");
    dir.replace_all(&text, "[dir]").into_owned()
}

#[test]
fn the_live_display_while_a_step_runs_at_a_gate_and_at_the_end() {
    let p = Project::new(Target::sqlite);
    p.playbook("show", PLAYBOOK);
    let command = format!(
        "cd {} && RUNBOOK_ACTOR=alice {} --color never run show --target {}; echo exit=$?; sleep 60",
        p.path().display(),
        env!("CARGO_BIN_EXE_runbook"),
        p.target.arg()
    );
    let screen = Screen::start(p.path(), &command);
    let running = screen.wait_for("the running step", |s| {
        s.contains("a_rather_long_step_name (shell)") && !s.contains("ok      a_rather")
    });
    let gate = screen.wait_for("the confirm prompt", |s| s.contains("drop-it"));
    screen.tmux(&["send-keys", "drop-it", "Enter"]);
    let end = screen.wait_for("the summary", |s| s.contains("exit="));
    insta::assert_snapshot!("screen-running", stable(&running));
    insta::assert_snapshot!("screen-gate", stable(&gate));
    insta::assert_snapshot!("screen-end", stable(&end));
}
