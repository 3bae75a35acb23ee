//! The `Engine`: one run in progress. It holds the run's record, its session (state store,
//! target, redactor, journal, lock), the flattened units and the run context, and records
//! every transition through the journal before acting on it. The order units run in is in
//! `execute.rs`, one step in `step.rs`, gates in `gates.rs`.

use super::children::Recording;
use super::context::RunContext;
use super::emergency::GATE;
use super::journal::Journal;
use super::session::{Session, release_lock};
use super::step::UnitError;
use super::units::{Layout, Unit};
use super::{ExecError, Outcome, ProjectDirs};
use crate::config::Protections;
use crate::db::{Db, TargetSpec};
use crate::lock::TargetLock;
use crate::plan::Plan;
use crate::project::{Playbook, Project};
use crate::redact::Redactor;
use crate::run::{Approval, Change, Event, EventKind, Phase, RunRecord, StepStatus};
use crate::signers::Signers;
use crate::state::StateStore;
use crate::ui::{Progress, Ui};
use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Where a step was when Ctrl-C stopped the run (what a resume then does with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Acting: its outcome is unknown (resume needs `--retry-step` or `--skip-step`).
    InFlight,
    /// At a gate that decided nothing (resume asks again).
    AtGate,
    /// Waiting to try again after a failed attempt (resume runs it again).
    BeforeRetry,
}

pub(super) struct Engine<'a> {
    pub root: PathBuf,
    pub dirs: ProjectDirs,
    pub ui: &'a Ui,
    pub state: StateStore,
    pub redactor: Redactor,
    pub run: RunRecord,
    pub target: Option<TargetSpec>,
    pub db: Option<Db>,
    pub ctx: RunContext,
    pub units: Layout,
    /// Recorded outcome of each (phase, qid), from this run or an earlier attempt of it
    /// (written through `set_done` only).
    pub done: BTreeMap<(Phase, String), StepStatus>,
    /// The orders of the main units that are `approval` or `confirm` gates and passed: the
    /// first says which later units a human gate came before (`human_gate_passed`).
    gates_passed: BTreeSet<i64>,
    /// Whether each unit that ran changed the target (`exec/change.rs`), recorded with it.
    pub changes: BTreeMap<(Phase, String), Change>,
    pub cancel: watch::Receiver<bool>,
    pub progress: Progress,
    pub protections: Protections,
    /// The hash of the plan this run executes; approvals count only for it.
    pub plan_hash: String,
    /// The typed confirmation given with `--confirm`, for `confirm` gates.
    pub confirm: Option<String>,
    /// The project's listed approvers (or why they cannot be read), for signed approvals.
    pub signers: Result<Signers, String>,
    /// The operator's private key file (`--key`), to sign an answer at the terminal.
    pub key: Option<PathBuf>,
    failpoint: Option<String>,
    journal: Journal<'a>,
    /// Records the run's child processes while it runs, for a resume after a crash. Declared
    /// before the lock, so an engine dropped without `shutdown` lets it go first too.
    children: Option<Recording>,
    lock: Option<TargetLock>,
}

impl<'a> Engine<'a> {
    /// An engine for the plan of `playbook`: the plan's parameter values are the top scope's
    /// params, its hash is what approvals bind to.
    pub fn new(
        project: &Project,
        playbook: Arc<Playbook>,
        plan: Plan,
        run: RunRecord,
        session: Session<'a>,
        ui: &'a Ui,
        cancel: watch::Receiver<bool>,
    ) -> Self {
        let env = project
            .config_def()
            .and_then(|c| c.environments.get(&run.env));
        let env_ctx = json!({
            "name": run.env,
            "target": run.target,
            "protected": plan.protected,
        });
        let vars_ctx = json!(env.map(|e| e.vars.clone()).unwrap_or_default());
        let root_params: Map<String, Json> =
            plan.values.into_iter().map(|(k, v)| (k, v.value)).collect();
        let (mut units, scopes) = Layout::build(&playbook, root_params);
        if let Some(e) = &session.guard.emergency {
            units.prepend(Unit {
                qid: GATE.to_owned(),
                local: GATE.to_owned(),
                scope: 0,
                step: e.step(),
                phase: Phase::Main,
                ord: 0,
            });
        }
        let children = Recording::start(&project.root, &run.id);
        Engine {
            root: project.root.clone(),
            dirs: ProjectDirs {
                migrations: project.migrations_dir(),
                seeds: project.seeds_dir(),
                env: run.env.clone(),
                protected: plan.protected,
            },
            ui,
            state: session.state,
            redactor: session.redactor,
            ctx: RunContext::new(env_ctx, vars_ctx, &run, scopes),
            run,
            target: session.target,
            db: None,
            units,
            done: BTreeMap::new(),
            gates_passed: BTreeSet::new(),
            changes: BTreeMap::new(),
            cancel,
            progress: Progress::new(ui),
            // Decided at the run's start and recorded (`exec/protections.rs`): the rules of the
            // database's environment, which may not be the one `--env` named.
            protections: session.guard.protections.rules,
            plan_hash: plan.plan_hash,
            confirm: session.confirm,
            signers: Signers::load(&project.root, project.config_def()),
            key: None,
            failpoint: std::env::var("RUNBOOK_FAILPOINT").ok(),
            journal: session.journal,
            lock: session.lock,
            children,
        }
    }

    /// Runs the playbook from wherever the records say it is, then closes the connections,
    /// signs the audit chain and releases the target lock.
    pub async fn run_to_end(mut self) -> Result<Outcome, ExecError> {
        let result = self.execute().await;
        self.shutdown().await;
        result
    }

    /// After the run: its connection closed, its records made durable, its chain signed and
    /// its record of children let go (a resume that takes the lock next writes both), then the
    /// target's lock let go while the store closes.
    async fn shutdown(&mut self) {
        if let Some(db) = self.db.take() {
            db.close().await;
        }
        self.journal.sync(&self.state).await;
        self.journal.sign();
        self.children.take();
        tokio::join!(release_lock(self.lock.take()), self.state.close());
    }

    /// Takes in a step's recorded outcome and what it changed (resume). A step that ran with
    /// no record of what it changed (an older runbook's) changed the target.
    pub fn restore(
        &mut self,
        phase: Phase,
        qid: &str,
        status: StepStatus,
        outputs: &Json,
        change: Option<Change>,
    ) {
        let key = (phase, qid.to_owned());
        let change = match status {
            StepStatus::Succeeded | StepStatus::Failed => Some(change.unwrap_or_else(|| {
                Change::changed("has no record of what it changed (an older runbook ran it)")
            })),
            _ => change,
        };
        if let Some(change) = change {
            self.changes.insert(key, change);
        }
        self.set_done(phase, qid, status);
        if let Some(u) = self.units.find(phase, qid) {
            let outputs = if outputs.is_object() {
                outputs.clone()
            } else {
                json!({})
            };
            self.ctx
                .set_step(u.scope, &u.local, outputs, status.as_str());
        }
    }

    /// Records an event of this run (audit chain, then state store).
    pub async fn record(&mut self, ev: Event) -> Result<(), ExecError> {
        self.journal.record(&self.state, ev).await
    }

    /// Puts on the disk the step verdicts committed without an fsync (the journal's `settle`):
    /// before the run waits for anything but its next step.
    pub async fn settle(&self) -> Result<(), ExecError> {
        self.journal.settle(&self.state).await
    }

    /// What the run's audit chain records of its database, operator key and approvals.
    pub fn chain_facts(&self) -> Result<crate::audit::ChainFacts, String> {
        self.journal.chain_facts()
    }

    /// Records an approval or rejection of a gate of this run.
    pub async fn record_approval(&mut self, approval: &Approval) -> Result<(), ExecError> {
        self.journal.approval(&self.state, approval).await
    }

    /// A test hook: at `RUNBOOK_FAILPOINT=point:qid`, die the way a power cut or `kill -9`
    /// would, with no cleanup.
    pub fn crash_if(&self, point: &str, qid: &str) {
        if self.failpoint.as_deref() == Some(&format!("{point}:{qid}")) {
            // SAFETY: sending a signal to ourselves.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }

    /// Whether an `approval` or `confirm` gate of the main steps passed before `unit` (for a
    /// compensation, `on_failure` or `finally` step: anywhere in the main steps). Main units'
    /// orders rise in the order they run (an emergency run's gate, put first, has order 0).
    pub fn human_gate_passed(&self, unit: &Unit) -> bool {
        self.gates_passed
            .first()
            .is_some_and(|&first| unit.phase != Phase::Main || first < unit.ord)
    }

    /// Records the outcome of a unit, and whether it is a human gate of the main steps that
    /// passed.
    pub fn set_done(&mut self, phase: Phase, qid: &str, status: StepStatus) {
        // A step whose failed attempt had another due is not decided: it runs again, in every
        // phase (main, rollback, `on_failure`, `finally`), as if it had no record.
        if status == StepStatus::Pending {
            self.done.remove(&(phase, qid.to_owned()));
            return;
        }
        if phase == Phase::Main
            && let Some(u) = self.units.find(phase, qid)
            && u.step
                .gate
                .as_ref()
                .is_some_and(|g| g.approval.is_some() || g.confirm.is_some())
        {
            if status == StepStatus::Succeeded {
                self.gates_passed.insert(u.ord);
            } else {
                self.gates_passed.remove(&u.ord);
            }
        }
        self.done.insert((phase, qid.to_owned()), status);
    }

    /// Whether `--tags`/`--skip-tags` select a unit.
    pub fn selected(&self, unit: &Unit) -> bool {
        let tags = &unit.step.tags;
        if !self.run.tags.is_empty() && !tags.iter().any(|t| self.run.tags.contains(t)) {
            return false;
        }
        !tags.iter().any(|t| self.run.skip_tags.contains(t))
    }

    /// Records a unit as skipped, and why.
    pub async fn skip(&mut self, unit: &Unit, reason: &str) -> Result<(), ExecError> {
        self.record(Event::step(
            EventKind::StepSkipped,
            &unit.qid,
            unit.phase,
            json!({"ord": unit.ord, "reason": reason}),
        ))
        .await?;
        self.set_done(unit.phase, &unit.qid, StepStatus::Skipped);
        self.ctx
            .set_step(unit.scope, &unit.local, json!({}), "skipped");
        let action = unit.step.action().map_or("?", |a| a.key());
        self.progress
            .finish(&unit.qid, action, "skipped", Duration::ZERO, reason);
        Ok(())
    }

    /// Before a step acts: the target's lock is still the run's. One lost (its session
    /// ended) stops the run here, recorded as interrupted with nothing in flight: another run
    /// may hold the target now, and `runbook resume` takes the lock again and goes on.
    pub async fn keep_lock(&mut self, step: &str) -> Result<(), UnitError> {
        let Some(lock) = self.lock.as_mut() else {
            return Ok(());
        };
        let Err(why) = lock.check_held().await else {
            return Ok(());
        };
        let target = self
            .target
            .as_ref()
            .map_or_else(|| "the target".to_owned(), TargetSpec::describe);
        let msg = self.redactor.redact(&format!(
            "lost the run lock on {target} before step {step} ({why}); another run may have taken the target"
        ));
        let _ = self
            .record(Event::run(
                EventKind::RunInterrupted,
                json!({"status": "interrupted", "step": step, "error": msg}),
            ))
            .await;
        let id = &self.run.id;
        self.ui.error(
            &msg,
            Some(&format!(
                "step {step} was not started (not again, if it waited to retry); check the target, then continue with `runbook resume {id}`"
            )),
        );
        Err(UnitError::Fatal(ExecError::Locked))
    }

    /// The run stops during a step on Ctrl-C: recorded as interrupted; `resume` continues it.
    /// A gate records nothing until it decides: resume asks it again. A step that waited to
    /// try again after a failed attempt had nothing in flight: resume runs it again.
    pub async fn interrupted(&mut self, step: &str, stopped: Stopped) -> Outcome {
        let error = match stopped {
            Stopped::BeforeRetry => format!("interrupted while step {step} waited to try again"),
            Stopped::AtGate | Stopped::InFlight => format!("interrupted during step {step}"),
        };
        let _ = self
            .record(Event::run(
                EventKind::RunInterrupted,
                json!({"status": "interrupted", "step": step, "error": error}),
            ))
            .await;
        let id = &self.run.id;
        let summary = match stopped {
            Stopped::AtGate => format!(
                "run {id} interrupted at gate {step}, which decided nothing; continue with `runbook resume {id}` (it asks again)"
            ),
            Stopped::BeforeRetry => format!(
                "run {id} interrupted while step {step} waited to try again after a failed attempt (nothing was in flight); continue with `runbook resume {id}` (it runs {step} again)"
            ),
            // The step was in flight: its outcome is unknown, so resume needs the operator's word.
            Stopped::InFlight => format!(
                "run {id} interrupted during step {step}, whose outcome is unknown; check the target, then continue with `runbook resume {id} --retry-step {step}` to run it again, or `runbook resume {id} --skip-step {step}` if it took effect"
            ),
        };
        self.progress.summary(&summary);
        Outcome::Interrupted {
            step: step.to_owned(),
        }
    }

    /// The run stops at a gate: recorded as waiting, the lock is released at the end, and
    /// `runbook approve` / `resume` continue it (a confirmation gate: `resume --confirm`).
    pub async fn waiting(&mut self, gate: &str, msg: &str, approval: bool) -> Outcome {
        let _ = self
            .record(Event::run(
                EventKind::RunWaiting,
                json!({"gate": gate, "reason": msg}),
            ))
            .await;
        let id = &self.run.id;
        let next = if approval {
            format!(
                "an approver runs `runbook approve {id} {gate}`, then `runbook resume {id}` continues"
            )
        } else {
            format!(
                "the operator continues with `runbook resume {id} --confirm TEXT`, typing what the gate asks for"
            )
        };
        self.progress.summary(&format!(
            "run {id} is waiting at gate {gate}: {msg}\nnothing past the gate ran; {next}"
        ));
        Outcome::Waiting {
            gate: gate.to_owned(),
            reason: msg.to_owned(),
        }
    }
}
