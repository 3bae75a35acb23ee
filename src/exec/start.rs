//! `runbook run`: everything that can refuse a run is checked before the target is locked
//! (the plan, maintenance windows, `--approve`, the target); then the run is recorded as
//! started (audit chain, state store) and the engine runs it.

use super::engine::Engine;
use super::journal::Journal;
use super::same_target::identity_of;
use super::session::{
    Session, check_windows, needs_db, open_state, protections_of, redactor_for, release_lock,
    take_lock, target_spec,
};
use super::signing;
use super::units::find_approval_gate;
use super::{ExecError, Outcome, RunRequest};
use crate::approval::operator_key;
use crate::db::TargetSpec;
use crate::plan::{self, Plan};
use crate::project::{Playbook, Project};
use crate::redact::Redactor;
use crate::run::{self, Approval, Event, EventKind, RunRecord, RunStatus};
use crate::signers::{Signer, Signers};
use crate::state::StateStore;
use crate::ui::Ui;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::watch;

/// `runbook run`.
pub async fn run(
    project: &Project,
    playbook: Arc<Playbook>,
    req: RunRequest,
    ui: &Ui,
    cancel: watch::Receiver<bool>,
) -> Result<Outcome, ExecError> {
    let (plan, target) = check(project, &playbook, &req, ui)?;
    let protections = protections_of(project.config_def(), &req.env);
    let signers = Signers::load(&project.root, project.config_def());
    // `--approve` where approvals must be signed: signed with the operator's listed key, found
    // before anything is locked or recorded.
    let approve_key = if protections.signed_approvals && !req.approve.is_empty() {
        let key = signing::approver_key(&req.env, &signers, req.key.as_deref(), None);
        Some(key.map_err(|e| {
            ui.error(&e.message, Some(&e.hint));
            ExecError::Refused
        })?)
    } else {
        None
    };
    // The operator is known by their listed key when they hold one: their own approval is then
    // told by the key, whatever name it comes under.
    let operator_key = signers
        .as_ref()
        .ok()
        .and_then(|s| operator_key(s, req.key.as_deref()));
    let redactor = redactor_for(project.config_def(), &plan.values, target.as_ref());
    // The redactor is the global one: opening the state store reports through it.
    let state = open_state(project, req.state.as_deref(), ui).await?;
    let operator = run::operator();
    let run_id = run::new_run_id();
    let lock = take_lock(
        target.as_ref(),
        &run_id,
        &operator,
        req.lock_wait,
        ui,
        &redactor,
    )
    .await?;
    // The database this run is bound to: resume and approve continue it on that one only.
    let identity = match identity_of(target.as_ref(), ui).await {
        Ok(i) => i,
        Err(e) => {
            release_lock(lock).await;
            return Err(e);
        }
    };
    let record = new_record(
        project,
        &playbook,
        &req,
        &plan,
        target.as_ref(),
        run_id,
        &operator,
    );
    let started = begin(
        project,
        (&playbook, &plan, identity.as_deref(), operator_key.as_ref()),
        &record,
        &state,
        target.as_ref(),
        &redactor,
        ui,
    );
    let mut journal = match started.await {
        Ok(j) => j,
        Err(e) => {
            release_lock(lock).await;
            return Err(e);
        }
    };
    if let Some((fleet, name)) = &req.fleet {
        let _ = state
            .fleet_target(fleet, name, Some(&record.id), "running", None)
            .await;
    }
    journal.index(&record);
    for gate in &req.approve {
        let comment = "approved by the operator with --approve";
        let mut approval = Approval {
            gate: gate.clone(),
            actor: operator.clone(),
            decision: "approve".to_owned(),
            comment: Some(comment.to_owned()),
            plan_hash: plan.plan_hash.clone(),
            at: run::now_ms(),
            signed: None,
        };
        if let Some(key) = &approve_key {
            let d = signing::Decision {
                run_id: &record.id,
                gate,
                decision: "approve",
                plan_hash: &plan.plan_hash,
                target: identity.as_deref(),
                expiry: signing::expiry_of(None, &protections),
                comment: Some(comment),
            };
            approval.actor = key.signer.principal().to_owned();
            approval.signed = Some(signing::sign(key, &d).map_err(|e| {
                ui.error(&e, None);
                ExecError::Refused
            })?);
        }
        journal.approval(&state, &approval).await?;
    }
    let session = Session::new(state, target, redactor, journal, lock, req.confirm.clone());
    let mut engine = Engine::new(project, playbook, plan, record, session, ui, cancel);
    engine.key = req.key.clone();
    engine.progress.note(&format!(
        "run {}: {} on {} ({})",
        engine.run.id, engine.run.playbook, engine.run.env, engine.run.target
    ));
    engine.run_to_end().await
}

/// Everything that can refuse the run before it takes the target: the plan, the maintenance
/// windows, `--approve`, and the target. Gives the plan and the target.
fn check(
    project: &Project,
    playbook: &Playbook,
    req: &RunRequest,
    ui: &Ui,
) -> Result<(Plan, Option<TargetSpec>), ExecError> {
    let config = project.config_def();
    let plan_req = plan::PlanRequest {
        env: &req.env,
        vars: &req.vars,
        target_override: req.target.as_deref(),
        inputs: project.input_digests(),
    };
    let plan = plan::build(playbook, config, &plan_req).map_err(|diags| {
        for d in &diags {
            ui.error(&d.message, d.hint.as_deref());
        }
        ExecError::Invalid
    })?;
    let protections = protections_of(config, &req.env);
    check_windows(&protections, &req.env, ui)?;
    if !req.approve.is_empty() {
        if !protections.self_approval {
            ui.error(
                &format!("`--approve` is refused in environment `{}`: approvals there must come from someone other than the operator", req.env),
                Some("start the run without --approve; it stops at the gate, and an approver runs `runbook approve RUN GATE`"),
            );
            return Err(ExecError::Invalid);
        }
        if let Some(gate) = req
            .approve
            .iter()
            .find(|g| find_approval_gate(playbook, g).is_none())
        {
            ui.error(
                &format!("`{}` has no approval gate `{gate}`", playbook.def.name),
                Some("name the id of a step with `gate: { approval: ... }`"),
            );
            return Err(ExecError::Invalid);
        }
    }
    let target =
        target_spec(&project.root, config, &req.env, req.target.as_deref()).map_err(|e| {
            ui.error(
                &e,
                Some("set the variable, or pass --target postgres://... or --target sqlite:FILE"),
            );
            ExecError::Invalid
        })?;
    if target.is_none() && needs_db(playbook) {
        ui.error(
            &format!("`{}` has SQL steps but environment `{}` names no database", playbook.def.name, req.env),
            Some("pass --target postgres://... or --target sqlite:FILE, or define the environment in runbook.yaml"),
        );
        return Err(ExecError::Invalid);
    }
    Ok((plan, target))
}

/// The new run's record. Secrets given with --var are not stored: resume asks for them again.
fn new_record(
    project: &Project,
    playbook: &Playbook,
    req: &RunRequest,
    plan: &Plan,
    target: Option<&TargetSpec>,
    run_id: String,
    operator: &str,
) -> RunRecord {
    let stored_vars: Vec<(String, String)> = req
        .vars
        .iter()
        .filter(|(k, _)| !playbook.def.params.get(k).is_some_and(|p| p.secret))
        .cloned()
        .collect();
    RunRecord {
        id: run_id,
        playbook: playbook.def.name.clone(),
        file: playbook.source.path.display().to_string(),
        env: req.env.clone(),
        target: target.map_or_else(|| "(none)".to_owned(), TargetSpec::describe),
        operator: operator.to_owned(),
        host: run::hostname(),
        pid: i64::from(std::process::id()),
        content_hash: playbook.content_hash(),
        plan_hash: plan.plan_hash.clone(),
        migrations_hash: project.migrations_hash(),
        params: json!(plan.params),
        vars: stored_vars,
        tags: req.tags.clone(),
        skip_tags: req.skip_tags.clone(),
        status: RunStatus::Running,
        started_at: run::now_ms(),
        finished_at: None,
        error: None,
    }
}

/// Opens the run's audit chain and records the run as started in it and in the state store,
/// with the digests of the files the plan may apply (resume names what changed since).
async fn begin<'a>(
    project: &Project,
    (playbook, plan, identity, operator_key): (&Playbook, &Plan, Option<&str>, Option<&Signer>),
    record: &RunRecord,
    state: &StateStore,
    target: Option<&TargetSpec>,
    redactor: &Redactor,
    ui: &'a Ui,
) -> Result<Journal<'a>, ExecError> {
    let config = project.config_def();
    let file = &playbook.source.path;
    let opened = Journal::open(
        &project.root,
        config,
        record,
        file,
        target,
        redactor.clone(),
        ui,
    );
    let mut journal = opened.await.map_err(|e| {
        ui.error(
            &redactor.redact(&e.to_string()),
            Some("fix the audit folder or sink; nothing ran"),
        );
        ExecError::Internal
    })?;
    let started = Event::run(
        EventKind::RunStarted,
        json!({
            "playbook": record.playbook, "env": record.env, "target": record.target, "operator": record.operator,
            "host": record.host, "content_hash": record.content_hash, "plan_hash": record.plan_hash,
            "params": record.params, "inputs": plan.inputs, "target_identity": identity, "version": env!("CARGO_PKG_VERSION"),
            "operator_key": operator_key.map(|k| json!({"principal": k.principal(), "fingerprint": k.fingerprint})),
        }),
    );
    let key = target.map_or_else(|| "(none)".to_owned(), TargetSpec::key);
    journal.start(state, record, &key, started).await?;
    Ok(journal)
}
