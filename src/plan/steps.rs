//! Planning steps: each step's action arguments rendered, its `when` evaluated when it can
//! be, its rollback planned, and an include planned as its playbook's own blocks with the
//! parameters the include gives.

use super::params::resolve_params;
use super::render::{context, is_runtime, render_value};
use super::{PlanRequest, PlannedStep};
use crate::diagnostic::Diagnostic;
use crate::playbook::{Action, IncludeAction, ParamType, PlaybookDef, Step};
use crate::project::Playbook;
use crate::template;
use serde_json::Value as Json;

/// A playbook's steps, `on_failure` and `finally`, planned.
pub(super) type Blocks = (Vec<PlannedStep>, Vec<PlannedStep>, Vec<PlannedStep>);

/// What every step of one plan is planned with; problems are collected in `diags`.
pub(super) struct Planner<'a> {
    pub(super) req: &'a PlanRequest<'a>,
    pub(super) diags: Vec<Diagnostic>,
}

impl Planner<'_> {
    /// Plans a playbook's three blocks. A step without an id is named as the executor names
    /// it (`step-N`, `on_failure-N`, `finally-N`).
    pub(super) fn blocks(
        &mut self,
        playbook: &Playbook,
        def: &PlaybookDef,
        ctx: &Json,
        prefix: &str,
    ) -> Blocks {
        let mut block = |steps: &[Step], unnamed: &str| -> Vec<PlannedStep> {
            steps
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let local = s.local_id(unnamed, i);
                    self.step(playbook, s, &local, ctx, prefix)
                })
                .collect()
        };
        (
            block(&def.steps, "step"),
            block(&def.on_failure, "on_failure"),
            block(&def.finally, "finally"),
        )
    }

    fn step(
        &mut self,
        playbook: &Playbook,
        step: &Step,
        local_id: &str,
        ctx: &Json,
        prefix: &str,
    ) -> Option<PlannedStep> {
        let action = step.action()?;
        let id = format!("{prefix}{local_id}");
        let raw = action_json(action);
        let mut deferred = Vec::new();
        let mut args = render_value(
            &raw,
            ctx,
            &mut Vec::new(),
            &mut deferred,
            &mut self.diags,
            playbook,
            &id,
        );
        // A credential header is never shown, nor hashed into the plan, whatever gives it.
        if let Action::Http(_) = action
            && let Some(Json::Object(headers)) = args.get_mut("headers")
        {
            for (name, value) in headers.iter_mut() {
                if crate::playbook::is_credential_header(name) {
                    *value = Json::String(crate::fmt::MASK.to_owned());
                }
            }
        }
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
            && let Some(blocks) = self.include(inc, child, &args, ctx, &id)
        {
            (nested, nested_on_failure, nested_finally) = blocks;
        }
        let rollback = step
            .rollback
            .iter()
            .enumerate()
            .filter_map(|(j, c)| {
                let local = c.local_id(&format!("{local_id}.rollback"), j);
                self.step(playbook, c, &local, ctx, prefix)
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
            rollback_when: step.rollback_when,
            steps: nested,
            on_failure: nested_on_failure,
            finally_steps: nested_finally,
        })
    }

    /// The included playbook's blocks, planned with the parameters the include gives (its
    /// rendered `args`); `None` when those parameters do not resolve (reported).
    fn include(
        &mut self,
        inc: &IncludeAction,
        child: &Playbook,
        args: &Json,
        ctx: &Json,
        id: &str,
    ) -> Option<Blocks> {
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
                    param.kind = ParamType::String;
                    param.choices = None;
                    param.default = Some(Json::String(text));
                }
                _ => given.push((k.clone(), text)),
            }
        }
        let lookup = |k: &str| std::env::var(k).ok();
        let child_params = match resolve_params(&child_def, &given, &lookup) {
            Ok(p) => p,
            Err(d) => {
                self.diags.extend(d);
                return None;
            }
        };
        let env = ctx.get("env").cloned().unwrap_or(Json::Null);
        let vars = ctx
            .get("vars")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        let child_ctx = context(
            &child_params,
            env.get("name")
                .and_then(Json::as_str)
                .unwrap_or(self.req.env),
            env.get("target").and_then(Json::as_str).unwrap_or_default(),
            env.get("protected")
                .and_then(Json::as_bool)
                .unwrap_or(false),
            &vars,
        );
        Some(self.blocks(child, &child.def, &child_ctx, &format!("{id}.")))
    }
}

/// The action's payload as JSON, without nulls and empty collections, for display.
fn action_json(action: Action<'_>) -> Json {
    let v = action.to_json();
    prune(v.unwrap_or(Json::Null))
}

/// Drops nulls, `false` and empty collections: the plan shows what was written.
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
