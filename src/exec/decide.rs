//! `runbook approve` / `runbook reject`: records the decision of an identity on an approval
//! gate of a waiting run, through the run's journal. A rejection then ends the run, with its
//! rollback, by resuming it so the gate refuses.

use super::approval_view::Seen;
use super::emergency::approval_gate;
use super::inputs;
use super::journal::Journal;
use super::protections::Effective;
use super::same_target::check_same_target;
use super::session::{find_run, open_state, protections_of, redactor_for, target_spec};
use super::{DecisionRequest, ExecError, Outcome, ResumeRequest, resume};
use crate::gate::same_person;
use crate::playbook::{ApprovalGate, Step};
use crate::project::Project;
use crate::run::{self, Approval, RunRecord, RunStatus};
use crate::state::StateStore;
use crate::ui::Ui;
use serde_json::json;
use std::collections::BTreeMap;
use tokio::sync::watch;

/// `runbook approve` / `runbook reject`.
pub async fn decide(
    project: &Project,
    req: DecisionRequest,
    ui: &Ui,
    cancel: watch::Receiver<bool>,
) -> Result<Outcome, ExecError> {
    let state = open_state(project, req.state.as_deref(), ui).await?;
    let (record, step, started) = load(project, &state, &req, ui).await?;
    let events = state.load_events(&record.id).await.map_err(|e| {
        ui.error(&e.to_string(), None);
        ExecError::Internal
    })?;
    if req.approve {
        // Approvals bind to the plan, files included: approving now would approve other SQL.
        let now = project.input_digests();
        let changes = inputs::changed_since_start(started.as_ref(), &now);
        if !changes.is_empty() {
            ui.error(
                &format!(
                    "since run {} started, {}; an approval now would approve something else",
                    record.id,
                    changes.join(", ")
                ),
                Some("put the files back as they were, or start a new run and approve that one"),
            );
            return Err(ExecError::Invalid);
        }
        // Named with --target, the database must be the one the run started on (resume checks
        // the database it acts on whatever is named here).
        if let Some(given) = req.target.as_deref() {
            let target = target_spec(
                &project.root,
                project.config_def(),
                &record.env,
                Some(given),
            )
            .map_err(|e| {
                ui.error(&e, None);
                ExecError::Invalid
            })?;
            check_same_target(started.as_ref(), &record, target.as_ref(), ui).await?;
        }
    }
    let actor = req.actor.clone().unwrap_or_else(run::operator);
    let gate = step.gate.as_ref().and_then(|g| g.approval.clone());
    // The rules the run started under, which may be another environment's (its database's).
    let eff = Effective::recorded(started.as_ref(), project.config_def(), &record.env);
    if eff.borrowed && !eff.rules.self_approval && same_person(&actor, &record.operator) {
        ui.error(
            &format!("{actor} started run {} and cannot approve it: it runs on `{}`'s database, whose protections allow no self-approval", record.id, eff.source),
            Some("another person approves"),
        );
        return Err(ExecError::Refused);
    }
    check_actor(project, &record, &req.gate, gate.as_ref(), &actor, ui)?;
    let seen = Seen {
        record: &record,
        started: started.as_ref(),
        events: &events,
        steps: &state.load_steps(&record.id).await.unwrap_or_default(),
        vars: env_vars(project, &record.env),
    };
    confirm_decision(&seen, &req, gate.as_ref(), ui).await?;
    let approval = Approval {
        gate: req.gate.clone(),
        actor: actor.clone(),
        decision: if req.approve { "approve" } else { "reject" }.to_owned(),
        comment: req.comment.clone(),
        plan_hash: record.plan_hash.clone(),
        at: run::now_ms(),
    };
    record_decision(project, &state, &record, &approval, ui).await?;
    announce(&record, &req, &actor, ui);
    state.close().await;
    if req.approve {
        return Ok(Outcome::Approved);
    }
    // A rejection ends the run now: resume it so the gate refuses and the rollback runs.
    let resume_req = ResumeRequest {
        run_id: record.id.clone(),
        target: req.target.clone(),
        state: req.state.clone(),
        confirm: req.confirm.clone(),
        ..Default::default()
    };
    resume(project, resume_req, ui, cancel).await
}

/// The waiting run, the approval gate the request names (the emergency gate of an emergency
/// run included) and the run's `run_started` data; the run's playbook must be unchanged, or the
/// decision would be about something else.
async fn load(
    project: &Project,
    state: &StateStore,
    req: &DecisionRequest,
    ui: &Ui,
) -> Result<(RunRecord, Step, Option<serde_json::Value>), ExecError> {
    let Some(record) = find_run(state, &req.run_id, ui).await else {
        return Err(ExecError::Invalid);
    };
    if !matches!(
        record.status,
        RunStatus::WaitingApproval | RunStatus::Running | RunStatus::Interrupted
    ) {
        ui.error(
            &format!(
                "run {} is {}; there is nothing to approve",
                record.id,
                record.status.as_str()
            ),
            None,
        );
        return Err(ExecError::Invalid);
    }
    let Ok(playbook) = project.load_playbook(std::path::Path::new(&record.file)) else {
        ui.error(
            &format!("the playbook of run {} no longer validates", record.id),
            None,
        );
        return Err(ExecError::Invalid);
    };
    if playbook.content_hash() != record.content_hash {
        ui.error(
            &format!("the playbook `{}` changed since run {} started; an approval now would approve something else", record.playbook, record.id),
            Some("start a new run of the changed playbook and approve that one"),
        );
        return Err(ExecError::Invalid);
    }
    let started = inputs::started_data(state, &record, ui).await?;
    let Some(step) = approval_gate(&playbook, started.as_ref(), &req.gate) else {
        ui.error(
            &format!("run {} has no approval gate `{}`", record.id, req.gate),
            Some("`runbook status RUN` lists the steps; approval gates are steps with `gate: { approval: ... }`"),
        );
        return Err(ExecError::Invalid);
    };
    Ok((record, step, started))
}

/// The operator may decide on their own run only where the environment allows self-approval,
/// and a gate with a list of approvers takes only them.
fn check_actor(
    project: &Project,
    record: &RunRecord,
    gate_id: &str,
    gate: Option<&ApprovalGate>,
    actor: &str,
    ui: &Ui,
) -> Result<(), ExecError> {
    let protections = protections_of(project.config_def(), &record.env);
    if !protections.self_approval && same_person(actor, &record.operator) {
        ui.error(
            &format!("{actor} started run {} and cannot approve it in environment `{}`", record.id, record.env),
            Some("another person approves; self-approval is allowed only where the environment says `self_approval: true`"),
        );
        return Err(ExecError::Refused);
    }
    if let Some(list) = gate.and_then(|a| a.approvers.as_ref())
        && !list.iter().any(|p| same_person(p, actor))
    {
        ui.error(
            &format!("{actor} is not an approver of gate `{gate_id}`"),
            Some(&format!("approvers: {}", list.join(", "))),
        );
        return Err(ExecError::Refused);
    }
    Ok(())
}

/// Records the decision in the run's audit chain and the state store.
async fn record_decision(
    project: &Project,
    state: &StateStore,
    record: &RunRecord,
    approval: &Approval,
    ui: &Ui,
) -> Result<(), ExecError> {
    let config = project.config_def();
    // No parameters here: the config's secrets are what a comment might hold.
    let redactor = redactor_for(config, &BTreeMap::new(), None);
    let head = super::resume::audit_head(state, record, ui).await?;
    let mut journal =
        Journal::open_for_decision(&project.root, config, record, head.as_ref(), redactor, ui)
            .map_err(|e| {
                ui.error(
                    &e.to_string(),
                    Some(
                        "`runbook audit verify RUN` says what is wrong with the run's audit chain",
                    ),
                );
                ExecError::AuditFailed
            })?;
    journal.approval(state, approval).await
}

/// The environment's variables, for messages the run has not rendered yet.
fn env_vars(project: &Project, env: &str) -> serde_json::Value {
    project
        .config_def()
        .and_then(|c| c.environments.get(env))
        .map_or(json!({}), |e| json!(e.vars))
}

/// Shows what the decision is about before anything is recorded; at a terminal, asks (unless
/// `--yes`). Declining records nothing.
async fn confirm_decision(
    seen: &Seen<'_>,
    req: &DecisionRequest,
    gate: Option<&ApprovalGate>,
    ui: &Ui,
) -> Result<(), ExecError> {
    let raw = gate.map(|a| a.message.as_str()).unwrap_or_default();
    ui.note(seen.render(&req.gate, raw, req.approve).trim_end());
    if req.yes || !ui.can_prompt() {
        return Ok(());
    }
    let what = if req.approve { "approval" } else { "rejection" };
    let answer = ui
        .prompt(&format!("Record this {what}? [y/N] "))
        .await
        .unwrap_or_default();
    if answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes") {
        return Ok(());
    }
    ui.error(
        &format!("nothing was recorded: the {what} was not confirmed"),
        None,
    );
    Err(ExecError::Refused)
}

/// Tells who decided what on which gate (what the gate says was shown before).
fn announce(record: &RunRecord, req: &DecisionRequest, actor: &str, ui: &Ui) {
    ui.note(&format!(
        "{} gate `{}` of run {} as {actor}",
        if req.approve { "approved" } else { "rejected" },
        req.gate,
        record.id,
    ));
    if req.approve {
        ui.note(&format!(
            "`runbook resume {}` continues the run once the gate has its approvals",
            record.id
        ));
    }
}
