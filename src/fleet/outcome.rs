//! What a fleet run came to: `FleetOutcome` (the CLI turns it into an exit code), and `finish`,
//! which schedules the jobs, stores the fleet's final status and prints the summary.

use super::child::Job;
use super::options::FleetOptions;
use super::scheduler::schedule;
use crate::state::StateStore;
use crate::ui::Ui;

/// How a fleet run (or resume) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetOutcome {
    /// Every target succeeded (or, on resume, already had).
    Succeeded,
    /// A target failed, or the fleet stopped starting targets (failed canary, stop threshold).
    Failed,
    /// Nothing failed, but targets wait for an approval.
    Waiting,
    /// Ctrl-C: the running targets were interrupted and no new one started.
    Interrupted,
    /// The fleet could not start: its targets or a selector were invalid. Nothing ran.
    Invalid,
    /// The state store failed.
    StoreFailed,
}

/// Runs the jobs, records the fleet's final status and prints the summary.
pub(super) async fn finish(
    (ui, state, root): (&Ui, &StateStore, &std::path::Path),
    fleet_id: &str,
    jobs: Vec<Job>,
    opts: &FleetOptions,
) -> FleetOutcome {
    let logs = super::child::log_dir(root, fleet_id);
    let ran = schedule(ui, state, fleet_id, jobs, (opts, logs)).await;
    let results = &ran.results;
    let count = |what: &str| results.iter().filter(|(_, r)| *r == what).count();
    let (ok, waiting, not_started) = (
        count("succeeded"),
        count("waiting_approval"),
        count("not_started"),
    );
    let failed = results.len() - ok - waiting - not_started;
    let all_ok = ok == results.len();
    let status = if all_ok {
        "succeeded"
    } else if ran.interrupted {
        "interrupted"
    } else if ran.stopped {
        "stopped"
    } else if failed > 0 {
        "failed"
    } else {
        "waiting"
    };
    let _ = state.finish_fleet(fleet_id, status).await;
    ui.note(&format!(
        "fleet {fleet_id} {status}: {ok} succeeded, {failed} failed, {waiting} waiting, {not_started} not started{}",
        if all_ok { String::new() } else { format!("; `runbook resume {fleet_id}` continues the unfinished targets") }
    ));
    if all_ok {
        FleetOutcome::Succeeded
    } else if ran.interrupted {
        FleetOutcome::Interrupted
    } else if failed > 0 || ran.stopped {
        FleetOutcome::Failed
    } else {
        FleetOutcome::Waiting
    }
}
