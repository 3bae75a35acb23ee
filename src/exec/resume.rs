//! `runbook resume RUN`: continues a run from its records. The run must be resumable and its
//! playbook unchanged; a step that was in flight when the run stopped needs the operator's
//! word (`--retry-step` or `--skip-step`); approvals bind to the plan rebuilt from the run's
//! variables and the ones given again.

use super::children::stop_left_running;
use super::emergency::{self, Emergency};
use super::engine::Engine;
use super::inputs;
use super::journal::Journal;
use super::protections::Effective;
use super::refusal::Attempt;
use super::same_target::check_same_target;
use super::session::{
    Guard, Session, find_run, open_state, redactor_for, release_lock, take_lock, target_spec,
};
use super::windows;
use super::{ExecError, Outcome, ResumeRequest};
use crate::audit::Head;
use crate::db::TargetSpec;
use crate::plan::{self, ParamValue, Plan};
use crate::project::{Playbook, Project};
use crate::redact::Redactor;
use crate::run::{self, Event, EventKind, RunRecord, StepRecord, StepStatus};
use crate::state::StateStore;
use crate::ui::Ui;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// `runbook resume RUN`. Only what names the target is read before its lock is taken; the
/// run's records are read again under the lock, so of two resumes started together the second
/// finds what the first did (a finished run, or steps already done).
pub async fn resume(
    project: &Project,
    req: ResumeRequest,
    ui: &Ui,
    cancel: watch::Receiver<bool>,
) -> Result<Outcome, ExecError> {
    let config = project.config_def();
    let state = open_state(project, req.state.as_deref(), ui).await?;
    let Some(found) = find_run(&state, &req.run_id, ui).await else {
        return Err(ExecError::Invalid);
    };
    // A finished run stays finished: refused without waiting for the lock.
    check_unfinished(&found, None, ui)?;
    let target =
        target_spec(&project.root, config, &found.env, req.target.as_deref()).map_err(|e| {
            ui.error(&e, None);
            ExecError::Invalid
        })?;
    // Until the parameters are resolved, the lock's messages hide the target's password.
    let redactor = redactor_for(config, &BTreeMap::new(), target.as_ref());
    let lock = take_lock(
        target.as_ref(),
        (&found.id, &run::operator()),
        req.lock_wait,
        (ui, &redactor),
        None,
        &cancel,
    )
    .await?;
    let ready = match under_lock(project, &state, &found, &req, target.as_ref(), ui).await {
        Ok(r) => r,
        Err(e) => {
            release_lock(lock).await;
            return Err(e);
        }
    };
    let Ready {
        record,
        playbook,
        plan,
        journal,
        redactor,
        steps,
        stopped,
        guard,
    } = ready;
    let session = Session::new(
        state,
        target,
        redactor,
        journal,
        lock,
        req.confirm.clone(),
        guard,
    );
    let mut engine = Engine::new(project, playbook, plan, record, session, ui, cancel);
    engine.key = req.key.clone();
    take_in(&mut engine, &steps, &req, &stopped).await?;
    engine.progress.note(&format!(
        "resuming run {}: {} on {}",
        engine.run.id, engine.run.playbook, engine.run.env
    ));
    engine.run_to_end().await
}

/// What resume continues from, read and checked with the target's lock held.
struct Ready<'a> {
    record: RunRecord,
    playbook: Arc<Playbook>,
    plan: Plan,
    journal: Journal<'a>,
    redactor: Redactor,
    steps: Vec<StepRecord>,
    stopped: Vec<String>,
    guard: Guard,
}

/// With the lock held: the run and its steps as now recorded (`found` is the run as read
/// before the lock), the operator's word on steps in flight, the processes a crashed attempt
/// left running stopped, the plan and the audit chain.
async fn under_lock<'a>(
    project: &Project,
    state: &StateStore,
    found: &RunRecord,
    req: &ResumeRequest,
    target: Option<&TargetSpec>,
    ui: &'a Ui,
) -> Result<Ready<'a>, ExecError> {
    let (record, playbook) = load(project, state, found, ui).await?;
    // The database now named (by --target or the environment's variable) must be the one the
    // run started on.
    let started = inputs::started_data(state, &record, ui).await?;
    let identity = check_same_target(started.as_ref(), &record, target, ui).await?;
    let mut vars = record.vars.clone();
    vars.extend(req.vars.iter().cloned());
    let params = resolve_params(&playbook, &vars, ui)?;
    let redactor = redactor_for(project.config_def(), &params, target);
    let steps = state.load_steps(&record.id).await.map_err(|e| {
        ui.error(&e.to_string(), None);
        ExecError::Internal
    })?;
    check_in_flight(&record, &steps, req, ui)?;
    let head = audit_head(project, state, &record, ui).await?;
    // Nothing of the crashed attempt may run beside the retried step.
    let stopped = stop_left_running(&project.root, &record, ui).await?;
    let prepared = Prepared {
        project,
        playbook: &playbook,
        record: &record,
        target,
        identity: identity.as_deref(),
        head: head.as_ref(),
        redactor: &redactor,
        started: started.as_ref(),
        ui,
    };
    let (plan, journal, guard) = prepared.plan_and_journal(req, &vars, params).await?;
    // Approvals bind to the files too: a change is named, and refused past a passed gate.
    inputs::check_on_resume(started.as_ref(), &record, &plan, &steps, ui)?;
    Ok(Ready {
        record,
        playbook,
        plan,
        journal,
        redactor,
        steps,
        stopped,
        guard,
    })
}

/// The audit chain head the state store recorded for the run, the chain first brought up to it
/// from the store (`restore_chain`).
pub(super) async fn audit_head(
    project: &Project,
    state: &StateStore,
    record: &RunRecord,
    ui: &Ui,
) -> Result<Option<Head>, ExecError> {
    let failed = |e: &dyn std::fmt::Display| {
        ui.error(&e.to_string(), None);
        ExecError::Internal
    };
    let head = state.audit_head(&record.id).await.map_err(|e| failed(&e))?;
    if let Some(head) = &head {
        restore_chain(project, state, record, head, ui)
            .await
            .map_err(|e| failed(&e))?;
    }
    Ok(head)
}

/// Writes back the records a system crash took from the run's audit chain, from the lines the
/// state store committed (each durably, before the action its record announced), so the chain
/// reaches the recorded `head` again before it is opened.
async fn restore_chain(
    project: &Project,
    state: &StateStore,
    record: &RunRecord,
    head: &Head,
    ui: &Ui,
) -> Result<(), String> {
    let dir = super::journal::audit_dir(&project.root, project.config_def());
    let have = crate::audit::complete_records(&dir, &record.id).map_err(|e| e.to_string())?;
    // Records the chain was fsynced through are not lost by a crash: fewer means it was cut,
    // and opening it refuses it as such.
    let synced = state
        .audit_synced(&record.id)
        .await
        .map_err(|e| e.to_string())?;
    if have >= head.seq || have < synced {
        return Ok(());
    }
    let lines = state
        .audit_lines(&record.id, have)
        .await
        .map_err(|e| e.to_string())?;
    let back =
        crate::audit::write_back(&dir, &record.id, have, &lines).map_err(|e| e.to_string())?;
    if back > 0 {
        ui.note(&format!(
            "the audit chain of run {} lacked {} that the state store holds (a system crash before they reached the disk): written back",
            record.id,
            crate::fmt::plural(back as i64, "record", "records")
        ));
    }
    Ok(())
}

/// The run as recorded now and its playbook, which must still validate and be unchanged.
async fn load(
    project: &Project,
    state: &StateStore,
    found: &RunRecord,
    ui: &Ui,
) -> Result<(RunRecord, Arc<Playbook>), ExecError> {
    let record = match state.load_run(&found.id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            ui.error(
                &format!("run {} is gone from the state store", found.id),
                Some("`runbook runs` lists recent runs"),
            );
            return Err(ExecError::Invalid);
        }
        Err(e) => {
            ui.error(&e.to_string(), None);
            return Err(ExecError::Internal);
        }
    };
    // Checked under the lock: a live run on the same target holds it, so this refuses a run
    // without a target, or resumed against another one, while its process lives.
    if record.crashed() == Some(false) {
        ui.error(
            &format!(
                "run {} is still running (process {} on {})",
                record.id, record.pid, record.host
            ),
            Some("wait for it to finish, or press Ctrl-C in its terminal first"),
        );
        return Err(ExecError::Locked);
    }
    check_unfinished(&record, Some(found), ui)?;
    let playbook = match project.load_playbook(&PathBuf::from(&record.file)) {
        Ok(p) => p,
        Err(diags) => {
            ui.diagnostics(&diags);
            ui.error(
                &format!(
                    "the playbook of run {} no longer validates; nothing ran",
                    record.id
                ),
                None,
            );
            return Err(ExecError::Invalid);
        }
    };
    if playbook.content_hash() != record.content_hash {
        ui.error(
            &format!("the playbook `{}` changed since run {} started; resume refuses to mix two versions", record.playbook, record.id),
            Some("restore the playbook as it was, or start a new run"),
        );
        return Err(ExecError::Invalid);
    }
    Ok((record, playbook))
}

/// A run can be resumed unless it finished. `before` is the run as read before the lock was
/// taken: a run that finished meanwhile was finished by another resume, and this one says so.
fn check_unfinished(
    record: &RunRecord,
    before: Option<&RunRecord>,
    ui: &Ui,
) -> Result<(), ExecError> {
    if record.status.resumable() {
        return Ok(());
    }
    if before.is_some_and(|b| b.status.resumable()) {
        ui.error(
            &format!(
                "run {} finished ({}) while this resume waited for the lock; nothing ran",
                record.id,
                record.status.as_str()
            ),
            Some(&format!("`runbook status {}` shows what it did", record.id)),
        );
        return Err(ExecError::Invalid);
    }
    ui.error(
        &format!(
            "run {} {}; only running, interrupted or waiting runs can be resumed",
            record.id,
            record.status.sentence()
        ),
        Some("start a new run with `runbook run`"),
    );
    Err(ExecError::Invalid)
}

/// The run's parameters from its stored variables and the ones given again (secrets are not
/// stored, so they must be).
fn resolve_params(
    playbook: &Playbook,
    vars: &[(String, String)],
    ui: &Ui,
) -> Result<BTreeMap<String, ParamValue>, ExecError> {
    let lookup = |k: &str| std::env::var(k).ok();
    plan::resolve_params(&playbook.def, vars, &lookup).map_err(|diags| {
        for d in &diags {
            ui.error(&d.message, d.hint.as_deref());
        }
        ui.error("resume needs the same parameters as the run; secrets given with --var must be given again", None);
        ExecError::Invalid
    })
}

/// A step that started and never finished has an unknown outcome: a person decides, and may
/// decide only about such steps.
fn check_in_flight(
    record: &RunRecord,
    steps: &[StepRecord],
    req: &ResumeRequest,
    ui: &Ui,
) -> Result<(), ExecError> {
    let in_flight: Vec<&String> = steps
        .iter()
        .filter(|s| s.status == StepStatus::Running)
        .map(|s| &s.step)
        .collect();
    let undecided: Vec<&String> = in_flight
        .iter()
        .copied()
        .filter(|s| !req.retry_steps.contains(s) && !req.skip_steps.contains(s))
        .collect();
    if !undecided.is_empty() {
        let list = undecided
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        ui.error(
            &format!("step {list} of run {} was in flight when the run stopped; its outcome is unknown", record.id),
            Some(&format!(
                "check the target, then resume with --retry-step {0} to run it again or --skip-step {0} if it took effect",
                undecided[0]
            )),
        );
        return Err(ExecError::Invalid);
    }
    for s in req.retry_steps.iter().chain(&req.skip_steps) {
        if !in_flight.contains(&s) {
            ui.error(
                &format!("step `{s}` was not in flight in run {}", record.id),
                Some("--retry-step and --skip-step name steps whose outcome is unknown; `runbook status RUN` lists them"),
            );
            return Err(ExecError::Invalid);
        }
    }
    Ok(())
}

/// What the checks after taking the lock need.
struct Prepared<'p, 'a> {
    project: &'p Project,
    playbook: &'p Playbook,
    record: &'p RunRecord,
    target: Option<&'p TargetSpec>,
    /// The database the run started on: the rebuilt plan is bound to it, as the first was.
    identity: Option<&'p str>,
    /// The audit chain head the state store recorded: the chain must reach it.
    head: Option<&'p Head>,
    redactor: &'p Redactor,
    /// The run's `run_started` data: its protections and whether it is an emergency.
    started: Option<&'p Json>,
    ui: &'a Ui,
}

impl<'a> Prepared<'_, 'a> {
    /// With the lock held: the rules the run started under (read back, never decided again
    /// from today's `--env` or config), the maintenance windows (an emergency run continues
    /// outside them), the plan (approvals bind to it: other variables on resume give another
    /// plan), and the run's audit chain, which must be intact.
    async fn plan_and_journal(
        &self,
        req: &ResumeRequest,
        vars: &[(String, String)],
        params: BTreeMap<String, ParamValue>,
    ) -> Result<(Plan, Journal<'a>, Guard), ExecError> {
        let (config, env, ui) = (self.project.config_def(), &self.record.env, self.ui);
        let eff = Effective::recorded(self.started, config, env);
        let emergency = Emergency::recorded(self.started);
        let now = chrono::Utc::now();
        let ids = (self.record.id.as_str(), env.as_str());
        // The windows recorded at the start, and those the config gives that environment now:
        // a freeze declared after a run started holds it too.
        let today = Effective::own(config, &eff.source);
        let admitted = [&eff, &today].into_iter().try_for_each(|e| {
            windows::admit_resume(self.playbook, e, emergency.is_some(), ids, now)
        });
        if let Err(r) = admitted {
            let attempt = Attempt {
                project: self.project,
                command: format!("resume {}", self.record.id),
                playbook: &self.record.playbook,
                file: &self.record.file,
                env,
                target: self.record.target.clone(),
            };
            return Err(attempt.refuse(r, ui).await);
        }
        let plan_req = plan::PlanRequest {
            env,
            vars,
            target_override: req.target.as_deref(),
            inputs: self.project.input_digests(),
        };
        let mut plan = plan::build_with_params(self.playbook, config, &plan_req, Some(params))
            .map_err(|diags| {
                for d in &diags {
                    ui.error(&d.message, d.hint.as_deref());
                }
                ExecError::Invalid
            })?;
        // Bound as at the start: to the database and to the rules recorded then.
        plan.protections = eff.rules.clone();
        plan.seal(self.identity);
        let file = &self.playbook.source.path;
        let redactor = self.redactor.clone();
        let opened = Journal::open(
            &self.project.root,
            config,
            self.record,
            self.head,
            file,
            (self.target, None),
            redactor,
            ui,
        );
        let journal = opened.await.map_err(|e| {
            ui.error(&self.redactor.redact(&e.to_string()), Some("the audit chain of this run must be intact to continue it; `runbook audit verify RUN` says what is wrong"));
            ExecError::AuditFailed
        })?;
        emergency::bind(&mut plan, emergency.as_ref(), &eff);
        let guard = Guard {
            protections: eff,
            emergency,
        };
        Ok((plan, journal, guard))
    }
}

/// Takes in the recorded outcomes, records the resume (with the processes of the crashed
/// attempt it stopped) and the operator's word on each step that was in flight (a skipped one
/// is recorded as skipped).
async fn take_in(
    engine: &mut Engine<'_>,
    steps: &[StepRecord],
    req: &ResumeRequest,
    stopped: &[String],
) -> Result<(), ExecError> {
    for s in steps.iter().filter(|s| s.status != StepStatus::Running) {
        engine.restore(s.phase, &s.step, s.status, &s.outputs, s.change.clone());
    }
    let mut resumed = json!({
        "operator": run::operator(),
        "host": run::hostname(),
        "pid": std::process::id(),
        "pid_start": run::own_start_time(),
    });
    if !stopped.is_empty() {
        resumed["stopped"] = json!(stopped);
    }
    engine
        .record(Event::run(EventKind::RunResumed, resumed))
        .await?;
    for s in steps.iter().filter(|s| s.status == StepStatus::Running) {
        let skip = req.skip_steps.contains(&s.step);
        let change = engine.in_flight_change(s.phase, &s.step, skip);
        let choice = if skip { "skip" } else { "retry" };
        let ev = Event::step(
            EventKind::ResumeDecision,
            &s.step,
            s.phase,
            json!({"choice": choice, "operator": run::operator()}),
        );
        engine.record(ev).await?;
        if skip {
            let ev = Event::step(
                EventKind::StepSkipped,
                &s.step,
                s.phase,
                json!({"reason": "skipped by the operator on resume", "change": change}),
            );
            engine.record(ev).await?;
            engine.restore(
                s.phase,
                &s.step,
                StepStatus::Skipped,
                &Json::Null,
                Some(change),
            );
        } else {
            // The retry's attempts add to what the interrupted one may have done.
            engine.changes.insert((s.phase, s.step.clone()), change);
        }
    }
    Ok(())
}
