//! runbook at a real terminal: util-linux `script` gives it a pseudo-terminal, writes what it
//! shows to a log, and passes on what the test types (the terminal turns ^C into SIGINT and ^D
//! into the end of input, as a person's keys do). Its stdin stays open: a closed one would end
//! the session.

use super::project::Project;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::Duration;

/// A runbook command at a terminal, ended when dropped however the test ends (a failed
/// assertion leaves nothing running).
pub struct Terminal {
    child: Child,
    log: PathBuf,
}

impl Terminal {
    /// Starts `runbook --color never -C <project> <args>` as `actor` (RUNBOOK_ACTOR). The
    /// shell `script` starts execs runbook, so a signal from the terminal reaches runbook
    /// alone. The screen is logged to `terminal-<actor>.log` in the project.
    pub fn start(p: &Project, args: &str, actor: &str) -> Terminal {
        let bin = env!("CARGO_BIN_EXE_runbook");
        let command = format!(
            "exec '{bin}' --color never -C '{}' {args}",
            p.path().display()
        );
        let log = p.path().join(format!("terminal-{actor}.log"));
        let child = std::process::Command::new("script")
            .args(["-qfec", &command])
            .arg(&log)
            .env("RUNBOOK_ACTOR", actor)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("util-linux `script` runs (apt-get install bsdutils)");
        Terminal { child, log }
    }

    /// What the terminal has shown so far.
    pub fn screen(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 20 s) until the screen shows `text`.
    pub fn wait_for(&self, text: &str) {
        for _ in 0..400 {
            if self.screen().contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the terminal never showed `{text}`:\n{}", self.screen());
    }

    /// Types `keys`.
    pub fn keys(&mut self, keys: &[u8]) {
        let stdin = self.child.stdin.as_mut().expect("script's stdin");
        stdin.write_all(keys).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for runbook to end, `within` at most (`script -e` exits with runbook's code).
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let waits = within.as_millis() / 50;
        for _ in 0..waits {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "runbook was still running {} s later:\n{}",
            within.as_secs(),
            self.screen()
        );
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
