//! Why a seed set could not be applied: an invalid file (every problem, with positions), or an
//! operation that failed or was stopped.

use crate::db::op::OpError;
use crate::diagnostic::Diagnostic;
use crate::fmt::plural;

#[derive(Debug)]
pub enum SeedError {
    /// The file is invalid: every problem, each with its position.
    Invalid(Vec<Diagnostic>),
    /// Anything else: a failure as one message (never containing a secret value), or the
    /// run stopping it.
    Op(OpError),
}

impl From<OpError> for SeedError {
    fn from(e: OpError) -> Self {
        SeedError::Op(e)
    }
}

/// A failure with its message.
pub(super) fn failed(msg: impl Into<String>) -> SeedError {
    SeedError::Op(OpError::failed(msg))
}

impl SeedError {
    /// The same failure, said to have committed nothing (see `OpError::nothing_committed`);
    /// a timeout stays a timeout (the seed action says what it means).
    pub fn nothing_committed(self) -> SeedError {
        match self {
            SeedError::Op(OpError::TimedOut(t)) => SeedError::Op(OpError::TimedOut(t)),
            SeedError::Op(e) => SeedError::Op(e.nothing_committed()),
            invalid => invalid,
        }
    }

    /// The human form: rendered diagnostics, or the message.
    pub fn render(&self) -> String {
        match self {
            SeedError::Invalid(diags) => {
                let mut out = format!(
                    "the seed file is invalid ({})",
                    plural(diags.len(), "problem", "problems")
                );
                for d in diags {
                    out.push('\n');
                    out.push_str(d.render(false).trim_end());
                }
                out
            }
            SeedError::Op(e) => e.to_string(),
        }
    }
}
