//! The one wrapper that starts every subprocess: explicit argv, working directory and
//! environment, captured output, a timeout, and cancellation. The child is made the leader of
//! its own process group, so a timeout or Ctrl-C kills the whole tree it started, not only the
//! direct child. Besides `run`, `run_fed` joins two programs through runbook (a restore's
//! pg_restore into psql, with a last line written only when the first succeeded),
//! `output_sync` asks a tool a quick question and `spawn` starts a child that runs beside us
//! (fleets), polled and signalled by its caller.
//!
//! Nothing started here outlives runbook: once [`supervise`] is called (the CLI does), each
//! group `run`, `run_fed` and `spawn` start is told to the watchdog (`src/watchdog.rs`, started
//! at the first such child), which stops the groups still running when runbook dies, SIGKILL
//! included. A [`ChildObserver`] set with [`observe`] hears of each child when it starts and
//! when it is reaped (the executor records a run's children there for `resume`). A `run`
//! whose future is dropped before its child ended kills the child's group.
//!
//! The folder: this file (the specs, `run`, `output_sync`, `spawn` and the conventions every
//! child shares), `feed` (`run_fed`), `supervise` (the watchdog's client, the observer, and
//! `Tracked`, the record of a started child until it is reaped).

mod feed;
mod supervise;

pub use feed::{FedOutput, Feed, run_fed};
pub use supervise::{ChildId, ChildObserver, observe, supervise};
use supervise::{Tracked, lock};

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct ProcessOutput {
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{}", not_started(program, source))]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("timed out after {0:?}; the process and its children were killed")]
    TimedOut(Duration),
    #[error("interrupted; the process and its children were killed")]
    Interrupted,
    #[error("waiting for the process failed: {0}")]
    Wait(std::io::Error),
}

/// Why `program` did not start, in words: a program that is not there is named as not
/// installed (or not on `PATH`), the user's environment rather than runbook's.
pub fn not_started(program: &str, source: &std::io::Error) -> String {
    if source.kind() == std::io::ErrorKind::NotFound {
        return format!("cannot start `{program}`: it is not installed or not on PATH");
    }
    format!("cannot start `{program}`: {source}")
}

/// Starts the process and waits for it, its timeout, or `cancel` turning true. The child and
/// its two pipes are waited on by the runtime's reactor (tokio's process support): no thread
/// is started per child or per pipe. Both pipes are read to their end, as a shell's `$(...)`
/// would (a background process that keeps one open keeps the step running).
pub async fn run(
    spec: &ProcessSpec,
    cancel: &mut watch::Receiver<bool>,
) -> Result<ProcessOutput, ProcessError> {
    let (program, args) = split_argv(&spec.argv)?;
    let resolved = resolve_program(program, &spec.cwd);
    tracing::debug!(program = %resolved.display(), args = args.len(), cwd = %spec.cwd.display(), timeout = ?spec.timeout, "starting process");
    let mut cmd = std::process::Command::new(&resolved);
    cmd.args(args)
        .current_dir(&spec.cwd)
        .envs(&spec.env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pids: Vec<u32> = child.id().into_iter().collect();
    let mut tracked = Tracked::new(&pids, &resolved, true, None);
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let work = async { tokio::join!(read_all(stdout), read_all(stderr), child.wait()) };
    let timeout = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let cancelled = crate::cancel::wait_cancel(cancel);
    let stopped = tokio::select! {
        done = work => Ok(done),
        _ = timeout => Err(ProcessError::TimedOut(spec.timeout.unwrap_or_default())),
        _ = cancelled => Err(ProcessError::Interrupted),
    };
    let (out, err, status) = match stopped {
        Ok(done) => done,
        Err(e) => {
            kill_child(&pids, &mut child).await;
            tracked.reaped();
            return Err(e);
        }
    };
    tracked.reaped();
    let status = status.map_err(ProcessError::Wait)?;
    Ok(ProcessOutput {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.map_err(ProcessError::Wait)?).into_owned(),
        stderr: String::from_utf8_lossy(&err.map_err(ProcessError::Wait)?).into_owned(),
    })
}

/// Everything a child's pipe gives until its end.
async fn read_all(
    pipe: Option<impl tokio::io::AsyncRead + Unpin>,
) -> Result<Vec<u8>, std::io::Error> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    if let Some(mut p) = pipe {
        p.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

/// Kills the child's process group, then reaps the child.
async fn kill_child(pids: &[u32], child: &mut tokio::process::Child) {
    signal_groups(pids, libc::SIGKILL);
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Runs a short command to its end and returns what it printed, without a timeout or
/// cancellation: for quick questions to a tool (such as git's current commit), not for work.
/// The caller decides what a non-zero exit code means. The child is not told to the watchdog:
/// it ends by itself in a moment, and a run that asks git only would otherwise start one.
pub fn output_sync(argv: &[&str], cwd: &Path) -> Result<ProcessOutput, ProcessError> {
    let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
    let (program, args) = split_argv(&argv)?;
    let resolved = resolve_program(program, cwd);
    tracing::debug!(program = %resolved.display(), args = args.len(), cwd = %cwd.display(), "running process");
    let out = expression(&resolved, args, cwd, &BTreeMap::new())
        .stdout_capture()
        .stderr_capture()
        .run()
        .map_err(|source| ProcessError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    Ok(ProcessOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// A child started by `spawn`: it runs on its own while the caller polls it, and leads its own
/// process group, so a signal sent through it reaches everything the child started.
pub struct Child {
    handle: duct::Handle,
    pids: Vec<u32>,
    tracked: Mutex<Tracked>,
}

/// Starts a process that runs beside us, its stdout discarded and its stderr written to
/// `stderr_to` (the child keeps its own records; what it said is read back when it failed),
/// and returns at once.
pub fn spawn(
    argv: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
    stderr_to: &Path,
) -> Result<Child, ProcessError> {
    let (program, args) = split_argv(argv)?;
    let resolved = resolve_program(program, cwd);
    tracing::debug!(program = %resolved.display(), args = args.len(), cwd = %cwd.display(), "spawning process");
    let handle = expression(&resolved, args, cwd, env)
        .stdout_null()
        .stderr_path(stderr_to)
        .start()
        .map_err(|source| ProcessError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    let pids = handle.pids();
    let tracked = Mutex::new(Tracked::new(&pids, &resolved, false, None));
    Ok(Child {
        handle,
        pids,
        tracked,
    })
}

impl Child {
    /// `None` while the child runs; then `Some` of its exit code (`None` when a signal ended
    /// it).
    pub fn try_wait(&self) -> Result<Option<Option<i32>>, ProcessError> {
        match self.handle.try_wait() {
            Ok(Some(out)) => {
                lock(&self.tracked).reaped();
                Ok(Some(out.status.code()))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(ProcessError::Wait(e)),
        }
    }

    /// Passes a Ctrl-C on to the child's process group: the child being in a group of its own,
    /// the terminal's Ctrl-C reaches only us.
    pub fn interrupt(&self) {
        signal_groups(&self.pids, libc::SIGINT);
    }

    /// Kills the child's whole process group and reaps the child.
    pub fn kill(&self) {
        signal_groups(&self.pids, libc::SIGKILL);
        let _ = self.handle.kill();
        if self.handle.wait().is_ok() {
            lock(&self.tracked).reaped();
        }
    }
}

/// The program and its arguments; an empty argv cannot start.
fn split_argv(argv: &[String]) -> Result<(&String, &[String]), ProcessError> {
    argv.split_first().ok_or_else(|| ProcessError::Spawn {
        program: String::new(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"),
    })
}

/// The conventions every child shares: the resolved program, an explicit working directory and
/// environment, no stdin, exit codes returned rather than turned into errors, and a process
/// group of its own.
fn expression(
    resolved: &Path,
    args: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> duct::Expression {
    with_stdin(resolved, args, cwd, env).stdin_null()
}

/// [`expression`] but for stdin, which the caller gives (duct lets an inner redirection win).
fn with_stdin(
    resolved: &Path,
    args: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> duct::Expression {
    let mut expr = duct::cmd(resolved, args)
        .dir(cwd)
        .unchecked()
        .before_spawn(|cmd| {
            cmd.process_group(0);
            Ok(())
        });
    for (k, v) in env {
        expr = expr.env(k, v);
    }
    expr
}

/// Sends `signal` to each child's process group.
fn signal_groups(pids: &[u32], signal: i32) {
    for &pid in pids {
        if let Ok(pid) = i32::try_from(pid) {
            // SAFETY: killpg only sends a signal; the group id is the child's pid because
            // the child was started with process_group(0).
            unsafe {
                libc::killpg(pid, signal);
            }
        }
    }
}

/// Looks a bare program name up in `PATH` the way `execvp` would. Giving std an absolute path
/// lets it start the child with `posix_spawn` (no copy of our page tables) instead of `fork`,
/// which matters when a playbook starts hundreds of short processes.
fn resolve_program(program: &str, cwd: &Path) -> PathBuf {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return if p.is_relative() { cwd.join(p) } else { p };
    }
    use std::os::unix::fs::PermissionsExt;
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
    {
        let candidate = std::path::Path::new(dir).join(program);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return candidate;
        }
    }
    PathBuf::from(program)
}
