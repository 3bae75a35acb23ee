//! `log`: a message to the operator and the run's records.

use crate::exec::{ActionCtx, StepResult};
use crate::playbook::{LogAction, LogLevel};
use serde_json::{Map, json};

pub async fn run(a: &LogAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    let message = ctx.redactor.redact(&a.message);
    let level = match a.level {
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    ctx.progress.note(&format!("[{level}] {message}"));
    let mut outputs = Map::new();
    outputs.insert("message".to_owned(), json!(message));
    Ok(outputs)
}
