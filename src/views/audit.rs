//! The audit chains as `runbook audit list` and `runbook audit verify` print them with
//! `--format json`.

use super::SCHEMA_VERSION;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value as Json};

/// One run's chain: who ran what where (from its first record), how it ended, and whether the
/// chain verifies.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditRunView {
    pub run_id: String,
    pub playbook: String,
    pub environment: String,
    pub operator: String,
    /// The first record's time; `null` for an empty chain.
    pub started_at: Option<String>,
    /// How the run ended, from its last run-level record (`running` when none yet).
    pub status: String,
    pub records: usize,
    pub verified: bool,
}

impl AuditRunView {
    /// The view of a chain from its records (`status` as `audit::run_status` reads it, `records`
    /// as many as the chain holds).
    pub fn new(
        run_id: &str,
        entries: &[Map<String, Json>],
        status: String,
        records: usize,
        verified: bool,
    ) -> Self {
        let first = entries.first();
        let s = |k: &str, sub: Option<&str>| {
            let v = first.and_then(|f| f.get(k));
            let v = match sub {
                Some(sub) => v.and_then(|v| v.get(sub)),
                None => v,
            };
            v.and_then(Json::as_str).unwrap_or_default().to_owned()
        };
        AuditRunView {
            run_id: run_id.to_owned(),
            playbook: s("playbook", Some("name")),
            environment: s("env", None),
            operator: s("operator", None),
            started_at: first
                .and_then(|f| f.get("ts"))
                .and_then(Json::as_str)
                .map(str::to_owned),
            status,
            records,
            verified,
        }
    }
}

/// `runbook audit list --format json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditListDoc {
    pub schema_version: u32,
    pub runs: Vec<AuditRunView>,
}

impl AuditListDoc {
    pub fn new(runs: Vec<AuditRunView>) -> Self {
        AuditListDoc {
            schema_version: SCHEMA_VERSION,
            runs,
        }
    }
}

/// One chain's verdict as `runbook audit verify --format json` prints it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VerdictView {
    pub run_id: String,
    /// How many records verify (up to the first bad one).
    pub records: usize,
    /// The hash of the last record that verifies.
    pub head: Option<String>,
    pub verified: bool,
    /// The last line was cut short by a crash (not tampering).
    pub torn: bool,
    /// The sequence number of the first record that was edited, removed, inserted or moved.
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
    /// `compared` (with the state store's head), `refusal`, `unknown` (not checked: fails), or
    /// `chain-only` (not checked, accepted with --chain-only).
    pub head_check: String,
    /// Why the head could not be checked.
    pub head_unknown: Option<String>,
    /// The signature's verdict in one word.
    pub signature: String,
    pub signature_detail: Option<String>,
}

/// `runbook audit verify --format json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VerifyDoc {
    pub schema_version: u32,
    pub runs: Vec<VerdictView>,
}

impl VerifyDoc {
    pub fn new(runs: Vec<VerdictView>) -> Self {
        VerifyDoc {
            schema_version: SCHEMA_VERSION,
            runs,
        }
    }
}
