//! A run continues only on the database it started on. The target's identity (`db::identity`:
//! PostgreSQL's cluster and database oid, a SQLite file's real path) is recorded in the run's
//! `run_started` event; `resume` and `approve` compare the target they were given now (by
//! `--target` or the environment's variable, which may have changed since) with it.

use super::ExecError;
use crate::db::TargetSpec;
use crate::db::identity::identity;
use crate::run::RunRecord;
use crate::ui::Ui;

/// The identity of the target, `None` for a run without one.
pub(super) async fn identity_of(
    target: Option<&TargetSpec>,
    ui: &Ui,
) -> Result<Option<String>, ExecError> {
    let Some(t) = target else {
        return Ok(None);
    };
    identity(t).await.map(Some).map_err(|e| {
        ui.error(
            &format!("cannot tell which database {} is: {e}", t.describe()),
            Some("a run is bound to the database it runs on; runbook must reach it to know it"),
        );
        ExecError::Internal
    })
}

/// Refuses when the run recorded the database it started on and `target` is another one. A run
/// started before runbook recorded identities has nothing to compare with.
/// `started` is the run's `run_started` data (`inputs::started_data`).
pub(super) async fn check_same_target(
    started: Option<&serde_json::Value>,
    record: &RunRecord,
    target: Option<&TargetSpec>,
    ui: &Ui,
) -> Result<(), ExecError> {
    let recorded = started.and_then(|d| {
        d.get("target_identity")
            .and_then(|v| v.as_str().map(str::to_owned))
    });
    let Some(recorded) = recorded else {
        return Ok(());
    };
    let now = identity_of(target, ui).await?;
    if now.as_deref() == Some(recorded.as_str()) {
        return Ok(());
    }
    ui.error(
        &format!(
            "run {} started on {recorded}, and the target now is {}: a run continues only on the database it started on",
            record.id,
            now.as_deref().unwrap_or("no database")
        ),
        Some("give `--target` (or set the environment's URL variable) to the database the run started on; for this database, start a new run"),
    );
    Err(ExecError::Refused)
}
