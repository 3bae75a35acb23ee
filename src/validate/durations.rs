//! Durations that parse but mean nothing: a zero where zero would never let the step (or an
//! approval) succeed, and one too long to count (which parsing would silently drop, leaving the
//! setting unset).

use super::checker::Checker;
use crate::playbook::{Duration, Step};

/// The longest duration runbook counts: 100 years.
const LONGEST: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);

/// What is wrong with `d` as the `key` of something, with a hint; `zero_ok` when a zero means
/// something (no delay).
pub(super) fn problem(d: &Duration, key: &str, zero_ok: bool) -> Option<(String, String)> {
    match d.parse() {
        Some(t) if t > LONGEST => Some(too_long(&d.0)),
        None => Some(too_long(&d.0)),
        Some(t) if t.is_zero() && !zero_ok => Some((
            format!("a `{key}` of `{}` ends before anything can happen", d.0),
            format!("give `{key}` a duration above zero, or remove it"),
        )),
        Some(_) => None,
    }
}

fn too_long(text: &str) -> (String, String) {
    (
        format!("`{text}` is too long: durations are at most 100 years"),
        "write a duration such as `30s`, `5m`, `2h` or `7d`".to_owned(),
    )
}

impl Checker<'_> {
    /// Every duration of a step: its timeout and retry delays, its action's.
    pub(super) fn durations(&mut self, step: &Step, path: &[String]) {
        let mut found: Vec<(Vec<&str>, &Duration, bool)> = Vec::new();
        if let Some(t) = &step.timeout {
            found.push((vec!["timeout"], t, false));
        }
        if let Some(r) = &step.retry {
            if let Some(d) = &r.delay {
                found.push((vec!["retry", "delay"], d, true));
            }
            if let Some(d) = &r.max_delay {
                found.push((vec!["retry", "max_delay"], d, true));
            }
        }
        if let Some(m) = &step.migrate {
            if let Some(d) = &m.lock_timeout {
                found.push((vec!["migrate", "lock_timeout"], d, false));
            }
            if let Some(d) = &m.statement_timeout {
                found.push((vec!["migrate", "statement_timeout"], d, false));
            }
            if let Some(ob) = &m.on_blocked {
                found.push((vec!["migrate", "on_blocked", "after"], &ob.after, false));
            }
        }
        if let Some(d) = step.health.as_ref().and_then(|h| h.sample_window.as_ref()) {
            found.push((vec!["health", "sample_window"], d, false));
        }
        if let Some(w) = &step.wait_for {
            if let Some(d) = &w.interval {
                found.push((vec!["wait_for", "interval"], d, false));
            }
            found.push((vec!["wait_for", "deadline"], &w.deadline, false));
        }
        if let Some(g) = &step.gate {
            if let Some(d) = g.approval.as_ref().and_then(|a| a.expires.as_ref()) {
                found.push((vec!["gate", "approval", "expires"], d, false));
            }
            if let Some(d) = g.require_run.as_ref().and_then(|r| r.within.as_ref()) {
                found.push((vec!["gate", "require_run", "within"], d, false));
            }
        }
        for (keys, d, zero_ok) in found {
            let key = keys.last().copied().unwrap_or_default();
            if let Some((msg, hint)) = problem(d, key, zero_ok) {
                let mut p = path.to_vec();
                p.extend(keys.iter().map(|k| (*k).to_owned()));
                self.err_at(&p, "invalid-value", msg, hint);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Duration {
        Duration(text.to_owned())
    }

    #[test]
    fn zero_is_refused_where_it_means_nothing_and_overflow_everywhere() {
        assert!(problem(&d("0s"), "timeout", false).is_some());
        assert!(problem(&d("0s"), "delay", true).is_none());
        assert!(problem(&d("99999999999999999999s"), "delay", true).is_some());
        assert!(problem(&d("36501d"), "timeout", false).is_some());
        assert!(problem(&d("36500d"), "timeout", false).is_none());
        assert!(problem(&d("1h30m"), "timeout", false).is_none());
    }
}
