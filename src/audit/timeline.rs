//! A run's story read back from its records: the header facts (`header`), each step's life as a
//! `Span` with times and outcome, and notes for gates, approvals, rollbacks and the run's end
//! (`timeline`). `show` and `html` render it.

use super::verdict::short;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

/// A step's life in the timeline.
#[derive(Debug, Clone, Default)]
pub struct Span {
    pub step: String,
    pub phase: String,
    pub action: String,
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    pub status: String,
    pub detail: String,
    pub attempts: i64,
    /// Whether the step changed the target, and what it did (`None`: not recorded).
    pub change: Option<(bool, String)>,
}

impl Span {
    /// How long the step took, when it started and ended.
    pub fn duration(&self) -> Option<chrono::Duration> {
        Some(self.end? - self.start?)
    }
}

/// A record's time.
fn ts(r: &Map<String, Json>) -> Option<chrono::DateTime<chrono::Utc>> {
    r.get("ts")
        .and_then(Json::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// A string field of a record (or of its outcome), empty when missing.
fn text<'a>(r: &'a Json, key: &str) -> &'a str {
    r.get(key).and_then(Json::as_str).unwrap_or_default()
}

/// What a resume stopped of its crashed attempt, as `; stopped ...`; empty when nothing.
fn stopped(outcome: &Json) -> String {
    let names: Vec<&str> = outcome
        .get("stopped")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        String::new()
    } else {
        format!(
            "; stopped what the crashed attempt left running: {}",
            names.join(", ")
        )
    }
}

/// The timeline of a run from its records: steps with times and outcomes, gate decisions with
/// approvers, rollbacks.
pub fn timeline(entries: &[Map<String, Json>]) -> (Vec<Span>, Vec<String>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut notes = Vec::new();
    // Who has approved which gate so far: a second approval by the same person (by Unicode
    // caseless comparison, as the gate counts them) is shown as counting once.
    let mut approved: Vec<(String, String)> = Vec::new();
    let mut latest = Latest::default();
    for r in entries {
        let event = r.get("event").and_then(Json::as_str).unwrap_or_default();
        match event {
            "step_started" => step_started(&mut spans, &mut latest, r),
            "step_finished" | "step_failed" | "step_skipped" => {
                step_ended(&mut spans, &mut latest, r, event)
            }
            "approval_recorded" => {
                notes.extend(note(r, event).map(|n| n + &repeated_approval(r, &mut approved)))
            }
            _ => notes.extend(note(r, event)),
        }
    }
    (spans, notes)
}

/// ` (again: a person counts once)` when the record's approver already approved its gate.
fn repeated_approval(r: &Map<String, Json>, approved: &mut Vec<(String, String)>) -> String {
    let (gate, _) = step_of(r);
    let Some(a) = r.get("approvals").and_then(|a| a.get(0)) else {
        return String::new();
    };
    if text(a, "decision") != "approve" {
        return String::new();
    }
    let actor = text(a, "actor").to_owned();
    if approved
        .iter()
        .any(|(g, who)| *g == gate && crate::gate::same_person(who, &actor))
    {
        return " (again: a person counts once)".to_owned();
    }
    approved.push((gate, actor));
    String::new()
}

/// The step and phase a record is about.
fn step_of(r: &Map<String, Json>) -> (String, String) {
    let field = |k: &str| {
        r.get(k)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (field("step"), field("phase"))
}

/// The latest span of each step in each phase, by (step, phase): a lookup, so a long run's
/// timeline is linear in its records.
type Latest = HashMap<(String, String), usize>;

/// Adds a span and makes it its step's latest.
fn push(spans: &mut Vec<Span>, latest: &mut Latest, span: Span) -> usize {
    latest.insert((span.step.clone(), span.phase.clone()), spans.len());
    spans.push(span);
    spans.len() - 1
}

/// A step starts, or starts again after a failed attempt.
fn step_started(spans: &mut Vec<Span>, latest: &mut Latest, r: &Map<String, Json>) {
    let (step, phase) = step_of(r);
    match latest.get(&(step.clone(), phase.clone())).copied() {
        Some(i) if spans[i].end.is_none() || spans[i].status == "failed" => {
            spans[i].attempts += 1;
            spans[i].status = "running".to_owned();
            spans[i].end = None;
        }
        _ => {
            let span = Span {
                step,
                phase,
                action: r
                    .get("action")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                start: ts(r),
                status: "running".to_owned(),
                attempts: 1,
                ..Default::default()
            };
            push(spans, latest, span);
        }
    }
}

/// A step finished, failed or was skipped: its span ends with the outcome.
fn step_ended(spans: &mut Vec<Span>, latest: &mut Latest, r: &Map<String, Json>, event: &str) {
    let (step, phase) = step_of(r);
    let outcome = r.get("outcome").cloned().unwrap_or(Json::Null);
    let status = outcome
        .get("status")
        .and_then(Json::as_str)
        .unwrap_or(event)
        .to_owned();
    let detail = outcome
        .get("error")
        .or_else(|| outcome.get("reason"))
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let i = match latest.get(&(step.clone(), phase.clone())).copied() {
        Some(i) => i,
        None => {
            let span = Span {
                step,
                phase,
                start: ts(r),
                ..Default::default()
            };
            push(spans, latest, span)
        }
    };
    spans[i].end = ts(r);
    spans[i].status = status;
    spans[i].detail = detail;
    spans[i].change = outcome.get("change").map(|c| {
        (
            c.get("changed").and_then(Json::as_bool).unwrap_or(true),
            text(c, "reason").to_owned(),
        )
    });
}

/// The note a record other than a step's start or end adds to the timeline, if any.
fn note(r: &Map<String, Json>, event: &str) -> Option<String> {
    let (step, _) = step_of(r);
    let outcome = r.get("outcome").cloned().unwrap_or(Json::Null);
    let when = ts(r)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default();
    let or_unknown = |v: &Json, k: &str| v.get(k).and_then(Json::as_str).unwrap_or("?").to_owned();
    Some(match event {
        "gate_decision" => gate_note(r, &outcome, &when, &step),
        "approval_recorded" => {
            let a = r.get("approvals").and_then(|a| a.get(0))?;
            let comment = a
                .get("comment")
                .and_then(Json::as_str)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            // A signed approval names its key; whether it counts is the gate's decision.
            let key = a
                .get("signed")
                .and_then(|s| s.get("fingerprint"))
                .and_then(Json::as_str)
                .map(|k| format!(" (signed by {k})"))
                .unwrap_or_default();
            format!(
                "{when} {} {}d gate {step}{key}{comment}",
                or_unknown(a, "actor"),
                or_unknown(a, "decision")
            )
        }
        "rollback_started" => format!(
            "{when} rollback started after step {} failed",
            or_unknown(&outcome, "failed_step")
        ),
        "rollback_finished" => format!(
            "{when} rollback finished ({})",
            if outcome.get("ok").and_then(Json::as_bool).unwrap_or(false) {
                "every compensation succeeded"
            } else {
                "a compensation failed"
            }
        ),
        "run_waiting" => format!("{when} run waiting: {}", text(&outcome, "reason")),
        "run_resumed" => format!(
            "{when} run resumed by {}{}",
            or_unknown(&outcome, "operator"),
            stopped(&outcome)
        ),
        "resume_decision" => format!(
            "{when} {} chose to {} in-flight step {step}",
            r.get("decided_by").and_then(Json::as_str).unwrap_or("?"),
            or_unknown(&outcome, "status")
        ),
        "run_interrupted" => format!("{when} run interrupted"),
        "run_refused" => format!(
            "{when} {} refused before anything ran: {}",
            or_unknown(&outcome, "attempt"),
            text(&outcome, "reason")
        ),
        "run_finished" => format!(
            "{when} run finished: {}{}",
            or_unknown(&outcome, "status"),
            outcome
                .get("error")
                .and_then(Json::as_str)
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ),
        "torn_tail_repaired" => format!(
            "{when} {}",
            r.get("detail").and_then(Json::as_str).unwrap_or_default()
        ),
        _ => return None,
    })
}

/// A gate decision: its outcome, approvers and reason.
fn gate_note(r: &Map<String, Json>, outcome: &Json, when: &str, step: &str) -> String {
    let approvers = r
        .get("approvals")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let by = if approvers.is_empty() {
        String::new()
    } else {
        format!(" by {approvers}")
    };
    format!(
        "{when} gate {step}: {}{by} ({})",
        text(outcome, "status"),
        text(outcome, "reason")
    )
}

/// The header facts of a run from its first record.
pub fn header(entries: &[Map<String, Json>]) -> Vec<(String, String)> {
    let Some(first) = entries.first() else {
        return Vec::new();
    };
    let last = entries.last().unwrap_or(first);
    let s = |v: Option<&Json>| v.and_then(Json::as_str).unwrap_or("-").to_owned();
    let pb = first.get("playbook").cloned().unwrap_or(Json::Null);
    let target = first.get("target").cloned().unwrap_or(Json::Null);
    let git = pb
        .get("git_commit")
        .and_then(Json::as_str)
        .map(|c| format!(", git {}", short(c)))
        .unwrap_or_default();
    let mut facts = vec![
        ("run".into(), s(first.get("run_id"))),
        (
            "playbook".into(),
            format!(
                "{} ({}, sha256 {}{git})",
                s(pb.get("name")),
                s(pb.get("file")),
                short(pb.get("sha256").and_then(Json::as_str).unwrap_or("-"))
            ),
        ),
        ("environment".into(), s(first.get("env"))),
        (
            "target".into(),
            format!(
                "{} {} ({})",
                s(target.get("host")),
                s(target.get("database")),
                s(target.get("server_version"))
            ),
        ),
        (
            "operator".into(),
            format!("{}@{}", s(first.get("operator")), s(first.get("host"))),
        ),
        (
            "tool".into(),
            format!("runbook {}", s(first.get("tool_version"))),
        ),
    ];
    // The config, protections, migration set and git state the run started under.
    facts.extend(super::changes::started_under(first));
    facts.extend([
        ("started".into(), s(first.get("ts"))),
        ("last record".into(), s(last.get("ts"))),
        ("status".into(), run_status(entries)),
    ]);
    facts
}

/// How the run ended, from its last run-level record.
pub fn run_status(entries: &[Map<String, Json>]) -> String {
    entries
        .iter()
        .rev()
        .find_map(|r| match r.get("event").and_then(Json::as_str) {
            Some("run_finished" | "run_interrupted") => r
                .get("outcome")
                .and_then(|o| o.get("status"))
                .and_then(Json::as_str)
                .map(str::to_owned),
            Some("run_waiting") => Some("waiting_approval".to_owned()),
            Some("run_refused") => Some("refused before it started".to_owned()),
            _ => None,
        })
        .unwrap_or_else(|| "running (or crashed)".to_owned())
}
