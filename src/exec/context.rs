//! The run context: what templates and expressions of a step see (its scope's params, the
//! outputs of earlier steps, the environment, its variables, the run), and the outputs a step
//! declares with `outputs:`.

use super::units::Scope;
use crate::playbook::{Action, OutputSource, Step};
use crate::redact::Redactor;
use crate::run::{self, RunRecord};
use crate::template;
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeSet;

/// The template context of a run, per scope.
pub(super) struct RunContext {
    env: Json,
    vars: Json,
    run: Json,
    scopes: Vec<Scope>,
}

impl RunContext {
    pub fn new(env: Json, vars: Json, record: &RunRecord, scopes: Vec<Scope>) -> Self {
        let run = json!({
            "id": record.id, "operator": record.operator, "playbook": record.playbook,
            "started_at": run::format_ms(record.started_at),
        });
        RunContext {
            env,
            vars,
            run,
            scopes,
        }
    }

    /// The whole context of a scope: its params and every earlier output.
    pub fn full(&mut self, scope: usize, redactor: &Redactor) -> Result<Json, String> {
        self.for_step(scope, None, redactor)
    }

    /// The context with only the step outputs `wanted` (all when `None`): copying every earlier
    /// output for every step would make a long playbook quadratic.
    pub fn for_step(
        &mut self,
        scope: usize,
        wanted: Option<&BTreeSet<String>>,
        redactor: &Redactor,
    ) -> Result<Json, String> {
        self.ensure_params(scope, redactor)?;
        let s = &self.scopes[scope];
        let steps: Map<String, Json> = match wanted {
            None => s.steps.clone(),
            Some(ids) => ids
                .iter()
                .filter_map(|id| s.steps.get(id).map(|v| (id.clone(), v.clone())))
                .collect(),
        };
        Ok(json!({
            "params": s.params.clone().unwrap_or_default(),
            "env": self.env,
            "vars": self.vars,
            "steps": steps,
            "run": self.run,
        }))
    }

    /// Sets what later steps of the scope see of a step: its outputs and status.
    pub fn set_step(&mut self, scope: usize, local: &str, outputs: Json, status: &str) {
        // Moved in, not serialised again as `json!` would.
        let mut step = Map::new();
        step.insert("outputs".to_owned(), outputs);
        step.insert("status".to_owned(), Json::from(status));
        self.scopes[scope]
            .steps
            .insert(local.to_owned(), Json::Object(step));
    }

    /// Renders an include's parameters the first time one of its steps runs.
    fn ensure_params(&mut self, scope: usize, redactor: &Redactor) -> Result<(), String> {
        if self.scopes[scope].params.is_some() {
            return Ok(());
        }
        let Some((given, parent)) = self.scopes[scope].given.clone() else {
            return Ok(());
        };
        let parent_ctx = self.full(parent, redactor)?;
        let def = self.scopes[scope].playbook.def.clone();
        let mut params = Map::new();
        for (name, p) in &def.params {
            let value = match given.get(name) {
                Some(Json::String(s)) if template::is_template(s) => {
                    template::render_native(s, &parent_ctx)?
                }
                Some(v) => v.clone(),
                None => match (&p.from_env, &p.default) {
                    (Some(var), _) if std::env::var(var).is_ok() => {
                        Json::String(std::env::var(var).unwrap_or_default())
                    }
                    (_, Some(d)) => d.clone(),
                    _ => Json::Null,
                },
            };
            if p.secret
                && let Json::String(s) = &value
            {
                redactor.add(s);
            }
            params.insert(name.clone(), value);
        }
        self.scopes[scope].params = Some(params);
        Ok(())
    }
}

/// The ids of the steps a step's templates and expressions read (`steps.<id>...`), or `None`
/// when one reads `steps` as a whole and all must be given.
pub(super) fn referenced_steps(step: &Step) -> Option<BTreeSet<String>> {
    let mut vars = BTreeSet::new();
    let mut exprs: Vec<&str> = step.when.iter().map(String::as_str).collect();
    if let Some(w) = &step.wait_for {
        exprs.push(&w.until);
    }
    if let Some(c) = step.gate.as_ref().and_then(|g| g.condition.as_ref()) {
        exprs.push(&c.expr);
    }
    for e in exprs {
        vars.extend(template::expression_vars(e).ok()?);
    }
    let mut strings = Vec::new();
    let raw = match step.action() {
        Some(Action::Shell(a)) => serde_json::to_value(a).ok(),
        Some(Action::Sql(a)) => serde_json::to_value(a).ok(),
        Some(Action::Log(a)) => serde_json::to_value(a).ok(),
        Some(Action::WaitFor(a)) => serde_json::to_value(a).ok(),
        Some(Action::Http(a)) => serde_json::to_value(a).ok(),
        _ => None,
    };
    match raw {
        Some(v) => collect_templates(&v, &mut strings),
        None => return None,
    }
    for t in strings {
        vars.extend(template::template_vars(&t).ok()?);
    }
    let mut ids = BTreeSet::new();
    for v in vars {
        let mut parts = v.split('.');
        if parts.next() == Some("steps") {
            ids.insert(parts.next()?.to_owned());
        }
    }
    Some(ids)
}

fn collect_templates(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::String(s) if template::is_template(s) => out.push(s.clone()),
        Json::Array(a) => a.iter().for_each(|x| collect_templates(x, out)),
        Json::Object(m) => m.values().for_each(|x| collect_templates(x, out)),
        _ => {}
    }
}

/// Adds the step's declared `outputs:` (regex or JSON path over stdout, stderr or rows).
pub(super) fn extract_outputs(step: &Step, outputs: &mut Map<String, Json>) -> Result<(), String> {
    for (name, spec) in &step.outputs {
        let default = if step.sql.is_some() {
            OutputSource::Rows
        } else {
            OutputSource::Stdout
        };
        let source = match spec.from.unwrap_or(default) {
            OutputSource::Stdout => outputs.get("stdout").cloned().unwrap_or(Json::Null),
            OutputSource::Stderr => outputs.get("stderr").cloned().unwrap_or(Json::Null),
            OutputSource::Rows => outputs.get("rows").cloned().unwrap_or(Json::Null),
        };
        let mut value = source;
        if let Some(path) = &spec.json {
            let parsed = match &value {
                Json::String(s) => serde_json::from_str(s)
                    .map_err(|e| format!("output `{name}`: the text is not JSON: {e}"))?,
                other => other.clone(),
            };
            value = json_path(&parsed, path)
                .ok_or_else(|| format!("output `{name}`: `{path}` is not in the JSON"))?;
        }
        if let Some(re) = &spec.regex {
            value = regex_capture(name, re, &value)?;
        }
        outputs.insert(name.clone(), value);
    }
    Ok(())
}

/// The first capture group of `re` (or the whole match) in a value, as a number when it is one.
fn regex_capture(name: &str, re: &str, value: &Json) -> Result<Json, String> {
    let re = regex::Regex::new(re).map_err(|e| format!("output `{name}`: {e}"))?;
    let text = match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let caps = re
        .captures(&text)
        .ok_or_else(|| format!("output `{name}`: the regex `{}` did not match", re.as_str()))?;
    let m = caps
        .get(1)
        .or_else(|| caps.get(0))
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    Ok(m.parse::<i64>()
        .map(Json::from)
        .or_else(|_| m.parse::<f64>().map(Json::from))
        .unwrap_or(Json::String(m)))
}

/// `items.0.name` into a JSON value.
fn json_path(v: &Json, path: &str) -> Option<Json> {
    let mut cur = v;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = match cur {
            Json::Object(m) => m.get(seg)?,
            Json::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur.clone())
}
