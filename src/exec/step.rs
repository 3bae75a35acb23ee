//! Running one unit: its `when`, then attempts of its action with retries, backoff and a
//! timeout; each attempt recorded as started before it acts and as finished (or failed) after.
//! Gate steps go to `gates.rs`.

use super::actions;
use super::change;
use super::context::{extract_outputs, referenced_steps};
use super::engine::Engine;
use super::units::Unit;
use super::what_changed;
use super::{ActionCtx, ExecError, StepError};
use crate::cancel::wait_cancel;
use crate::playbook::Step;
use crate::run::{Change, Event, EventKind, StepStatus};
use crate::template;
use serde_json::{Map, Value as Json, json};
use std::time::{Duration, Instant};

/// Why a unit did not succeed.
#[derive(Debug)]
pub(super) enum UnitError {
    Failed(String),
    Interrupted,
    /// Interrupted while the step waited to try again: nothing in flight, and its failed
    /// attempt not its verdict (a resume runs it again).
    InterruptedBeforeRetry,
    /// The run cannot go on (its records cannot be written); reported already.
    Fatal(ExecError),
    /// A gate stopped the run until a decision is recorded.
    Waiting(String),
    /// A gate refused the run: it is rolled back and ends `refused`.
    Refused(String),
}

/// What a step told besides its outputs, for its `step_finished` record: the notes it printed
/// and what it changed, named (`what_changed`).
struct Told {
    printed: String,
    changed: Option<Json>,
}

/// A step's retry policy: how many attempts, and the delay before the next one.
struct Retry {
    attempts: u32,
    delay: Duration,
    max_delay: Duration,
    backoff: f64,
}

impl Retry {
    fn of(step: &Step) -> Retry {
        let retry = step.retry.as_ref();
        Retry {
            attempts: retry.map_or(1, |r| r.attempts.max(1)),
            delay: retry
                .and_then(|r| r.delay.as_ref())
                .and_then(|d| d.parse())
                .unwrap_or(Duration::from_secs(1)),
            max_delay: retry
                .and_then(|r| r.max_delay.as_ref())
                .and_then(|d| d.parse())
                .unwrap_or(Duration::from_secs(3600)),
            backoff: retry.and_then(|r| r.backoff).unwrap_or(1.0),
        }
    }

    /// The delay grows by the backoff factor after each retry, up to the maximum.
    fn grow(&mut self) {
        self.delay = Duration::from_secs_f64(
            (self.delay.as_secs_f64() * self.backoff).min(self.max_delay.as_secs_f64()),
        );
    }
}

/// How one attempt of an action ended, short of stopping the run; a failure says what the
/// step changed so far.
enum Attempt {
    Succeeded,
    Failed {
        msg: String,
        took: Duration,
        change: Change,
    },
}

/// What a step changed over its attempts: `earlier` (the attempts before, or one in flight
/// when the run stopped), then `now`.
fn so_far(earlier: Option<&Change>, now: Change) -> Change {
    match earlier {
        Some(e) => e.clone().then(now),
        None => now,
    }
}

impl Engine<'_> {
    /// Runs one unit with its `when`, retries and timeout. `Ok(true)` when it ran and
    /// succeeded, `Ok(false)` when skipped.
    pub(super) async fn run_unit(&mut self, unit: &Unit) -> Result<bool, UnitError> {
        let earlier = self.changes.get(&(unit.phase, unit.qid.clone())).cloned();
        let wanted = referenced_steps(&unit.step);
        let ctx = self
            .ctx
            .for_step(unit.scope, wanted.as_ref(), &self.redactor)
            .map_err(UnitError::Failed)?;
        if let Some(when) = &unit.step.when {
            match template::eval_bool(when, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    self.skip(unit, &format!("`when: {when}` is false"))
                        .await
                        .map_err(UnitError::Fatal)?;
                    return Ok(false);
                }
                Err(e) => {
                    let msg = format!("cannot evaluate `when`: {e}");
                    let change = so_far(earlier.as_ref(), change::before_running());
                    return Err(self.fail(unit, 1, &msg, Duration::ZERO, change).await);
                }
            }
        }
        if unit.step.gate.is_some() {
            return self.run_gate(unit, &ctx).await;
        }
        let mut retry = Retry::of(&unit.step);
        let timeout = unit.step.timeout.as_ref().and_then(|d| d.parse());
        let mut earlier = earlier;
        for attempt in 1..=retry.attempts {
            let tried = self.attempt(unit, &ctx, attempt, timeout, earlier.as_ref());
            match tried.await? {
                Attempt::Succeeded => return Ok(true),
                Attempt::Failed { msg, took, change } if attempt >= retry.attempts => {
                    return Err(self.fail(unit, attempt, &msg, took, change).await);
                }
                Attempt::Failed { msg, took, change } => {
                    self.retry_later(unit, attempt, &msg, took, retry.delay, &change)
                        .await?;
                    earlier = Some(change);
                    retry.grow();
                }
            }
        }
        Err(UnitError::Failed("no attempt ran".to_owned()))
    }

    /// One attempt: the arguments rendered, `step_started` recorded, the action run, and on
    /// success `step_finished` recorded with its outputs and, with `earlier`, what it changed.
    async fn attempt(
        &mut self,
        unit: &Unit,
        ctx: &Json,
        attempt: u32,
        timeout: Option<Duration>,
        earlier: Option<&Change>,
    ) -> Result<Attempt, UnitError> {
        let action = unit.step.action().map_or("?", |a| a.key());
        let rendered = match actions::render_args(&unit.step, ctx) {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("cannot render arguments: {e}");
                let change = so_far(earlier, change::before_running());
                return Err(self.fail(unit, attempt, &msg, Duration::ZERO, change).await);
            }
        };
        self.keep_lock(&unit.qid).await?;
        self.record(Event::step(
            EventKind::StepStarted,
            &unit.qid,
            unit.phase,
            json!({"ord": unit.ord, "attempt": attempt, "action": action, "args": rendered}),
        ))
        .await
        .map_err(UnitError::Fatal)?;
        // Rendered arguments may hold secrets; the tracing writer redacts them.
        tracing::debug!(step = %unit.qid, args = %rendered, "step arguments");
        self.crash_if("started", &unit.qid);
        self.progress.start(&unit.qid, action, attempt);
        let began = Instant::now();
        let result = self.act(unit, ctx, &rendered, timeout).await;
        let took = began.elapsed();
        self.crash_if("acted", &unit.qid);
        match result {
            Ok(mut outputs) => {
                // What it changed is read before declared outputs join the action's own.
                let change = so_far(earlier, change::after_success(&unit.step, &outputs));
                // What the step printed and what it changed, named for its audit record from
                // the action's own outputs (before declared outputs join them).
                let told = Told {
                    printed: self.progress.take_printed(),
                    changed: unit
                        .step
                        .action()
                        .and_then(|a| what_changed::named(&a, &rendered, &outputs)),
                };
                if let Err(e) = extract_outputs(&unit.step, &mut outputs) {
                    return Err(self.fail(unit, attempt, &e, took, change).await);
                }
                self.succeeded(unit, attempt, outputs, took, change, told)
                    .await?;
                Ok(Attempt::Succeeded)
            }
            Err(StepError::Interrupted) => {
                self.progress
                    .finish(&unit.qid, action, "interrupted", took, "");
                Err(UnitError::Interrupted)
            }
            Err(e) => {
                let change = so_far(earlier, change::after_failure(&unit.step, &e));
                let msg = e.message();
                Ok(Attempt::Failed { msg, took, change })
            }
        }
    }

    /// Runs the unit's action with its rendered arguments.
    async fn act(
        &mut self,
        unit: &Unit,
        ctx: &Json,
        rendered: &Json,
        timeout: Option<Duration>,
    ) -> Result<Map<String, Json>, StepError> {
        let human_gate_passed = self.human_gate_passed(unit);
        let mut actx = ActionCtx {
            root: &self.root,
            target: self.target.as_ref(),
            db: &mut self.db,
            cancel: self.cancel.clone(),
            timeout,
            redactor: &self.redactor,
            template_ctx: ctx,
            run_id: &self.run.id,
            step_id: &unit.qid,
            progress: &self.progress,
            dirs: &self.dirs,
            human_gate_passed,
        };
        actions::execute(&unit.step, rendered, &mut actx).await
    }

    /// Records a unit's success and makes its outputs visible to later steps.
    async fn succeeded(
        &mut self,
        unit: &Unit,
        attempt: u32,
        outputs: Map<String, Json>,
        took: Duration,
        change: Change,
        told: Told,
    ) -> Result<(), UnitError> {
        // One copy of the outputs, moved into the record (`json!` would serialise another: a
        // step's outputs can be megabytes); the journal redacts every event it records.
        let mut data = json!({"ord": unit.ord, "attempt": attempt, "duration_ms": took.as_millis() as i64, "change": change});
        data["outputs"] = Json::Object(outputs.clone());
        if !told.printed.is_empty() {
            data["printed"] = json!(told.printed);
        }
        if let Some(changed) = told.changed {
            data["changed"] = changed;
        }
        self.record(Event::step(
            EventKind::StepFinished,
            &unit.qid,
            unit.phase,
            data,
        ))
        .await
        .map_err(UnitError::Fatal)?;
        self.crash_if("finished", &unit.qid);
        self.changes.insert((unit.phase, unit.qid.clone()), change);
        self.set_done(unit.phase, &unit.qid, StepStatus::Succeeded);
        self.ctx
            .set_step(unit.scope, &unit.local, Json::Object(outputs), "succeeded");
        let action = unit.step.action().map_or("?", |a| a.key());
        self.progress.finish(&unit.qid, action, "ok", took, "");
        Ok(())
    }

    /// Records a failed attempt that will be retried, then waits the retry delay (or for
    /// Ctrl-C).
    async fn retry_later(
        &mut self,
        unit: &Unit,
        attempt: u32,
        msg: &str,
        took: Duration,
        delay: Duration,
        change: &Change,
    ) -> Result<(), UnitError> {
        let shown = self.redactor.redact(msg);
        self.record(Event::step(
            EventKind::StepFailed,
            &unit.qid,
            unit.phase,
            json!({"ord": unit.ord, "attempt": attempt, "error": shown, "will_retry": true, "duration_ms": took.as_millis() as i64, "change": change, "printed": self.progress.take_printed()}),
        ))
        .await
        .map_err(UnitError::Fatal)?;
        let action = unit.step.action().map_or("?", |a| a.key());
        self.progress.finish(
            &unit.qid,
            action,
            "failed",
            took,
            &format!("{shown}; retrying in {:.1}s", delay.as_secs_f64()),
        );
        let mut cancel = self.cancel.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = wait_cancel(&mut cancel) => Err(UnitError::InterruptedBeforeRetry),
        }
    }

    /// Records a unit's final failure and what it changed; gives the error that ends the unit.
    pub(super) async fn fail(
        &mut self,
        unit: &Unit,
        attempt: u32,
        msg: &str,
        took: Duration,
        change: Change,
    ) -> UnitError {
        let shown = self.redactor.redact(msg);
        if let Err(e) = self
            .record(Event::step(
                EventKind::StepFailed,
                &unit.qid,
                unit.phase,
                json!({"ord": unit.ord, "attempt": attempt, "error": shown, "will_retry": false, "duration_ms": took.as_millis() as i64, "change": change, "printed": self.progress.take_printed()}),
            ))
            .await
        {
            return UnitError::Fatal(e);
        }
        self.crash_if("failed", &unit.qid);
        self.changes.insert((unit.phase, unit.qid.clone()), change);
        self.set_done(unit.phase, &unit.qid, StepStatus::Failed);
        self.ctx
            .set_step(unit.scope, &unit.local, json!({}), "failed");
        let action = unit.step.action().map_or("?", |a| a.key());
        self.progress
            .finish(&unit.qid, action, "failed", took, &shown);
        UnitError::Failed(shown)
    }
}
