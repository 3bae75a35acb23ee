//! `runbook resume FLEET`: resumes the targets whose run can be resumed, starts again those
//! that failed or never started, and leaves the succeeded ones alone.

use super::child::{ChildArgs, Job, resume_args, run_args};
use super::options::FleetOptions;
use super::outcome::{FleetOutcome, finish};
use super::targets::{address, targets};
use crate::config::ConfigDef;
use crate::state::{FleetRecord, StateStore};
use crate::ui::Ui;
use std::path::Path;

/// `runbook resume FLEET`: resumes the targets whose run can be resumed, starts again those that
/// failed or never started, and leaves the succeeded ones alone.
pub async fn resume(
    ui: &Ui,
    state: &StateStore,
    root: &Path,
    config: &ConfigDef,
    fleet: FleetRecord,
    opts: &FleetOptions,
    child: &ChildArgs,
) -> FleetOutcome {
    let all = match targets(root, config, &fleet.env) {
        Ok(t) => t,
        Err(e) => {
            ui.error(&e, None);
            return FleetOutcome::Invalid;
        }
    };
    let rows = match state.fleet_targets(&fleet.id).await {
        Ok(r) => r,
        Err(e) => {
            ui.error(&e.to_string(), None);
            return FleetOutcome::StoreFailed;
        }
    };
    let mut jobs = Vec::new();
    for name in &fleet.targets {
        let Some(row) = rows.iter().find(|r| &r.target == name) else {
            continue;
        };
        let (run_id, status) = (&row.run_id, &row.status);
        if status == "succeeded" {
            continue;
        }
        let Some(t) = all.iter().find(|t| &t.name == name) else {
            ui.error(
                &format!("fleet target `{name}` is no longer in runbook.yaml"),
                None,
            );
            return FleetOutcome::Invalid;
        };
        let address = match address(t, root) {
            Ok(a) => a,
            Err(e) => {
                ui.error(&e, None);
                return FleetOutcome::Invalid;
            }
        };
        let resumable = match run_id {
            Some(id) => state
                .load_run(id)
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.status.resumable()),
            None => false,
        };
        let args = match (resumable, run_id) {
            (true, Some(id)) => resume_args(child, id),
            _ => run_args(child, &fleet.playbook, &fleet.env, &fleet.id, name),
        };
        jobs.push(Job {
            target: name.clone(),
            args,
            address,
        });
    }
    if jobs.is_empty() {
        ui.note(&format!(
            "fleet {}: every target already succeeded",
            fleet.id
        ));
        return FleetOutcome::Succeeded;
    }
    ui.note(&format!(
        "fleet {}: resuming {}",
        fleet.id,
        crate::fmt::plural(jobs.len(), "unfinished target", "unfinished targets")
    ));
    finish((ui, state, root), &fleet.id, jobs, opts).await
}
