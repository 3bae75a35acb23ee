//! `runbook approve` and `runbook reject`: a decision on a waiting run's gate.

use super::args::{ApproveArgs, RejectArgs};
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
    };
    decide(ui, root, req, verbose)
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
