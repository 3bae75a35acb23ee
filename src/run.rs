//! The run model: statuses and the events a run is made of. The state store and the audit log
//! consume the same events; each is persisted before the action it announces.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    /// Failed, and a compensation failed too: the target needs a person.
    RollbackFailed,
    WaitingApproval,
    Interrupted,
    Refused,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::RollbackFailed => "rollback_failed",
            RunStatus::WaitingApproval => "waiting_approval",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Refused => "refused",
        }
    }

    /// The status as the end of a sentence about the run: "run X succeeded", "run X is
    /// waiting for approval".
    pub fn sentence(self) -> &'static str {
        match self {
            RunStatus::Running => "is running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::RollbackFailed => "failed and its rollback failed",
            RunStatus::WaitingApproval => "is waiting for approval",
            RunStatus::Interrupted => "was interrupted",
            RunStatus::Refused => "was refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "rollback_failed" => RunStatus::RollbackFailed,
            "waiting_approval" => RunStatus::WaitingApproval,
            "interrupted" => RunStatus::Interrupted,
            "refused" => RunStatus::Refused,
            _ => return None,
        })
    }

    /// Whether `resume` may continue a run in this state.
    pub fn resumable(self) -> bool {
        matches!(
            self,
            RunStatus::Running | RunStatus::Interrupted | RunStatus::WaitingApproval
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    /// Started and not finished: while the run is live, in flight; after a crash, unknown.
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => StepStatus::Pending,
            "running" => StepStatus::Running,
            "succeeded" => StepStatus::Succeeded,
            "failed" => StepStatus::Failed,
            "skipped" => StepStatus::Skipped,
            _ => return None,
        })
    }
}

/// Which block a step ran in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Main,
    Rollback,
    OnFailure,
    Finally,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Main => "main",
            Phase::Rollback => "rollback",
            Phase::OnFailure => "on_failure",
            Phase::Finally => "finally",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "main" => Phase::Main,
            "rollback" => Phase::Rollback,
            "on_failure" => Phase::OnFailure,
            "finally" => Phase::Finally,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RunStarted,
    RunResumed,
    StepStarted,
    StepFinished,
    StepFailed,
    StepSkipped,
    /// The operator's answer for a step whose outcome was unknown after a crash.
    ResumeDecision,
    RollbackStarted,
    RollbackFinished,
    RunInterrupted,
    RunFinished,
    /// A gate's decision: passed, waiting, or refused, with who and what was shown.
    GateDecision,
    /// An approval or rejection recorded by `runbook approve`/`reject` or `--approve`.
    ApprovalRecorded,
    /// The run stopped at a gate and waits for a decision.
    RunWaiting,
    /// A run was refused before it started (a closed window, a refused flag): the attempt's
    /// own short chain.
    RunRefused,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunStarted => "run_started",
            EventKind::RunResumed => "run_resumed",
            EventKind::StepStarted => "step_started",
            EventKind::StepFinished => "step_finished",
            EventKind::StepFailed => "step_failed",
            EventKind::StepSkipped => "step_skipped",
            EventKind::ResumeDecision => "resume_decision",
            EventKind::RollbackStarted => "rollback_started",
            EventKind::RollbackFinished => "rollback_finished",
            EventKind::RunInterrupted => "run_interrupted",
            EventKind::RunFinished => "run_finished",
            EventKind::GateDecision => "gate_decision",
            EventKind::ApprovalRecorded => "approval_recorded",
            EventKind::RunWaiting => "run_waiting",
            EventKind::RunRefused => "run_refused",
        }
    }
}

/// One event of a run. `data` is already redacted.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub kind: EventKind,
    pub step: Option<String>,
    pub phase: Option<Phase>,
    pub data: serde_json::Value,
}

impl Event {
    pub fn run(kind: EventKind, data: serde_json::Value) -> Self {
        Event {
            kind,
            step: None,
            phase: None,
            data,
        }
    }

    pub fn step(kind: EventKind, step: &str, phase: Phase, data: serde_json::Value) -> Self {
        Event {
            kind,
            step: Some(step.to_owned()),
            phase: Some(phase),
            data,
        }
    }
}

/// A run as the state store keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub playbook: String,
    pub file: String,
    pub env: String,
    /// The target, redacted.
    pub target: String,
    pub operator: String,
    pub host: String,
    /// The process that runs (or ran) it, to tell a live run from a crashed one.
    pub pid: i64,
    /// When that process started (`/proc`'s start time, clock ticks after boot): with `pid`, it
    /// names the process even after its pid is reused, whatever the program is called. 0 when
    /// unknown (runs recorded before it was).
    pub pid_start: i64,
    pub content_hash: String,
    pub plan_hash: String,
    /// sha256 over the migration files, for `require_run` gates.
    pub migrations_hash: String,
    /// Parameter values given on the command line, secrets masked.
    pub params: serde_json::Value,
    /// `--var` values as given, without secrets, so resume can rebuild the plan.
    pub vars: Vec<(String, String)>,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub status: RunStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
}

/// Whether a step changed the target database, as far as runbook can tell, and what says so
/// (`reason` reads after the step's id: "`migrate` failed inside its transaction and committed
/// nothing"). When runbook cannot know, the step changed it. `rollback_when: changed` reads it;
/// step events and step records carry it, so a resumed run decides the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    pub changed: bool,
    pub reason: String,
}

impl Change {
    pub fn changed(reason: impl Into<String>) -> Self {
        Change {
            changed: true,
            reason: reason.into(),
        }
    }

    pub fn unchanged(reason: impl Into<String>) -> Self {
        Change {
            changed: false,
            reason: reason.into(),
        }
    }

    /// The verdict over two attempts of one step: changed when either changed (the first
    /// change says why), else the later one.
    pub fn then(self, later: Change) -> Change {
        if self.changed { self } else { later }
    }

    /// The verdict a step event's data carries (`change`), if any.
    pub fn from_event(data: &serde_json::Value) -> Option<Change> {
        serde_json::from_value(data.get("change")?.clone()).ok()
    }
}

/// A step as the state store keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: String,
    pub phase: Phase,
    pub status: StepStatus,
    pub attempts: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub outputs: serde_json::Value,
    pub error: Option<String>,
    /// Whether it changed the target (`None`: not recorded, e.g. a store from before).
    pub change: Option<Change>,
}

/// An approval or rejection of a gate.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub gate: String,
    pub actor: String,
    /// `approve` or `reject`.
    pub decision: String,
    pub comment: Option<String>,
    pub plan_hash: String,
    pub at: i64,
    /// The approver's SSH signature, where it was signed (`runbook approve` with a key).
    pub signed: Option<Signed>,
}

/// A signed approval: the statement the approver signed, the armored SSHSIG signature (as
/// `ssh-keygen -Y sign` writes it), and the signing key's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    pub statement: String,
    pub signature: String,
    pub fingerprint: String,
}

impl Approval {
    /// The run event that records this decision (the state store and the audit log take the
    /// same one).
    pub fn event(&self) -> Event {
        Event::step(
            EventKind::ApprovalRecorded,
            &self.gate,
            Phase::Main,
            serde_json::json!({"actor": self.actor, "decision": self.decision, "comment": self.comment, "plan_hash": self.plan_hash, "at": self.at, "signed": self.signed}),
        )
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `2026-11-21T15:04:05Z` for a millisecond timestamp.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A new run id: time-ordered, unique enough across machines.
/// The length of a run id (`YYYYMMDD-HHMMSS-xxxxxx`).
pub const RUN_ID_LEN: usize = 22;

pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    let now = chrono::Utc::now();
    format!(
        "{}-{:06x}",
        now.format("%Y%m%d-%H%M%S"),
        h.finish() & 0xff_ffff
    )
}

/// Who is running this: `RUNBOOK_ACTOR` (for CI identities), else the OS user: `USER` or
/// `LOGNAME`, else (cron, containers) the login name the password database gives the process's
/// uid, and only when it has none, `uid:N`.
pub fn operator() -> String {
    for var in ["RUNBOOK_ACTOR", "USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            return v.trim().to_owned();
        }
    }
    if let Ok(name) = whoami::username()
        && !name.trim().is_empty()
    {
        return name.trim().to_owned();
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    format!("uid:{uid}")
}

impl RunRecord {
    /// Whether a `running` run's process is gone (crashed or killed). `None` when that
    /// cannot be known from here (another host).
    pub fn crashed(&self) -> Option<bool> {
        if self.status != RunStatus::Running || self.host != hostname() {
            return None;
        }
        let Ok(pid) = i32::try_from(self.pid) else {
            return None;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let exists = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        let stat = u32::try_from(pid).ok().and_then(crate::pids::stat);
        let zombie = stat.as_ref().is_some_and(|s| !s.running());
        // The pid may have been reused by another program. The process that started the run
        // is known by its start time, whatever its executable is called (`runbook-1.2`, a
        // link named `rb`, a build of another version). Taking a live run for a crashed one
        // would let it be resumed while it runs.
        if self.pid_start > 0
            && let Some(s) = &stat
        {
            return Some(!exists || zombie || s.start_time != self.pid_start as u64);
        }
        // A run recorded without its start time (or a process whose start time cannot be
        // read): only a runbook process counts, known by its name, or by running this very
        // program under another name.
        let is_runbook = std::fs::read(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim_ascii() == b"runbook")
            || same_program(pid);
        Some(!exists || zombie || !is_runbook)
    }

    /// The status as shown: a `running` run whose process is gone shows as `crashed`.
    pub fn shown_status(&self) -> &'static str {
        if self.crashed() == Some(true) {
            "crashed"
        } else {
            self.status.as_str()
        }
    }
}

/// This process's start time, as [`RunRecord::pid_start`] records it (0 when unreadable).
pub fn own_start_time() -> i64 {
    crate::pids::start_time(std::process::id())
        .and_then(|t| i64::try_from(t).ok())
        .unwrap_or(0)
}

/// Whether process `pid` runs the same executable file as this process (when this process may
/// see which file that is: its own user's processes).
fn same_program(pid: i32) -> bool {
    match (
        std::fs::read_link(format!("/proc/{pid}/exe")),
        std::env::current_exe(),
    ) {
        (Ok(theirs), Ok(ours)) => theirs == ours,
        _ => false,
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}
