//! Exit codes, documented in the README. Scripts and CI branch on these, so they are stable.
//! The one mapping from the executor's outcomes and errors to codes is here.

use crate::outcome::{ExecError, Outcome};

/// The process exit status of a `runbook` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done (or validated).
    Ok = 0,
    /// A run failed; its rollback ran.
    RunFailed = 1,
    /// Invalid input: a playbook or config that did not validate, bad arguments. Nothing ran.
    Invalid = 2,
    /// A run stopped at a gate and waits for an approval; `runbook resume` continues it.
    WaitingApproval = 3,
    /// Another run holds the lock on the target, or the run lost its lock and stopped.
    Locked = 4,
    /// The run was interrupted (Ctrl-C, SIGTERM or SIGHUP); `runbook resume` continues it. A
    /// decision (`approve`, `reject`, `cancel`) interrupted at its question recorded nothing;
    /// `reject` or `cancel` interrupted while it waits for a live run to end recorded it (the
    /// run ends itself).
    Interrupted = 5,
    /// An audit log failed verification.
    AuditFailed = 6,
    /// A gate refused the run (wrong confirmation, closed window, unmet requirement).
    Refused = 7,
    /// The user's environment: a database that is not there or refused the connection, the
    /// user or the password; a program runbook needs is not installed.
    Environment = 8,
    /// A bug, or a failure runbook could not name.
    Internal = 70,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

impl From<&Outcome> for Exit {
    fn from(outcome: &Outcome) -> Exit {
        match outcome {
            Outcome::Succeeded | Outcome::Approved => Exit::Ok,
            Outcome::Failed { .. } | Outcome::RollbackFailed { .. } => Exit::RunFailed,
            Outcome::Refused { .. } => Exit::Refused,
            Outcome::Waiting { .. } => Exit::WaitingApproval,
            Outcome::Interrupted { .. } => Exit::Interrupted,
        }
    }
}

impl From<ExecError> for Exit {
    fn from(error: ExecError) -> Exit {
        match error {
            ExecError::Invalid => Exit::Invalid,
            ExecError::Locked => Exit::Locked,
            ExecError::Refused => Exit::Refused,
            ExecError::AuditFailed => Exit::AuditFailed,
            ExecError::Environment => Exit::Environment,
            ExecError::Internal => Exit::Internal,
            ExecError::Interrupted => Exit::Interrupted,
        }
    }
}

impl From<Result<Outcome, ExecError>> for Exit {
    fn from(result: Result<Outcome, ExecError>) -> Exit {
        match result {
            Ok(outcome) => Exit::from(&outcome),
            Err(error) => Exit::from(error),
        }
    }
}
