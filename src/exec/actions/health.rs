//! `health`: being built (issue 6). Until `READY` is true, `runbook run` refuses playbooks
//! with this action before anything runs, so this placeholder is never reached by a run.

use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::HealthAction;

/// Whether this version executes `health` steps.
pub const READY: bool = false;

pub async fn run(_a: &HealthAction, _ctx: &mut ActionCtx<'_>) -> StepResult {
    Err(StepError::Failed("`health` steps cannot run in this version".to_owned()))
}
