//! A decision on a run whose process still holds it: a run that waits at an approval gate at a
//! terminal stays `running` while its process polls the store for decisions (every 2 s), and
//! the gate's message tells the operator that `runbook cancel` ends it. `runbook cancel` finds
//! the gate such a run waits at from its recorded steps, and after a rejection or
//! cancellation of a live run the command waits for that process to end the run (it rolls
//! back itself) and reports how it ended, rather than resuming a run another process holds
//! (which found the lock held: exit 4, "nothing ran", while the rollback ran).

use super::emergency::{Emergency, GATE};
use super::inputs;
use super::units::Layout;
use super::{ExecError, Outcome};
use crate::cancel::wait_cancel;
use crate::project::Project;
use crate::run::{Phase, RunRecord, RunStatus, StepStatus};
use crate::state::StateStore;
use crate::ui::Ui;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

/// How often the store is read while the live run ends.
const POLL: Duration = Duration::from_millis(250);

/// Whether the run's process is alive on this host (a run of another host cannot be told).
pub(super) fn is_live(record: &RunRecord) -> bool {
    record.status == RunStatus::Running && record.crashed() == Some(false)
}

/// The approval gate a live `running` run waits at: its next main step, when every main step
/// before it is decided (succeeded, skipped, or failed with `continue_on_error`), none is in
/// flight and the run is not in its rollback or handlers. Else it is not at an approval gate
/// (acting, at a `confirm` gate, waiting to retry a step, rolling back) and is refused.
pub(super) async fn live_gate(
    project: &Project,
    state: &StateStore,
    record: &RunRecord,
    ui: &Ui,
) -> Result<String, ExecError> {
    let steps = state.load_steps(&record.id).await.unwrap_or_default();
    let not_at_gate = |why: String| {
        ui.error(
            &format!(
                "run {} is running ({why}); only a run waiting at an approval gate can be cancelled",
                record.id
            ),
            Some("Ctrl-C at its terminal interrupts it; `runbook resume RUN` continues it"),
        );
        ExecError::Invalid
    };
    if let Some(s) = steps.iter().find(|s| s.status == StepStatus::Running) {
        return Err(not_at_gate(format!("step {} is in flight", s.step)));
    }
    // An include's `finally` runs among the main steps; a compensation or an `on_failure`
    // step means the run failed and is ending.
    if steps
        .iter()
        .any(|s| matches!(s.phase, Phase::Rollback | Phase::OnFailure))
    {
        return Err(not_at_gate("it is rolling back".to_owned()));
    }
    let Ok(playbook) = project.load_playbook(std::path::Path::new(&record.file)) else {
        ui.error(
            &format!("the playbook of run {} no longer validates", record.id),
            None,
        );
        return Err(ExecError::Invalid);
    };
    let decided: BTreeMap<&str, StepStatus> = steps
        .iter()
        .filter(|s| s.phase == Phase::Main && s.status != StepStatus::Pending)
        .map(|s| (s.step.as_str(), s.status))
        .collect();
    let events = inputs::events_of(state, record, ui).await?;
    if Emergency::recorded(inputs::started_in(&events)).is_some() {
        match decided.get(GATE) {
            None => return Ok(GATE.to_owned()),
            Some(StepStatus::Succeeded) => {}
            Some(_) => return Err(not_at_gate("its emergency gate refused it".to_owned())),
        }
    }
    let (layout, _) = Layout::build(&playbook, serde_json::Map::new());
    for u in &layout.main {
        match decided.get(u.qid.as_str()) {
            Some(StepStatus::Succeeded | StepStatus::Skipped) => {}
            Some(StepStatus::Failed) if u.step.continue_on_error => {}
            Some(_) => return Err(not_at_gate(format!("step {} failed", u.qid))),
            None if u.step.gate.as_ref().is_some_and(|g| g.approval.is_some()) => {
                return Ok(u.qid.clone());
            }
            None => {
                return Err(not_at_gate(format!(
                    "its next step, {}, is not an approval gate",
                    u.qid
                )));
            }
        }
    }
    Err(not_at_gate("it has no step left".to_owned()))
}

/// Waits for a live run to end after a rejection or cancellation was recorded for it (its
/// process reads it at its gate and rolls back), and says how it ended; a run that succeeded
/// anyway (it passed its gates first) is an error: the decision ended nothing. `None` when its
/// process is gone before it ended the run (the caller resumes it then). Ctrl-C stops the
/// waiting only: the run goes on.
pub(super) async fn wait_for_end(
    state: &StateStore,
    record: &RunRecord,
    ui: &Ui,
    mut cancel: watch::Receiver<bool>,
) -> Result<Option<Outcome>, ExecError> {
    ui.note(&format!(
        "run {} is live (pid {}): it reads the decision at its gate and ends itself, rolling back; waiting for it (Ctrl-C stops waiting, not the run)",
        record.id, record.pid
    ));
    loop {
        tokio::select! {
            biased;
            _ = wait_cancel(&mut cancel) => {
                ui.note(&format!(
                    "stopped waiting; the decision is recorded, and run {} ends itself at its gate",
                    record.id
                ));
                return Err(ExecError::Interrupted);
            }
            _ = tokio::time::sleep(POLL) => {}
        }
        let Ok(Some(now)) = state.load_run(&record.id).await else {
            continue;
        };
        let error = now.error.clone().unwrap_or_default();
        let outcome = match now.status {
            RunStatus::Running if now.crashed() == Some(true) => return Ok(None),
            RunStatus::Running => continue,
            RunStatus::Refused => Outcome::Refused { error },
            // It passed its gates before it read the decision: the decision ended nothing.
            RunStatus::Succeeded => {
                ui.error(
                    &format!(
                        "run {} succeeded: it passed its approval gates before it read the decision, which ended nothing",
                        now.id
                    ),
                    None,
                );
                return Err(ExecError::Refused);
            }
            RunStatus::Failed => Outcome::Failed { error },
            RunStatus::RollbackFailed => Outcome::RollbackFailed { error },
            RunStatus::Interrupted => Outcome::Interrupted {
                step: String::new(),
            },
            RunStatus::WaitingApproval => Outcome::Waiting {
                gate: String::new(),
                reason: error,
            },
        };
        ui.note(&format!("run {} {}", now.id, now.status.sentence()));
        return Ok(Some(outcome));
    }
}
