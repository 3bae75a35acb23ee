//! What a person deciding on a gate is shown before anything is recorded: the run, the database
//! it is bound to, the gate's message as the run rendered it, the migrations the run found
//! pending (with the sha256 of each file, which the approval binds to), the lint findings the
//! run recorded, and the plan hash. All of it comes from the run's records and the project's
//! files: an approver on a laptop needs no connection to the database.

use crate::run::{EventKind, RunRecord, StepRecord, StepStatus};
use crate::template;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Lint findings listed one per line before the rest are counted.
const MAX_FINDINGS: usize = 20;

/// What the view is made from: the run, its `run_started` data, its events and its steps.
pub(super) struct Seen<'a> {
    pub record: &'a RunRecord,
    pub started: Option<&'a Json>,
    pub events: &'a [(i64, i64, String, Option<String>, Json)],
    pub steps: &'a [StepRecord],
    /// The environment's variables, for rendering a message the run has not rendered yet.
    pub vars: Json,
}

impl Seen<'_> {
    /// The text shown before a decision on `gate` of the run.
    /// `verb` says what the decision is: `Approving`, `Rejecting`, `Cancelling at`.
    pub(super) fn render(&self, gate: &str, raw_message: &str, verb: &str) -> String {
        let r = self.record;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{verb} gate `{gate}` of run {}: {} on {}, started by {}",
            r.id, r.playbook, r.env, r.operator
        );
        let identity = super::same_target::recorded_identity(self.started);
        let _ = writeln!(
            out,
            "  target:    {}{}",
            r.target,
            identity.map(|i| format!(" ({i})")).unwrap_or_default()
        );
        let _ = writeln!(out, "  the gate:  {}", self.message(gate, raw_message));
        self.pending(&mut out);
        self.findings(&mut out);
        let _ = writeln!(out, "  plan hash: {}", r.plan_hash);
        out
    }

    /// The gate's message as the run rendered it when it stopped there (its outputs were known
    /// then); before the run reached the gate, rendered from what is known before a run.
    fn message(&self, gate: &str, raw: &str) -> String {
        let rendered = self
            .events
            .iter()
            .rev()
            .filter(|(_, _, kind, step, _)| {
                kind == EventKind::GateDecision.as_str() && step.as_deref() == Some(gate)
            })
            .find_map(|(_, _, _, _, data)| {
                data.pointer("/gate/approval/message")
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            });
        if let Some(m) = rendered {
            return m;
        }
        let ctx = json!({
            "env": {"name": self.record.env, "target": self.record.target},
            "params": self.record.params,
            "vars": self.vars,
        });
        match template::render(raw, &ctx) {
            Ok(m) => format!("{m} (the run has not reached the gate yet)"),
            Err(_) => {
                format!("{raw} (the run has not reached the gate yet: its values are not known)")
            }
        }
    }

    /// The files the plan binds, and the migrations the run's last `migrate: status` step found
    /// pending (if one ran before the gate), each with the sha256 of its file as the run
    /// recorded it at its start.
    fn pending(&self, out: &mut String) {
        let digests: BTreeMap<String, String> = self
            .started
            .and_then(|d| d.get("inputs").cloned())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        if !digests.is_empty() {
            let _ = writeln!(
                out,
                "  files:     {} bound by the plan hash (a change to one voids the approval)",
                crate::fmt::plural(
                    digests.len(),
                    "migration or seed file",
                    "migration and seed files"
                )
            );
        }
        let Some((step, pending)) = self.last_output("pending") else {
            return;
        };
        let _ = writeln!(
            out,
            "  pending:   {} (found by step `{step}`)",
            crate::fmt::plural(pending.len(), "migration", "migrations")
        );
        for m in pending {
            let file = m.get("file").and_then(Json::as_str).unwrap_or_default();
            let name = m.get("name").and_then(Json::as_str).unwrap_or_default();
            let version = m.get("version").and_then(Json::as_str).unwrap_or_default();
            let sha = digests
                .get(file)
                .map_or("(not recorded)".to_owned(), |d| format!("sha256 {d}"));
            let _ = writeln!(out, "    {version} {name}  {file}  {sha}");
        }
    }

    /// The lint findings of the run's last `migrate: lint` step, if one ran before the gate.
    fn findings(&self, out: &mut String) {
        let Some((step, findings)) = self.last_output("findings") else {
            return;
        };
        let level = |f: &Json, l: &str| f.get("level").and_then(Json::as_str) == Some(l);
        let errors = findings.iter().filter(|f| level(f, "error")).count();
        let warnings = findings.iter().filter(|f| level(f, "warning")).count();
        let _ = writeln!(
            out,
            "  lint:      {}, {} (step `{step}`)",
            crate::fmt::plural(errors, "error", "errors"),
            crate::fmt::plural(warnings, "warning", "warnings")
        );
        for f in findings.iter().take(MAX_FINDINGS) {
            let get = |k: &str| {
                f.get(k).map_or(String::new(), |v| match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                })
            };
            let _ = writeln!(
                out,
                "    {}:{}:{} {} {}: {}",
                get("file"),
                get("line"),
                get("column"),
                get("level"),
                get("rule"),
                get("message")
            );
        }
        if findings.len() > MAX_FINDINGS {
            let _ = writeln!(
                out,
                "    ... and {} more (`runbook status {}` shows the step's outputs)",
                findings.len() - MAX_FINDINGS,
                self.record.id
            );
        }
    }

    /// The list output `key` of the last succeeded step that has one, with the step's id.
    fn last_output(&self, key: &str) -> Option<(&str, &Vec<Json>)> {
        self.steps
            .iter()
            .rev()
            .filter(|s| s.status == StepStatus::Succeeded)
            .find_map(|s| {
                s.outputs
                    .get(key)
                    .and_then(Json::as_array)
                    .map(|list| (s.step.as_str(), list))
            })
    }
}
