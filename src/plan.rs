//! Planning: a validated playbook, an environment and variables become a [`Plan`], the ordered
//! list of what a run would do with every argument rendered that can be rendered before the
//! run starts. Templates that read step outputs or run facts stay as written and are marked
//! as resolved at run time. Secrets show as `***`.
//!
//! Invariant: planning does no IO. It reads only the already-loaded playbook and config and
//! the process environment (for `from_env` parameters).

use crate::config::ConfigDef;
use crate::diagnostic::{Diagnostic, article, did_you_mean};
use crate::playbook::{Action, Param, ParamType, PlaybookDef, Retry, Step};
use crate::project::Playbook;
use crate::template;
use serde::Serialize;
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The mask shown in place of a secret.
pub const MASK: &str = "***";

/// A parameter value and whether it is secret.
#[derive(Debug, Clone)]
pub struct ParamValue {
    pub value: Json,
    pub secret: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub playbook: String,
    pub file: String,
    pub content_hash: String,
    pub environment: String,
    pub target: String,
    pub protected: bool,
    /// Parameters as shown: secrets masked.
    pub params: BTreeMap<String, Json>,
    pub steps: Vec<PlannedStep>,
    pub on_failure: Vec<PlannedStep>,
    #[serde(rename = "finally")]
    pub finally_steps: Vec<PlannedStep>,
    /// Step ids that are gates, in order.
    pub gates: Vec<String>,
    /// Step ids after which the run state is checkpointed.
    pub checkpoints: Vec<String>,
    /// sha256 of the plan's canonical JSON (without this field); approvals bind to it.
    pub plan_hash: String,
    /// The parameter values, secrets included, for the run that executes this plan. Never
    /// serialized: not shown, not hashed.
    #[serde(skip)]
    pub values: BTreeMap<String, ParamValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: &'static str,
    /// The action's arguments with templates rendered where possible.
    pub args: Json,
    /// Argument paths whose templates are rendered only at run time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// `Some(false)` when `when` is already known to be false: the step will be skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub will_run: Option<bool>,
    pub gate: bool,
    pub destructive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_error: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollback: Vec<PlannedStep>,
    /// The steps of an included playbook.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<PlannedStep>,
    /// An included playbook's `on_failure` steps (run when one of its steps fails).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<PlannedStep>,
    /// An included playbook's `finally` steps (run after its last step, or on a failure in it).
    #[serde(rename = "finally", skip_serializing_if = "Vec::is_empty")]
    pub finally_steps: Vec<PlannedStep>,
}

/// What a plan is made for.
pub struct PlanRequest<'a> {
    pub env: &'a str,
    pub vars: &'a [(String, String)],
    /// A `--target` given on the command line (shown redacted).
    pub target_override: Option<&'a str>,
}

/// Splits `k=v` command-line variables.
pub fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("`{text}` is not `name=value`")),
    }
}

/// Resolves parameter values: `--var`, then `from_env`, then the default.
pub fn resolve_params(
    def: &PlaybookDef,
    vars: &[(String, String)],
    env_lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, ParamValue>, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    for (k, _) in vars {
        if !def.params.contains_key(k) {
            let hint = match did_you_mean(k, def.params.keys().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None if def.params.is_empty() => format!("`{}` takes no parameters", def.name),
                None => format!(
                    "`{}` takes: {}",
                    def.name,
                    def.params.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            diags.push(
                Diagnostic::error(
                    "unknown-param",
                    format!("`{}` has no parameter `{k}`", def.name),
                )
                .with_hint(hint),
            );
        }
    }
    let mut out = BTreeMap::new();
    for (name, param) in &def.params {
        let given = vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone());
        let given = given.or_else(|| param.from_env.as_deref().and_then(env_lookup));
        let value = match given {
            Some(text) => match coerce(param, &text) {
                Ok(v) => v,
                Err(e) => {
                    diags.push(
                        Diagnostic::error("invalid-value", format!("parameter `{name}`: {e}"))
                            .with_hint(format!("`{name}` takes {}", article(param.kind.name()))),
                    );
                    continue;
                }
            },
            None => match &param.default {
                Some(d) => d.clone(),
                None if param.required => {
                    let how = match &param.from_env {
                        Some(var) => format!("set `{var}` or pass `--var {name}=...`"),
                        None => format!("pass `--var {name}=...`"),
                    };
                    diags.push(
                        Diagnostic::error(
                            "missing-param",
                            format!("parameter `{name}` is required"),
                        )
                        .with_hint(how),
                    );
                    continue;
                }
                None => Json::Null,
            },
        };
        if let Some(choices) = &param.choices
            && !value.is_null()
            && !choices.contains(&value)
        {
            let shown = if param.secret {
                MASK.to_owned()
            } else {
                value.to_string()
            };
            diags.push(
                Diagnostic::error(
                    "invalid-value",
                    format!("parameter `{name}` is {shown}, not one of its choices"),
                )
                .with_hint(format!(
                    "choose one of: {}",
                    choices
                        .iter()
                        .map(Json::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
            continue;
        }
        out.insert(
            name.clone(),
            ParamValue {
                value,
                secret: param.secret,
            },
        );
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

fn coerce(param: &Param, text: &str) -> Result<Json, String> {
    let shown = |t: &str| {
        if param.secret {
            MASK.to_owned()
        } else {
            format!("`{t}`")
        }
    };
    match param.kind {
        ParamType::String => Ok(Json::String(text.to_owned())),
        ParamType::Integer => text
            .trim()
            .parse::<i64>()
            .map(Json::from)
            .map_err(|_| format!("{} is not an integer", shown(text))),
        ParamType::Number => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("{} is not a number", shown(text))),
        ParamType::Boolean => match text.trim() {
            "true" => Ok(Json::Bool(true)),
            "false" => Ok(Json::Bool(false)),
            _ => Err(format!("{} is not `true` or `false`", shown(text))),
        },
    }
}

/// The template context a plan renders with: secrets masked, run facts unknown.
fn context(
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
fn is_runtime(vars: &std::collections::BTreeSet<String>) -> bool {
    vars.iter().any(|v| {
        let root = v.split('.').next().unwrap_or_default();
        matches!(root, "steps" | "run" | "result")
    })
}

/// Builds the plan of `playbook` for one environment.
pub fn build(
    playbook: &Playbook,
    config: Option<&ConfigDef>,
    req: &PlanRequest<'_>,
) -> Result<Plan, Vec<Diagnostic>> {
    build_with_params(playbook, config, req, None)
}

/// Like [`build`], with parameters the caller resolved already (resume resolves them first to
/// say what a resumed run is missing), so they are resolved once.
pub fn build_with_params(
    playbook: &Playbook,
    config: Option<&ConfigDef>,
    req: &PlanRequest<'_>,
    given: Option<BTreeMap<String, ParamValue>>,
) -> Result<Plan, Vec<Diagnostic>> {
    let def = &playbook.def;
    let (target, protected, env_vars) = match config {
        Some(cfg) => match cfg.environments.get(req.env) {
            Some(env) => (
                env.target.describe(),
                env.protections.is_protected(),
                env.vars.clone(),
            ),
            None => {
                let hint = match did_you_mean(req.env, cfg.environments.keys().map(String::as_str))
                {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "environments: {}",
                        cfg.environments
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                return Err(vec![
                    Diagnostic::error(
                        "unknown-environment",
                        format!("no environment `{}` in runbook.yaml", req.env),
                    )
                    .with_hint(hint),
                ]);
            }
        },
        None => ("(given with --target)".to_owned(), false, BTreeMap::new()),
    };
    let target = match req.target_override {
        Some(t) => crate::plan::redact_url(t),
        None => target,
    };
    if let Some(allowed) = &def.environments
        && !allowed.iter().any(|e| e == req.env)
    {
        return Err(vec![
            Diagnostic::error(
                "wrong-environment",
                format!("`{}` does not run in environment `{}`", def.name, req.env),
            )
            .with_hint(format!("it runs in: {}", allowed.join(", "))),
        ]);
    }
    let params = match given {
        Some(params) => params,
        None => resolve_params(def, req.vars, &|k: &str| std::env::var(k).ok())?,
    };
    let vars: Map<String, Json> = env_vars.into_iter().collect();
    let ctx = context(&params, req.env, &target, protected, &vars);

    let mut diags = Vec::new();
    let blocks = plan_blocks(playbook, def, &ctx, "", &mut diags, config, req);
    let (steps, on_failure, finally_steps) = blocks;
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut gates = Vec::new();
    let mut checkpoints = Vec::new();
    collect_ids(&steps, &mut gates, &mut checkpoints);
    let mut plan = Plan {
        playbook: def.name.clone(),
        file: playbook.source.display_path(),
        content_hash: playbook.content_hash(),
        environment: req.env.to_owned(),
        target,
        protected,
        params: params
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if v.secret && !v.value.is_null() {
                        Json::String(MASK.into())
                    } else {
                        v.value.clone()
                    },
                )
            })
            .collect(),
        steps,
        on_failure,
        finally_steps,
        gates,
        checkpoints,
        plan_hash: String::new(),
        values: params,
    };
    let canonical = serde_json::to_vec(&plan).unwrap_or_default();
    plan.plan_hash = hex::encode(Sha256::digest(&canonical));
    Ok(plan)
}

fn collect_ids(steps: &[PlannedStep], gates: &mut Vec<String>, checkpoints: &mut Vec<String>) {
    for s in steps {
        if s.gate {
            gates.push(s.id.clone());
        }
        if s.steps.is_empty() {
            checkpoints.push(s.id.clone());
        } else {
            collect_ids(&s.steps, gates, checkpoints);
        }
    }
}

/// A playbook's steps, `on_failure` and `finally`, planned.
type Blocks = (Vec<PlannedStep>, Vec<PlannedStep>, Vec<PlannedStep>);

/// Plans a playbook's three blocks. A step without an id is named as the executor names it
/// (`step-N`, `on_failure-N`, `finally-N`).
fn plan_blocks(
    playbook: &Playbook,
    def: &PlaybookDef,
    ctx: &Json,
    prefix: &str,
    diags: &mut Vec<Diagnostic>,
    config: Option<&ConfigDef>,
    req: &PlanRequest<'_>,
) -> Blocks {
    let mut block = |steps: &[Step], unnamed: &str| -> Vec<PlannedStep> {
        steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let local = s.local_id(unnamed, i);
                plan_step(playbook, s, &local, ctx, prefix, diags, config, req)
            })
            .collect()
    };
    (
        block(&def.steps, "step"),
        block(&def.on_failure, "on_failure"),
        block(&def.finally, "finally"),
    )
}

#[allow(clippy::too_many_arguments)]
fn plan_step(
    playbook: &Playbook,
    step: &Step,
    local_id: &str,
    ctx: &Json,
    prefix: &str,
    diags: &mut Vec<Diagnostic>,
    config: Option<&ConfigDef>,
    req: &PlanRequest<'_>,
) -> Option<PlannedStep> {
    let action = step.action()?;
    let id = format!("{prefix}{local_id}");
    let raw = action_json(action);
    let mut deferred = Vec::new();
    let args = render_value(
        &raw,
        ctx,
        &mut Vec::new(),
        &mut deferred,
        diags,
        playbook,
        &id,
    );
    let will_run = step.when.as_ref().and_then(|w| {
        let vars = template::expression_vars(w).ok()?;
        if is_runtime(&vars) {
            return None;
        }
        template::eval_bool(w, ctx).ok()
    });
    let (mut nested, mut nested_on_failure, mut nested_finally) =
        (Vec::new(), Vec::new(), Vec::new());
    if let Action::Include(inc) = action
        && let Some(child) = step.id.as_ref().and_then(|i| playbook.includes.get(i))
    {
        // Values known only at run time are shown as their template text in the plan.
        let mut child_def = child.def.clone();
        let mut given: Vec<(String, String)> = Vec::new();
        for (k, v) in args
            .get("params")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            let mut text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            // A template known now keeps its value's type, as the executor renders it
            // (`"{{ params.fail }}"` is the boolean false, not the text `False`).
            if !template::is_template(&text)
                && let Some(Json::String(raw)) = inc.params.get(k)
                && template::is_template(raw)
                && let Ok(native) = template::render_native(raw, ctx)
            {
                text = native
                    .as_str()
                    .map_or_else(|| native.to_string(), str::to_owned);
            }
            match child_def.params.get_mut(k) {
                Some(param) if template::is_template(&text) => {
                    param.required = false;
                    param.kind = crate::playbook::ParamType::String;
                    param.choices = None;
                    param.default = Some(Json::String(text));
                }
                _ => given.push((k.clone(), text)),
            }
        }
        let lookup = |k: &str| std::env::var(k).ok();
        match resolve_params(&child_def, &given, &lookup) {
            Ok(child_params) => {
                let env = ctx.get("env").cloned().unwrap_or(Json::Null);
                let vars = ctx
                    .get("vars")
                    .and_then(Json::as_object)
                    .cloned()
                    .unwrap_or_default();
                let child_ctx = context(
                    &child_params,
                    env.get("name").and_then(Json::as_str).unwrap_or(req.env),
                    env.get("target").and_then(Json::as_str).unwrap_or_default(),
                    env.get("protected")
                        .and_then(Json::as_bool)
                        .unwrap_or(false),
                    &vars,
                );
                (nested, nested_on_failure, nested_finally) = plan_blocks(
                    child,
                    &child.def,
                    &child_ctx,
                    &format!("{id}."),
                    diags,
                    config,
                    req,
                );
            }
            Err(d) => diags.extend(d),
        }
    }
    let rollback = step
        .rollback
        .iter()
        .enumerate()
        .filter_map(|(j, c)| {
            let local = c.local_id(&format!("{local_id}.rollback"), j);
            plan_step(playbook, c, &local, ctx, prefix, diags, config, req)
        })
        .collect();
    Some(PlannedStep {
        id,
        name: step.name.clone(),
        action: action.key(),
        args,
        deferred,
        when: step.when.clone(),
        will_run,
        gate: matches!(action, Action::Gate(_)),
        destructive: action.is_destructive(),
        timeout: step.timeout.as_ref().map(|d| d.0.clone()),
        retry: step.retry.clone(),
        continue_on_error: step.continue_on_error,
        tags: step.tags.clone(),
        rollback,
        steps: nested,
        on_failure: nested_on_failure,
        finally_steps: nested_finally,
    })
}

/// The action's payload as JSON, without nulls and empty collections, for display.
fn action_json(action: Action<'_>) -> Json {
    let v = match action {
        Action::Shell(a) => serde_json::to_value(a),
        Action::Sql(a) => serde_json::to_value(a),
        Action::Migrate(a) => serde_json::to_value(a),
        Action::Backup(a) => serde_json::to_value(a),
        Action::Restore(a) => serde_json::to_value(a),
        Action::Seed(a) => serde_json::to_value(a),
        Action::Health(a) => serde_json::to_value(a),
        Action::Gate(a) => serde_json::to_value(a),
        Action::Log(a) => serde_json::to_value(a),
        Action::WaitFor(a) => serde_json::to_value(a),
        Action::Include(a) => serde_json::to_value(a),
        Action::Copy(a) => serde_json::to_value(a),
    };
    prune(v.unwrap_or(Json::Null))
}

fn prune(v: Json) -> Json {
    match v {
        Json::Object(m) => Json::Object(
            m.into_iter()
                .filter(|(_, v)| {
                    !v.is_null()
                        && v.as_object().is_none_or(|o| !o.is_empty())
                        && v.as_array().is_none_or(|a| !a.is_empty())
                        && *v != Json::Bool(false)
                })
                .map(|(k, v)| (k, prune(v)))
                .collect(),
        ),
        Json::Array(a) => Json::Array(a.into_iter().map(prune).collect()),
        other => other,
    }
}

fn render_value(
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

/// Masks the password of a connection URL; an unparseable URL is masked whole.
pub fn redact_url(url: &str) -> String {
    if let Some(path) = url.strip_prefix("sqlite:") {
        return format!("sqlite:{path}");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return MASK.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = mask_query_password(tail);
    format!("{scheme}://{authority}{tail}")
}

fn mask_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _))
                if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword") =>
            {
                format!("{k}={MASK}")
            }
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

/// The human text of a plan.
pub fn render_text(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "plan      {} on {}", plan.playbook, plan.environment);
    let _ = writeln!(
        out,
        "file      {} (sha256 {})",
        plan.file,
        &plan.content_hash[..12.min(plan.content_hash.len())]
    );
    let _ = writeln!(
        out,
        "target    {}{}",
        plan.target,
        if plan.protected { " (protected)" } else { "" }
    );
    if !plan.params.is_empty() {
        let params: Vec<String> = plan
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", inline(v)))
            .collect();
        let _ = writeln!(out, "params    {}", params.join(" "));
    }
    let _ = writeln!(out);
    let width = id_width(&plan.steps)
        .max(id_width(&plan.on_failure))
        .max(id_width(&plan.finally_steps))
        .max(4);
    let mut n = 0;
    write_steps(&mut out, &plan.steps, width, &mut n, 0);
    for (title, steps) in [
        ("on_failure", &plan.on_failure),
        ("finally", &plan.finally_steps),
    ] {
        if !steps.is_empty() {
            let _ = writeln!(out, "\n{title}:");
            let mut m = 0;
            write_steps(&mut out, steps, width, &mut m, 0);
        }
    }
    let compensations: usize = count(&plan.steps, &|s| s.rollback.len());
    let _ = writeln!(
        out,
        "\n{} steps, {} gates, {} compensations; run state is checkpointed after each of {} steps",
        plan.checkpoints.len(),
        plan.gates.len(),
        compensations,
        plan.checkpoints.len()
    );
    let _ = writeln!(
        out,
        "values marked (at run time) are rendered when the run reaches them"
    );
    let _ = writeln!(out, "plan hash {}", plan.plan_hash);
    out
}

fn count(steps: &[PlannedStep], f: &dyn Fn(&PlannedStep) -> usize) -> usize {
    steps.iter().map(|s| f(s) + count(&s.steps, f)).sum()
}

fn id_width(steps: &[PlannedStep]) -> usize {
    steps
        .iter()
        .map(|s| {
            s.id.len()
                .max(id_width(&s.steps))
                .max(id_width(&s.on_failure))
                .max(id_width(&s.finally_steps))
        })
        .max()
        .unwrap_or(0)
}

fn write_steps(out: &mut String, steps: &[PlannedStep], width: usize, n: &mut usize, depth: usize) {
    use std::fmt::Write as _;
    for s in steps {
        *n += 1;
        let indent = "  ".repeat(depth);
        let mut marks = Vec::new();
        if s.gate {
            marks.push("[gate]".to_owned());
        }
        if s.destructive {
            marks.push("[destructive]".to_owned());
        }
        if let Some(w) = &s.when {
            marks.push(match s.will_run {
                Some(false) => format!("[skipped: when {w}]"),
                _ => format!("[when {w}]"),
            });
        }
        if let Some(t) = &s.timeout {
            marks.push(format!("[timeout {t}]"));
        }
        if let Some(r) = &s.retry {
            marks.push(format!("[retry {}x]", r.attempts));
        }
        if s.continue_on_error {
            marks.push("[continue on error]".to_owned());
        }
        if !s.tags.is_empty() {
            marks.push(format!("[tags {}]", s.tags.join(",")));
        }
        let _ = writeln!(
            out,
            "{indent}{:>3}. {:<width$}  {:<8}  {}{}{}",
            n,
            s.id,
            s.action,
            describe_args(s),
            if marks.is_empty() { "" } else { "  " },
            marks.join(" ")
        );
        if let Some(name) = &s.name {
            let _ = writeln!(out, "{indent}     {:<width$}  {}", "", name);
        }
        for c in &s.rollback {
            let _ = writeln!(
                out,
                "{indent}     {:<width$}  rollback: {} {}",
                "",
                c.action,
                describe_args(c)
            );
        }
        if !s.steps.is_empty() {
            let mut m = 0;
            write_steps(out, &s.steps, width, &mut m, depth + 1);
        }
        for (title, steps) in [("on_failure", &s.on_failure), ("finally", &s.finally_steps)] {
            if !steps.is_empty() {
                let _ = writeln!(out, "{indent}       {title} of {}:", s.id);
                let mut m = 0;
                write_steps(out, steps, width, &mut m, depth + 1);
            }
        }
    }
}

/// `key=value` pairs of the top-level arguments; deferred ones marked.
fn describe_args(s: &PlannedStep) -> String {
    let Some(obj) = s.args.as_object() else {
        return inline(&s.args);
    };
    let mut parts = Vec::new();
    for (k, v) in obj {
        let deferred = s
            .deferred
            .iter()
            .any(|d| d == k || d.starts_with(&format!("{k}.")));
        let mut text = format!("{k}={}", inline(v));
        if deferred {
            text.push_str(" (at run time)");
        }
        parts.push(text);
    }
    parts.join(" ")
}

fn inline(v: &Json) -> String {
    match v {
        Json::String(s) if s.contains(' ') || s.is_empty() => format!("{s:?}"),
        Json::String(s) => s.clone(),
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(inline).collect::<Vec<_>>().join(", ")
        ),
        Json::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}: {}", inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}
