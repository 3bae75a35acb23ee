//! Protections follow the database, not the environment's name. A run's protections (self-
//! approval, approvals, expiry, windows, confirmation of destructive steps) are decided once, at
//! its start: those of its environment, unless its target is another protected environment's
//! database (by identity, `db::identity`), whose rules then apply whatever `--env` said. The
//! decision is recorded in `run_started` (`protections`), and resume, approve and status read
//! it back rather than deciding again from a config or a `--env` that may have changed.
//!
//! Also here: an environment whose config names a target refuses `--target` unless it says
//! `allow_target_override: true` (a fleet's child runs are given their target by the fleet).

use super::refusal::Refusal;
use crate::config::{ConfigDef, Environment, Protections};
use crate::db::TargetSpec;
use crate::db::identity::identity;
use crate::project::Playbook;
use serde_json::{Value as Json, json};
use std::path::Path;
use std::time::Duration;

/// How long runbook waits to learn which database another environment's target is.
const PROBE: Duration = Duration::from_secs(3);

/// The protections a run is under and the environment they come from.
#[derive(Debug, Clone, Default)]
pub(super) struct Effective {
    /// The environment whose rules apply (the run's own, or the one whose database it targets).
    pub source: String,
    pub rules: Protections,
    /// Whether they are another environment's than the run's.
    pub borrowed: bool,
}

impl Effective {
    /// The run's own environment's protections.
    pub fn own(config: Option<&ConfigDef>, env: &str) -> Effective {
        Effective {
            source: env.to_owned(),
            rules: protections_of(config, env),
            borrowed: false,
        }
    }

    /// What `run_started` records.
    pub fn to_json(&self) -> Json {
        json!({"source": self.source, "borrowed": self.borrowed, "rules": self.rules})
    }

    /// The protections a run recorded at its start (`run_started` data); a run started before
    /// runbook recorded them has its environment's, as it had then.
    pub fn recorded(started: Option<&Json>, config: Option<&ConfigDef>, env: &str) -> Effective {
        let Some(p) = started.and_then(|d| d.get("protections")) else {
            return Effective::own(config, env);
        };
        let rules = p
            .get("rules")
            .cloned()
            .and_then(|r| serde_json::from_value(r).ok());
        match (p.get("source").and_then(Json::as_str), rules) {
            (Some(source), Some(rules)) => Effective {
                source: source.to_owned(),
                rules,
                borrowed: p.get("borrowed").and_then(Json::as_bool).unwrap_or(false),
            },
            // A record that cannot be read back is not a reason to run with fewer rules.
            _ => Effective::own(config, env),
        }
    }
}

/// Whether an environment's rules guard anything a run could slip past.
fn guards(p: &Protections) -> bool {
    p.is_protected() || p.approvals.is_some() || !p.windows.is_empty()
}

/// Refuses `--target` on an environment whose config names a target, unless it allows an
/// override; fleet child runs are given their target by the fleet.
pub(super) fn check_override(
    config: Option<&ConfigDef>,
    env: &str,
    flag: Option<&str>,
    fleet: bool,
) -> Result<(), Refusal> {
    let Some(e) = config.and_then(|c| c.environments.get(env)) else {
        return Ok(());
    };
    let names = e.target.url_env.is_some() || e.target.sqlite.is_some();
    if flag.is_none() || fleet || !names || e.allow_target_override {
        return Ok(());
    }
    Err(Refusal::invalid(
        format!(
            "environment `{env}` has its own database ({}); `--target` is refused there, so its rules and its database stay together",
            e.target.describe()
        ),
        format!(
            "run without --target to act on `{env}`'s database, pick the environment whose database you mean, or set `allow_target_override: true` on `{env}` in runbook.yaml"
        ),
    ))
}

/// The protections of a run on `target` (whose identity is `ours`) started with `--env env`:
/// another protected environment's when the target is that environment's database. An
/// environment whose target cannot be resolved now (its variable unset, its file absent, its
/// server unreachable within a few seconds) is skipped, with a debug line.
pub(super) async fn effective(
    root: &Path,
    config: Option<&ConfigDef>,
    env: &str,
    target: Option<&TargetSpec>,
    ours: Option<&str>,
) -> Effective {
    let own = Effective::own(config, env);
    let (Some(config), Some(target), Some(ours)) = (config, target, ours) else {
        return own;
    };
    for (name, e) in &config.environments {
        if name == env || !guards(&e.protections) {
            continue;
        }
        if same_database(root, name, e, target, ours).await {
            return Effective {
                source: name.clone(),
                rules: e.protections.clone(),
                borrowed: true,
            };
        }
    }
    own
}

/// Whether environment `name`'s target is the database `target` (identity `ours`): the URL
/// compared first, then the identities when they can differ in spelling only.
async fn same_database(
    root: &Path,
    name: &str,
    e: &Environment,
    target: &TargetSpec,
    ours: &str,
) -> bool {
    let theirs = if let Some(var) = &e.target.url_env {
        match std::env::var(var).ok().map(|u| TargetSpec::parse(&u)) {
            Some(Ok(t)) => t,
            _ => {
                tracing::debug!(
                    "environment `{name}`: `${var}` is not set to a target; its protections are not compared"
                );
                return false;
            }
        }
    } else if let Some(path) = &e.target.sqlite {
        let file = root.join(path);
        if !file.exists() {
            tracing::debug!(
                "environment `{name}`: {} does not exist; its protections are not compared",
                file.display()
            );
            return false;
        }
        TargetSpec::Sqlite(file)
    } else {
        return false;
    };
    match (&theirs, target) {
        (TargetSpec::Postgres(a), TargetSpec::Postgres(b)) if a == b => return true,
        (TargetSpec::Postgres(_), TargetSpec::Postgres(_))
        | (TargetSpec::Sqlite(_), TargetSpec::Sqlite(_)) => {}
        // A SQLite file is never a PostgreSQL database.
        _ => return false,
    }
    if theirs.key() == target.key() {
        return true;
    }
    match tokio::time::timeout(PROBE, identity(&theirs)).await {
        Ok(Ok(id)) => id == ours,
        Ok(Err(e)) => {
            tracing::debug!(
                "environment `{name}`: cannot tell which database its target is: {}",
                crate::redact::global().redact(&e.message)
            );
            false
        }
        Err(_) => {
            tracing::debug!("environment `{name}`: its target did not answer within {PROBE:?}");
            false
        }
    }
}

/// The first destructive step of the playbook (includes, compensations, `on_failure` and
/// `finally` too) that no approval or confirm gate comes before, when the rules borrowed from
/// another environment protect it: validation checked the playbook against the environments
/// it named, not against the database it turned out to act on.
pub(super) fn unguarded_destructive(pb: &Playbook, rules: &Protections) -> Option<String> {
    if !rules.is_protected() {
        return None;
    }
    let mut guarded = false;
    walk(pb, &pb.def.steps, "", &mut guarded).or_else(|| {
        [&pb.def.on_failure, &pb.def.finally]
            .into_iter()
            .find_map(|block| walk(pb, block, "", &mut guarded.clone()))
    })
}

/// The first unguarded destructive step of `steps` in order; `guarded` says a gate came before.
fn walk(
    pb: &Playbook,
    steps: &[crate::playbook::Step],
    prefix: &str,
    guarded: &mut bool,
) -> Option<String> {
    for (i, s) in steps.iter().enumerate() {
        let id = format!("{prefix}{}", s.local_id("step", i));
        if s.gate
            .as_ref()
            .is_some_and(|g| g.approval.is_some() || g.confirm.is_some())
        {
            *guarded = true;
        }
        if let Some(child) = pb.includes.get(&s.local_id("step", i))
            && s.include.is_some()
            && let Some(found) = walk(child, &child.def.steps, &format!("{id}."), guarded)
        {
            return Some(found);
        }
        let destructive = std::iter::once(s)
            .chain(&s.rollback)
            .any(|x| x.action().is_some_and(|a| a.is_destructive()));
        if destructive && !*guarded {
            return Some(id);
        }
    }
    None
}

/// The protections of an environment; none when the config does not name it.
pub(super) fn protections_of(config: Option<&ConfigDef>, env: &str) -> Protections {
    config
        .and_then(|c| c.environments.get(env))
        .map(|e| e.protections.clone())
        .unwrap_or_default()
}
