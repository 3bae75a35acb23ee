//! What `runbook status` shows of a run waiting at an approval gate: the gate and what it
//! said, each approval so far and whether it counts (and why not), and who may still approve.

use super::emergency::approval_gate;
use super::protections::Effective;
use crate::gate::same_person;
use crate::project::Project;
use crate::run::{self, Approval, EventKind, RunRecord, RunStatus};
use crate::state::StateStore;
use std::time::Duration;

/// The lines about the gate a waiting run waits at; none for a run that does not wait, or
/// whose gate is not an approval gate (a confirmation says what to type in its own message).
pub async fn waiting_lines(project: &Project, state: &StateStore, run: &RunRecord) -> Vec<String> {
    if run.status != RunStatus::WaitingApproval {
        return Vec::new();
    }
    let events = state.load_events(&run.id).await.unwrap_or_default();
    let Some((gate, reason)) = events
        .iter()
        .rev()
        .find(|(_, _, kind, _, _)| kind == EventKind::RunWaiting.as_str())
        .map(|(_, _, _, _, d)| {
            let s = |k: &str| {
                d.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            (s("gate"), s("reason"))
        })
    else {
        return Vec::new();
    };
    let mut lines = vec![format!("waiting   at gate `{gate}`: {reason}")];
    let started = events
        .iter()
        .find(|(_, _, kind, _, _)| kind == EventKind::RunStarted.as_str())
        .map(|(_, _, _, _, d)| d.clone());
    let Some(step) = project
        .load_playbook(std::path::Path::new(&run.file))
        .ok()
        .and_then(|pb| approval_gate(&pb, started.as_ref(), &gate))
    else {
        return lines;
    };
    let Some(a) = step.gate.as_ref().and_then(|g| g.approval.clone()) else {
        return lines;
    };
    let protections = Effective::recorded(started.as_ref(), project.config_def(), &run.env).rules;
    let expiry: Option<Duration> = a
        .expires
        .as_ref()
        .or(protections.approval_expiry.as_ref())
        .and_then(|d| d.parse());
    let all = state.approvals(&run.id, &gate).await.unwrap_or_default();
    let why_not = |x: &Approval| -> Option<&'static str> {
        if x.plan_hash != run.plan_hash {
            Some("given for another plan")
        } else if expiry.is_some_and(|e| run::now_ms() - x.at > e.as_millis() as i64) {
            Some("expired")
        } else if !protections.self_approval && same_person(&x.actor, &run.operator) {
            Some("the operator's own, and this environment allows no self-approval")
        } else if a
            .approvers
            .as_ref()
            .is_some_and(|list| !list.iter().any(|p| same_person(p, &x.actor)))
        {
            Some("not a listed approver")
        } else {
            None
        }
    };
    for x in &all {
        let counts = why_not(x).map_or("counts".to_owned(), |w| format!("does not count: {w}"));
        lines.push(format!(
            "approval  {} {} at {} ({counts})",
            x.actor,
            x.decision,
            run::format_ms(x.at)
        ));
    }
    let counted: Vec<&str> = all
        .iter()
        .filter(|x| why_not(x).is_none())
        .map(|x| x.actor.as_str())
        .collect();
    lines.push(format!(
        "may still approve: {}",
        who_may(&a.approvers, &counted, run, protections.self_approval)
    ));
    lines
}

/// The listed approvers who have not approved yet, or anyone but those and the operator.
fn who_may(list: &Option<Vec<String>>, counted: &[&str], run: &RunRecord, self_ok: bool) -> String {
    match list {
        Some(list) => {
            let left: Vec<&str> = list
                .iter()
                .map(String::as_str)
                .filter(|p| !counted.iter().any(|c| same_person(c, p)))
                .filter(|p| self_ok || !same_person(p, &run.operator))
                .collect();
            if left.is_empty() {
                "nobody: every listed approver has approved".to_owned()
            } else {
                left.join(", ")
            }
        }
        None if self_ok => "anyone who has not approved yet".to_owned(),
        None => format!(
            "anyone who has not approved yet, except the operator {}",
            run.operator
        ),
    }
}
