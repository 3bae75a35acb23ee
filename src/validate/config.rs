//! Semantic checks of `runbook.yaml`: environment names, one database per environment and
//! per fleet target, variable names where a URL or secret would be a mistake, time zones, the
//! approvers' SSH keys (`crate::signers`).

use super::names::{is_env_name, is_identifier, is_time_zone, time_zone_hint};
use crate::config::{ConfigDef, Environment};
use crate::diagnostic::Diagnostic;
use crate::runkey;
use crate::signers;
use crate::source::{Pos, Source};
use crate::yaml::Node;

/// Checks a config that passed the schema.
pub fn check_config(def: &ConfigDef, source: &Source, tree: &Node) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let envs_node = tree.get("environments");
    for (name, env) in &def.environments {
        environment(name, env, envs_node, source, &mut diags);
    }
    for (name, env) in &def.environments {
        fleet_targets(name, env, tree, source, &mut diags);
        diags.extend(targets_file(name, env, tree, source));
    }
    for (i, var) in def.secrets.iter().enumerate() {
        if !is_env_name(var) {
            let pos = tree
                .lookup(&["secrets", &i.to_string()])
                .map_or(Pos::UNKNOWN, |n| n.pos);
            diags.push(
                Diagnostic::error(
                    "invalid-name",
                    format!("`{var}` is not an environment variable name"),
                )
                .at(source, pos)
                .with_hint("list the names of variables that hold secrets, never the secrets"),
            );
        }
    }
    if let Some(state) = &def.state
        && let Some(var) = &state.url_env
        && !is_env_name(var)
    {
        let pos = tree
            .lookup(&["state", "url_env"])
            .map_or(Pos::UNKNOWN, |n| n.pos);
        diags.push(
            Diagnostic::error(
                "invalid-name",
                format!("`{var}` is not an environment variable name"),
            )
            .at(source, pos)
            .with_hint("give the name of the environment variable that holds the state store URL"),
        );
    }
    stores(def, source, tree, &mut diags);
    approvers(def, source, tree, &mut diags);
    super::schedules::check_schedules(def, source, tree, &mut diags);
    audit_public_key(def, source, tree, &mut diags);
    diags
}

/// The state store names one store, and no path the config gives is empty: an empty path
/// would be the project folder itself.
fn stores(def: &ConfigDef, source: &Source, tree: &Node, diags: &mut Vec<Diagnostic>) {
    let at = |path: &[&str]| tree.lookup(path).map_or(Pos::UNKNOWN, |n| n.pos);
    if let Some(state) = &def.state
        && state.url_env.is_some()
        && state.sqlite.is_some()
    {
        diags.push(
            Diagnostic::error("conflicting-keys", "`state` names two stores")
                .at(source, at(&["state", "url_env"]))
                .with_hint("keep one of `url_env` (PostgreSQL) and `sqlite`"),
        );
    }
    let mut empty = |path: &[&str], what: String| {
        diags.push(
            Diagnostic::error("invalid-value", format!("{what} is empty"))
                .at(source, at(path))
                .with_hint(
                    "give a path relative to the project, or remove the key for the default",
                ),
        );
    };
    if def
        .state
        .as_ref()
        .and_then(|s| s.sqlite.as_ref())
        .is_some_and(|p| p.trim().is_empty())
    {
        empty(&["state", "sqlite"], "`state.sqlite`".to_owned());
    }
    if def
        .audit
        .as_ref()
        .and_then(|a| a.dir.as_ref())
        .is_some_and(|p| p.trim().is_empty())
    {
        empty(&["audit", "dir"], "`audit.dir`".to_owned());
    }
    for (name, env) in &def.environments {
        if env
            .target
            .sqlite
            .as_ref()
            .is_some_and(|p| p.trim().is_empty())
        {
            empty(
                &["environments", name, "target", "sqlite"],
                format!("the `sqlite` path of `{name}`"),
            );
        }
    }
}

/// An environment's `targets_file` is a readable list of fleet targets, relative to the
/// project.
fn targets_file(name: &str, env: &Environment, tree: &Node, source: &Source) -> Option<Diagnostic> {
    let file = env.targets_file.as_ref()?;
    let root = source.path.parent().unwrap_or(std::path::Path::new("."));
    let problem = match std::fs::read_to_string(root.join(file)) {
        Ok(text) => serde_saphyr::from_str::<Vec<crate::config::FleetTarget>>(&text)
            .err()
            .map(|e| format!("the targets file `{file}` is not a list of targets: {e}")),
        Err(e) => Some(format!("cannot read the targets file `{file}`: {e}")),
    }?;
    let pos = tree
        .lookup(&["environments", name, "targets_file"])
        .map_or(Pos::UNKNOWN, |n| n.pos);
    Some(
        Diagnostic::error("missing-file", problem)
            .at(source, pos)
            .with_hint("name a YAML list of targets (`- name: ...`, `url_env: ...`) relative to the project"),
    )
}

/// The public key that verifies run signatures (`audit.public_key`): a readable file relative
/// to the project holding one Ed25519 public key, as `runbook audit keygen` writes it.
fn audit_public_key(def: &ConfigDef, source: &Source, tree: &Node, diags: &mut Vec<Diagnostic>) {
    let Some(file) = def.audit.as_ref().and_then(|a| a.public_key.as_ref()) else {
        return;
    };
    let root = source.path.parent().unwrap_or(std::path::Path::new("."));
    if let Err(e) = runkey::read(&runkey::path(root, file)) {
        let pos = tree
            .lookup(&["audit", "public_key"])
            .map_or(Pos::UNKNOWN, |n| n.pos);
        diags.push(
            Diagnostic::error("invalid-key", format!("audit public key: {e}"))
                .at(source, pos)
                .with_hint("name the `runbook-audit.pub` file `runbook audit keygen` wrote, relative to the project (commit it), or remove `public_key`"),
        );
    }
}

/// The approvers' keys: the `allowed_signers` file (each bad line at its own position in that
/// file) and the inline keys. An empty list is fine here: environments that require signed
/// approvals say so when a run there reaches its gate.
fn approvers(def: &ConfigDef, source: &Source, tree: &Node, diags: &mut Vec<Diagnostic>) {
    let Some(approvers) = &def.approvers else {
        return;
    };
    let at = |path: &[&str]| tree.lookup(path).map_or(Pos::UNKNOWN, |n| n.pos);
    if let Some(file) = &approvers.allowed_signers {
        let root = source.path.parent().unwrap_or(std::path::Path::new("."));
        let path = signers::signers_path(root, file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let signers_source = Source::new(&path, text);
                for p in signers::parse(&signers_source.text).1 {
                    diags.push(problem(p, &signers_source, Pos::new(0, 0)));
                }
            }
            Err(e) => diags.push(
                Diagnostic::error(
                    "missing-file",
                    format!("cannot read the approvers' keys `{file}`: {e}"),
                )
                .at(source, at(&["approvers", "allowed_signers"]))
                .with_hint("name a file relative to the project in the `allowed_signers` format of ssh (`NAME ssh-ed25519 AAAA...` per line), or remove `allowed_signers`"),
            ),
        }
    }
    for (i, k) in approvers.keys.iter().enumerate() {
        if let Err(p) = signers::parse_key(&k.name, &k.key) {
            let pos = at(&["approvers", "keys", &i.to_string(), "key"]);
            diags.push(problem(p, source, pos));
        }
    }
}

/// A problem of an approver entry as a diagnostic: at its own line and column when it has one
/// (a line of the `allowed_signers` file), else at `pos`.
fn problem(p: signers::Problem, source: &Source, pos: Pos) -> Diagnostic {
    let code = if p.warning {
        "unusable-key"
    } else {
        "invalid-key"
    };
    let d = if p.warning {
        Diagnostic::warning(code, p.message)
    } else {
        Diagnostic::error(code, p.message)
    };
    let pos = if p.line > 0 {
        Pos::new(p.line, p.col)
    } else {
        pos
    };
    d.at(source, pos).with_hint(p.hint)
}

/// One environment: its name, its one database, the time zones of its windows.
fn environment(
    name: &str,
    env: &Environment,
    envs_node: Option<&Node>,
    source: &Source,
    diags: &mut Vec<Diagnostic>,
) {
    let env_node = envs_node.and_then(|n| n.get(name));
    let key_pos = envs_node
        .and_then(|n| n.key(name))
        .map_or(Pos::UNKNOWN, |n| n.pos);
    if !is_identifier(name) {
        diags.push(
            Diagnostic::error(
                "invalid-name",
                format!("environment name `{name}` is not an identifier"),
            )
            .at(source, key_pos)
            .with_width(name.len())
            .with_hint("use letters, digits and `_`"),
        );
    }
    let target_pos = env_node
        .and_then(|n| n.get("target"))
        .map_or(key_pos, |n| n.pos);
    match (&env.target.url_env, &env.target.sqlite) {
        (None, None) if !env.targets.is_empty() || env.targets_file.is_some() => {}
        (None, None) => diags.push(
            Diagnostic::error(
                "incomplete-target",
                format!("environment `{name}` has no database"),
            )
            .at(source, target_pos)
            .with_hint("give `url_env: VARIABLE_NAME` (PostgreSQL) or `sqlite: path/to/file.db`"),
        ),
        (Some(_), Some(_)) => diags.push(
            Diagnostic::error(
                "conflicting-keys",
                format!("environment `{name}` names two databases"),
            )
            .at(source, target_pos)
            .with_hint("keep one of `url_env` and `sqlite`"),
        ),
        (Some(var), None) if !is_env_name(var) => {
            let pos = env_node
                .and_then(|n| n.lookup(&["target", "url_env"]))
                .map_or(target_pos, |n| n.pos);
            let hint = if var.contains("://") {
                "this looks like a URL; never write a database URL (with its password) in the config: put it in an environment variable and name the variable here"
            } else {
                "give the name of the environment variable that holds the URL, like `DATABASE_URL`"
            };
            diags.push(
                Diagnostic::error(
                    "invalid-name",
                    format!("`url_env` of `{name}` is not an environment variable name"),
                )
                .at(source, pos)
                .with_hint(hint),
            );
        }
        _ => {}
    }
    if let Some(d) = &env.protections.approval_expiry
        && let Some((msg, hint)) = super::durations::problem(d, "approval_expiry", false)
    {
        let pos = env_node
            .and_then(|n| n.lookup(&["protections", "approval_expiry"]))
            .map_or(key_pos, |n| n.pos);
        diags.push(
            Diagnostic::error("invalid-value", msg)
                .at(source, pos)
                .with_hint(hint),
        );
    }
    for (i, w) in env.protections.windows.iter().enumerate() {
        if w.days.as_ref().is_some_and(Vec::is_empty) {
            let pos = env_node
                .and_then(|n| n.lookup(&["protections", "windows", &i.to_string(), "days"]))
                .map_or(key_pos, |n| n.pos);
            diags.push(
                Diagnostic::error("invalid-value", "`days` is empty: the window never opens")
                    .at(source, pos)
                    .with_hint("list the days it opens, like `days: [sat, sun]`, or remove `days` for every day"),
            );
        }
        if let Some(tz) = &w.tz
            && !is_time_zone(tz)
        {
            let pos = env_node
                .and_then(|n| n.lookup(&["protections", "windows", &i.to_string(), "tz"]))
                .map_or(key_pos, |n| n.pos);
            diags.push(
                Diagnostic::error("invalid-value", format!("`{tz}` is not a time zone"))
                    .at(source, pos)
                    .with_hint(time_zone_hint(tz)),
            );
        }
    }
}

/// The fleet targets of one environment: unique names, exactly one database each, no
/// password in a literal URL.
fn fleet_targets(
    name: &str,
    env: &Environment,
    tree: &Node,
    source: &Source,
    diags: &mut Vec<Diagnostic>,
) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in env.targets.iter().enumerate() {
        let pos = tree
            .lookup(&["environments", name, "targets", &i.to_string()])
            .map_or(Pos::UNKNOWN, |n| n.pos);
        if !seen.insert(t.name.clone()) {
            diags.push(
                Diagnostic::error(
                    "duplicate-id",
                    format!("fleet target `{}` of `{name}` is listed twice", t.name),
                )
                .at(source, pos)
                .with_hint("give each target its own name"),
            );
        }
        let given = [t.url_env.is_some(), t.url.is_some(), t.sqlite.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if given != 1 {
            diags.push(
                Diagnostic::error(
                    "incomplete-target",
                    format!("fleet target `{}` must name exactly one database", t.name),
                )
                .at(source, pos)
                .with_hint("give one of `url_env`, `url` (without a password) or `sqlite`"),
            );
        }
        // A URL that masking would change carries a password (one that cannot be read at all
        // is masked whole, and refused the same way).
        if let Some(url) = &t.url
            && crate::dburl::redact(url) != *url
        {
            diags.push(
                Diagnostic::error(
                    "secret-in-config",
                    format!("the URL of fleet target `{}` holds a password", t.name),
                )
                .at(source, pos)
                .with_hint("put the URL in an environment variable and name it with `url_env`"),
            );
        }
    }
}
