//! `runbook approve`, `runbook reject` and `runbook cancel`: a decision on a waiting run's gate.

use super::args::{ApproveArgs, CancelArgs, RejectArgs};
use super::runtime::{block_on, init_tracing, interrupt_channel, open};
use crate::exec;
use crate::exit::Exit;
use crate::ui::Ui;
use std::path::Path;

pub(super) fn approve(ui: &Ui, root: &Path, args: ApproveArgs, verbose: bool) -> Exit {
    let req = exec::DecisionRequest {
        run_id: args.run,
        gate: args.gate,
        approve: true,
        comment: args.comment,
        actor: args.actor,
        state: args.state,
        target: args.target,
        yes: args.yes,
        key: args.key,
        ..Default::default()
    };
    decide(ui, root, req, verbose)
}

pub(super) fn reject(ui: &Ui, root: &Path, args: RejectArgs, verbose: bool) -> Exit {
    let req = exec::DecisionRequest {
        run_id: args.run,
        gate: args.gate,
        approve: false,
        comment: args.comment,
        actor: args.actor,
        state: args.state,
        target: args.target,
        confirm: None,
        yes: args.yes,
        key: args.key,
        cancel: false,
    };
    decide(ui, root, req, verbose)
}

/// `runbook cancel`: a rejection at the gate the run waits at, by anyone, with a reason. The
/// run ending refused is what was asked for (exit 0); a rollback that failed is exit 1.
pub(super) fn cancel(ui: &Ui, root: &Path, args: CancelArgs, verbose: bool) -> Exit {
    let req = exec::DecisionRequest {
        run_id: args.run,
        cancel: true,
        comment: Some(args.reason),
        actor: args.actor,
        state: args.state,
        target: args.target,
        yes: args.yes,
        ..Default::default()
    };
    match decide(ui, root, req, verbose) {
        Exit::Refused => Exit::Ok,
        other => other,
    }
}

fn decide(ui: &Ui, root: &Path, req: exec::DecisionRequest, verbose: bool) -> Exit {
    init_tracing(verbose);
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    block_on(ui, async {
        let cancel = interrupt_channel(ui);
        Exit::from(exec::decide(&project, req, ui, cancel).await)
    })
}
