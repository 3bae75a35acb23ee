//! What an action sees while it runs ([`ActionCtx`]), how it reports failure ([`StepError`]),
//! and the cap on the output it keeps.

use crate::db::op::Op;
use crate::db::{Db, TargetSpec};
use crate::redact::Redactor;
use crate::ui::Progress;
use serde_json::{Map, Value as Json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

/// Output text kept per stream in outputs and the state store.
const MAX_CAPTURE: usize = 64 * 1024;

/// Why a step did not succeed.
#[derive(Debug)]
pub enum StepError {
    Failed(String),
    /// Failed, and the action knows it left the target as it was: its transaction rolled back,
    /// or it stopped before writing (`db::op::OpError::NothingCommitted`).
    NothingCommitted(String),
    Interrupted,
}

impl StepError {
    /// What went wrong, as a message.
    pub fn message(self) -> String {
        match self {
            StepError::Failed(m) | StepError::NothingCommitted(m) => m,
            StepError::Interrupted => "interrupted".to_owned(),
        }
    }

    /// The step error of a database operation's error, its message redacted.
    pub fn of_op(e: crate::db::op::OpError, redactor: &Redactor) -> StepError {
        use crate::db::op::OpError;
        match e {
            OpError::Interrupted => StepError::Interrupted,
            OpError::NothingCommitted(m) => StepError::NothingCommitted(redactor.redact(&m)),
            other => StepError::Failed(redactor.redact(&other.to_string())),
        }
    }
}

pub type StepResult = Result<Map<String, Json>, StepError>;

/// Everything an action needs while it runs.
pub struct ActionCtx<'a> {
    pub root: &'a Path,
    pub target: Option<&'a TargetSpec>,
    pub db: &'a mut Option<Db>,
    pub cancel: watch::Receiver<bool>,
    pub timeout: Option<Duration>,
    pub redactor: &'a Redactor,
    pub template_ctx: &'a Json,
    pub run_id: &'a str,
    pub step_id: &'a str,
    pub progress: &'a Progress,
    /// Where the project keeps migrations and seed data, and which environment this is.
    pub dirs: &'a ProjectDirs,
    /// Whether a person allowed this run through an `approval` or `confirm` gate before this
    /// step (what lets a rehearsal run on a protected environment).
    pub human_gate_passed: bool,
}

/// Project facts the database actions need.
#[derive(Debug, Clone)]
pub struct ProjectDirs {
    pub migrations: PathBuf,
    pub seeds: PathBuf,
    pub env: String,
    pub protected: bool,
}

impl<'a> ActionCtx<'a> {
    /// The context the database operation of this step's `action` runs in: the run's
    /// cancellation, the step's timeout, the redactor and progress, the project root as the
    /// working directory, and `step (action)` to name it in progress lines.
    pub fn op(&self, action: &str) -> Op<'a> {
        let mut op = Op::new(
            self.run_id,
            self.step_id,
            self.cancel.clone(),
            self.timeout,
            self.redactor,
            self.progress,
        );
        op.label = format!("{} ({action})", self.step_id);
        op.cwd = self.root.to_path_buf();
        op
    }
}

impl ActionCtx<'_> {
    /// The target connection, opened on first use.
    pub async fn db(&mut self) -> Result<&mut Db, StepError> {
        if self.db.is_none() {
            let target = self.target.ok_or_else(|| {
                StepError::Failed(
                    "this step needs a database: give the environment a target or pass --target"
                        .to_owned(),
                )
            })?;
            let db = Db::connect(target).await.map_err(|e| {
                StepError::Failed(format!("cannot connect to {}: {e}", target.describe()))
            })?;
            *self.db = Some(db);
        }
        self.db
            .as_mut()
            .ok_or_else(|| StepError::Failed("no database connection".to_owned()))
    }
}

/// Truncates captured text to [`MAX_CAPTURE`] bytes on a character boundary.
pub fn cap(text: &str) -> String {
    if text.len() <= MAX_CAPTURE {
        return text.to_owned();
    }
    let mut end = MAX_CAPTURE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... {} more bytes]", &text[..end], text.len() - end)
}
