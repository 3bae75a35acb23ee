//! The JSON documents runbook prints for programs (`runs`, `status`, `plan`, `validate`,
//! `list`, `audit list`, `audit verify`, `status fleet-...` with `--format json`): one shape per concept and one name per field (`run_id`, `environment`;
//! times as RFC 3339 UTC with milliseconds, durations as `*_ms`), each document carrying
//! [`SCHEMA_VERSION`]. Their JSON Schemas are generated here from the same types (schemars)
//! and committed under `schemas/` (`runbook schema --output NAME`).

mod audit;
mod fleet;
mod plan;
mod run;

pub use audit::{AuditListDoc, AuditRunView, VerdictView, VerifyDoc};
pub use fleet::{FleetDoc, FleetTargetView, FleetView};
pub use plan::{PlanDoc, PlaybookView, PlaybooksDoc, ValidationDoc};
pub use run::{EventView, RunView, RunsDoc, StatusDoc, StepView};

use serde::Serialize;
use serde_json::Value as Json;

/// The version of every JSON document's shape; raised when a field is renamed or removed.
pub const SCHEMA_VERSION: u32 = 1;

/// A time as every JSON document writes it: RFC 3339, UTC, milliseconds
/// (`2026-12-02T11:59:35.123Z`).
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// The documents with a published schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Doc {
    /// `runbook runs --format json`
    Runs,
    /// `runbook status RUN --format json`
    Status,
    /// `runbook plan ... --format json`
    Plan,
    /// `runbook validate --format json`
    Validation,
    /// `runbook audit list --format json`
    AuditList,
    /// `runbook audit verify --format json`
    AuditVerify,
    /// `runbook list --format json`
    List,
    /// `runbook status fleet-... --format json`
    Fleet,
}

impl Doc {
    pub const ALL: [Doc; 8] = [
        Doc::Runs,
        Doc::Status,
        Doc::Plan,
        Doc::Validation,
        Doc::AuditList,
        Doc::AuditVerify,
        Doc::List,
        Doc::Fleet,
    ];

    /// The committed file under `schemas/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Doc::Runs => "runs.schema.json",
            Doc::Status => "status.schema.json",
            Doc::Plan => "plan.schema.json",
            Doc::Validation => "validation.schema.json",
            Doc::AuditList => "audit-list.schema.json",
            Doc::AuditVerify => "audit-verify.schema.json",
            Doc::List => "list.schema.json",
            Doc::Fleet => "fleet.schema.json",
        }
    }

    /// The name `runbook schema --output` takes.
    pub fn name(self) -> &'static str {
        match self {
            Doc::Runs => "runs",
            Doc::Status => "status",
            Doc::Plan => "plan",
            Doc::Validation => "validation",
            Doc::AuditList => "audit-list",
            Doc::AuditVerify => "audit-verify",
            Doc::List => "list",
            Doc::Fleet => "fleet",
        }
    }

    /// The document's JSON Schema (draft 2020-12), of what runbook writes.
    pub fn schema(self) -> Json {
        let generator = schemars::generate::SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator();
        let root = match self {
            Doc::Runs => generator.into_root_schema_for::<RunsDoc>(),
            Doc::Status => generator.into_root_schema_for::<StatusDoc>(),
            Doc::Plan => generator.into_root_schema_for::<PlanDoc<'static>>(),
            Doc::Validation => generator.into_root_schema_for::<ValidationDoc<'static>>(),
            Doc::AuditList => generator.into_root_schema_for::<AuditListDoc>(),
            Doc::AuditVerify => generator.into_root_schema_for::<VerifyDoc>(),
            Doc::List => generator.into_root_schema_for::<PlaybooksDoc>(),
            Doc::Fleet => generator.into_root_schema_for::<FleetDoc>(),
        };
        let mut json = serde_json::to_value(root).unwrap_or(Json::Null);
        closed(&mut json);
        if let Json::Object(map) = &mut json {
            map.insert(
                "$id".to_owned(),
                Json::String(format!("https://runbook.dev/schemas/{}", self.file_name())),
            );
        }
        json
    }

    /// The schema as the pretty-printed text committed under `schemas/`.
    pub fn schema_text(self) -> String {
        let mut text = serde_json::to_string_pretty(&self.schema()).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Every object with listed properties admits no others: a field added to a document without
/// its schema (and this version) fails the tests that validate real outputs.
fn closed(v: &mut Json) {
    match v {
        Json::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".to_owned(), Json::Bool(false));
            }
            map.values_mut().for_each(closed);
        }
        Json::Array(items) => items.iter_mut().for_each(closed),
        _ => {}
    }
}

/// A document as printed: pretty JSON.
pub fn to_text<T: Serialize>(doc: &T) -> String {
    serde_json::to_string_pretty(doc).unwrap_or_default()
}
