//! A run continues only on the database it started on. The target's identity (`db::identity`:
//! PostgreSQL's cluster and database oid, a SQLite file's real path) is recorded in the run's
//! `run_started` event; `resume` and `approve` compare the target they were given now (by
//! `--target` or the environment's variable, which may have changed since) with it.

use super::ExecError;
use crate::db::TargetSpec;
use crate::db::identity::{Probe, probe};
use crate::run::RunRecord;
use crate::ui::Ui;

/// The identity of the target (and its server's version, and with `keep` the connection it
/// was read on), `None` for a run without one.
pub(super) async fn identity_of(
    target: Option<&TargetSpec>,
    keep: bool,
    ui: &Ui,
) -> Result<Option<Probe>, ExecError> {
    let Some(t) = target else {
        return Ok(None);
    };
    probe(t, keep).await.map(Some).map_err(|e| {
        if let Some(hint) = e.hint {
            ui.error(
                &format!("cannot connect to {}: {e}", t.describe()),
                Some(hint),
            );
            return ExecError::Environment;
        }
        ui.error(
            &format!("cannot tell which database {} is: {e}", t.describe()),
            Some("a run is bound to the database it runs on; runbook must reach it to know it"),
        );
        ExecError::Internal
    })
}

/// The database the run recorded at its start (`started` is its `run_started` data,
/// `inputs::started_data`); `None` for a run without a target, or one started before runbook
/// recorded identities.
pub(super) fn recorded_identity(started: Option<&serde_json::Value>) -> Option<String> {
    started.and_then(|d| {
        d.get("target_identity")
            .and_then(|v| v.as_str().map(str::to_owned))
    })
}

/// Refuses when the run recorded the database it started on and `target` is another one. A run
/// started before runbook recorded identities has nothing to compare with. Gives the recorded
/// identity, which the rebuilt plan is bound to.
pub(super) async fn check_same_target(
    started: Option<&serde_json::Value>,
    record: &RunRecord,
    target: Option<&TargetSpec>,
    ui: &Ui,
) -> Result<Option<String>, ExecError> {
    let Some(recorded) = recorded_identity(started) else {
        return Ok(None);
    };
    let now = identity_of(target, false, ui).await?.map(|p| p.identity);
    if now.as_deref() == Some(recorded.as_str()) {
        return Ok(Some(recorded));
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
