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
    decide(ui, root, req, verbose)
}

/// Records the decision. A cancellation that ended the run (the gate refused it, as it must)
/// succeeded: exit 0; a cancellation refused or not confirmed did not.
fn decide(ui: &Ui, root: &Path, req: exec::DecisionRequest, verbose: bool) -> Exit {
    init_tracing(verbose);
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let cancelling = req.cancel;
    block_on(ui, async {
        let cancel = interrupt_channel(ui);
        match exec::decide(&project, req, ui, cancel).await {
            Ok(crate::outcome::Outcome::Refused { .. }) if cancelling => Exit::Ok,
            other => Exit::from(other),
        }
    })
}
