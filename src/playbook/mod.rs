//! The playbook model: the typed form of a playbook file, and the source of its JSON Schema.
//!
//! These types are deserialized only after the document passed the JSON Schema, so serde
//! errors here are not the user's first line of feedback; the schema and the semantic checks
//! in `validate` are. Every struct denies unknown keys so the generated schema does too.
//!
//! A step names its action by a key (`shell:`, `sql:`, ...). The model keeps one optional field
//! per action rather than a serde enum, because that gives a plain schema (an unknown action is
//! an unknown key with a "did you mean") and `validate` checks that exactly one is present.
//!
//! Here: the playbook and its parameters. The step is in `step`, the view of its action in
//! `action`, the payloads in `actions`, `gate` and `health`, and `Duration` in `duration`.

mod action;
mod actions;
mod duration;
mod gate;
mod health;
mod http;
mod maintain;
mod step;

pub use action::{ACTION_KEYS, Action, sql_is_destructive};
pub use actions::{
    BackupAction, BackupFormat, BackupMode, CopyAction, CopyEpoch, CopyInto, FindBackupAction,
    IncludeAction, LintLevel, LogAction, LogLevel, MigrateAction, MigrateOp, ResolveAs,
    RestoreAction, SeedAction, ShellAction, SqlAction, SqlExpect, WaitForAction,
};
pub use duration::{Duration, parse_duration};
pub use gate::{
    ApprovalGate, ConditionGate, ConfirmGate, GATE_KINDS, GateAction, RequireRunGate, Weekday,
    WindowGate,
};
pub use health::{
    AllChecks, HealthAction, HealthCheck, HealthChecks, HealthOutcome, RowBaseline, Threshold,
};
pub use http::{HttpAction, JsonAssert, METHODS, is_credential_header, json_pointer};
pub use maintain::{BlockerStop, OnBlocked, ReindexAction, VacuumAction};
pub use step::{OutputSource, OutputSpec, Retry, RollbackWhen, Step};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A playbook file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "runbook playbook")]
pub struct PlaybookDef {
    /// The playbook's name, used by `runbook run NAME`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"))]
    pub name: String,
    /// One line saying what the playbook does.
    #[serde(default)]
    pub description: Option<String>,
    /// Environments this playbook may run in; all when absent.
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// Parameters, set with `--var name=value`.
    #[serde(default)]
    pub params: BTreeMap<String, Param>,
    /// The steps, run in order.
    pub steps: Vec<Step>,
    /// Steps run after a failure, once the rollback compensations have run.
    #[serde(default)]
    pub on_failure: Vec<Step>,
    /// Steps run at the end whether the run succeeded or failed.
    #[serde(default)]
    pub finally: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    #[default]
    String,
    Integer,
    Number,
    Boolean,
}

impl ParamType {
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
        }
    }
}

/// A playbook parameter.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// The value's type; `--var` values are converted to it.
    #[serde(default, rename = "type")]
    pub kind: ParamType,
    /// Used when no `--var` sets the parameter.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// The run refuses to start when a required parameter has no value.
    #[serde(default)]
    pub required: bool,
    /// A secret is never printed, logged, audited or stored in plain text.
    #[serde(default)]
    pub secret: bool,
    /// Read the value from this environment variable when no `--var` sets it.
    #[serde(default)]
    pub from_env: Option<String>,
    /// The allowed values.
    #[serde(default)]
    pub choices: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub description: Option<String>,
}
