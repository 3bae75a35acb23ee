//! What every database operation (migrate, backup, restore, seed, health, copy) needs from the
//! run that calls it, and the one way such an operation fails. The executor builds an `Op`;
//! `db` never reaches up into `exec` or `ui` for cancellation, deadlines or the terminal.

use crate::redact::Redactor;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Where an operation's progress goes: the run's terminal, a test's buffer, or nowhere.
/// `ui::Progress` implements it; `db` sees only this trait.
pub trait Report: Sync {
    /// A status line that stays (redacted by the implementation's owner).
    fn note(&self, text: &str);
    /// Replaces the running step's transient detail (bytes written, rows copied).
    fn detail(&self, text: &str);
}

/// A `Report` that drops everything (tests, and operations nobody watches).
pub struct Silent;

impl Report for Silent {
    fn note(&self, _: &str) {}
    fn detail(&self, _: &str) {}
}

/// Why a database operation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("interrupted")]
    Interrupted,
    #[error("timed out after {}", crate::fmt::duration(*.0))]
    TimedOut(Duration),
    #[error("{0}")]
    Failed(String),
    /// Failed, and the operation knows it committed nothing: its transaction rolled back (or
    /// it stopped before writing), so the target is as it was before it. Only an operation
    /// that can tell says so; `Failed` makes no such claim.
    #[error("{0}")]
    NothingCommitted(String),
}

impl OpError {
    pub fn failed(msg: impl Into<String>) -> Self {
        OpError::Failed(msg.into())
    }

    /// The same failure, said to have committed nothing (a stop stays a stop).
    pub fn nothing_committed(self) -> Self {
        match self {
            OpError::Failed(m) | OpError::NothingCommitted(m) => OpError::NothingCommitted(m),
            timed_out @ OpError::TimedOut(_) => OpError::NothingCommitted(timed_out.to_string()),
            OpError::Interrupted => OpError::Interrupted,
        }
    }

    /// The same failure, no longer said to have committed nothing (something before it did).
    pub fn committed(self) -> Self {
        match self {
            OpError::NothingCommitted(m) => OpError::Failed(m),
            other => other,
        }
    }
}

/// One operation's context: who runs it, where processes start, when to stop, where notes go.
pub struct Op<'a> {
    pub run_id: String,
    pub step_id: String,
    /// The step as progress lines name it, e.g. `nightly (backup)`.
    pub label: String,
    /// Where client programs start and relative paths resolve.
    pub cwd: PathBuf,
    pub cancel: watch::Receiver<bool>,
    /// When the step's time budget ends, and the timeout it came from (for the message).
    pub deadline: Option<(Instant, Duration)>,
    pub redactor: &'a Redactor,
    pub report: &'a dyn Report,
}

impl<'a> Op<'a> {
    /// A context whose deadline is `timeout` from now.
    pub fn new(
        run_id: &str,
        step_id: &str,
        cancel: watch::Receiver<bool>,
        timeout: Option<Duration>,
        redactor: &'a Redactor,
        report: &'a dyn Report,
    ) -> Self {
        Op {
            run_id: run_id.to_owned(),
            step_id: step_id.to_owned(),
            label: step_id.to_owned(),
            cwd: PathBuf::from("."),
            cancel,
            deadline: timeout.map(|t| (Instant::now() + t, t)),
            redactor,
            report,
        }
    }

    /// Counts the time budget from now (for actions whose budget starts once connected).
    pub fn start_now(&mut self) {
        self.deadline = self.deadline.map(|(_, t)| (Instant::now() + t, t));
    }

    /// A status line, redacted.
    pub fn note(&self, text: &str) {
        self.report.note(&self.redactor.redact(text));
    }

    /// The spinner's detail, redacted.
    pub fn detail(&self, text: &str) {
        self.report.detail(&self.redactor.redact(text));
    }

    pub fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Time left in the budget (`None`: no budget); an error once it is spent.
    pub fn left(&self) -> Result<Option<Duration>, OpError> {
        match self.deadline {
            None => Ok(None),
            Some((at, t)) => match at.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(OpError::TimedOut(t)),
            },
        }
    }

    /// An error when the run was cancelled or the deadline passed.
    pub fn check(&self) -> Result<(), OpError> {
        if self.cancelled() {
            return Err(OpError::Interrupted);
        }
        self.left().map(|_| ())
    }

    /// Resolves when the run is cancelled or the deadline passes, with the reason.
    pub async fn stopped(&self) -> OpError {
        let deadline = self.deadline;
        let timer = async move {
            match deadline {
                Some((at, t)) => {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                    t
                }
                None => std::future::pending().await,
            }
        };
        let mut cancel = self.cancel.clone();
        tokio::select! {
            () = crate::cancel::wait_cancel(&mut cancel) => OpError::Interrupted,
            t = timer => OpError::TimedOut(t),
        }
    }

    /// Sleeps, unless the run stops first.
    pub async fn sleep(&self, d: Duration) -> Result<(), OpError> {
        tokio::select! {
            () = tokio::time::sleep(d) => Ok(()),
            e = self.stopped() => Err(e),
        }
    }
}

/// What the tests of each operation start from.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Op, Silent};
    use crate::db::{Db, TargetSpec};
    use crate::redact::Redactor;

    /// Runs `test` on a fresh SQLite database in a temporary folder, with an `Op` for step
    /// `step` whose run was cancelled before it began.
    pub(crate) fn cancelled_on_sqlite(step: &str, test: impl AsyncFnOnce(&mut Db, &Op<'_>)) {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let target = TargetSpec::Sqlite(dir.path().join("t.db"));
            let mut db = Db::connect(&target).await.unwrap();
            let redactor = Redactor::default();
            let (_stop, cancel) = tokio::sync::watch::channel(true);
            let op = Op::new("run", step, cancel, None, &redactor, &Silent);
            test(&mut db, &op).await;
        });
    }
}
