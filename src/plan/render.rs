//! Rendering at plan time: the template context (secrets masked, run facts unknown), and
//! arguments rendered where they can be, deferred where only a run knows their value.

use super::MASK;
use super::params::ParamValue;
use crate::diagnostic::Diagnostic;
use crate::project::Playbook;
use crate::template;
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;

/// The template context a plan renders with: secrets masked, run facts unknown.
pub(super) fn context(
    params: &BTreeMap<String, ParamValue>,
    env: &str,
    target: &str,
    protected: bool,
    vars: &Map<String, Json>,
) -> Json {
    let shown: Map<String, Json> = params
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if v.secret {
                    Json::String(MASK.into())
                } else {
                    v.value.clone()
                },
            )
        })
        .collect();
    json!({
        "params": shown,
        "env": { "name": env, "target": target, "protected": protected },
        "vars": vars,
    })
}

/// Whether a template reads something only a run knows.
pub(super) fn is_runtime(vars: &std::collections::BTreeSet<String>) -> bool {
    vars.iter().any(|v| {
        let root = v.split('.').next().unwrap_or_default();
        matches!(root, "steps" | "run" | "result")
    })
}

/// An action argument with its templates rendered; `path` is where it is in the arguments.
pub(super) fn render_value(
    v: &Json,
    ctx: &Json,
    path: &mut Vec<String>,
    deferred: &mut Vec<String>,
    diags: &mut Vec<Diagnostic>,
    playbook: &Playbook,
    step_id: &str,
) -> Json {
    match v {
        Json::String(s) if template::is_template(s) => {
            let runtime = template::template_vars(s)
                .map(|vars| is_runtime(&vars))
                .unwrap_or(false);
            // SQL text is never rendered: values reach it only as bound parameters.
            let is_sql_text = path.len() == 1 && path[0] == "query";
            if runtime || is_sql_text {
                deferred.push(path.join("."));
                return v.clone();
            }
            match template::render(s, ctx) {
                Ok(out) => Json::String(out),
                Err(e) => {
                    diags.push(
                        Diagnostic::error(
                            "render",
                            format!("step `{step_id}`: cannot render `{s}`: {e}"),
                        )
                        .in_file(playbook.source.display_path())
                        .with_hint("check the parameter values given with `--var`"),
                    );
                    v.clone()
                }
            }
        }
        Json::Array(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    path.push(i.to_string());
                    let out = render_value(item, ctx, path, deferred, diags, playbook, step_id);
                    path.pop();
                    out
                })
                .collect(),
        ),
        Json::Object(m) => Json::Object(
            m.iter()
                .map(|(k, item)| {
                    path.push(k.clone());
                    let out = render_value(item, ctx, path, deferred, diags, playbook, step_id);
                    path.pop();
                    (k.clone(), out)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}
