//! `runbook approve` / `runbook reject`: records the decision of an identity on an approval
//! gate of a waiting run, through the run's journal. A rejection then ends the run, with its
//! rollback, by resuming it so the gate refuses.

use super::approval_view::Seen;
use super::emergency::approval_gate;
use super::inputs;
use super::journal::{Journal, audit_dir};
use super::protections::Effective;
use super::same_target::check_same_target;
use super::session::{find_run, open_state, redactor_for, target_spec};
use super::signing;
use super::{DecisionRequest, ExecError, Outcome, ResumeRequest, resume};
use crate::approval::SigningKey;
use crate::config::Protections;
use crate::gate::same_person;
use crate::playbook::{ApprovalGate, Step};
use crate::project::Project;
use crate::run::{self, Approval, RunRecord, RunStatus};
use crate::signers::Signers;
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
    let mut req = req;
    if req.cancel {
        req.gate = waiting_gate(project, &state, &req.run_id, ui).await?;
    }
    let (record, step, events) = load(project, &state, &req, ui).await?;
    let started = inputs::started_in(&events).cloned();
    if req.approve {
        check_still_the_same(project, &record, started.as_ref(), &req, ui).await?;
    }
    let gate = step.gate.as_ref().and_then(|g| g.approval.clone());
    // The rules the run started under, which may be another environment's (its database's).
    let eff = Effective::recorded(started.as_ref(), project.config_def(), &record.env);
    let protections = eff.rules.clone();
    let facts =
        crate::audit::chain_facts(&audit_dir(&project.root, project.config_def()), &record.id)
            .map_err(|e| {
                ui.error(&e, None);
                ExecError::AuditFailed
            })?;
    // A cancellation is unsigned and open to anyone, the operator too: it only ends the run.
    let (actor, key) = if req.cancel {
        (req.actor.clone().unwrap_or_else(run::operator), None)
    } else {
        identify(project, &record, &protections, &req, ui)?
    };
    let fingerprint = key.as_ref().map(|k| k.signer.fingerprint.as_str());
    let who = Who {
        actor: &actor,
        fingerprint,
        facts: &facts,
    };
    if !req.cancel
        && eff.borrowed
        && !eff.rules.self_approval
        && same_person(&actor, &record.operator)
    {
        ui.error(
            &format!("{actor} started run {} and cannot approve it: it runs on `{}`'s database, whose protections allow no self-approval", record.id, eff.source),
            Some(&format!("another person approves; to end the run instead, `runbook cancel {} --reason TEXT` (its rollback runs)", record.id)),
        );
        return Err(ExecError::Refused);
    }
    if !req.cancel {
        check_actor(&record, &protections, &req.gate, gate.as_ref(), &who, ui)?;
    }
    // What the decision is about, shown (and at a terminal confirmed) before anything is
    // signed or recorded.
    let seen = Seen {
        record: &record,
        started: started.as_ref(),
        events: &events,
        steps: &state.load_steps(&record.id).await.unwrap_or_default(),
        vars: env_vars(project, &record.env),
    };
    confirm_decision(&seen, &req, gate.as_ref(), ui, cancel.clone()).await?;
    // A comment may hold a secret: the signed statement holds it as it is stored, masked.
    let comment = req
        .comment
        .as_deref()
        .map(|c| redactor_for(project.config_def(), &BTreeMap::new(), None).redact(c));
    let decision = match (req.approve, req.cancel) {
        (true, _) => "approve",
        (false, true) => "cancel",
        (false, false) => "reject",
    };
    let signed = match &key {
        Some(k) => {
            let d = signing::Decision {
                run_id: &record.id,
                gate: &req.gate,
                decision,
                plan_hash: &record.plan_hash,
                target: facts.target_identity.as_deref(),
                expiry: signing::expiry_of(gate.as_ref(), &protections),
                comment: comment.as_deref(),
            };
            Some(signing::sign(k, &d).map_err(|e| {
                ui.error(&e, None);
                ExecError::Refused
            })?)
        }
        None => None,
    };
    let approval = Approval {
        gate: req.gate.clone(),
        actor: actor.clone(),
        decision: decision.to_owned(),
        comment,
        plan_hash: record.plan_hash.clone(),
        at: run::now_ms(),
        signed,
    };
    record_decision(project, &state, &record, &approval, ui).await?;
    announce(&record, &req, &actor, ui);
    if req.approve {
        state.close().await;
        return Ok(Outcome::Approved);
    }
    end_refused(project, state, &record, &req, ui, cancel).await
}

/// A rejection or cancellation ends the run now. A live run reads it at its gate and rolls back
/// itself: its end is waited for (a resume would find the run's lock held). Any other is
/// resumed, so that the gate refuses and the rollback runs.
async fn end_refused(
    project: &Project,
    state: StateStore,
    record: &RunRecord,
    req: &DecisionRequest,
    ui: &Ui,
    cancel: watch::Receiver<bool>,
) -> Result<Outcome, ExecError> {
    // Live when first read, or now (resumed at a terminal meanwhile): a live run that already
    // ended the run on reading the decision is reported as it ended, not resumed.
    let now = state.load_run(&record.id).await.ok().flatten();
    let live = match now {
        Some(now) if super::decide_live::is_live(&now) => Some(now),
        _ if super::decide_live::is_live(record) => Some(record.clone()),
        _ => None,
    };
    if let Some(live) = live {
        let ended = super::decide_live::wait_for_end(&state, &live, ui, cancel.clone()).await;
        if let Some(outcome) = ended.transpose() {
            state.close().await;
            return outcome;
        }
    }
    state.close().await;
    let resume_req = ResumeRequest {
        run_id: record.id.clone(),
        target: req.target.clone(),
        state: req.state.clone(),
        confirm: req.confirm.clone(),
        ..Default::default()
    };
    resume(project, resume_req, ui, cancel).await
}

/// The approval gate a waiting run waits at (its last `run_waiting` event says which), or a
/// live run at a terminal (`decide_live::live_gate`), for `runbook cancel`.
async fn waiting_gate(
    project: &Project,
    state: &StateStore,
    run_id: &str,
    ui: &Ui,
) -> Result<String, ExecError> {
    let Some(record) = find_run(state, run_id, ui).await else {
        return Err(ExecError::Invalid);
    };
    if super::decide_live::is_live(&record) {
        return super::decide_live::live_gate(project, state, &record, ui).await;
    }
    if record.status != RunStatus::WaitingApproval {
        ui.error(
            &format!(
                "run {} is {}; only a run waiting at an approval gate can be cancelled",
                record.id,
                record.status.as_str()
            ),
            Some("an interrupted run is continued with `runbook resume RUN`"),
        );
        return Err(ExecError::Invalid);
    }
    let events = state.load_events(&record.id).await.unwrap_or_default();
    events
        .iter()
        .rev()
        .find(|(_, _, kind, _, _)| kind == crate::run::EventKind::RunWaiting.as_str())
        .and_then(|(_, _, _, _, d)| d.get("gate").and_then(|g| g.as_str()).map(str::to_owned))
        .ok_or_else(|| {
            ui.error(
                &format!("run {} does not say which gate it waits at", record.id),
                None,
            );
            ExecError::Invalid
        })
}

/// Approving binds to the plan: the files the run may apply must be as they were when it
/// started (approving now would approve other SQL), and a database named with `--target` must be
/// the one it started on (resume checks the one it acts on whatever is named here).
async fn check_still_the_same(
    project: &Project,
    record: &RunRecord,
    started: Option<&serde_json::Value>,
    req: &DecisionRequest,
    ui: &Ui,
) -> Result<(), ExecError> {
    // Approvals bind to the plan, files included: approving now would approve other SQL.
    let now = project.input_digests();
    let changes = inputs::changed_since_start(started, &now);
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
        check_same_target(started, record, target.as_ref(), ui).await?;
    }
    Ok(())
}

/// The waiting run, the approval gate the request names (the emergency gate of an emergency
/// run included) and the run's events; the run's playbook must be unchanged, or the
/// decision would be about something else.
async fn load(
    project: &Project,
    state: &StateStore,
    req: &DecisionRequest,
    ui: &Ui,
) -> Result<(RunRecord, Step, inputs::Events), ExecError> {
    let Some(record) = find_run(state, &req.run_id, ui).await else {
        return Err(ExecError::Invalid);
    };
    if !matches!(
        record.status,
        RunStatus::WaitingApproval | RunStatus::Running | RunStatus::Interrupted
    ) {
        ui.error(
            &format!(
                "run {} {}; there is nothing to approve",
                record.id,
                record.status.sentence()
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
    let events = inputs::events_of(state, &record, ui).await?;
    let Some(step) = approval_gate(&playbook, inputs::started_in(&events), &req.gate) else {
        ui.error(
            &format!("run {} has no approval gate `{}`", record.id, req.gate),
            Some("`runbook status RUN` lists the steps; approval gates are steps with `gate: { approval: ... }`"),
        );
        return Err(ExecError::Invalid);
    };
    Ok((record, step, events))
}

/// Who decides, and the key that signs where the environment requires signed approvals: there
/// the key says who (a different `--actor` is refused, RUNBOOK_ACTOR is ignored), elsewhere
/// `--actor`, RUNBOOK_ACTOR or the OS user.
fn identify(
    project: &Project,
    record: &RunRecord,
    protections: &Protections,
    req: &DecisionRequest,
    ui: &Ui,
) -> Result<(String, Option<SigningKey>), ExecError> {
    if !protections.signed_approvals {
        return Ok((req.actor.clone().unwrap_or_else(run::operator), None));
    }
    let signers = Signers::load(&project.root, project.config_def());
    let key = signing::approver_key(
        &record.env,
        &signers,
        req.key.as_deref(),
        req.actor.as_deref(),
    )
    .map_err(|e| {
        ui.error(&e.message, Some(&e.hint));
        ExecError::Refused
    })?;
    let actor = key.signer.principal().to_owned();
    if let Ok(named) = std::env::var("RUNBOOK_ACTOR")
        && !same_person(&named, &actor)
    {
        ui.note(&format!(
            "RUNBOOK_ACTOR={named} is ignored: in environment `{}` the signing key says who approves, and it is listed for {actor}",
            record.env
        ));
    }
    Ok((actor, Some(key)))
}

/// Who decides: the name (for a signed decision, the approver the key is listed for), the
/// signing key's fingerprint, and what the run's audit chain says of its operator.
struct Who<'a> {
    actor: &'a str,
    fingerprint: Option<&'a str>,
    facts: &'a crate::audit::ChainFacts,
}

/// The operator may decide on their own run only where the environment allows self-approval
/// (known by name, by the principal of the key they started it with, and by that key), and a
/// gate with a list of approvers takes only them.
fn check_actor(
    record: &RunRecord,
    protections: &Protections,
    gate_id: &str,
    gate: Option<&ApprovalGate>,
    who: &Who<'_>,
    ui: &Ui,
) -> Result<(), ExecError> {
    let actor = who.actor;
    let own_key = who.fingerprint.is_some() && who.fingerprint == who.facts.operator_key.as_deref();
    let own_name = same_person(actor, &record.operator)
        || who
            .facts
            .operator_principal
            .as_deref()
            .is_some_and(|p| same_person(actor, p));
    if !protections.self_approval && (own_key || own_name) {
        let by = if own_key && !own_name {
            format!(
                "the key {} started run {}",
                who.fingerprint.unwrap_or_default(),
                record.id
            )
        } else {
            format!("{actor} started run {}", record.id)
        };
        ui.error(
            &format!("{by} and cannot approve it in environment `{}`", record.env),
            Some(&format!("another person approves (self-approval is allowed only where the environment says `self_approval: true`); to end the run instead, `runbook cancel {} --reason TEXT` (its rollback runs)", record.id)),
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
    let head = super::resume::audit_head(project, state, record, ui).await?;
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
    journal.approval(state, approval).await?;
    // This process ends here: its record is made durable in the chain too.
    journal.sync(state).await;
    Ok(())
}

/// The environment's variables, for messages the run has not rendered yet.
fn env_vars(project: &Project, env: &str) -> serde_json::Value {
    project
        .config_def()
        .and_then(|c| c.environments.get(env))
        .map_or(json!({}), |e| json!(e.vars))
}

/// Shows what the decision is about before anything is recorded; at a terminal, asks (unless
/// `--yes`). Declining records nothing, and so do Ctrl-C and a terminal that gives no answer.
async fn confirm_decision(
    seen: &Seen<'_>,
    req: &DecisionRequest,
    gate: Option<&ApprovalGate>,
    ui: &Ui,
    cancel: watch::Receiver<bool>,
) -> Result<(), ExecError> {
    let raw = gate.map(|a| a.message.as_str()).unwrap_or_default();
    let (verb, what) = match (req.approve, req.cancel) {
        (true, _) => ("Approving", "approval"),
        (false, true) => ("Cancelling at", "cancellation"),
        (false, false) => ("Rejecting", "rejection"),
    };
    ui.note(seen.render(&req.gate, raw, verb).trim_end());
    if req.yes || !ui.can_prompt() {
        return Ok(());
    }
    let question = format!("Record this {what}? [y/N] ");
    let Some(answer) = ui.prompt(&question, &cancel).await else {
        ui.error(
            &format!("nothing was recorded: interrupted before the {what} was confirmed"),
            None,
        );
        return Err(ExecError::Interrupted);
    };
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
    if req.cancel {
        ui.note(&format!(
            "cancelled run {} at gate `{}` as {actor}; its rollback runs now",
            record.id, req.gate
        ));
        return;
    }
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
