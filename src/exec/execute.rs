//! The order units run in: the main units (entering and leaving includes), then on a failure
//! the compensations of completed units in reverse (skipped, saying why, for a unit with
//! `rollback_when: changed` when nothing after it changed the target), the open includes'
//! `on_failure` and `finally` (innermost first) and the playbook's `on_failure`; always the
//! playbook's `finally`; then the run's verdict.

use super::engine::{Engine, Stopped};
use super::step::UnitError;
use super::units::Unit;
use super::{ExecError, Outcome};
use crate::exit::Exit;
use crate::run::{Event, EventKind, Phase, RunStatus, StepStatus};
use crate::template;
use serde_json::json;

/// Why the engine stops before the run's end: an outcome to give now (interrupted, waiting)
/// or an error (already reported).
enum Halt {
    Stop(Outcome),
    Fatal(ExecError),
}

impl From<ExecError> for Halt {
    fn from(e: ExecError) -> Self {
        Halt::Fatal(e)
    }
}

/// A failed unit: its qualified id and why.
type Failure = (String, String);

/// What the main pass leaves for the rest of the run.
#[derive(Default)]
struct Pass {
    failure: Option<Failure>,
    /// The failure is a gate's refusal.
    refused: bool,
    /// Indexes of the main units that succeeded, in order.
    completed: Vec<usize>,
    /// The includes the run is inside, outermost first.
    open: Vec<usize>,
    /// Units before this index belong to an include whose `when` is false.
    skip_until: usize,
    skip_reason: String,
}

impl Engine<'_> {
    /// Runs the whole playbook from wherever the records say it is.
    pub(super) async fn execute(&mut self) -> Result<Outcome, ExecError> {
        match self.execute_all().await {
            Ok(outcome) | Err(Halt::Stop(outcome)) => Ok(outcome),
            Err(Halt::Fatal(e)) => Err(e),
        }
    }

    async fn execute_all(&mut self) -> Result<Outcome, Halt> {
        let pass = self.main_pass().await?;
        let mut rollback_ok = true;
        let mut finally_ok = true;
        if let Some((step, msg)) = &pass.failure {
            rollback_ok = self.roll_back(step, msg, &pass.completed).await?;
            // The includes the failure happened in, innermost first: their `on_failure`, then
            // their `finally`. A failing `on_failure` step does not change the outcome.
            for &b in pass.open.iter().rev() {
                let (on_failure, finally) = (
                    self.units.blocks[b].on_failure.clone(),
                    self.units.blocks[b].finally.clone(),
                );
                self.run_handlers(&on_failure).await?;
                finally_ok &= self.run_handlers(&finally).await?.is_none();
            }
            let units = self.units.on_failure.clone();
            self.run_handlers(&units).await?;
        }
        let units = self.units.finally.clone();
        finally_ok &= self.run_handlers(&units).await?.is_none();
        self.finish(&pass, rollback_ok, finally_ok).await
    }

    /// Runs the main units in order until one fails (or the run stops).
    async fn main_pass(&mut self) -> Result<Pass, Halt> {
        let mut pass = Pass::default();
        for i in 0..self.units.main.len() {
            if let Err(failure) = self.enter_includes(i, &mut pass) {
                pass.failure = Some(failure);
                break;
            }
            if let Some(failure) = self.main_unit(i, &mut pass).await? {
                pass.failure = Some(failure);
                break;
            }
            if let Some(failure) = self.leave_includes(i, &mut pass.open).await? {
                pass.failure = Some(failure);
                break;
            }
        }
        Ok(pass)
    }

    /// Opens the includes that start at unit `i`, or marks their units skipped when their
    /// `when` is false. Outer includes come later in `blocks`: entering at the same unit, they
    /// open first.
    fn enter_includes(&mut self, i: usize, pass: &mut Pass) -> Result<(), Failure> {
        let entered: Vec<usize> = (0..self.units.blocks.len())
            .rev()
            .filter(|&b| self.units.blocks[b].start == i)
            .collect();
        for b in entered {
            if i < pass.skip_until {
                break;
            }
            match self.include_wanted(b) {
                Ok(true) => pass.open.push(b),
                Ok(false) => {
                    let block = &self.units.blocks[b];
                    pass.skip_until = block.end;
                    pass.skip_reason = format!(
                        "`when: {}` of include {} is false",
                        block.when.as_deref().unwrap_or_default(),
                        block.qid
                    );
                }
                Err(msg) => {
                    let qid = self.units.blocks[b].qid.clone();
                    return Err((qid, format!("cannot evaluate `when`: {msg}")));
                }
            }
        }
        Ok(())
    }

    /// Runs main unit `i` unless its include is skipped, it is recorded already, or tags
    /// deselect it. Gives the failure that ends the main pass, if any.
    async fn main_unit(&mut self, i: usize, pass: &mut Pass) -> Result<Option<Failure>, Halt> {
        let unit = self.units.main[i].clone();
        let key = (Phase::Main, unit.qid.clone());
        if i < pass.skip_until {
            if !self.done.contains_key(&key) {
                self.skip(&unit, &pass.skip_reason).await?;
            }
            return Ok(None);
        }
        match self.done.get(&key) {
            Some(StepStatus::Succeeded) => {
                pass.completed.push(i);
                return Ok(None);
            }
            Some(StepStatus::Skipped) => return Ok(None),
            Some(StepStatus::Failed) if unit.step.continue_on_error => return Ok(None),
            Some(StepStatus::Failed) => {
                return Ok(Some((unit.qid, "failed before the resume".to_owned())));
            }
            _ => {}
        }
        if !self.selected(&unit) {
            self.skip(&unit, "not selected by --tags/--skip-tags")
                .await?;
            return Ok(None);
        }
        match self.run_unit(&unit).await {
            Ok(true) => pass.completed.push(i),
            Ok(false) => {}
            Err(UnitError::Failed(msg)) if unit.step.continue_on_error => {
                self.progress.note(&format!(
                    "step {} failed and continue_on_error is set: {msg}",
                    unit.qid
                ));
            }
            Err(UnitError::Failed(msg)) => return Ok(Some((unit.qid, msg))),
            Err(UnitError::Refused(msg)) => {
                pass.refused = true;
                return Ok(Some((unit.qid, msg)));
            }
            Err(UnitError::Waiting(msg)) => {
                let approval = unit
                    .step
                    .gate
                    .as_ref()
                    .is_some_and(|g| g.approval.is_some());
                return Err(Halt::Stop(self.waiting(&unit.qid, &msg, approval).await));
            }
            Err(e) => return Err(self.halt(&unit, e).await),
        }
        Ok(None)
    }

    /// An include whose last unit was `i`: its `finally` units run now, unless none of its
    /// units ran (all deselected by tags or their own `when`). One that fails fails the run
    /// here, like a failed step.
    async fn leave_includes(
        &mut self,
        i: usize,
        open: &mut Vec<usize>,
    ) -> Result<Option<Failure>, Halt> {
        while let Some(&b) = open.last()
            && self.units.blocks[b].end == i + 1
        {
            open.pop();
            if !self.block_ran(b) {
                continue;
            }
            let units = self.units.blocks[b].finally.clone();
            if let Some(failed) = self.run_handlers(&units).await? {
                return Ok(Some(failed));
            }
        }
        Ok(None)
    }

    /// Runs the compensations of the completed units in reverse order, but records as skipped
    /// those of a step with `rollback_when: changed` when nothing after it changed the target
    /// (saying why); whether all that ran succeeded.
    async fn roll_back(
        &mut self,
        step: &str,
        msg: &str,
        completed: &[usize],
    ) -> Result<bool, Halt> {
        self.record(Event::run(
            EventKind::RollbackStarted,
            json!({"failed_step": step, "error": msg}),
        ))
        .await?;
        // Decided from what ran before the rollback, so a resumed run decides the same way.
        let owners: Vec<(usize, Option<String>)> = completed
            .iter()
            .rev()
            .copied()
            .filter(|&i| !self.units.comps[i].is_empty())
            .map(|i| (i, self.skip_rollback(i, step)))
            .collect();
        let running = owners.iter().filter(|(_, skip)| skip.is_none()).count();
        if running > 0 {
            self.progress.note(&format!(
                "step {step} failed: rolling back {running} completed steps"
            ));
        }
        let mut ok = true;
        for (i, skip) in owners {
            let pending: Vec<Unit> = self.units.comps[i]
                .iter()
                .filter(|c| !self.done.contains_key(&(Phase::Rollback, c.qid.clone())))
                .cloned()
                .collect();
            if let Some(why) = skip {
                if !pending.is_empty() {
                    self.progress.note(&why);
                }
                let reason = format!(
                    "`rollback_when: changed`, and nothing after `{}` changed the database",
                    self.units.main[i].qid
                );
                for comp in &pending {
                    self.skip(comp, &reason).await?;
                }
                continue;
            }
            for comp in pending {
                match self.run_unit(&comp).await {
                    Ok(_) => {}
                    Err(UnitError::Failed(_) | UnitError::Refused(_) | UnitError::Waiting(_)) => {
                        ok = false;
                    }
                    Err(e) => return Err(self.halt(&comp, e).await),
                }
            }
        }
        self.record(Event::run(EventKind::RollbackFinished, json!({"ok": ok})))
            .await?;
        Ok(ok)
    }

    /// Runs the `on_failure` or `finally` units not recorded yet, every one of them even after
    /// one fails, and gives the first failure (a unit with `continue_on_error` does not count;
    /// one that failed before a resume does).
    async fn run_handlers(&mut self, units: &[Unit]) -> Result<Option<Failure>, Halt> {
        let mut first = None;
        for unit in units {
            match self.done.get(&(unit.phase, unit.qid.clone())) {
                Some(StepStatus::Failed) if !unit.step.continue_on_error => {
                    first.get_or_insert((unit.qid.clone(), "failed before the resume".to_owned()));
                    continue;
                }
                Some(_) => continue,
                None => {}
            }
            match self.run_unit(unit).await {
                Ok(_) => {}
                Err(UnitError::Failed(msg) | UnitError::Refused(msg) | UnitError::Waiting(msg)) => {
                    if !unit.step.continue_on_error && first.is_none() {
                        first = Some((unit.qid.clone(), msg));
                    }
                }
                Err(e) => return Err(self.halt(unit, e).await),
            }
        }
        Ok(first)
    }

    /// Stops the run on an interruption (recorded) or a fatal error (reported already).
    async fn halt(&mut self, unit: &Unit, e: UnitError) -> Halt {
        let stopped = match e {
            UnitError::Fatal(e) => return Halt::Fatal(e),
            UnitError::InterruptedBeforeRetry => Stopped::BeforeRetry,
            _ if unit.step.gate.is_some() => Stopped::AtGate,
            _ => Stopped::InFlight,
        };
        Halt::Stop(self.interrupted(&unit.qid, stopped).await)
    }

    /// Records how the run ended and shows it.
    async fn finish(
        &mut self,
        pass: &Pass,
        rollback_ok: bool,
        finally_ok: bool,
    ) -> Result<Outcome, Halt> {
        let (status, error) = verdict(pass, rollback_ok, finally_ok);
        let outcome = match (status, error.clone()) {
            (RunStatus::Refused, Some(error)) => Outcome::Refused { error },
            (RunStatus::RollbackFailed, Some(error)) => Outcome::RollbackFailed { error },
            (RunStatus::Failed, Some(error)) => Outcome::Failed { error },
            _ => Outcome::Succeeded,
        };
        // The documented exit code is part of the record, for auditors and fleets.
        let exit_code = Exit::from(&outcome).code();
        self.record(Event::run(
            EventKind::RunFinished,
            json!({"status": status.as_str(), "exit_code": exit_code, "error": error}),
        ))
        .await?;
        let shown = match &error {
            None => format!("run {} succeeded", self.run.id),
            Some(e) => format!(
                "run {} {}: {}",
                self.run.id,
                status.as_str().replace('_', " "),
                self.redactor.redact(e)
            ),
        };
        self.progress.summary(&shown);
        Ok(outcome)
    }

    /// Whether an include's `when` (if any) holds, in the including playbook's scope.
    fn include_wanted(&mut self, b: usize) -> Result<bool, String> {
        let Some(when) = self.units.blocks[b].when.clone() else {
            return Ok(true);
        };
        let ctx = self
            .ctx
            .full(self.units.blocks[b].parent_scope, &self.redactor)?;
        template::eval_bool(&when, &ctx)
    }

    /// Whether any unit of an include ran (succeeded or failed, now or before a resume).
    fn block_ran(&self, b: usize) -> bool {
        let block = &self.units.blocks[b];
        self.units.main[block.start..block.end].iter().any(|u| {
            matches!(
                self.done.get(&(Phase::Main, u.qid.clone())),
                Some(StepStatus::Succeeded | StepStatus::Failed)
            )
        })
    }
}

/// The run's status and error from what failed, whether the compensations and the `finally`
/// units succeeded.
fn verdict(pass: &Pass, rollback_ok: bool, finally_ok: bool) -> (RunStatus, Option<String>) {
    let (status, error) = match (&pass.failure, rollback_ok, finally_ok) {
        (Some((step, msg)), true, _) if pass.refused => (
            RunStatus::Refused,
            Some(format!("gate {step} refused the run: {msg}")),
        ),
        (None, _, true) => (RunStatus::Succeeded, None),
        (None, _, false) => (RunStatus::Failed, Some("a finally step failed".to_owned())),
        (Some((step, msg)), true, _) => (
            RunStatus::Failed,
            Some(format!("step {step} failed: {msg}")),
        ),
        (Some((step, msg)), false, _) => (
            RunStatus::RollbackFailed,
            Some(format!(
                "step {step} failed: {msg}; a compensation failed too, the target needs attention"
            )),
        ),
    };
    let error = match error {
        Some(e) if pass.failure.is_some() && !finally_ok => {
            Some(format!("{e}; a finally step failed too"))
        }
        other => other,
    };
    (status, error)
}
