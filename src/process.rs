//! The one wrapper that starts every subprocess: explicit argv, working directory and
//! environment, captured output, a timeout, and cancellation. The child is made the leader of
//! its own process group, so a timeout or Ctrl-C kills the whole tree it started, not only the
//! direct child. Besides `run`, `run_fed` joins two programs through runbook (a restore's
//! pg_restore into psql, with a last line written only when the first succeeded),
//! `output_sync` asks a tool a quick question and `spawn` starts a child that runs beside us
//! (fleets), polled and signalled by its caller.
//!
//! Nothing started here outlives runbook: once [`supervise`] is called (the CLI does), each
//! group `run`, `run_fed` and `spawn` start is told to the watchdog (`src/watchdog.rs`, started at the
//! first such child), which stops the groups still running when runbook dies, SIGKILL
//! included. A [`ChildObserver`] set with [`observe`] hears of each child when it starts and
//! when it is reaped (the executor records a run's children there for `resume`). A `run`
//! whose future is dropped before its child ended kills the child's group.

use crate::pids::{self, Group};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
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
    let (program, args) = split_argv(&spec.argv)?;
    let resolved = resolve_program(program, &spec.cwd);
    tracing::debug!(program = %resolved.display(), args = args.len(), cwd = %spec.cwd.display(), timeout = ?spec.timeout, "starting process");
    let expr = expression(&resolved, args, &spec.cwd, &spec.env)
        .stdout_capture()
        .stderr_capture();
    let handle = Arc::new(expr.start().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?);
    let pids = handle.pids();
    let mut tracked = Tracked::new(&pids, &resolved, true, Some(handle.clone()));
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
            tracked.reaped();
            let out = done.map_err(|e| ProcessError::Wait(std::io::Error::other(e)))?.map_err(ProcessError::Wait)?;
            Ok(ProcessOutput {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
        _ = timeout => {
            kill_tree(&pids, &handle).await;
            tracked.reaped();
            Err(ProcessError::TimedOut(spec.timeout.unwrap_or_default()))
        }
        _ = cancelled => {
            kill_tree(&pids, &handle).await;
            tracked.reaped();
            Err(ProcessError::Interrupted)
        }
    }
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

/// Starts a process that runs beside us, with its output discarded (the child keeps its own
/// records), and returns at once.
pub fn spawn(
    argv: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Child, ProcessError> {
    let (program, args) = split_argv(argv)?;
    let resolved = resolve_program(program, cwd);
    tracing::debug!(program = %resolved.display(), args = args.len(), cwd = %cwd.display(), "spawning process");
    let handle = expression(&resolved, args, cwd, env)
        .stdout_null()
        .stderr_null()
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

/// Kills each child's process group, then reaps the children.
async fn kill_tree(pids: &[u32], handle: &Arc<duct::Handle>) {
    signal_groups(pids, libc::SIGKILL);
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

/// Two programs joined by runbook: the consumer reads `head`, then everything the producer
/// writes, then `tail`, which is written only when the producer exited with 0 and every byte
/// reached the consumer. A shell pipe cannot make that last part conditional, and it is what
/// keeps a script that ends in `COMMIT` from committing the half a failed producer wrote.
pub struct Feed<'a> {
    pub producer: &'a ProcessSpec,
    pub consumer: &'a ProcessSpec,
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
}

/// What both programs of a `Feed` printed (the producer's stdout went to the consumer).
#[derive(Debug, Clone)]
pub struct FedOutput {
    pub producer: ProcessOutput,
    pub consumer: ProcessOutput,
}

/// Runs a `Feed` to its end, its timeout (the consumer's) or `cancel`; on the last two both
/// process groups are killed.
pub async fn run_fed(
    feed: Feed<'_>,
    cancel: &mut watch::Receiver<bool>,
) -> Result<FedOutput, ProcessError> {
    let spawn_err = |program: &str| {
        let program = program.to_owned();
        move |source| ProcessError::Spawn { program, source }
    };
    let pname = split_argv(&feed.producer.argv)?.0.clone();
    let cname = split_argv(&feed.consumer.argv)?.0.clone();
    let (from_producer, producer_out) = std::io::pipe().map_err(spawn_err(&pname))?;
    let (consumer_in, to_consumer) = std::io::pipe().map_err(spawn_err(&cname))?;
    let mut producer = std_command(feed.producer)?
        .stdout(producer_out)
        .spawn()
        .map_err(spawn_err(&pname))?;
    let consumer = match std_command(feed.consumer)?
        .stdin(consumer_in)
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(source) => {
            signal_groups(&[producer.id()], libc::SIGKILL);
            let _ = producer.wait();
            return Err(ProcessError::Spawn {
                program: cname,
                source,
            });
        }
    };
    let pids = [producer.id(), consumer.id()];
    let mut tracked = [
        Tracked::new(&pids[..1], Path::new(&pname), true, None),
        Tracked::new(&pids[1..], Path::new(&cname), true, None),
    ];
    tracing::debug!(producer = %pname, consumer = %cname, "starting a fed pair of processes");
    let (head, tail) = (feed.head, feed.tail);
    let work = tokio::task::spawn_blocking(move || {
        pump(producer, consumer, from_producer, to_consumer, &head, &tail)
    });
    let timeout = async {
        match feed.consumer.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let cancelled = crate::cancel::wait_cancel(cancel);
    tokio::pin!(work);
    let stopped = tokio::select! {
        done = &mut work => {
            tracked.iter_mut().for_each(Tracked::reaped);
            return done
                .map_err(|e| ProcessError::Wait(std::io::Error::other(e)))?
                .map_err(ProcessError::Wait);
        }
        _ = timeout => ProcessError::TimedOut(feed.consumer.timeout.unwrap_or_default()),
        _ = cancelled => ProcessError::Interrupted,
    };
    signal_groups(&pids, libc::SIGKILL);
    // Both dead, the pump sees its pipes close and reaps them.
    let _ = work.await;
    tracked.iter_mut().for_each(Tracked::reaped);
    Err(stopped)
}

/// A std command for one side of a `Feed`, with the conventions of `expression`: the resolved
/// program, explicit working directory and environment, captured stderr, no stdin unless the
/// caller gives one, and a process group of its own.
fn std_command(spec: &ProcessSpec) -> Result<std::process::Command, ProcessError> {
    let (program, args) = split_argv(&spec.argv)?;
    let mut cmd = std::process::Command::new(resolve_program(program, &spec.cwd));
    cmd.args(args)
        .current_dir(&spec.cwd)
        .envs(&spec.env)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    Ok(cmd)
}

/// Moves the producer's output to the consumer between `head` and `tail`, then reaps both.
/// A consumer that stops reading makes the copy fail; closing our end of the producer's pipe
/// then stops the producer too.
fn pump(
    mut producer: std::process::Child,
    mut consumer: std::process::Child,
    mut from: std::io::PipeReader,
    mut to: std::io::PipeWriter,
    head: &[u8],
    tail: &[u8],
) -> std::io::Result<FedOutput> {
    use std::io::Write;
    let p_err = drain(producer.stderr.take());
    let c_out = drain(consumer.stdout.take());
    let c_err = drain(consumer.stderr.take());
    let fed = to
        .write_all(head)
        .and_then(|()| std::io::copy(&mut from, &mut to));
    drop(from);
    let p_status = producer.wait()?;
    if fed.is_ok() && p_status.success() {
        // A consumer gone by now has failed already; its exit code says so.
        let _ = to.write_all(tail);
    }
    drop(to);
    let c_status = consumer.wait()?;
    let text = |h: std::thread::JoinHandle<Vec<u8>>| {
        String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
    };
    Ok(FedOutput {
        producer: ProcessOutput {
            code: p_status.code(),
            stdout: String::new(),
            stderr: text(p_err),
        },
        consumer: ProcessOutput {
            code: c_status.code(),
            stdout: text(c_out),
            stderr: text(c_err),
        },
    })
}

/// Reads a child's pipe to its end on a thread of its own, so that neither side of a `Feed`
/// blocks on a full pipe.
fn drain<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// A child process as the rest of runbook records it: its pid (its process group's id too),
/// its start time (which tells it from a later process given the same pid) and its program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildId {
    pub pid: u32,
    pub start_time: u64,
    pub program: String,
}

/// Hears of every child `run` and `spawn` start: when it started and when it was reaped.
/// Called on the thread that starts or reaps the child; it must be quick and must not fail.
pub trait ChildObserver: Send + Sync {
    fn started(&self, child: &ChildId);
    fn reaped(&self, child: &ChildId);
}

static OBSERVER: RwLock<Option<Arc<dyn ChildObserver>>> = RwLock::new(None);

/// Sets (or, with `None`, removes) the one observer of children.
pub fn observe(observer: Option<Arc<dyn ChildObserver>>) {
    *OBSERVER.write().unwrap_or_else(|e| e.into_inner()) = observer;
}

fn observer() -> Option<Arc<dyn ChildObserver>> {
    OBSERVER.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The groups told to the watchdog, and the watchdog once started.
struct Supervision {
    enabled: bool,
    live: BTreeSet<Group>,
    watchdog: Option<Watchdog>,
}

/// A running watchdog: the write end of its stdin (we never wait for it: it ends after us).
struct Watchdog {
    pipe: std::io::PipeWriter,
    _handle: duct::Handle,
}

static SUPERVISION: Mutex<Supervision> = Mutex::new(Supervision {
    enabled: false,
    live: BTreeSet::new(),
    watchdog: None,
});

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// From now on the children of this process are stopped when it dies (see `src/watchdog.rs`).
/// Only the runbook binary calls this: the watchdog is that binary run with a hidden argument.
pub fn supervise() {
    lock(&SUPERVISION).enabled = true;
}

impl Supervision {
    /// Tells the watchdog a group started, starting the watchdog first if none runs (again,
    /// if it died: it is told every group still live).
    fn started(&mut self, group: Group) {
        if !self.enabled {
            return;
        }
        self.live.insert(group);
        let line = crate::watchdog::started_line(group);
        if self.send(&line) {
            return;
        }
        match start_watchdog() {
            Ok(watchdog) => {
                self.watchdog = Some(watchdog);
                let all: String = self
                    .live
                    .iter()
                    .map(|g| crate::watchdog::started_line(*g))
                    .collect();
                if !self.send(&all) {
                    tracing::warn!(
                        "the watchdog ended at once; children of this run are not stopped if runbook dies"
                    );
                }
            }
            Err(e) => tracing::warn!(
                "cannot start the watchdog ({e}); children of this run are not stopped if runbook dies"
            ),
        }
    }

    fn reaped(&mut self, group: Group) {
        if self.live.remove(&group) {
            self.send(&crate::watchdog::ended_line(group));
        }
    }

    /// Writes to the watchdog; false (and forgets it) when there is none or it is gone.
    fn send(&mut self, text: &str) -> bool {
        let Some(w) = self.watchdog.as_mut() else {
            return false;
        };
        if w.pipe.write_all(text.as_bytes()).is_ok() {
            return true;
        }
        self.watchdog = None;
        false
    }
}

/// Starts the runbook binary as the watchdog, reading the pipe we keep the write end of. The
/// pipe is close-on-exec, so no other child holds it open after we are gone.
fn start_watchdog() -> std::io::Result<Watchdog> {
    let (reader, pipe) = std::io::pipe()?;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let args = [crate::watchdog::ARG.to_owned()];
    let handle = with_stdin(&exe, &args, Path::new("/"), &BTreeMap::new())
        .stdin_file(reader)
        .stdout_null()
        .stderr_null()
        .start()?;
    Ok(Watchdog {
        pipe,
        _handle: handle,
    })
}

/// The groups of children `run`, `run_fed` or `spawn` started, told to the watchdog and the
/// observer until they are reaped. With `kill_on_drop`, dropping it before the children were
/// reaped (the future of `run` or `run_fed` dropped) kills their groups.
struct Tracked {
    children: Vec<ChildId>,
    kill_on_drop: bool,
    /// The duct handle that reaps the children, when duct started them.
    handle: Option<Arc<duct::Handle>>,
}

impl Tracked {
    fn new(
        pids: &[u32],
        program: &Path,
        kill_on_drop: bool,
        handle: Option<Arc<duct::Handle>>,
    ) -> Tracked {
        let program = program.file_name().map_or_else(
            || program.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        // Not reaped yet, so /proc still has it (a zombie at worst).
        let children: Vec<ChildId> = pids
            .iter()
            .map(|&pid| ChildId {
                pid,
                start_time: pids::start_time(pid).unwrap_or(0),
                program: program.clone(),
            })
            .collect();
        {
            let mut supervision = lock(&SUPERVISION);
            for c in &children {
                supervision.started(group_of(c));
            }
        }
        if let Some(o) = observer() {
            children.iter().for_each(|c| o.started(c));
        }
        Tracked {
            children,
            kill_on_drop,
            handle,
        }
    }

    /// The children were reaped: their groups are no longer ours to stop.
    fn reaped(&mut self) {
        self.kill_on_drop = false;
        self.handle = None;
        let children = std::mem::take(&mut self.children);
        if children.is_empty() {
            return;
        }
        {
            let mut supervision = lock(&SUPERVISION);
            for c in &children {
                supervision.reaped(group_of(c));
            }
        }
        if let Some(o) = observer() {
            children.iter().for_each(|c| o.reaped(c));
        }
    }
}

impl Drop for Tracked {
    /// A `run` abandoned before its child ended kills the child's group. A `spawn`ed child
    /// dropped unreaped stays told to the watchdog: it is stopped when runbook ends.
    fn drop(&mut self) {
        if self.kill_on_drop {
            let pids: Vec<u32> = self.children.iter().map(|c| c.pid).collect();
            signal_groups(&pids, libc::SIGKILL);
            if let Some(handle) = self.handle.take() {
                let _ = handle.kill();
            }
            // Reaped by the waiting thread (duct's, or `run_fed`'s pump).
            self.reaped();
        }
    }
}

fn group_of(c: &ChildId) -> Group {
    Group {
        pgid: c.pid,
        start_time: c.start_time,
    }
}
