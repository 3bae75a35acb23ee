//! Fleet targets: an environment's list (and its `targets_file`), the selectors that pick from
//! it (`all`, names with `*`, `label=value`), and the address a child run connects to.

use crate::config::{ConfigDef, FleetTarget};
use std::path::Path;

/// The fleet targets of an environment: the config's list plus its `targets_file`.
pub fn targets(root: &Path, config: &ConfigDef, env: &str) -> Result<Vec<FleetTarget>, String> {
    let e = config
        .environments
        .get(env)
        .ok_or_else(|| format!("no environment `{env}` in runbook.yaml"))?;
    let mut all = e.targets.clone();
    if let Some(file) = &e.targets_file {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|err| format!("cannot read `{}`: {err}", path.display()))?;
        let more: Vec<FleetTarget> =
            serde_saphyr::from_str(&text).map_err(|err| format!("`{}`: {err}", path.display()))?;
        all.extend(more);
    }
    Ok(all)
}

/// Targets a selector picks: `all`, names (with `*` wildcards) and `label=value`, comma-separated;
/// the union, in the config's order.
pub fn select<'a>(targets: &'a [FleetTarget], selector: &str) -> Vec<&'a FleetTarget> {
    let terms: Vec<&str> = selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    targets
        .iter()
        .filter(|t| {
            terms.iter().any(|term| {
                if *term == "all" {
                    true
                } else if let Some((k, v)) = term.split_once('=') {
                    t.labels.get(k.trim()).is_some_and(|x| x == v.trim())
                } else {
                    wildcard(term, &t.name)
                }
            })
        })
        .collect()
}

fn wildcard(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len()
                && name.starts_with(head)
                && wildcard_rest(tail, &name[head.len()..])
        }
    }
}

fn wildcard_rest(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name.ends_with(pattern);
    }
    (0..=name.len()).any(|i| name.is_char_boundary(i) && wildcard(pattern, &name[i..]))
}

/// A target's address for a child run; it reaches the child through the environment, never
/// argv, since it may hold a password.
pub(super) fn address(t: &FleetTarget, root: &Path) -> Result<String, String> {
    if let Some(var) = &t.url_env {
        return std::env::var(var)
            .map_err(|_| format!("`{var}` (the URL of fleet target `{}`) is not set", t.name));
    }
    if let Some(url) = &t.url {
        return Ok(url.clone());
    }
    if let Some(path) = &t.sqlite {
        return Ok(format!("sqlite:{}", root.join(path).display()));
    }
    Err(format!("fleet target `{}` names no database", t.name))
}
