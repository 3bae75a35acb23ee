//! `run_fed`: two programs joined through runbook, the second reading a head, the first's
//! output, and a tail written only once the first exited with 0.

use super::supervise::Tracked;
use super::{ProcessError, ProcessOutput, ProcessSpec, resolve_program, signal_groups, split_argv};
use std::os::unix::process::CommandExt;
use std::path::Path;
use tokio::sync::watch;

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
