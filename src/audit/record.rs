//! What goes into a record: `body_from_event` turns a run event into the fields auditors read,
//! with short redacted excerpts instead of output, and what a step changed, named.

use super::canonical::{canonical, canonical_without};
use crate::run::{Event, EventKind};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

/// Longest output excerpt kept in a record, in characters.
const EXCERPT: usize = 512;

/// A short, redacted excerpt of text for a record.
pub fn excerpt(text: &str) -> String {
    if text.chars().count() <= EXCERPT {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(EXCERPT).collect::<String>())
    }
}

/// The audit record of a run event: the run's facts (`meta`) plus what the event says, in the
/// fields auditors read. Result rows of queries never go in (they may be patient data): only
/// counts, a hash of the outputs and a short redacted excerpt of program output.
pub fn body_from_event(meta: &Map<String, Json>, ev: &Event) -> Map<String, Json> {
    use EventKind as K;
    let mut b = meta.clone();
    b.insert("event".into(), Json::from(ev.kind.as_str()));
    if let Some(step) = &ev.step {
        b.insert("step".into(), Json::from(step.clone()));
    }
    if let Some(phase) = ev.phase {
        b.insert("phase".into(), Json::from(phase.as_str()));
    }
    let d = &ev.data;
    let get = |k: &str| field(d, k);
    for k in ["action", "args", "attempt"] {
        if let Some(v) = d.get(k) {
            b.insert(k.into(), v.clone());
        }
    }
    let mut outcome = Map::new();
    match ev.kind {
        K::StepFinished => step_finished(d, &mut b, &mut outcome),
        K::StepFailed => {
            step_failed(d, &mut outcome);
            // What the step printed before it failed (a migration names each file it applied).
            if let Some(p) = d
                .get("printed")
                .and_then(Json::as_str)
                .filter(|p| !p.is_empty())
            {
                b.insert(
                    "output".into(),
                    serde_json::json!({ "excerpt": excerpt(p) }),
                );
            }
        }
        K::StepSkipped => {
            outcome.insert("status".into(), Json::from("skipped"));
            outcome.insert("reason".into(), get("reason"));
        }
        K::GateDecision => gate_decision(d, &mut b, &mut outcome),
        K::ApprovalRecorded => {
            b.insert(
                "approvals".into(),
                serde_json::json!([{ "actor": get("actor"), "decision": get("decision"), "comment": get("comment"), "plan_hash": get("plan_hash"), "at": get("at"), "signed": get("signed") }]),
            );
        }
        K::RunFinished | K::RunInterrupted => {
            outcome.insert("status".into(), get("status"));
            outcome.insert("exit_code".into(), get("exit_code"));
            outcome.insert("error".into(), get("error"));
        }
        K::RunWaiting => {
            outcome.insert("status".into(), Json::from("waiting_approval"));
            outcome.insert("reason".into(), get("reason"));
        }
        K::RunRefused => {
            outcome.insert("status".into(), Json::from("refused"));
            for k in ["reason", "hint", "attempt", "exit_code"] {
                outcome.insert(k.into(), get(k));
            }
        }
        K::ResumeDecision => {
            outcome.insert("status".into(), get("choice"));
            b.insert("decided_by".into(), get("operator"));
        }
        K::RunStarted
        | K::RunResumed
        | K::RollbackStarted
        | K::RollbackFinished
        | K::StepStarted => {
            for k in [
                "params",
                "plan_hash",
                "failed_step",
                "error",
                "ok",
                "operator",
                "host",
                "stopped",
                "target_identity",
                "operator_key",
            ] {
                if let Some(v) = d.get(k) {
                    outcome.insert(k.into(), v.clone());
                }
            }
        }
    }
    if ev.kind == K::RunStarted {
        run_started(d, &mut b);
    }
    // Whether the step changed the target, which `rollback_when: changed` decided on.
    if matches!(ev.kind, K::StepFinished | K::StepFailed | K::StepSkipped)
        && let Some(change) = d.get("change")
    {
        outcome.insert("change".into(), change.clone());
    }
    if !outcome.is_empty() {
        b.insert("outcome".into(), Json::Object(outcome));
    }
    b
}

/// The rules and inputs a run started under, as record fields: the config's sha256, the
/// protections (with their maintenance windows) and any emergency, the migration set's hash,
/// and the git commit with whether the working tree differed from it.
fn run_started(d: &Json, b: &mut Map<String, Json>) {
    for k in ["config", "protections", "emergency", "git"] {
        if let Some(v) = d.get(k) {
            b.insert(k.into(), v.clone());
        }
    }
    if let Some(h) = d.get("migrations_hash") {
        b.insert("migrations".into(), serde_json::json!({ "sha256": h }));
    }
}

/// A field of an event's data, `null` when it is missing.
fn field(d: &Json, k: &str) -> Json {
    d.get(k).cloned().unwrap_or(Json::Null)
}

/// A finished step: its counts, and a hash and excerpt of its outputs instead of the outputs.
fn step_finished(d: &Json, b: &mut Map<String, Json>, outcome: &mut Map<String, Json>) {
    // Read in place: a step's outputs can be megabytes (a health check's list of thousands
    // of keys), and each copy of them costs as much as hashing them.
    let null = Json::Null;
    let outputs = d.get("outputs").unwrap_or(&null);
    outcome.insert("status".into(), Json::from("succeeded"));
    outcome.insert("duration_ms".into(), field(d, "duration_ms"));
    for k in ["exit_code", "rows_affected", "row_count"] {
        if let Some(v) = outputs.get(k) {
            outcome.insert(k.into(), v.clone());
        }
    }
    // The hash leaves out the rows a query returned.
    let hashed = match outputs {
        Json::Object(m) => canonical_without(m, &["rows", "row", "scalar"]),
        other => canonical(other),
    };
    // What the step printed: a program's output, a log message, or the notes an action wrote
    // (a migration's, a backup's); else the counts it produced.
    let printed = ["stdout", "stderr", "message"]
        .iter()
        .filter_map(|k| outputs.get(*k).and_then(Json::as_str))
        .chain(d.get("printed").and_then(Json::as_str))
        .find(|t| !t.trim().is_empty())
        .map(str::to_owned);
    let text = printed.unwrap_or_else(|| counts(outputs));
    if let Some(changed) = d.get("changed") {
        b.insert("changed".into(), changed.clone());
    }
    b.insert(
        "output".into(),
        serde_json::json!({
            "sha256": hex::encode(Sha256::digest(hashed.as_bytes())),
            "excerpt": excerpt(&text),
        }),
    );
}

/// The counts a step produced, in words, for an excerpt when it printed nothing.
fn counts(outputs: &Json) -> String {
    let n = |k: &str| outputs.get(k).and_then(Json::as_u64);
    match (n("row_count"), n("rows_affected")) {
        (Some(r), _) if r > 0 => crate::fmt::plural(r, "row returned", "rows returned"),
        (_, Some(a)) => crate::fmt::plural(a, "row affected", "rows affected"),
        _ => String::new(),
    }
}

/// A failed step: an excerpt of its error, and the SQLSTATE or exit code the error names.
fn step_failed(d: &Json, outcome: &mut Map<String, Json>) {
    let error = field(d, "error");
    outcome.insert("status".into(), Json::from("failed"));
    outcome.insert(
        "error".into(),
        Json::from(excerpt(error.as_str().unwrap_or_default())),
    );
    outcome.insert("duration_ms".into(), field(d, "duration_ms"));
    outcome.insert("will_retry".into(), field(d, "will_retry"));
    if let Some(code) = error
        .as_str()
        .and_then(|e| e.split("SQLSTATE ").nth(1))
        .map(|c| c.trim_end_matches(')').to_owned())
    {
        outcome.insert("sqlstate".into(), Json::from(code));
    }
    if let Some(code) = error
        .as_str()
        .and_then(|e| e.split("exited with code ").nth(1))
        .and_then(|c| c.split(|ch: char| !ch.is_ascii_digit() && ch != '-').next())
        .and_then(|c| c.parse::<i64>().ok())
    {
        outcome.insert("exit_code".into(), Json::from(code));
    }
}

/// A gate decision: its outcome, the approvers, and what the gate showed.
fn gate_decision(d: &Json, b: &mut Map<String, Json>, outcome: &mut Map<String, Json>) {
    outcome.insert("status".into(), field(d, "outcome"));
    let detail = field(d, "detail");
    if let Some(a) = detail.get("approvers") {
        b.insert("approvals".into(), a.clone());
    }
    if let Some(r) = detail.get("reason").or_else(|| detail.get("note")) {
        outcome.insert("reason".into(), r.clone());
    }
    b.insert("shown".into(), field(d, "gate"));
}
