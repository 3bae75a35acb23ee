//! What the CLI asks the executor to do: `runbook run`, `resume`, `approve` and `reject`.

use std::path::PathBuf;
use std::time::Duration;

/// What `runbook run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub playbook: String,
    pub env: String,
    pub vars: Vec<(String, String)>,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub target: Option<String>,
    pub state: Option<String>,
    pub lock_wait: Duration,
    /// Gates the operator approves up front (`--approve`), where self-approval is allowed.
    pub approve: Vec<String>,
    /// The typed confirmation for `confirm` gates, for runs without a terminal.
    pub confirm: Option<String>,
    /// This run is one target of a fleet run: (fleet id, target name).
    pub fleet: Option<(String, String)>,
    /// `--emergency REASON`: run a changing playbook outside the maintenance windows, after
    /// the environment's approvals (`exec/emergency.rs`).
    pub emergency: Option<String>,
    /// The operator's private key file (`--key`): recorded as the operator's key when listed,
    /// and signs `--approve` where approvals must be signed.
    pub key: Option<PathBuf>,
}

/// What `runbook resume` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ResumeRequest {
    pub run_id: String,
    pub retry_steps: Vec<String>,
    pub skip_steps: Vec<String>,
    pub vars: Vec<(String, String)>,
    pub target: Option<String>,
    pub state: Option<String>,
    pub lock_wait: Duration,
    pub confirm: Option<String>,
    /// A private key file (`--key`) to sign an answer at the terminal with.
    pub key: Option<PathBuf>,
}

/// What `runbook approve`, `runbook reject` and `runbook cancel` were asked to do.
#[derive(Debug, Clone, Default)]
pub struct DecisionRequest {
    pub run_id: String,
    /// The gate decided on; empty for a cancellation, which takes the gate the run waits at.
    pub gate: String,
    pub approve: bool,
    /// `runbook cancel`: ends the run like a rejection, by anyone (the operator too), unsigned;
    /// `comment` is the reason.
    pub cancel: bool,
    pub comment: Option<String>,
    pub actor: Option<String>,
    pub state: Option<String>,
    pub target: Option<String>,
    pub confirm: Option<String>,
    /// Record without asking at a terminal (what would be recorded is shown all the same).
    pub yes: bool,
    /// The approver's private key file (`--key`); without it, ssh-agent's listed key signs.
    pub key: Option<PathBuf>,
}
