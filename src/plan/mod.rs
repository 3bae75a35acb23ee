//! Planning: a validated playbook, an environment and variables become a [`Plan`], the ordered
//! list of what a run would do with every argument rendered that can be rendered before the
//! run starts. Templates that read step outputs or run facts stay as written and are marked
//! as resolved at run time. Secrets show as `***`.
//!
//! Invariant: planning does no IO. It reads only the already-loaded playbook and config and
//! the process environment (for `from_env` parameters).

mod params;
mod render;
mod steps;
mod text;

pub use params::{ParamValue, parse_var, resolve_params};
pub use text::render_text;

use crate::config::{ConfigDef, Protections};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::playbook::Retry;
use crate::project::Playbook;
use render::context;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use steps::Planner;

pub use crate::redact::MASK;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Plan {
    pub playbook: String,
    pub file: String,
    pub content_hash: String,
    pub environment: String,
    /// The target as named (the environment's variable, or a `--target` URL redacted): shown,
    /// not hashed; the database itself is [`Plan::target_identity`].
    pub target: String,
    /// Which database the plan is for (`db::identity`), once runbook has connected to it;
    /// `None` in an offline plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_identity: Option<String>,
    pub protected: bool,
    /// The protections in force for the run: approvals, self-approval, expiry, windows. Part of
    /// the hash, so approvals given under other rules do not count.
    pub protections: Protections,
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
    /// sha256 of each migration and seed file the run may apply, by path: part of what the
    /// plan hash covers, so a changed, added or removed file voids approvals.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// sha256 of the plan's canonical JSON without this field and the target's name (the target
    /// counts by its identity); approvals bind to it.
    pub plan_hash: String,
    /// The parameter values, secrets included, for the run that executes this plan. Never
    /// serialized: not shown, not hashed.
    #[serde(skip)]
    pub values: BTreeMap<String, ParamValue>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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
    /// When `rollback` runs after a later failure (absent: always).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_when: Option<crate::playbook::RollbackWhen>,
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
    /// The digests of the files the run may apply (`Project::input_digests`).
    pub inputs: BTreeMap<String, String>,
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
    let (target, protections, env_vars) = environment(config, req.env)?;
    let protected = protections.is_protected();
    let target = match req.target_override {
        Some(t) => crate::dburl::redact(t),
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
    let mut params = match given {
        Some(params) => params,
        None => resolve_params(def, req.vars, &|k: &str| std::env::var(k).ok())?,
    };
    // A parameter read from a variable the config names as a secret is a secret, marked so or
    // not: the plan shows it masked, as the run's redactor masks it everywhere else.
    let config_secrets = config.map(|c| c.secrets.as_slice()).unwrap_or_default();
    for (name, value) in &mut params {
        let from = def.params.get(name).and_then(|p| p.from_env.as_ref());
        if from.is_some_and(|var| config_secrets.contains(var)) {
            value.secret = true;
        }
    }
    let vars: Map<String, Json> = env_vars.into_iter().collect();
    let ctx = context(&params, req.env, &target, protected, &vars);

    let mut planner = Planner {
        req,
        diags: Vec::new(),
    };
    let blocks = planner.blocks(playbook, def, &ctx, "");
    let (steps, on_failure, finally_steps) = blocks;
    if !planner.diags.is_empty() {
        return Err(planner.diags);
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
        target_identity: None,
        protected,
        protections,
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
        inputs: req.inputs.clone(),
        plan_hash: String::new(),
        values: params,
    };
    plan.plan_hash = plan.hash();
    Ok(plan)
}

impl Plan {
    /// Binds the plan to the database it runs on (`None`: a run without a target) and hashes it
    /// again: approvals count for this database only.
    pub fn seal(&mut self, identity: Option<&str>) {
        self.target_identity = identity.map(str::to_owned);
        self.plan_hash = self.hash();
    }

    /// sha256 of the canonical JSON of everything that decides what runs. The target's name is
    /// left out: the same database reached through another URL or variable is the same plan,
    /// and another database under the same name is not (its identity differs).
    fn hash(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.remove("target");
            map.remove("plan_hash");
        }
        let canonical = serde_json::to_vec(&value).unwrap_or_default();
        hex::encode(Sha256::digest(&canonical))
    }
}

/// The environment's target (described), its protections, and its variables.
/// Without a config the target is the one given with `--target`.
fn environment(
    config: Option<&ConfigDef>,
    env: &str,
) -> Result<(String, Protections, BTreeMap<String, Json>), Vec<Diagnostic>> {
    let Some(cfg) = config else {
        return Ok((
            "(given with --target)".to_owned(),
            Protections::default(),
            BTreeMap::new(),
        ));
    };
    match cfg.environments.get(env) {
        Some(e) => Ok((e.target.describe(), e.protections.clone(), e.vars.clone())),
        None => {
            let hint = match did_you_mean(env, cfg.environments.keys().map(String::as_str)) {
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
            Err(vec![
                Diagnostic::error(
                    "unknown-environment",
                    format!("no environment `{env}` in runbook.yaml"),
                )
                .with_hint(hint),
            ])
        }
    }
}

/// Gate ids and checkpointed step ids in run order (an include checkpoints its steps).
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

/// What differs between the file digests a run started with (`before`) and today's, one phrase
/// per file (`` `seeds/production.yaml` changed ``), in path order; empty when nothing did.
pub fn input_changes(
    before: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, digest) in before {
        match now.get(path) {
            None => out.push(format!("`{path}` was removed")),
            Some(d) if d != digest => out.push(format!("`{path}` changed")),
            Some(_) => {}
        }
    }
    out.extend(
        now.keys()
            .filter(|p| !before.contains_key(*p))
            .map(|p| format!("`{p}` was added")),
    );
    out.sort_by(|a, b| a.split('`').nth(1).cmp(&b.split('`').nth(1)));
    out
}
