//! `wait_for`: polls a query or a program until an expression over its result holds, or the
//! deadline passes.

use crate::cancel::wait_cancel;
use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::WaitForAction;
use crate::process::{self, ProcessError, ProcessSpec};
use crate::template;
use serde_json::{Map, Value as Json, json};
use std::time::{Duration, Instant};

pub async fn run(a: &WaitForAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    let interval = a
        .interval
        .as_ref()
        .and_then(|d| d.parse())
        .unwrap_or(Duration::from_secs(1));
    let deadline = a.deadline.parse().unwrap_or(Duration::from_secs(60));
    let started = Instant::now();
    let mut attempts = 0u64;
    let mut last: Json;
    let mut cancel = ctx.cancel.clone();
    loop {
        attempts += 1;
        last = match (&a.sql, &a.argv) {
            (Some(query), _) => {
                let db = ctx.db().await?;
                match db.execute(query, &[], true).await {
                    Ok(r) => r
                        .rows
                        .first()
                        .and_then(|row| r.columns.first().and_then(|c| row.get(c)).cloned())
                        .unwrap_or(Json::Null),
                    Err(e) => json!({"error": ctx.redactor.redact(&crate::db::describe(&e))}),
                }
            }
            (None, Some(argv)) => {
                let spec = ProcessSpec {
                    argv: argv.clone(),
                    cwd: ctx.root.to_path_buf(),
                    env: Default::default(),
                    timeout: Some(interval.max(Duration::from_secs(1)) * 10),
                };
                match process::run(&spec, &mut cancel).await {
                    Ok(out) => json!(out.code),
                    Err(ProcessError::Interrupted) => return Err(StepError::Interrupted),
                    Err(e) => json!({"error": e.to_string()}),
                }
            }
            (None, None) => {
                return Err(StepError::Failed(
                    "`wait_for` needs `sql` or `argv`".to_owned(),
                ));
            }
        };
        let mut tctx = ctx.template_ctx.clone();
        if let Json::Object(m) = &mut tctx {
            m.insert("result".to_owned(), last.clone());
        }
        match template::eval_bool(&a.until, &tctx) {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                return Err(StepError::Failed(format!(
                    "cannot evaluate `until: {}`: {e}",
                    a.until
                )));
            }
        }
        if started.elapsed() + interval > deadline {
            return Err(StepError::Failed(ctx.redactor.redact(&format!(
                "`{}` did not hold within {} ({attempts} polls; last result {last})",
                a.until,
                crate::fmt::duration(deadline)
            ))));
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = wait_cancel(&mut cancel) => return Err(StepError::Interrupted),
        }
    }
    let mut outputs = Map::new();
    outputs.insert("result".to_owned(), last);
    outputs.insert("attempts".to_owned(), json!(attempts));
    Ok(outputs)
}
