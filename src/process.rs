//! The one wrapper that starts every subprocess: explicit argv, working directory and
//! environment, captured output, a timeout, and cancellation. The child is made the leader of
//! its own process group, so a timeout or Ctrl-C kills the whole tree it started, not only the
//! direct child.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::Arc;
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
    #[error("cannot start `{program}`: {source}")]
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

/// Starts the process and waits for it, its timeout, or `cancel` turning true.
pub async fn run(
    spec: &ProcessSpec,
    cancel: &mut watch::Receiver<bool>,
) -> Result<ProcessOutput, ProcessError> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(ProcessError::Spawn {
            program: String::new(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"),
        });
    };
    let resolved = resolve_program(program, &spec.cwd);
    tracing::debug!(program = %resolved.display(), args = args.len(), cwd = %spec.cwd.display(), timeout = ?spec.timeout, "starting process");
    let mut expr = duct::cmd(&resolved, args)
        .dir(&spec.cwd)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .before_spawn(|cmd| {
            cmd.process_group(0);
            Ok(())
        });
    for (k, v) in &spec.env {
        expr = expr.env(k, v);
    }
    let handle = Arc::new(expr.start().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?);
    let pids = handle.pids();
    let waiter = {
        let handle = handle.clone();
        tokio::task::spawn_blocking(move || handle.wait().cloned())
    };
    let timeout = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let cancelled = crate::cancel::wait_cancel(cancel);
    tokio::select! {
        done = waiter => {
            let out = done.map_err(|e| ProcessError::Wait(std::io::Error::other(e)))?.map_err(ProcessError::Wait)?;
            Ok(ProcessOutput {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
        _ = timeout => {
            kill_tree(&pids, &handle).await;
            Err(ProcessError::TimedOut(spec.timeout.unwrap_or_default()))
        }
        _ = cancelled => {
            kill_tree(&pids, &handle).await;
            Err(ProcessError::Interrupted)
        }
    }
}

/// Kills each child's process group, then reaps the children.
async fn kill_tree(pids: &[u32], handle: &Arc<duct::Handle>) {
    for &pid in pids {
        if let Ok(pid) = i32::try_from(pid) {
            // SAFETY: killpg only sends a signal; the group id is the child's pid because
            // the child was started with process_group(0).
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
    let _ = handle.kill();
    let handle = handle.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let _ = handle.wait();
    })
    .await;
}

/// Looks a bare program name up in `PATH` the way `execvp` would. Giving std an absolute path
/// lets it start the child with `posix_spawn` (no copy of our page tables) instead of `fork`,
/// which matters when a playbook starts hundreds of short processes.
fn resolve_program(program: &str, cwd: &std::path::Path) -> PathBuf {
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
