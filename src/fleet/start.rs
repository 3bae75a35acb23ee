//! `runbook run NAME --env ENV --targets SELECTOR`: picks the targets, records the fleet run,
//! and runs one child per target.

use super::child::{ChildArgs, Job, run_args};
use super::options::FleetOptions;
use super::outcome::{FleetOutcome, finish};
use super::targets::{address, select, targets};
use crate::config::ConfigDef;
use crate::run;
use crate::state::{FleetRecord, StateStore};
use crate::ui::Ui;
use std::path::Path;

/// `runbook run NAME --env ENV --targets SELECTOR`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ui: &Ui,
    state: &StateStore,
    root: &Path,
    config: &ConfigDef,
    playbook: &str,
    env: &str,
    selector: &str,
    opts: &FleetOptions,
    child: &ChildArgs,
) -> FleetOutcome {
    let all = match targets(root, config, env) {
        Ok(t) => t,
        Err(e) => {
            ui.error(&e, None);
            return FleetOutcome::Invalid;
        }
    };
    let picked = select(&all, selector);
    if picked.is_empty() {
        ui.error(
            &format!("`{selector}` selects no target of environment `{env}`"),
            Some(&format!(
                "targets: {}",
                all.iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
        return FleetOutcome::Invalid;
    }
    let fleet_id = format!("fleet-{}", run::new_run_id());
    // Every target's address before the fleet is recorded: a fleet that cannot start them all
    // starts none, and leaves no record `running` with every target pending.
    let mut jobs = Vec::new();
    for t in &picked {
        let address = match address(t, root) {
            Ok(a) => a,
            Err(e) => {
                ui.error(&e, None);
                return FleetOutcome::Invalid;
            }
        };
        jobs.push(Job {
            target: t.name.clone(),
            args: run_args(child, playbook, env, &fleet_id, &t.name),
            address,
        });
    }
    let record = FleetRecord {
        id: fleet_id.clone(),
        playbook: playbook.to_owned(),
        env: env.to_owned(),
        selector: selector.to_owned(),
        options: serde_json::json!({"concurrency": opts.concurrency, "canary": opts.canary, "stop_after": opts.stop_after.map(|s| s.to_string()),
            "vars": child.vars, "approve": child.approve}),
        targets: picked.iter().map(|t| t.name.clone()).collect(),
        operator: run::operator(),
        status: "running".to_owned(),
        started_at: run::now_ms(),
    };
    if let Err(e) = state.create_fleet(&record).await {
        ui.error(&e.to_string(), None);
        return FleetOutcome::StoreFailed;
    }
    ui.note(&format!(
        "fleet {fleet_id}: {playbook} on {} of {env} (concurrency {}, canary {})",
        crate::fmt::plural(picked.len(), "target", "targets"),
        opts.concurrency,
        opts.canary
    ));
    finish((ui, state, root), &fleet_id, jobs, opts).await
}
