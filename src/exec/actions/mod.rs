//! The actions, one file each. `render_args` renders a step's arguments for this moment of the
//! run; `execute` runs the action on them.

pub mod backup;
pub mod copy;
pub mod ctx;
mod find_backup;
pub mod health;
mod http;
mod log;
mod maintain;
pub mod migrate;
pub mod restore;
pub mod seed;
mod shell;
mod sql;
mod wait_for;

use crate::playbook::{Action, Step};
use crate::template;
use ctx::{ActionCtx, StepError, StepResult};
use serde_json::Value as Json;

/// The step's action payload with every template rendered. SQL text and the `until`
/// expression of `wait_for` are left as written; SQL parameters keep their types.
pub fn render_args(step: &Step, ctx: &Json) -> Result<Json, String> {
    let Some(action) = step.action() else {
        return Err("the step has no action".to_owned());
    };
    let raw = action.to_json().map_err(|e| e.to_string())?;
    render(&raw, ctx, action.key(), &mut Vec::new())
}

/// A health step's `baseline` template, rendered to a map of table to row count. Anything
/// else fails the step: a baseline that silently compared nothing would pass a lost table.
fn row_baseline(text: &str, ctx: &Json) -> Result<Json, String> {
    match template::render_native(text, ctx)? {
        Json::Object(m) if m.values().all(|n| n.as_u64().is_some()) => Ok(Json::Object(m)),
        Json::Object(_) => Err(format!(
            "`baseline` ({text}) gave a map whose values are not all row counts"
        )),
        Json::Null => Err(format!(
            "`baseline` ({text}) gave nothing: the step it reads did not run or has no such output"
        )),
        other => Err(format!(
            "`baseline` ({text}) gave `{other}`, not a map of table to row count"
        )),
    }
}

fn render(v: &Json, ctx: &Json, action: &str, path: &mut Vec<String>) -> Result<Json, String> {
    Ok(match v {
        Json::String(s) if template::is_template(s) => {
            let field = path.first().map(String::as_str);
            match (action, field) {
                ("sql", Some("query")) | ("wait_for", Some("until" | "sql")) => v.clone(),
                ("sql", Some("params")) => template::render_native(s, ctx)?,
                ("health", Some("baseline")) => row_baseline(s, ctx)?,
                ("http", Some("headers"))
                    if path.len() == 2 && crate::playbook::is_credential_header(&path[1]) =>
                {
                    let value = template::render(s, ctx)?;
                    crate::redact::global().add(&value);
                    Json::String(value)
                }
                _ => Json::String(template::render(s, ctx)?),
            }
        }
        // A credential header's value joins the redactor before the arguments are logged or
        // recorded (the http action adds it again; adding is idempotent).
        Json::String(s)
            if action == "http"
                && path.len() == 2
                && path[0] == "headers"
                && crate::playbook::is_credential_header(&path[1]) =>
        {
            crate::redact::global().add(s);
            v.clone()
        }
        Json::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                out.push(render(item, ctx, action, path)?);
                path.pop();
            }
            Json::Array(out)
        }
        Json::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, item) in m {
                path.push(k.clone());
                out.insert(k.clone(), render(item, ctx, action, path)?);
                path.pop();
            }
            Json::Object(out)
        }
        other => other.clone(),
    })
}

fn parse<T: serde::de::DeserializeOwned>(rendered: &Json) -> Result<T, StepError> {
    serde_json::from_value(rendered.clone())
        .map_err(|e| StepError::Failed(format!("rendered arguments are invalid: {e}")))
}

/// Runs the step's action with its rendered arguments, under the step's timeout.
pub async fn execute(step: &Step, rendered: &Json, ctx: &mut ActionCtx<'_>) -> StepResult {
    let Some(action) = step.action() else {
        return Err(StepError::Failed("the step has no action".to_owned()));
    };
    let timeout = ctx.timeout;
    let fut = async {
        match action {
            Action::Shell(_) => shell::run(&parse(rendered)?, ctx).await,
            Action::Sql(_) => sql::run(&parse(rendered)?, ctx).await,
            Action::Log(_) => log::run(&parse(rendered)?, ctx).await,
            Action::WaitFor(_) => wait_for::run(&parse(rendered)?, ctx).await,
            Action::Migrate(_) => migrate::run(&parse(rendered)?, ctx).await,
            Action::Backup(_) => backup::run(&parse(rendered)?, ctx).await,
            Action::Restore(_) => restore::run(&parse(rendered)?, ctx).await,
            Action::FindBackup(_) => find_backup::run(&parse(rendered)?, ctx).await,
            Action::Seed(_) => seed::run(&parse(rendered)?, ctx).await,
            Action::Health(_) => health::run(&parse(rendered)?, ctx).await,
            Action::Copy(_) => copy::run(&parse(rendered)?, ctx).await,
            Action::Http(_) => http::run(&parse(rendered)?, ctx).await,
            Action::Vacuum(_) => maintain::vacuum(&parse(rendered)?, ctx).await,
            Action::Reindex(_) => maintain::reindex(&parse(rendered)?, ctx).await,
            // Gates and includes are run by the engine itself, never through here.
            other => Err(StepError::Failed(format!(
                "`{}` steps are run by the engine",
                other.key()
            ))),
        }
    };
    // Shell enforces its own timeout (it must kill the process tree); others are bounded here.
    match (timeout, action) {
        (Some(t), Action::Sql(_) | Action::WaitFor(_) | Action::Log(_) | Action::Http(_)) => {
            match tokio::time::timeout(t, fut).await {
                Ok(r) => r,
                Err(_) => Err(StepError::Failed(format!(
                    "timed out after {}",
                    crate::fmt::duration(t)
                ))),
            }
        }
        _ => fut.await,
    }
}
