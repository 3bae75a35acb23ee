//! A decision on a run whose process still holds it: a run that waits at an approval gate at a
//! terminal stays `running` while its process polls the store for decisions (every 2 s), and
//! the gate's message tells the operator that `runbook cancel` ends it. `runbook cancel` finds
//! the gate such a run waits at from its recorded steps, and after a rejection or
//! cancellation of a live run the command waits for that process to end the run (it rolls
//! back itself) and reports how it ended, rather than resuming a run another process holds
//! (which found the lock held: exit 4, "nothing ran", while the rollback ran).

use super::emergency::{Emergency, GATE};
use super::inputs;
use super::units::approval_gates;
use super::{ExecError, Outcome};
use crate::cancel::wait_cancel;
use crate::project::Project;
use crate::run::{Phase, RunRecord, RunStatus, StepStatus};
use crate::state::StateStore;
use crate::ui::Ui;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::watch;

/// How often the store is read while the live run ends.
const POLL: Duration = Duration::from_millis(250);

/// Whether the run's process is alive on this host (a run of another host cannot be told).
pub(super) fn is_live(record: &RunRecord) -> bool {
    record.status == RunStatus::Running && record.crashed() == Some(false)
}

/// The approval gate a live `running` run waits at: the first of its approval gates (the
/// emergency gate first) with no recorded outcome, when no step is in flight.
pub(super) async fn live_gate(
    project: &Project,
    state: &StateStore,
    record: &RunRecord,
    ui: &Ui,
) -> Result<String, ExecError> {
    let steps = state.load_steps(&record.id).await.unwrap_or_default();
    if let Some(s) = steps.iter().find(|s| s.status == StepStatus::Running) {
        ui.error(
            &format!(
                "run {} is running step {}; only a run waiting at an approval gate can be cancelled",
                record.id, s.step
            ),
            Some("Ctrl-C at its terminal interrupts it; `runbook resume RUN` continues it"),
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
    let events = inputs::events_of(state, record, ui).await?;
    let ended: BTreeSet<&str> = steps
        .iter()
        .filter(|s| s.phase == Phase::Main && s.status != StepStatus::Pending)
        .map(|s| s.step.as_str())
        .collect();
    let emergency = Emergency::recorded(inputs::started_in(&events)).map(|_| GATE.to_owned());
    let gate = emergency
        .into_iter()
        .chain(approval_gates(&playbook))
        .find(|g| !ended.contains(g.as_str()));
    gate.ok_or_else(|| {
        ui.error(
            &format!(
                "run {} is running and has no approval gate left to wait at; only a run waiting at an approval gate can be cancelled",
                record.id
            ),
            Some("Ctrl-C at its terminal interrupts it"),
        );
        ExecError::Invalid
    })
}

/// Waits for a live run to end after a rejection or cancellation was recorded for it (its
/// process reads it at its gate and rolls back), and says how it ended. `None` when its
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
            _ = wait_cancel(&mut cancel) => return Err(ExecError::Interrupted),
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
            RunStatus::Succeeded => Outcome::Succeeded,
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
