//! A builder for running the `runbook` binary the way a user would, and its output.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (where Cargo.toml is).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr together, labelled, for snapshots.
    pub fn combined(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// runbook started in the background; killed if the test ends first (a failed assertion).
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Runbook {
    cmd: Command,
}

impl Runbook {
    pub fn new(args: &[&str]) -> Self {
        Runbook::via(Path::new(env!("CARGO_BIN_EXE_runbook")), args)
    }

    /// runbook started through `program`: a link to it under another name, as a package
    /// installs it (`runbook-1.2`).
    pub fn via(program: &Path, args: &[&str]) -> Self {
        let mut cmd = Command::new(program);
        cmd.args(["--color", "never"])
            .args(args)
            .current_dir(repo());
        cmd.env_remove("NO_COLOR").env_remove("RUST_LOG");
        Runbook { cmd }
    }

    pub fn dir(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// Starts runbook in the background, its stdout and stderr going to `log`.
    pub fn start(mut self, log: &Path) -> std::process::Child {
        let out = std::fs::File::create(log).expect("create the log");
        let err = out.try_clone().expect("clone the log");
        self.cmd
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("runbook binary starts")
    }

    pub fn run(mut self) -> Output {
        let out = self.cmd.output().expect("runbook binary starts");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
