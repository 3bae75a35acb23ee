//! `backup`: being built (issue 6). Until `READY` is true, `runbook run` refuses playbooks
//! with this action before anything runs, so this placeholder is never reached by a run.

use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::BackupAction;

/// Whether this version executes `backup` steps.
pub const READY: bool = false;

pub async fn run(_a: &BackupAction, _ctx: &mut ActionCtx<'_>) -> StepResult {
    Err(StepError::Failed("`backup` steps cannot run in this version".to_owned()))
}
