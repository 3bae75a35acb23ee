//! `seed`: being built (issue 6). Until `READY` is true, `runbook run` refuses playbooks
//! with this action before anything runs, so this placeholder is never reached by a run.

use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::SeedAction;

/// Whether this version executes `seed` steps.
pub const READY: bool = false;

pub async fn run(_a: &SeedAction, _ctx: &mut ActionCtx<'_>) -> StepResult {
    Err(StepError::Failed("`seed` steps cannot run in this version".to_owned()))
}
