//! Semantic checks of `schedules:` in runbook.yaml: a name every scheduler takes, a cron
//! expression and a time zone the exports can express, an environment and a playbook that
//! exist, vars that fit one command-line argument each.

use super::names::{is_identifier, names};
use crate::config::ConfigDef;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::schedule::{Cadence, CadenceError};
use crate::source::{Pos, Source};
use crate::yaml::Node;

/// The longest name: a CronJob's name is at most 52 characters, `runbook-` takes 8.
const MAX_NAME: usize = 44;

/// Checks every schedule.
pub fn check_schedules(def: &ConfigDef, source: &Source, tree: &Node, diags: &mut Vec<Diagnostic>) {
    let root = source.path.parent().unwrap_or(std::path::Path::new("."));
    let playbooks = root.join(def.playbooks_dir.as_deref().unwrap_or("playbooks"));
    for (name, s) in &def.schedules {
        let at = |key: &str| {
            tree.lookup(&["schedules", name, key])
                .or_else(|| tree.lookup(&["schedules", name]))
                .map_or(Pos::UNKNOWN, |n| n.pos)
        };
        let key_pos = tree
            .get("schedules")
            .and_then(|n| n.key(name))
            .map_or(Pos::UNKNOWN, |n| n.pos);
        if !is_schedule_name(name) {
            diags.push(
                Diagnostic::error("invalid-name", format!("schedule name `{name}` cannot name a unit or a CronJob"))
                    .at(source, key_pos)
                    .with_width(name.len())
                    .with_hint(format!("use lowercase letters, digits and `-`, starting with a letter, at most {MAX_NAME} characters")),
            );
        }
        match Cadence::parse(&s.cron, s.time_zone.as_deref()) {
            Ok(_) => {}
            Err(CadenceError::Cron(m)) => diags.push(
                Diagnostic::error("invalid-cron", m)
                    .at(source, at("cron"))
                    .with_hint("five fields, minute hour day-of-month month day-of-week: `0 2 * * *` is every day at 02:00, `0 3 * * 0` Sundays at 03:00, `*/15 * * * *` every 15 minutes"),
            ),
            Err(CadenceError::Zone(m)) => diags.push(
                Diagnostic::error("invalid-value", m)
                    .at(source, at("time_zone"))
                    .with_hint("use an IANA name like `Europe/Berlin`, `America/New_York` or `UTC`"),
            ),
        }
        if !def.environments.contains_key(&s.environment) {
            let hint =
                match did_you_mean(&s.environment, def.environments.keys().map(String::as_str)) {
                    Some(n) => format!("did you mean `{n}`?"),
                    None => format!("environments: {}", names(def.environments.keys())),
                };
            diags.push(
                Diagnostic::error(
                    "unknown-environment",
                    format!("schedule `{name}` names no environment `{}`", s.environment),
                )
                .at(source, at("environment"))
                .with_hint(hint),
            );
        }
        let found = ["yaml", "yml"]
            .iter()
            .any(|ext| playbooks.join(format!("{}.{ext}", s.playbook)).is_file());
        if !found {
            diags.push(
                Diagnostic::error(
                    "not-found",
                    format!("schedule `{name}` names no playbook `{}`", s.playbook),
                )
                .at(source, at("playbook"))
                .with_hint(format!(
                    "give the name of a playbook in `{}` (without `.yaml`)",
                    def.playbooks_dir.as_deref().unwrap_or("playbooks")
                )),
            );
        }
        for (var, value) in &s.vars {
            let pos = tree
                .lookup(&["schedules", name, "vars", var])
                .map_or(at("vars"), |n| n.pos);
            if !is_identifier(var) {
                diags.push(
                    Diagnostic::error("invalid-name", format!("`{var}` is not a parameter name"))
                        .at(source, pos)
                        .with_hint("use letters, digits and `_`, as the playbook's `params` do"),
                );
            }
            let one_line = match value {
                serde_json::Value::String(t) => !t.contains(['\n', '\r']),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => true,
                _ => false,
            };
            if !one_line {
                diags.push(
                    Diagnostic::error("invalid-value", format!("var `{var}` of schedule `{name}` is not one line of text, a number or a boolean"))
                        .at(source, pos)
                        .with_hint("a scheduled run gets each var as one `--var NAME=VALUE` argument"),
                );
            }
        }
    }
}

/// Lowercase letters, digits and `-`, starting with a letter, not ending with `-`.
fn is_schedule_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}
