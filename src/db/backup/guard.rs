//! Running a backup's work under the step's `Op`: a statement or any future, and the client
//! programs (pg_dump, pg_restore) through the one process wrapper, each stopped by Ctrl-C or
//! the step's deadline, with the bytes written so far on the spinner. Failures become
//! `OpError`s whose text is redacted.

use super::files::disk_usage;
use crate::db::op::{Op, OpError};
use crate::process::{self, ProcessError, ProcessOutput, ProcessSpec};
use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// Lines of a failed client program's stderr quoted in the error.
const STDERR_TAIL: usize = 8;

/// How often the spinner's "written" detail is refreshed.
const TICK: Duration = Duration::from_millis(500);

/// The error of a step whose time budget is spent.
pub(super) fn timed_out(op: &Op<'_>) -> OpError {
    OpError::TimedOut(op.deadline.map(|(_, t)| t).unwrap_or_default())
}

/// An error once the run is cancelled. The deadline is left to the next guarded wait, as it
/// always was, so that a check between stages cannot turn a finished stage into a timeout.
pub(super) fn check_cancel(op: &Op<'_>) -> Result<(), OpError> {
    if op.cancelled() {
        return Err(OpError::Interrupted);
    }
    Ok(())
}

/// Puts a failure in context (`wrap` gets its message); an interruption stays one. A timeout
/// becomes a failure whose message still begins with "timed out after", so every message reads
/// as it always has.
pub(super) fn explain(e: OpError, wrap: impl FnOnce(String) -> String) -> OpError {
    match e {
        OpError::Interrupted => OpError::Interrupted,
        other => OpError::Failed(wrap(other.to_string())),
    }
}

/// Runs `fut` under the step's deadline and cancellation; with `watch`, shows the bytes
/// written to that path so far on the spinner.
pub(super) async fn guard<T, E: Display>(
    op: &Op<'_>,
    what: &str,
    watch: Option<&Path>,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, OpError> {
    op.left()?;
    let stopped = op.stopped();
    tokio::pin!(fut);
    tokio::pin!(stopped);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            r = &mut fut => {
                return r.map_err(|e| OpError::Failed(op.redactor.redact(&format!("{what}: {e}"))));
            }
            e = &mut stopped => return Err(e),
            _ = tick.tick() => show_written(op, watch),
        }
    }
}

fn show_written(op: &Op<'_>, watch: Option<&Path>) {
    if let Some(path) = watch {
        op.detail(&format!(
            "{} {} written",
            op.label,
            crate::fmt::bytes(disk_usage(path))
        ));
    }
}

/// Runs a client program through the one process wrapper; with `watch`, shows the bytes
/// written to that path so far on the spinner.
pub(super) async fn run_client(
    op: &Op<'_>,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    watch: Option<&Path>,
) -> Result<ProcessOutput, OpError> {
    let program = argv.first().map(|p| program_name(p)).unwrap_or_default();
    let spec = ProcessSpec {
        argv,
        cwd: op.cwd.clone(),
        env,
        timeout: op.left()?,
    };
    let mut cancel = op.cancel.clone();
    let run = process::run(&spec, &mut cancel);
    tokio::pin!(run);
    let mut tick = tokio::time::interval(TICK);
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            _ = tick.tick() => show_written(op, watch),
        }
    };
    match result {
        Ok(out) => Ok(out),
        Err(ProcessError::Interrupted) => Err(OpError::Interrupted),
        Err(ProcessError::TimedOut(_)) => Err(timed_out(op)),
        Err(ProcessError::Spawn { source, .. }) => {
            Err(OpError::failed(process::not_started(&program, &source)))
        }
        Err(e) => Err(OpError::Failed(op.redactor.redact(&e.to_string()))),
    }
}

/// Runs a producer into a consumer through the one process wrapper (`process::run_fed`):
/// `head`, the producer's output (less its last `withhold`), and `tail` once the producer has
/// exited with 0.
pub(super) async fn run_fed_clients(
    op: &Op<'_>,
    producer: Vec<String>,
    consumer: Vec<String>,
    env: BTreeMap<String, String>,
    (head, tail, withhold): (String, &str, Option<&str>),
) -> Result<process::FedOutput, OpError> {
    let spec = |argv| ProcessSpec {
        argv,
        cwd: op.cwd.clone(),
        env: env.clone(),
        timeout: None,
    };
    let producer = spec(producer);
    let mut consumer = spec(consumer);
    consumer.timeout = op.left()?;
    let feed = process::Feed {
        producer: &producer,
        consumer: &consumer,
        head: head.into_bytes(),
        tail: tail.as_bytes().to_vec(),
        withhold: withhold.map(|w| w.as_bytes().to_vec()),
    };
    let mut cancel = op.cancel.clone();
    match process::run_fed(feed, &mut cancel).await {
        Ok(out) => Ok(out),
        Err(ProcessError::Interrupted) => Err(OpError::Interrupted),
        Err(ProcessError::TimedOut(_)) => Err(timed_out(op)),
        Err(ProcessError::Spawn { program, source }) => Err(OpError::failed(process::not_started(
            &program_name(&program),
            &source,
        ))),
        Err(e) => Err(OpError::Failed(op.redactor.redact(&e.to_string()))),
    }
}

fn program_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |f| f.to_string_lossy().into_owned())
}

/// An error quoting the end of stderr unless the program exited with 0.
pub(super) fn exited_ok(op: &Op<'_>, out: &ProcessOutput, what: &str) -> Result<(), OpError> {
    if out.code == Some(0) {
        return Ok(());
    }
    let how = match out.code {
        Some(c) => format!("exited with code {c}"),
        None => "was killed by a signal".to_owned(),
    };
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(STDERR_TAIL)..].join(" | ");
    let detail = if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    };
    Err(OpError::Failed(
        op.redactor.redact(&format!("`{what}` {how}{detail}")),
    ))
}
