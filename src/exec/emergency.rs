//! The emergency path through closed maintenance windows: `runbook run NAME --env ENV
//! --emergency REASON`. The run records itself as an emergency in `run_started` (`emergency`:
//! the reason, the closed window, the approvals it needs) and waits before its first step at an
//! approval gate `emergency`, which the environment's approvals decide through the same
//! machinery as any approval gate (`runbook approve RUN emergency`). Resume, approve and status
//! rebuild the same gate from the recorded data. An emergency run's plan hash differs from a
//! normal run's (`bind`), so approvals of one never count for the other.

use super::protections::Effective;
use super::units::find_approval_gate;
use crate::plan::Plan;
use crate::playbook::{ApprovalGate, GateAction, Step};
use crate::project::Playbook;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

/// The id of the emergency approval gate.
pub const GATE: &str = "emergency";

/// What an emergency run recorded at its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Emergency {
    /// Why it cannot wait, as the operator gave it.
    pub reason: String,
    /// Which windows were closed and when the next opens.
    pub outside: String,
    /// The approvals the gate needs (the environment's, at least 1).
    pub approvals: u32,
}

impl Emergency {
    pub fn new(reason: &str, outside: &str, approvals: u32) -> Emergency {
        Emergency {
            reason: reason.trim().to_owned(),
            outside: outside.to_owned(),
            approvals: approvals.max(1),
        }
    }

    /// The emergency a run recorded in its `run_started` data, if it is one.
    pub fn recorded(started: Option<&Json>) -> Option<Emergency> {
        started
            .and_then(|d| d.get("emergency"))
            .filter(|e| !e.is_null())
            .and_then(|e| serde_json::from_value(e.clone()).ok())
    }

    /// The approval gate the run waits at before its first step. The reason is the operator's
    /// text, shown as written: template markers in it are broken up so it is never rendered.
    pub fn step(&self) -> Step {
        let message = format!(
            "EMERGENCY run outside the maintenance windows: {}. Reason given: {}",
            self.outside.replace('`', ""),
            inert(&self.reason)
        );
        Step {
            id: Some(GATE.to_owned()),
            name: Some("emergency approval".to_owned()),
            gate: Some(GateAction {
                approval: Some(ApprovalGate {
                    message,
                    approvers: None,
                    required: Some(self.approvals),
                    expires: None,
                }),
                ..GateAction::default()
            }),
            ..Step::default()
        }
    }
}

/// What `runbook status` says of a run's rules beside its header: that it is an emergency run
/// (with the reason), and whose protections it runs under when they are another environment's.
pub async fn status_lines(
    state: &crate::state::StateStore,
    run: &crate::run::RunRecord,
) -> Vec<String> {
    let events = state.load_events(&run.id).await.unwrap_or_default();
    let started = super::inputs::started_in(&events).cloned();
    let mut lines = Vec::new();
    if let Some(e) = Emergency::recorded(started.as_ref()) {
        lines.push(format!(
            "emergency EMERGENCY run, started while {}; reason: {}; gate `{GATE}` needs {}",
            e.outside,
            e.reason,
            crate::fmt::plural(e.approvals, "approval", "approvals")
        ));
    }
    let eff = Effective::recorded(started.as_ref(), None, &run.env);
    if eff.borrowed {
        lines.push(format!(
            "rules     `{0}`'s protections: the target is `{0}`'s database",
            eff.source
        ));
    }
    lines
}

/// Text with `{{`, `{%` and `{#` broken up by a space, so the template engine leaves it alone.
fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '{' && matches!(chars.peek(), Some('{' | '%' | '#')) {
            out.push(' ');
        }
    }
    out
}

/// Whether the playbook has a top-level step with the emergency gate's id (the run could not
/// tell the two apart).
pub(super) fn clashes(pb: &Playbook) -> bool {
    pb.def.steps.iter().any(|s| s.id.as_deref() == Some(GATE))
}

/// The approval gate `gate` of a run: the emergency gate of an emergency run, else the
/// playbook's step of that qualified id. `started` is the run's `run_started` data.
pub(super) fn approval_gate(pb: &Playbook, started: Option<&Json>, gate: &str) -> Option<Step> {
    if gate == GATE
        && let Some(e) = Emergency::recorded(started)
    {
        return Some(e.step());
    }
    find_approval_gate(pb, gate)
}

/// Binds the plan hash to what decides the run beyond the plan itself: the emergency (its
/// reason and approvals) and protections taken from another environment's database. A normal
/// run under its own environment's rules keeps the plan's hash as `runbook plan` shows it.
/// Borrowed rules that protect destructive steps make the plan protected.
pub(super) fn bind(plan: &mut Plan, emergency: Option<&Emergency>, eff: &Effective) {
    if eff.borrowed {
        plan.protected |= eff.rules.is_protected();
    }
    if emergency.is_none() && !eff.borrowed {
        return;
    }
    let bound = json!({
        "plan": plan.plan_hash,
        "emergency": emergency,
        "protections": eff.to_json(),
        "protected": plan.protected,
    });
    plan.plan_hash = hex::encode(Sha256::digest(bound.to_string().as_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_never_a_template() {
        let e = Emergency::new("  {{ 7 * 7 }} and {%raw%} and {#x#} and {{{  ", "w", 0);
        assert_eq!(e.approvals, 1);
        let msg = e.step().gate.and_then(|g| g.approval).map(|a| a.message);
        let msg = msg.unwrap_or_default();
        assert!(!crate::template::is_template(&msg), "{msg}");
        assert!(
            msg.ends_with("{ { 7 * 7 }} and { %raw%} and { #x#} and { { {"),
            "{msg}"
        );
    }

    #[test]
    fn recorded_reads_back_what_was_written() {
        let e = Emergency::new("db down", "`production` is outside", 2);
        let data = json!({"emergency": e});
        assert_eq!(Emergency::recorded(Some(&data)), Some(e));
        assert_eq!(Emergency::recorded(Some(&json!({"emergency": null}))), None);
        assert_eq!(Emergency::recorded(None), None);
    }
}
