//! Gates: exactly one kind, messages that say what is approved or confirmed, enough
//! approvers, windows that open, time zones that exist, earlier runs in known environments.

use super::checker::Checker;
use super::environments::unknown_env_hint;
use super::names::{is_time_zone, time_zone_hint};
use crate::fmt::plural;
use crate::playbook::GateAction;

impl Checker<'_> {
    pub(super) fn gate(&mut self, g: &GateAction, p: &[String]) {
        let kinds = g.kinds();
        if kinds.is_empty() {
            self.err_at(
                p,
                "incomplete-gate",
                "gate has no kind",
                "add one of: `approval`, `confirm`, `condition`, `window`, `require_run`",
            );
        } else if kinds.len() > 1 {
            self.err_at(
                p,
                "several-gate-kinds",
                format!(
                    "gate has {} kinds: {}",
                    kinds.len(),
                    kinds
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "a gate checks one thing; split it into several gate steps",
            );
        }
        if let Some(a) = &g.approval {
            if a.message.trim().is_empty() {
                let mut q = p.to_vec();
                q.extend(["approval".into(), "message".into()]);
                self.err_at(
                    &q,
                    "incomplete-gate",
                    "approval gate has an empty `message`",
                    "say what the approver is approving",
                );
            }
            if let Some(approvers) = &a.approvers {
                let required = a.required.unwrap_or(1) as usize;
                if approvers.len() < required {
                    let mut q = p.to_vec();
                    q.extend(["approval".into(), "approvers".into()]);
                    self.err_at(
                        &q,
                        "incomplete-gate",
                        format!(
                            "approval needs {required} approvals but lists only {}",
                            plural(approvers.len(), "approver", "approvers")
                        ),
                        "list at least as many approvers as `required`",
                    );
                }
            }
        }
        if let Some(c) = &g.confirm
            && c.message.trim().is_empty()
        {
            let mut q = p.to_vec();
            q.extend(["confirm".into(), "message".into()]);
            self.err_at(
                &q,
                "incomplete-gate",
                "confirm gate has an empty `message`",
                "say what the operator is confirming",
            );
        }
        if let Some(w) = &g.window {
            if w.days.as_ref().is_some_and(Vec::is_empty) {
                let mut q = p.to_vec();
                q.extend(["window".into(), "days".into()]);
                self.err_at(
                    &q,
                    "invalid-value",
                    "`days` is empty: the window never opens",
                    "list the days it opens, like `days: [sat, sun]`, or remove `days` for every day",
                );
            }
            if w.start == w.end {
                let mut q = p.to_vec();
                q.extend(["window".into(), "end".into()]);
                self.err_at(
                    &q,
                    "incomplete-gate",
                    "window opens and closes at the same time",
                    "give `end` a different time than `start`",
                );
            }
            if let Some(tz) = &w.tz
                && !is_time_zone(tz)
            {
                let mut q = p.to_vec();
                q.extend(["window".into(), "tz".into()]);
                self.err_at(
                    &q,
                    "invalid-value",
                    format!("`{tz}` is not a time zone"),
                    time_zone_hint(tz),
                );
            }
        }
        // A templated environment (`"{{ vars.staging_first }}"`) is known only once rendered;
        // the gate then refuses, naming it, when it has no successful run there.
        if let (Some(r), Some(config)) = (&g.require_run, self.config)
            && !r.env.contains("{{")
            && !config.environments.contains_key(&r.env)
        {
            let mut q = p.to_vec();
            q.extend(["require_run".into(), "env".into()]);
            let hint = unknown_env_hint(&r.env, config);
            self.err_at(
                &q,
                "unknown-environment",
                format!("environment `{}` is not defined in runbook.yaml", r.env),
                hint,
            );
        }
    }
}
