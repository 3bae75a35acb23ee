//! Gate steps: the gate rendered, its decision made (condition, maintenance window, required
//! earlier run, typed confirmation, approvals), recorded, and turned into the unit's outcome.
//! Window arithmetic and what a decision is live in `crate::gate`; prompts go through the `Ui`.

use super::ExecError;
use super::actions;
use super::change;
use super::counting::{Judge, Judged};
use super::engine::Engine;
use super::signing;
use super::step::UnitError;
use super::units::Unit;
use crate::cancel::wait_cancel;
use crate::db::TargetSpec;
use crate::gate::{GateOutcome, same_person};
use crate::playbook::{
    ApprovalGate, ConditionGate, ConfirmGate, GateAction, RequireRunGate, WindowGate,
};
use crate::run::{self, Approval, Event, EventKind, StepStatus};
use crate::template;
use serde_json::{Map, Value as Json, json};
use std::time::{Duration, Instant};

impl Engine<'_> {
    /// Runs a gate step: records its decision and turns it into the unit's outcome.
    pub(super) async fn run_gate(&mut self, unit: &Unit, ctx: &Json) -> Result<bool, UnitError> {
        // A gate may wait (a prompt, a window): the verdicts before it go on the disk first.
        self.settle().await.map_err(UnitError::Fatal)?;
        let rendered = match actions::render_args(&unit.step, ctx) {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("cannot render the gate: {e}");
                return Err(self
                    .fail(unit, 1, &msg, Duration::ZERO, change::gate())
                    .await);
            }
        };
        let gate: GateAction = match serde_json::from_value(rendered.clone()) {
            Ok(g) => g,
            Err(e) => {
                let msg = format!("rendered gate is invalid: {e}");
                return Err(self
                    .fail(unit, 1, &msg, Duration::ZERO, change::gate())
                    .await);
            }
        };
        let kind = gate.kinds().first().copied().unwrap_or("gate");
        let began = Instant::now();
        let outcome = self.evaluate_gate(unit, &gate, ctx).await?;
        let operator = self.run.operator.clone();
        let shown = |o: &str, detail: &Json| json!({"kind": kind, "outcome": o, "gate": rendered, "detail": detail, "operator": operator});
        match outcome {
            GateOutcome::Pass(detail) => {
                let decision = shown("passed", &detail);
                self.record_gate(unit, &rendered, decision, true).await?;
                self.gate_passed(unit, &detail, began).await?;
                Ok(true)
            }
            GateOutcome::Wait(msg) => {
                let decision = shown("waiting", &json!({"reason": msg}));
                self.record_gate(unit, &rendered, decision, false).await?;
                self.progress
                    .finish(&unit.qid, "gate", "waiting", began.elapsed(), &msg);
                Err(UnitError::Waiting(msg))
            }
            GateOutcome::Refuse(msg) => {
                let decision = shown("refused", &json!({"reason": msg}));
                self.record_gate(unit, &rendered, decision, true).await?;
                let failed = self.fail(unit, 1, &msg, began.elapsed(), change::gate());
                match failed.await {
                    UnitError::Failed(m) => Err(UnitError::Refused(m)),
                    other => Err(other),
                }
            }
        }
    }

    /// Records a gate's decision. A gate that decided (passed or refused) is a step that started;
    /// a waiting one has not, so resume evaluates it again.
    async fn record_gate(
        &mut self,
        unit: &Unit,
        rendered: &Json,
        decision: Json,
        started: bool,
    ) -> Result<(), UnitError> {
        if started {
            self.record(Event::step(
                EventKind::StepStarted,
                &unit.qid,
                unit.phase,
                json!({"ord": unit.ord, "attempt": 1, "action": "gate", "args": rendered}),
            ))
            .await
            .map_err(UnitError::Fatal)?;
        }
        self.record(Event::step(
            EventKind::GateDecision,
            &unit.qid,
            unit.phase,
            decision,
        ))
        .await
        .map_err(UnitError::Fatal)
    }

    /// Records a passed gate as a finished step whose outputs are the outcome, the approvers
    /// and the value that held.
    async fn gate_passed(
        &mut self,
        unit: &Unit,
        detail: &Json,
        began: Instant,
    ) -> Result<(), UnitError> {
        let mut outputs = Map::new();
        outputs.insert("outcome".to_owned(), json!("passed"));
        outputs.insert(
            "approvers".to_owned(),
            detail.get("approvers").cloned().unwrap_or(json!([])),
        );
        outputs.insert(
            "value".to_owned(),
            detail.get("value").cloned().unwrap_or(Json::Null),
        );
        self.record(Event::step(
            EventKind::StepFinished,
            &unit.qid,
            unit.phase,
            json!({"ord": unit.ord, "attempt": 1, "outputs": outputs, "duration_ms": began.elapsed().as_millis() as i64, "change": change::gate()}),
        ))
        .await
        .map_err(UnitError::Fatal)?;
        self.changes
            .insert((unit.phase, unit.qid.clone()), change::gate());
        self.set_done(unit.phase, &unit.qid, StepStatus::Succeeded);
        self.ctx
            .set_step(unit.scope, &unit.local, Json::Object(outputs), "succeeded");
        let note = detail
            .get("note")
            .and_then(Json::as_str)
            .unwrap_or_default();
        self.progress
            .finish(&unit.qid, "gate", "ok", began.elapsed(), note);
        Ok(())
    }

    /// Decides a gate of whichever kind it is.
    async fn evaluate_gate(
        &mut self,
        unit: &Unit,
        gate: &GateAction,
        ctx: &Json,
    ) -> Result<GateOutcome, UnitError> {
        if let Some(c) = &gate.condition {
            return Ok(condition(c, ctx));
        }
        if let Some(w) = &gate.window {
            return Ok(window(w));
        }
        if let Some(r) = &gate.require_run {
            return self.require_run(r).await;
        }
        if let Some(c) = &gate.confirm {
            return self.confirmation(c).await;
        }
        let Some(a) = &gate.approval else {
            return Ok(GateOutcome::Refuse("the gate has no kind".to_owned()));
        };
        self.approval(unit, a).await
    }

    /// A `require_run` gate: a successful run of the playbook on the environment, recent
    /// enough, and (unless told otherwise) with the same migrations as this run.
    async fn require_run(&mut self, r: &RequireRunGate) -> Result<GateOutcome, UnitError> {
        let playbook = r
            .playbook
            .clone()
            .unwrap_or_else(|| self.run.playbook.clone());
        let within = r
            .within
            .as_ref()
            .and_then(|d| d.parse())
            .unwrap_or(Duration::from_secs(30 * 86400));
        let since = run::now_ms() - within.as_millis() as i64;
        let same = r.same_migrations.unwrap_or(true);
        let runs = self
            .state
            .successes(&playbook, &r.env, since)
            .await
            .map_err(|e| self.internal(&e))?;
        let found = runs
            .iter()
            .find(|x| !same || x.migrations_hash == self.run.migrations_hash);
        if let Some(x) = found {
            return Ok(GateOutcome::Pass(
                json!({"value": x.id, "note": format!("run {} of `{playbook}` succeeded on `{}` at {}", x.id, r.env, run::format_ms(x.started_at))}),
            ));
        }
        let mig = short_hash(&self.run.migrations_hash);
        let why = match runs.first() {
            Some(latest) if same => format!(
                "; the latest, run {} at {}, had other migrations ({} instead of {mig})",
                latest.id,
                run::format_ms(latest.started_at),
                short_hash(&latest.migrations_hash)
            ),
            _ => String::new(),
        };
        let with = if same {
            format!(" with these migrations ({mig})")
        } else {
            String::new()
        };
        Ok(GateOutcome::Refuse(format!(
            "no successful run of `{playbook}` on `{}`{with} in the last {}{why}",
            r.env,
            crate::fmt::duration(within)
        )))
    }

    /// A `confirm` gate: the expected text (by default the target database's name) given with
    /// `--confirm` or typed at the terminal; without either, the run waits.
    async fn confirmation(&mut self, c: &ConfirmGate) -> Result<GateOutcome, UnitError> {
        let expected = match &c.expect {
            Some(e) => e.clone(),
            None => self
                .target
                .as_ref()
                .map(TargetSpec::database_name)
                .unwrap_or_default(),
        };
        if let Some(given) = &self.confirm {
            return Ok(if given.trim() == expected {
                GateOutcome::Pass(json!({"note": "confirmed with --confirm"}))
            } else {
                GateOutcome::Refuse(format!(
                    "the confirmation `{}` does not match `{expected}`; nothing was changed past this gate",
                    given.trim()
                ))
            });
        }
        if self.ui.can_prompt() {
            let question = format!("{}\nType `{expected}` to go on: ", c.message);
            let answer = self.ask(&question).await?;
            return Ok(if answer == expected {
                GateOutcome::Pass(json!({"note": "confirmed at the terminal"}))
            } else {
                GateOutcome::Refuse(format!(
                    "the confirmation `{answer}` does not match `{expected}`"
                ))
            });
        }
        Ok(GateOutcome::Wait(format!(
            "{} (no terminal: resume with --confirm {expected})",
            c.message
        )))
    }

    /// Asks at the terminal. Ctrl-C stops waiting for the answer, and so does a terminal that
    /// gives none (Ctrl-D, or hung up: its SIGHUP comes after the read has ended): the run is
    /// interrupted (as while it polls for an approval), not refused by an empty answer.
    async fn ask(&self, question: &str) -> Result<String, UnitError> {
        let answer = self.ui.prompt(question, &self.cancel).await;
        answer.ok_or(UnitError::Interrupted)
    }

    /// An `approval` gate: enough valid approvals from other people (a rejection refuses).
    /// Without a terminal the run waits; at one, the operator may answer where self-approval
    /// is allowed, or the run polls for approvals given with `runbook approve`.
    async fn approval(&mut self, unit: &Unit, a: &ApprovalGate) -> Result<GateOutcome, UnitError> {
        let required = a
            .required
            .unwrap_or(1)
            .max(self.protections.approvals.unwrap_or(0))
            .max(1) as usize;
        let expiry = signing::expiry_of(Some(a), &self.protections);
        if let Some(why) = self.nobody_can_sign() {
            return Ok(GateOutcome::Wait(format!("{} ({why})", a.message)));
        }
        let mut can_answer = true;
        // What the terminal was last told: said again only when it changes (an approval came
        // in, or one stopped counting), not at every poll.
        let mut shown = String::new();
        loop {
            let stored = self
                .state
                .approvals(&self.run.id, &unit.qid)
                .await
                .map_err(|e| self.internal(&e))?;
            let chain = self.chain_facts().map_err(|e| self.internal(&e))?;
            let judged = self.judge(unit, a, expiry).judge_all(&chain, &stored);
            let (approvers, void) = match tally(&judged) {
                Ok(t) => t,
                Err(rejection) => return Ok(GateOutcome::Refuse(rejection)),
            };
            if approvers.len() >= required {
                return Ok(GateOutcome::Pass(
                    json!({"approvers": approvers, "note": format!("approved by {}", approvers.join(", "))}),
                ));
            }
            let voided = if void.is_empty() {
                String::new()
            } else {
                let n = void.len();
                format!(
                    "; {n} {} not count: {}",
                    if n == 1 { "does" } else { "do" },
                    void.join("; ")
                )
            };
            let msg = format!(
                "{} ({} of {required} approvals{voided})",
                a.message,
                approvers.len()
            );
            if !self.ui.can_prompt() {
                return Ok(GateOutcome::Wait(msg));
            }
            // A person is at the terminal.
            // Asked once whether the operator can sign here; without a key they wait for others.
            if self.protections.self_approval && can_answer && approvers.len() + 1 >= required {
                if self.answer_at_terminal(unit, &msg, expiry).await? {
                    continue;
                }
                can_answer = false;
            }
            if shown != msg {
                self.progress.note(&format!(
                    "waiting for approval: {msg}\n  another person runs `runbook approve {} {}`; you can end the run with `runbook cancel {} --reason TEXT` (Ctrl-C stops waiting; the run can be resumed)",
                    self.run.id, unit.qid, self.run.id
                ));
                shown = msg;
            }
            let mut cancel = self.cancel.clone();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = wait_cancel(&mut cancel) => return Err(UnitError::Interrupted),
            }
        }
    }

    /// The judge of this gate's approvals (`counting.rs`).
    fn judge<'j>(
        &'j self,
        unit: &'j Unit,
        a: &'j ApprovalGate,
        expiry: Option<Duration>,
    ) -> Judge<'j> {
        Judge {
            run_id: &self.run.id,
            gate: &unit.qid,
            plan_hash: &self.plan_hash,
            operator: &self.run.operator,
            self_approval: self.protections.self_approval,
            signed: self.protections.signed_approvals,
            signers: &self.signers,
            gate_approvers: a.approvers.as_deref(),
            expiry,
            now: run::now_ms(),
        }
    }

    /// Why no approval can count where signed approvals are required: nobody is listed.
    fn nobody_can_sign(&self) -> Option<String> {
        if !self.protections.signed_approvals {
            return None;
        }
        signing::nobody_listed(&self.run.env, &self.signers).map(|why| {
            format!(
                "{why}; {}, then `runbook resume {}`",
                signing::LIST_HINT,
                self.run.id
            )
        })
    }

    /// Asks the operator at the terminal and records the answer as their approval or
    /// rejection; where approvals must be signed, signed with their listed key. `false` when
    /// they have no such key (said, and the run waits for others instead).
    async fn answer_at_terminal(
        &mut self,
        unit: &Unit,
        msg: &str,
        expiry: Option<Duration>,
    ) -> Result<bool, UnitError> {
        let mut actor = self.run.operator.clone();
        let mut key = None;
        if self.protections.signed_approvals {
            let Ok(signers) = &self.signers else {
                return Ok(false);
            };
            match crate::approval::signing_key(signers, self.key.as_deref(), None) {
                Ok(k) => {
                    actor = k.signer.principal().to_owned();
                    key = Some(k);
                }
                Err(e) => {
                    self.progress.note(&format!(
                        "cannot approve here with a signature: {}
  hint: {}",
                        e.message, e.hint
                    ));
                    return Ok(false);
                }
            }
        }
        let question = format!("{msg}\nApprove as {actor}? [y/N] ");
        let answer = self.ask(&question).await?;
        let decision = if answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes") {
            "approve"
        } else {
            "reject"
        };
        let comment = "answered at the terminal";
        let identity = self.chain_facts().ok().and_then(|f| f.target_identity);
        let signed = match &key {
            Some(k) => {
                let d = signing::Decision {
                    run_id: &self.run.id,
                    gate: &unit.qid,
                    decision,
                    plan_hash: &self.plan_hash,
                    target: identity.as_deref(),
                    expiry,
                    comment: Some(comment),
                };
                match signing::sign(k, &d) {
                    Ok(signed) => Some(signed),
                    Err(e) => {
                        self.progress.note(&e);
                        return Ok(false);
                    }
                }
            }
            None => None,
        };
        let approval = Approval {
            gate: unit.qid.clone(),
            actor,
            decision: decision.to_owned(),
            comment: Some(comment.to_owned()),
            plan_hash: self.plan_hash.clone(),
            at: run::now_ms(),
            signed,
        };
        self.record_approval(&approval)
            .await
            .map_err(UnitError::Fatal)?;
        Ok(true)
    }

    /// Reports a state store failure while deciding a gate; the run cannot go on.
    fn internal(&self, e: &dyn std::fmt::Display) -> UnitError {
        self.ui.error(&e.to_string(), None);
        UnitError::Fatal(ExecError::Internal)
    }
}

/// The distinct people whose approvals count, and each approval that does not with why;
/// `Err` with the refusal when a counting rejection is among them.
fn tally(judged: &[Judged]) -> Result<(Vec<String>, Vec<String>), String> {
    let mut approvers: Vec<String> = Vec::new();
    let mut void = Vec::new();
    for j in judged {
        if let Some(why) = &j.void {
            void.push(format!("{} ({}): {why}", j.who, j.approval.decision));
            continue;
        }
        if j.approval.decision == "reject" || j.approval.decision == "cancel" {
            let why = j
                .approval
                .comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            let what = if j.approval.decision == "cancel" {
                "cancelled"
            } else {
                "rejected"
            };
            return Err(format!("{what} by {}{why}", j.who));
        }
        if !approvers.iter().any(|p| same_person(p, &j.who)) {
            approvers.push(j.who.clone());
        }
    }
    Ok((approvers, void))
}

/// A `condition` gate: its expression holds over the run context.
fn condition(c: &ConditionGate, ctx: &Json) -> GateOutcome {
    match template::eval(&c.expr, ctx) {
        Ok(v) if template::truthy(&v) => {
            GateOutcome::Pass(json!({"value": v, "note": format!("`{}` holds", c.expr)}))
        }
        // A plain `false` needs no value beside it; anything else is shown, as what the
        // expression gave (`null` when a figure is unknown, an empty list).
        Ok(Json::Bool(false)) => {
            GateOutcome::Refuse(format!("{} (`{}` does not hold)", c.message, c.expr))
        }
        Ok(v) => GateOutcome::Refuse(format!(
            "{} (`{}` gave {v}, which does not count as true)",
            c.message, c.expr
        )),
        Err(e) => GateOutcome::Refuse(format!("cannot evaluate `{}`: {e}", c.expr)),
    }
}

/// A `window` gate: now is inside the maintenance window.
fn window(w: &WindowGate) -> GateOutcome {
    match crate::gate::window(w, chrono::Utc::now()) {
        Ok(Ok(())) => GateOutcome::Pass(json!({"note": "inside the maintenance window"})),
        Ok(Err(next)) => GateOutcome::Refuse(format!(
            "outside the maintenance window; the next one opens {next}"
        )),
        Err(e) => GateOutcome::Refuse(e),
    }
}

/// The first 12 characters of a migrations hash, as shown in messages.
fn short_hash(hash: &str) -> &str {
    &hash[..12.min(hash.len())]
}
