//! `run_fed`: two programs joined through runbook, the second reading a head, the first's
//! output, and a tail written only once the first exited with 0.

use super::supervise::Tracked;
use super::{ProcessError, ProcessOutput, ProcessSpec, resolve_program, signal_groups, split_argv};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// Two programs joined by runbook: the consumer reads `head`, then everything the producer
/// writes (less its last `withhold`, when given), then `tail`, which is written only when the
/// producer exited with 0, every byte reached the consumer and the withheld bytes were found
/// at the end. A shell pipe cannot make that last part conditional, and it is what keeps a
/// script from committing the half a failed producer wrote.
pub struct Feed<'a> {
    pub producer: &'a ProcessSpec,
    pub consumer: &'a ProcessSpec,
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    /// A line the producer ends with that is replaced by `tail` (pg_restore's own `COMMIT;`),
    /// looked for in its last few kilobytes.
    pub withhold: Option<Vec<u8>>,
}

/// What both programs of a `Feed` printed (the producer's stdout went to the consumer), and
/// whether the tail was written.
#[derive(Debug, Clone)]
pub struct FedOutput {
    pub producer: ProcessOutput,
    pub consumer: ProcessOutput,
    pub tail_written: bool,
}

/// How many of the producer's last bytes are held back to find `withhold` in.
const HELD: usize = 4096;

/// Runs a `Feed` to its end, its timeout (the consumer's) or `cancel`; on the last two both
/// process groups are killed, unless the tail was written already: then the consumer is left
/// to finish (the tail's `COMMIT` may be done on the server, and killing it would leave no
/// telling), and its result is returned.
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
    let sent = Arc::new(AtomicBool::new(false));
    let ends = Ends {
        head: feed.head,
        tail: feed.tail,
        withhold: feed.withhold,
        sent: sent.clone(),
    };
    let work = tokio::task::spawn_blocking(move || {
        pump(producer, consumer, from_producer, to_consumer, &ends)
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
    if sent.load(Ordering::SeqCst) {
        let done = work.await;
        tracked.iter_mut().for_each(Tracked::reaped);
        return done
            .map_err(|e| ProcessError::Wait(std::io::Error::other(e)))?
            .map_err(ProcessError::Wait);
    }
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

/// What the pump writes around the producer's output.
struct Ends {
    head: Vec<u8>,
    tail: Vec<u8>,
    withhold: Option<Vec<u8>>,
    /// Set once the tail is written.
    sent: Arc<AtomicBool>,
}

/// Moves the producer's output to the consumer between `head` and `tail`, then reaps both.
/// A consumer that stops reading makes the copy fail; closing our end of the producer's pipe
/// then stops the producer too.
fn pump(
    mut producer: std::process::Child,
    mut consumer: std::process::Child,
    from: std::io::PipeReader,
    mut to: std::io::PipeWriter,
    ends: &Ends,
) -> std::io::Result<FedOutput> {
    use std::io::Write;
    let p_err = drain(producer.stderr.take());
    let c_out = drain(consumer.stdout.take());
    let c_err = drain(consumer.stderr.take());
    let fed = to
        .write_all(&ends.head)
        .and_then(|()| copy_withholding(from, &mut to, ends.withhold.as_deref()));
    let p_status = producer.wait()?;
    let mut tail_written = false;
    if matches!(fed, Ok(true)) && p_status.success() {
        // A consumer gone by now has failed already; its exit code says so.
        tail_written = to.write_all(&ends.tail).is_ok();
        ends.sent.store(tail_written, Ordering::SeqCst);
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
        tail_written,
    })
}

/// Copies `from` to `to`, holding back the last `HELD` bytes; at the end, removes the last
/// occurrence of `withhold` from them. `Ok(false)` when `withhold` was not found (the output
/// did not end as expected, so the tail must not be written). The reader is dropped on return,
/// so a producer still writing sees a closed pipe.
fn copy_withholding(
    mut from: std::io::PipeReader,
    to: &mut std::io::PipeWriter,
    withhold: Option<&[u8]>,
) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    let Some(withhold) = withhold.filter(|w| !w.is_empty()) else {
        std::io::copy(&mut from, to)?;
        return Ok(true);
    };
    let mut held: Vec<u8> = Vec::with_capacity(HELD + 65536);
    let mut buf = vec![0u8; 65536];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        held.extend_from_slice(&buf[..n]);
        if held.len() > HELD {
            let cut = held.len() - HELD;
            to.write_all(&held[..cut])?;
            held.drain(..cut);
        }
    }
    let found = held.windows(withhold.len()).rposition(|w| w == withhold);
    if let Some(at) = found {
        held.drain(at..at + withhold.len());
    }
    to.write_all(&held)?;
    Ok(found.is_some())
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
