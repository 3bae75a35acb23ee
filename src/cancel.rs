//! Cancellation: a run's Ctrl-C becomes a `watch` channel that every waiting operation
//! selects on. The one place that waits for it.

/// Resolves when `cancel` (a run's Ctrl-C signal) becomes true; never if its sender is gone.
pub async fn wait_cancel(cancel: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *cancel.borrow() {
            return;
        }
        if cancel.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Why blocking work started with [`detached`] gave no result.
#[derive(Debug)]
pub enum Detached {
    /// Its thread could not be started.
    Spawn(std::io::Error),
    /// Its thread ended without a result (the work panicked).
    Ended,
}

/// Starts blocking `work` at once on a thread of its own, named `name`, and resolves with its
/// result. Not the runtime's blocking pool: work a Ctrl-C walks away from (a read of the
/// terminal, an HTTP request) ends by itself or with the process, which does not wait for it.
pub fn detached<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> impl Future<Output = Result<T, Detached>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tx.send(work());
        });
    async move {
        started.map_err(Detached::Spawn)?;
        rx.await.map_err(|_| Detached::Ended)
    }
}

/// The signals that stop a run as Ctrl-C does: SIGINT (Ctrl-C), SIGTERM (`kill`, a service
/// manager, a CI job cancelled) and SIGHUP (the terminal or SSH session went away). Each stops
/// the running step and its children and leaves the run `interrupted`, which `resume` continues.
pub struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Starts listening (inside a tokio runtime); from then on these signals no longer end the
    /// process by default.
    pub fn new() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Resolves with the signal's name when one arrives.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}
