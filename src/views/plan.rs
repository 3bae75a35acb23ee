//! The plan as `runbook plan --format json` prints it, offline and connected alike, and the
//! validation report of `runbook validate --format json`.

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
