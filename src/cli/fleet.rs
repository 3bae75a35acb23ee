//! `runbook run --targets` and `runbook resume fleet-...`: a fleet run over the
//! environment's targets, each target a child `runbook run`.

use super::runtime::{block_on, load, open, open_state};
use crate::exec;
use crate::exit::Exit;
use crate::fleet::{ChildArgs, FleetOptions, FleetOutcome, StopAfter};
use crate::ui::Ui;
use std::path::Path;

/// The options every child run gets, whatever its target.
fn child_args(
    root: &Path,
    state: Option<&str>,
    vars: &[(String, String)],
    approve: &[String],
    lock_wait: std::time::Duration,
) -> ChildArgs {
    ChildArgs {
        root: root.display().to_string(),
        state: state.map(str::to_owned),
        vars: vars.to_vec(),
        approve: approve.to_vec(),
        lock_wait: format!("{}ms", lock_wait.as_millis()),
    }
}

/// The exit code of a fleet run or resume.
fn fleet_exit(outcome: FleetOutcome) -> Exit {
    match outcome {
        FleetOutcome::Succeeded => Exit::Ok,
        FleetOutcome::Failed => Exit::RunFailed,
        FleetOutcome::Waiting => Exit::WaitingApproval,
        FleetOutcome::Interrupted => Exit::Interrupted,
        FleetOutcome::Invalid => Exit::Invalid,
        FleetOutcome::StoreFailed => Exit::Internal,
    }
}

pub(super) fn fleet_cmd(
    ui: &Ui,
    root: &Path,
    req: exec::RunRequest,
    selector: &str,
    opts: &FleetOptions,
) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    // Validate once here, not twenty times in the children.
    let Some(_) = load(ui, &project, &req.playbook) else {
        return Exit::Invalid;
    };
    let Some(config) = project.config_def() else {
        ui.error(
            "fleets are defined in runbook.yaml, and there is none",
            Some("list the targets under `environments.<env>.targets`"),
        );
        return Exit::Invalid;
    };
    block_on(ui, async {
        let store = match open_state(ui, &project, req.state.as_deref()).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        let child = child_args(
            &project.root,
            req.state.as_deref(),
            &req.vars,
            &req.approve,
            req.lock_wait,
        );
        let outcome = crate::fleet::run(
            ui,
            &store,
            &project.root,
            config,
            &req.playbook,
            &req.env,
            selector,
            opts,
            &child,
        )
        .await;
        store.close().await;
        fleet_exit(outcome)
    })
}

pub(super) fn fleet_resume_cmd(
    ui: &Ui,
    root: &Path,
    req: exec::ResumeRequest,
    (concurrency, canary, stop_after): (Option<usize>, Option<usize>, Option<StopAfter>),
) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(config) = project.config_def() else {
        ui.error(
            "fleets are defined in runbook.yaml, and there is none",
            None,
        );
        return Exit::Invalid;
    };
    block_on(ui, async {
        let store = match open_state(ui, &project, req.state.as_deref()).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        let fleet = match store.load_fleet(&req.run_id).await {
            Ok(Some(f)) => f,
            _ => {
                ui.error(
                    &format!("no fleet run `{}` in the state store", req.run_id),
                    None,
                );
                return Exit::Invalid;
            }
        };
        let vars: Vec<(String, String)> =
            serde_json::from_value(fleet.options["vars"].clone()).unwrap_or_default();
        let approve: Vec<String> =
            serde_json::from_value(fleet.options["approve"].clone()).unwrap_or_default();
        let child = child_args(
            &project.root,
            req.state.as_deref(),
            &vars,
            &approve,
            req.lock_wait,
        );
        let opts = FleetOptions::resumed(&fleet.options, concurrency, canary, stop_after);
        let outcome =
            crate::fleet::resume(ui, &store, &project.root, config, fleet, &opts, &child).await;
        store.close().await;
        fleet_exit(outcome)
    })
}
