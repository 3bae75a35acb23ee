//! The maintenance actions' rules and a migration's `on_blocked`: `vacuum` with `full` has a
//! `confirm` or `approval` gate before it in every environment (its opt-in is not enough:
//! each table is locked against reads and writes while it is rewritten); names are not
//! empty; `on_blocked` goes with `apply` or `revert` (its `after` is checked with the other
//! durations).

use super::checker::Checker;
use crate::playbook::{Action, MigrateAction, MigrateOp, Step};

impl Checker<'_> {
    /// Checks of one action's own payload (called for every step).
    pub(super) fn maintain(&mut self, action: Action<'_>, p: &[String]) {
        let names: Vec<(&str, &Vec<String>)> = match action {
            Action::Vacuum(v) => vec![("tables", &v.tables)],
            Action::Reindex(r) => vec![("indexes", &r.indexes), ("tables", &r.tables)],
            Action::Migrate(m) => return self.on_blocked(m, p),
            _ => return,
        };
        for (key, list) in names {
            for (i, name) in list.iter().enumerate() {
                if name.trim().is_empty() {
                    let mut at = p.to_vec();
                    at.extend([key.to_owned(), i.to_string()]);
                    self.err_at(
                        &at,
                        "incomplete-action",
                        format!("an empty name under `{key}`"),
                        "write a table or index name, e.g. `orders` or `sales.orders`",
                    );
                }
            }
        }
    }

    fn on_blocked(&mut self, m: &MigrateAction, p: &[String]) {
        if m.on_blocked.is_none() {
            return;
        }
        let mut at = p.to_vec();
        at.push("on_blocked".to_owned());
        if !matches!(m.action, MigrateOp::Apply | MigrateOp::Revert) {
            self.err_at(
                &at,
                "unsupported-option",
                "`on_blocked` applies to `apply` and `revert` only",
                "remove `on_blocked`, or use it on the step that applies the migrations",
            );
        }
    }

    /// `vacuum` with `full: true` needs a gate before it in its block, in every environment;
    /// in `on_failure` and `finally` nothing can guard it.
    pub(super) fn full_vacuum_gates(&mut self) {
        let hint = "add a step with `gate: { confirm: ... }` or `gate: { approval: ... }` before it, or drop `full` (a plain `vacuum` takes no lock that blocks reads or writes)";
        let mut guarded = false;
        let mut found: Vec<Vec<String>> = Vec::new();
        for (i, s) in self.def.steps.iter().enumerate() {
            if is_full(s) && !guarded {
                found.push(vec!["steps".into(), i.to_string()]);
            }
            guarded |= is_guard(s);
            for (j, comp) in s.rollback.iter().enumerate() {
                if is_full(comp) && !guarded {
                    found.push(vec![
                        "steps".into(),
                        i.to_string(),
                        "rollback".into(),
                        j.to_string(),
                    ]);
                }
            }
        }
        for (block, steps) in [
            ("on_failure", &self.def.on_failure),
            ("finally", &self.def.finally),
        ] {
            for (i, s) in steps.iter().enumerate() {
                if is_full(s) {
                    found.push(vec![block.into(), i.to_string()]);
                }
            }
        }
        for parent in found {
            self.err_key(
                &parent,
                "vacuum",
                "unguarded-full-vacuum",
                "`vacuum` with `full: true` without a gate before it: each table is locked against reads and writes while it is rewritten",
                hint,
            );
        }
    }
}

fn is_full(s: &Step) -> bool {
    s.vacuum.as_ref().is_some_and(|v| v.full)
}

fn is_guard(s: &Step) -> bool {
    s.gate
        .as_ref()
        .is_some_and(|g| g.approval.is_some() || g.confirm.is_some())
}
