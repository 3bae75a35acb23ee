//! What `runbook status` shows of a run waiting at an approval gate: the gate and what it
//! said, each approval so far and whether it counts (and why not: `counting.rs`, the judge the
//! gate itself uses), and who may still approve.

use super::counting::Judge;
use super::emergency::approval_gate;
use super::journal::audit_dir;
use super::protections::Effective;
use super::signing;
use crate::gate::same_person;
use crate::project::Project;
use crate::run::{self, EventKind, RunRecord, RunStatus};
use crate::signers::Signers;
use crate::state::StateStore;

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
    let started = super::inputs::started_in(&events).cloned();
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
    // The rules the run is held to, as recorded at its start.
    let protections = Effective::recorded(started.as_ref(), project.config_def(), &run.env).rules;
    let signers = Signers::load(&project.root, project.config_def());
    if protections.signed_approvals
        && let Some(why) = signing::nobody_listed(&run.env, &signers)
    {
        lines.push(format!("nobody can approve yet: {why}"));
    }
    let stored = state.approvals(&run.id, &gate).await.unwrap_or_default();
    let dir = audit_dir(&project.root, project.config_def());
    let chain = match crate::audit::chain_facts(&dir, &run.id) {
        Ok(c) => c,
        Err(e) => {
            lines.push(format!("approvals cannot be counted: {e}"));
            return lines;
        }
    };
    let judge = Judge {
        run_id: &run.id,
        gate: &gate,
        plan_hash: &run.plan_hash,
        operator: &run.operator,
        self_approval: protections.self_approval,
        signed: protections.signed_approvals,
        signers: &signers,
        gate_approvers: a.approvers.as_deref(),
        expiry: signing::expiry_of(Some(&a), &protections),
        now: run::now_ms(),
    };
    let judged = judge.judge_all(&chain, &stored);
    for j in &judged {
        let counts = j
            .void
            .as_ref()
            .map_or("counts".to_owned(), |w| format!("does not count: {w}"));
        let signed = j
            .approval
            .signed
            .as_ref()
            .map(|s| format!(", signed by {}", s.fingerprint))
            .unwrap_or_default();
        lines.push(format!(
            "approval  {} {} at {}{signed} ({counts})",
            j.who,
            j.approval.decision,
            run::format_ms(j.approval.at)
        ));
    }
    let counted: Vec<&str> = judged
        .iter()
        .filter(|j| j.void.is_none())
        .map(|j| j.who.as_str())
        .collect();
    // Where signatures are required, only the listed approvers can approve at all.
    let listed: Option<Vec<String>> = match (&signers, protections.signed_approvals) {
        (Ok(s), true) => {
            let names = s.list.iter().map(|k| k.principal().to_owned());
            Some(match &a.approvers {
                Some(gate) => names
                    .filter(|n| gate.iter().any(|g| same_person(g, n)))
                    .collect(),
                None => names.collect(),
            })
        }
        _ => a.approvers.clone(),
    };
    lines.push(format!(
        "may still approve: {}",
        who_may(
            &listed,
            &counted,
            run,
            chain.operator_principal.as_deref(),
            protections.self_approval
        )
    ));
    lines
}

/// The listed approvers who have not approved yet, or anyone but those and the operator.
/// `operator_key` is the approver the operator's own key is listed for, when they had one.
fn who_may(
    list: &Option<Vec<String>>,
    counted: &[&str],
    run: &RunRecord,
    operator_key: Option<&str>,
    self_ok: bool,
) -> String {
    let own =
        |p: &str| same_person(p, &run.operator) || operator_key.is_some_and(|o| same_person(p, o));
    match list {
        Some(list) => {
            let left: Vec<&str> = list
                .iter()
                .map(String::as_str)
                .filter(|p| !counted.iter().any(|c| same_person(c, p)))
                .filter(|p| self_ok || !own(p))
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
