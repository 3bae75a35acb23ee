//! Gates: approval, confirm, condition, maintenance window, an earlier run elsewhere.

use super::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A gate stops the run until its condition holds. Exactly one kind per gate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateAction {
    #[serde(default)]
    pub approval: Option<ApprovalGate>,
    #[serde(default)]
    pub confirm: Option<ConfirmGate>,
    #[serde(default)]
    pub condition: Option<ConditionGate>,
    #[serde(default)]
    pub window: Option<WindowGate>,
    #[serde(default)]
    pub require_run: Option<RequireRunGate>,
}

pub const GATE_KINDS: &[&str] = &["approval", "confirm", "condition", "window", "require_run"];

impl GateAction {
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.approval.is_some() {
            out.push("approval");
        }
        if self.confirm.is_some() {
            out.push("confirm");
        }
        if self.condition.is_some() {
            out.push("condition");
        }
        if self.window.is_some() {
            out.push("window");
        }
        if self.require_run.is_some() {
            out.push("require_run");
        }
        out
    }
}

/// People approve the run before it goes on.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalGate {
    /// Shown to the approver.
    pub message: String,
    /// Who may approve (user names); anyone but the operator when absent.
    #[serde(default)]
    pub approvers: Option<Vec<String>>,
    /// How many distinct approvals are needed (at least the environment's requirement).
    #[serde(default)]
    #[schemars(range(min = 1, max = 10))]
    pub required: Option<u32>,
    /// Approvals older than this do not count.
    #[serde(default)]
    pub expires: Option<Duration>,
}

/// The operator types a value (by default the target database name) to go on.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmGate {
    pub message: String,
    /// What must be typed; defaults to the target database name.
    #[serde(default)]
    pub expect: Option<String>,
}

/// An expression over earlier outputs that must be true.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionGate {
    /// A template expression, e.g. `steps.disk.outputs.free_percent >= 30`.
    pub expr: String,
    /// Shown when the condition is false.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// A maintenance window; outside it the run is refused with the next opening time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowGate {
    /// Days the window opens (default: every day).
    #[serde(default)]
    pub days: Option<Vec<Weekday>>,
    /// Opening time, `HH:MM`.
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// Closing time, `HH:MM` (may be past midnight).
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub end: String,
    /// IANA time zone or a fixed offset like `+02:00` (default UTC).
    #[serde(default)]
    pub tz: Option<String>,
}

/// A successful run of a playbook on another environment must exist.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequireRunGate {
    /// The playbook that must have succeeded (default: this one).
    #[serde(default)]
    pub playbook: Option<String>,
    /// The environment it must have succeeded on, e.g. `staging`.
    pub env: String,
    /// How recent the run must be.
    #[serde(default)]
    pub within: Option<Duration>,
    /// The run must have had the same migration checksums (default true).
    #[serde(default)]
    pub same_migrations: Option<bool>,
}
