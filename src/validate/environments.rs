//! The playbook against the config's environments: the environments it names exist, and in
//! a protected one every destructive step has a gate before it.

use super::checker::Checker;
use super::names::names;
use crate::config::ConfigDef;
use crate::diagnostic::did_you_mean;
use crate::playbook::{Action, MigrateOp, Step};

impl Checker<'_> {
    pub(super) fn environments(&mut self) {
        let (Some(envs), Some(config)) = (&self.def.environments, self.config) else {
            return;
        };
        for (i, env) in envs.iter().enumerate() {
            if !config.environments.contains_key(env) {
                let hint = unknown_env_hint(env, config);
                self.err_at(
                    &["environments".to_owned(), i.to_string()],
                    "unknown-environment",
                    format!("environment `{env}` is not defined in runbook.yaml"),
                    hint,
                );
            }
        }
    }

    /// In a protected environment, a destructive step needs an approval or confirm gate
    /// before it in the same block.
    pub(super) fn protections(&mut self) {
        let Some(config) = self.config else { return };
        let protected: Vec<&String> = config
            .environments
            .iter()
            .filter(|(name, env)| {
                env.protections.is_protected()
                    && self
                        .def
                        .environments
                        .as_ref()
                        .is_none_or(|e| e.contains(name))
            })
            .map(|(n, _)| n)
            .collect();
        if protected.is_empty() {
            return;
        }
        let is_guard = |s: &Step| {
            s.gate
                .as_ref()
                .is_some_and(|g| g.approval.is_some() || g.confirm.is_some())
        };
        // (path to the action key, action key, what it does, hint)
        let mut findings: Vec<(Vec<String>, String, &str, String)> = Vec::new();
        let unguarded = "add a step with `gate: { confirm: ... }` or `gate: { approval: ... }` before it, or limit the playbook with `environments:`";
        let mut guarded = false;
        for (i, s) in self.def.steps.iter().enumerate() {
            if let Some(a) = s.action()
                && a.is_destructive()
                && !guarded
            {
                findings.push((
                    vec!["steps".into(), i.to_string()],
                    a.key().to_owned(),
                    destroys(&a),
                    unguarded.to_owned(),
                ));
            }
            if is_guard(s) {
                guarded = true;
            }
            // A compensation runs only after its own step succeeded, so a gate before that
            // step (or the step itself being a gate) guards it.
            for (j, comp) in s.rollback.iter().enumerate() {
                if let Some(a) = comp.action()
                    && a.is_destructive()
                    && !guarded
                {
                    let owner = s.id.clone().unwrap_or_else(|| format!("#{}", i + 1));
                    findings.push((
                            vec!["steps".into(), i.to_string(), "rollback".into(), j.to_string()],
                            a.key().to_owned(),
                            destroys(&a),
                            format!("add a confirm or approval gate step before step `{owner}`, whose rollback this is, or limit the playbook with `environments:`"),
                        ));
                }
            }
        }
        // Cleanup blocks run unattended (even when the run failed before any gate), so nothing
        // can guard a destructive step there.
        for block in ["on_failure", "finally"] {
            let steps = if block == "on_failure" {
                &self.def.on_failure
            } else {
                &self.def.finally
            };
            for (i, s) in steps.iter().enumerate() {
                if let Some(a) = s.action()
                    && a.is_destructive()
                {
                    findings.push((
                            vec![block.into(), i.to_string()],
                            a.key().to_owned(),
                            destroys(&a),
                            format!("`{block}` runs unattended, even when the run failed before any gate; move this step into the `rollback` of the step it undoes, or limit the playbook with `environments:`"),
                        ));
                }
            }
        }
        for (parent, key, what, hint) in findings {
            let msg = format!(
                "{what} in protected {} {} without a gate before it",
                if protected.len() == 1 {
                    "environment"
                } else {
                    "environments"
                },
                names(protected.iter())
            );
            self.err_key(&parent, &key, "unguarded-destructive", msg, hint);
        }
    }
}

/// What a destructive action does, for the error.
fn destroys(a: &Action<'_>) -> &'static str {
    match a {
        Action::Restore(_) => "`restore` overwrites the database",
        Action::Migrate(m) if m.action == MigrateOp::Resolve => {
            "`migrate: resolve` rewrites the migration history (what the next apply runs or skips)"
        }
        Action::Migrate(m) if m.on_blocked.is_some() && m.action != MigrateOp::Revert => {
            "`on_blocked` cancels or terminates other sessions"
        }
        Action::Migrate(_) => "`migrate: revert` drops schema",
        Action::Vacuum(_) => {
            "`vacuum: full` locks each table against reads and writes while it rewrites it"
        }
        Action::Reindex(_) => "`reindex` without `concurrently` blocks writes while it rebuilds",
        _ => "this SQL drops or truncates data",
    }
}

/// The hint for an environment that runbook.yaml does not define.
pub(super) fn unknown_env_hint(env: &str, config: &ConfigDef) -> String {
    match did_you_mean(env, config.environments.keys().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!(
            "environments in runbook.yaml: {}",
            names(config.environments.keys())
        ),
    }
}
