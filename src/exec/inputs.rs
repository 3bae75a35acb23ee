//! The files a run may apply (migrations and seeds) against what they were when the run
//! started. Their digests are in the plan, so approvals bind to their bytes; here the change is
//! named: `resume` says which files changed (and refuses to go on past an approval that was
//! given for other files), `approve` refuses to approve a run whose files changed.

use super::ExecError;
use crate::plan::{Plan, input_changes};
use crate::run::{EventKind, RunRecord, StepRecord, StepStatus};
use crate::state::StateStore;
use crate::ui::Ui;
use std::collections::BTreeMap;

/// What changed in the run's files since it started, one phrase per file; empty when nothing
/// did, or when the run started before runbook recorded its files (nothing to compare with).
/// `started` is the run's `run_started` data (`started_data`).
pub(super) fn changed_since_start(
    started: Option<&serde_json::Value>,
    now: &BTreeMap<String, String>,
) -> Vec<String> {
    started
        .and_then(|data| data.get("inputs").cloned())
        .and_then(|v| serde_json::from_value::<BTreeMap<String, String>>(v).ok())
        .map_or_else(Vec::new, |before| input_changes(&before, now))
}

/// A run's events as the state store gives them: sequence, time, kind, step, data.
pub(super) type Events = Vec<(i64, i64, String, Option<String>, serde_json::Value)>;

/// The run's events, read once for every check that needs them.
pub(super) async fn events_of(
    state: &StateStore,
    record: &RunRecord,
    ui: &Ui,
) -> Result<Events, ExecError> {
    state.load_events(&record.id).await.map_err(|e| {
        ui.error(&e.to_string(), None);
        ExecError::Internal
    })
}

/// The data of the run's `run_started` event among its `events`: what the run recorded of
/// itself as it began (its files, its database, its rules).
pub(super) fn started_in(
    events: &[(i64, i64, String, Option<String>, serde_json::Value)],
) -> Option<&serde_json::Value> {
    events
        .iter()
        .find(|(_, _, kind, _, _)| kind == EventKind::RunStarted.as_str())
        .map(|(_, _, _, _, data)| data)
}

/// The run's `run_started` data (`started_in`), read from the state store, handed to the
/// checks here and in `same_target`.
pub(super) async fn started_data(
    state: &StateStore,
    record: &RunRecord,
    ui: &Ui,
) -> Result<Option<serde_json::Value>, ExecError> {
    Ok(started_in(&events_of(state, record, ui).await?).cloned())
}

/// On resume: a run whose files changed since it started continues only if none of its
/// approval gates has passed yet (those gates now wait for approvals of the new files, which
/// is said); past a passed approval gate it is refused: the approval was for other SQL.
pub(super) fn check_on_resume(
    started: Option<&serde_json::Value>,
    record: &RunRecord,
    plan: &Plan,
    steps: &[StepRecord],
    ui: &Ui,
) -> Result<(), ExecError> {
    let changes = changed_since_start(started, &plan.inputs);
    if changes.is_empty() {
        return Ok(());
    }
    let what = changes.join(", ");
    let passed: Vec<&str> = steps
        .iter()
        .filter(|s| s.status == StepStatus::Succeeded && plan.gates.contains(&s.step))
        .map(|s| s.step.as_str())
        .collect();
    if passed.is_empty() {
        ui.note(&format!(
            "since run {} started, {what}: approvals given before no longer count, and its gates ask again",
            record.id
        ));
        return Ok(());
    }
    ui.error(
        &format!(
            "since run {} started, {what}; its gate `{}` passed for the files as they were, so resuming would apply what nobody approved",
            record.id,
            passed.join("`, `")
        ),
        Some("put the files back as they were to resume, or start a new run and have it approved"),
    );
    Err(ExecError::Refused)
}
