//! `copy`: being built (issue 8). Until `READY` is true, `runbook run` refuses playbooks
//! with this action before anything runs, so this placeholder is never reached by a run.

use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::CopyAction;

/// Whether this version executes `copy` steps.
pub const READY: bool = false;

pub async fn run(_a: &CopyAction, _ctx: &mut ActionCtx<'_>) -> StepResult {
    Err(StepError::Failed("`copy` steps cannot run in this version".to_owned()))
}
