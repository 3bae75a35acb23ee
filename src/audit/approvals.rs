//! What a run's audit chain says about its approvals: the chain is the source of truth (the
//! state store is a cache of it), so gates count only the approvals found here, read from the
//! records that verify (hashes and links) up to the first bad one; with the database the run
//! started on and the operator's key, which signed approvals are checked against.

use super::verify::verify_bytes;
use crate::run::{Approval, Signed};
use serde_json::{Map, Value as Json};
use std::path::Path;

/// A run's facts as its audit chain records them.
#[derive(Debug, Clone, Default)]
pub struct ChainFacts {
    /// The database the run started on (`db::identity`), if it has one.
    pub target_identity: Option<String>,
    /// The fingerprint of the operator's listed key, if they had one at the start.
    pub operator_key: Option<String>,
    /// The approver that key is listed for.
    pub operator_principal: Option<String>,
    /// Every approval and rejection recorded, oldest first.
    pub approvals: Vec<Approval>,
}

/// Reads the chain of `run_id` in `dir`. A missing chain has no approvals.
pub fn chain_facts(dir: &Path, run_id: &str) -> Result<ChainFacts, String> {
    let path = dir.join(format!("{run_id}.jsonl"));
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(format!(
                "cannot read the audit chain {}: {e}",
                path.display()
            ));
        }
    };
    let mut facts = ChainFacts::default();
    for record in verify_bytes(&bytes, None).entries {
        match record.get("event").and_then(Json::as_str) {
            Some("run_started") => {
                let outcome = record.get("outcome");
                let text = |v: Option<&Json>| v.and_then(Json::as_str).map(str::to_owned);
                facts.target_identity = text(outcome.and_then(|o| o.get("target_identity")));
                let key = outcome.and_then(|o| o.get("operator_key"));
                facts.operator_key = text(key.and_then(|k| k.get("fingerprint")));
                facts.operator_principal = text(key.and_then(|k| k.get("principal")));
            }
            Some("approval_recorded") => {
                if let Some(a) = approval(&record) {
                    facts.approvals.push(a);
                }
            }
            _ => {}
        }
    }
    Ok(facts)
}

/// The approval an `approval_recorded` record holds. A record without `at` (written before
/// runbook recorded it) is dated by its timestamp.
fn approval(record: &Map<String, Json>) -> Option<Approval> {
    let a = record.get("approvals")?.get(0)?;
    let text = |k: &str| a.get(k).and_then(Json::as_str).map(str::to_owned);
    let at = a.get("at").and_then(Json::as_i64).or_else(|| {
        record
            .get("ts")
            .and_then(Json::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
    })?;
    Some(Approval {
        gate: record.get("step")?.as_str()?.to_owned(),
        actor: text("actor")?,
        decision: text("decision")?,
        comment: text("comment"),
        plan_hash: text("plan_hash")?,
        at,
        signed: a
            .get("signed")
            .and_then(|s| serde_json::from_value::<Signed>(s.clone()).ok()),
    })
}
