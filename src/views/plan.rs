//! The plan as `runbook plan --format json` prints it, offline and connected alike, and the
//! validation report of `runbook validate --format json` and the playbooks of `runbook list`.

use super::SCHEMA_VERSION;
use crate::plan::Plan;
use crate::report::ValidationReport;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value as Json;

/// The plan's fields in one order whether or not runbook connected, then `live`: what the
/// database told (pending migrations, lint findings, row estimates, gate values), or offline
/// the migrations linted against an empty schema; `null` when neither applies.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlanDoc<'a> {
    pub schema_version: u32,
    #[serde(flatten)]
    pub plan: &'a Plan,
    pub live: Option<Json>,
}

impl<'a> PlanDoc<'a> {
    pub fn new(plan: &'a Plan, live: Option<Json>) -> Self {
        PlanDoc {
            schema_version: SCHEMA_VERSION,
            plan,
            live,
        }
    }
}

/// `runbook validate --format json`: each file's result and diagnostics, and the totals.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ValidationDoc<'a> {
    pub schema_version: u32,
    #[serde(flatten)]
    pub report: &'a ValidationReport,
}

impl<'a> ValidationDoc<'a> {
    pub fn new(report: &'a ValidationReport) -> Self {
        ValidationDoc {
            schema_version: SCHEMA_VERSION,
            report,
        }
    }
}

/// One playbook as `runbook list --format json` prints it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlaybookView {
    /// The playbook's `name` (an invalid one's file stem).
    pub name: String,
    pub description: Option<String>,
    pub file: String,
    /// How many top-level steps; `null` when the playbook is invalid.
    pub steps: Option<usize>,
    /// Whether it validates (`runbook validate` says why not).
    pub valid: bool,
}

/// `runbook list --format json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlaybooksDoc {
    pub schema_version: u32,
    pub playbooks: Vec<PlaybookView>,
}

impl PlaybooksDoc {
    pub fn new(playbooks: Vec<PlaybookView>) -> Self {
        PlaybooksDoc {
            schema_version: SCHEMA_VERSION,
            playbooks,
        }
    }
}
