//! `runbook run` and `runbook resume`: one target here, or a fleet through `super::fleet`.

use super::args::{ResumeArgs, RunArgs};
use super::fleet::{fleet_cmd, fleet_resume_cmd};
use super::runtime::{block_on, init_tracing, interrupt_channel, load, open};
use crate::exec;
use crate::exit::Exit;
use crate::ui::Ui;
use std::path::Path;

/// The target: `--target`, else the variable named by `--target-env` (how fleets hand
/// targets to their child runs).
fn target_from(target: Option<String>, target_env: Option<String>) -> Option<String> {
    match (target, target_env) {
        (Some(t), _) => Some(t),
        (None, Some(var)) => std::env::var(&var).ok(),
        (None, None) => None,
    }
}

pub(super) fn run(ui: &Ui, root: &Path, args: RunArgs, verbose: bool) -> Exit {
    let req = exec::RunRequest {
        playbook: args.playbook,
        env: args.env,
        vars: args.vars,
        tags: args.tags,
        skip_tags: args.skip_tags,
        target: target_from(args.target, args.target_env),
        state: args.state,
        lock_wait: args.lock_wait,
        approve: args.approve,
        confirm: args.confirm,
        fleet: args.fleet.zip(args.fleet_target),
        emergency: args.emergency,
        key: args.key,
    };
    match args.targets {
        Some(selector) => {
            let opts = crate::fleet::FleetOptions {
                concurrency: usize::from(args.concurrency),
                canary: args.canary,
                stop_after: args.stop_after,
            };
            fleet_cmd(ui, root, req, &selector, &opts)
        }
        None => {
            let started = chrono::Utc::now();
            let (playbook, env) = (req.playbook.clone(), req.env.clone());
            let exit = run_one(ui, root, req, verbose);
            match args.textfile {
                Some(file) => write_textfile(ui, &file, &playbook, &env, started, exit),
                None => exit,
            }
        }
    }
}

pub(super) fn resume(ui: &Ui, root: &Path, args: ResumeArgs, verbose: bool) -> Exit {
    let req = exec::ResumeRequest {
        run_id: args.run,
        retry_steps: args.retry_steps,
        skip_steps: args.skip_steps,
        vars: args.vars,
        target: target_from(args.target, args.target_env),
        state: args.state,
        lock_wait: args.lock_wait,
        confirm: args.confirm,
        key: args.key,
    };
    if req.run_id.starts_with("fleet-") {
        let given = (
            args.concurrency.map(usize::from),
            args.canary,
            args.stop_after,
        );
        fleet_resume_cmd(ui, root, req, given)
    } else {
        resume_one(ui, root, req, verbose)
    }
}

fn run_one(ui: &Ui, root: &Path, req: exec::RunRequest, verbose: bool) -> Exit {
    init_tracing(verbose);
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(playbook) = load(ui, &project, &req.playbook) else {
        return Exit::Invalid;
    };
    block_on(ui, async {
        let cancel = interrupt_channel(ui);
        Exit::from(exec::run(&project, playbook, req, ui, cancel).await)
    })
}

fn resume_one(ui: &Ui, root: &Path, req: exec::ResumeRequest, verbose: bool) -> Exit {
    init_tracing(verbose);
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    block_on(ui, async {
        let cancel = interrupt_channel(ui);
        Exit::from(exec::resume(&project, req, ui, cancel).await)
    })
}

/// The run's outcome as metrics in `file`, whatever it was; a file that cannot be written is
/// an error after the run (its own outcome stands in the state store and the audit log).
fn write_textfile(
    ui: &Ui,
    file: &Path,
    playbook: &str,
    environment: &str,
    started: chrono::DateTime<chrono::Utc>,
    exit: Exit,
) -> Exit {
    let secs = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1000.0;
    let facts = crate::metrics::run::RunFacts {
        playbook,
        environment,
        exit_code: Some(exit.code()),
        started_secs: secs(started),
        finished_secs: Some(secs(chrono::Utc::now())),
    };
    let text = crate::metrics::render(&crate::metrics::run::families(&facts));
    match crate::metrics::write_textfile(file, &text) {
        Ok(()) => exit,
        Err(e) => {
            ui.error(
                &format!("cannot write the metrics file {}: {e}", file.display()),
                Some("give --textfile a file in a folder runbook may write to"),
            );
            if exit == Exit::Ok {
                Exit::Internal
            } else {
                exit
            }
        }
    }
}
