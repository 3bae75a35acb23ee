//! What the executor's entry points return: how a run ended ([`Outcome`]), or why it could not
//! start or had to stop without an outcome ([`ExecError`]). Both are reported to the terminal
//! where they happen; only the CLI turns them into exit codes (`exit.rs` holds the mapping).
//! Plain data below `exec` and `exit`, so neither imports the other's view of a run's end.

/// How a run, or a decision on one, ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step ran or was skipped, and every `finally` step succeeded.
    Succeeded,
    /// A step (or a `finally` step) failed; the compensations of completed steps ran.
    Failed { error: String },
    /// A step failed and a compensation failed too: the target needs a person.
    RollbackFailed { error: String },
    /// A gate refused the run; it was rolled back.
    Refused { error: String },
    /// The run stopped at a gate and waits for a decision; `runbook resume` continues it.
    Waiting { gate: String, reason: String },
    /// Ctrl-C (or a kill) stopped the run during a step; `runbook resume` continues it.
    Interrupted { step: String },
    /// `runbook approve` recorded an approval; the run continues when it is resumed.
    Approved,
}

/// Why a command did not start a run, or stopped one without an outcome. The cause has been
/// reported to the terminal already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecError {
    /// Invalid input (a playbook, parameters, a run that cannot be resumed); nothing ran.
    Invalid,
    /// Another run holds the target, or the run is still live elsewhere.
    Locked,
    /// Refused before anything ran: outside the maintenance windows, or an approval the
    /// environment does not accept.
    Refused,
    /// The run's audit chain cannot be continued.
    AuditFailed,
    /// The user's environment: a database that is not there or refused the connection, the
    /// user or the password. Reported with a hint; nothing ran.
    Environment,
    /// The state store or the audit log failed.
    Internal,
    /// Ctrl-C (or a terminal that gave no answer) before anything was recorded.
    Interrupted,
}
