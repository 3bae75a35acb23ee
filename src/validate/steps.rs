//! The shape of each step: unique ids, exactly one action, what nested (rollback, cleanup)
//! steps may not do, output names and regexes, retry delays. Each step's action and
//! templates are checked from here.

use super::checker::{Block, Checker};
use super::names::is_identifier;
use crate::diagnostic::Diagnostic;
use crate::playbook::{ACTION_KEYS, Action, Step};
use crate::yaml::Node;
use std::collections::BTreeMap;

impl Checker<'_> {
    /// Every step id is unique across all blocks, and every main step has one.
    pub(super) fn ids(&mut self) {
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let visit = |steps: &[Step],
                     base: Vec<String>,
                     seen: &mut BTreeMap<String, Vec<String>>,
                     dups: &mut Vec<(Vec<String>, String, Vec<String>)>| {
            for (i, s) in steps.iter().enumerate() {
                let mut p = base.clone();
                p.push(i.to_string());
                if let Some(id) = &s.id {
                    match seen.get(id) {
                        Some(first) => dups.push((p.clone(), id.clone(), first.clone())),
                        None => {
                            seen.insert(id.clone(), p.clone());
                        }
                    }
                }
            }
        };
        let mut dups = Vec::new();
        visit(&self.def.steps, vec!["steps".into()], &mut seen, &mut dups);
        for (i, s) in self.def.steps.iter().enumerate() {
            visit(
                &s.rollback,
                vec!["steps".into(), i.to_string(), "rollback".into()],
                &mut seen,
                &mut dups,
            );
        }
        visit(
            &self.def.on_failure,
            vec!["on_failure".into()],
            &mut seen,
            &mut dups,
        );
        visit(
            &self.def.finally,
            vec!["finally".into()],
            &mut seen,
            &mut dups,
        );
        for (path, id, first) in dups {
            let first_pos = self.pos(&first);
            let mut p = path.clone();
            p.push("id".into());
            self.err_at(
                &p,
                "duplicate-id",
                format!("step id `{id}` is used twice"),
                format!(
                    "the first `{id}` is at line {}; give each step its own id",
                    first_pos.line
                ),
            );
        }
        for (i, s) in self.def.steps.iter().enumerate() {
            if s.id.is_none() {
                self.err_at(&["steps".into(), i.to_string()], "missing-id", "step has no `id`",
                    "add `id: <name>`; ids name checkpoints and let later steps read this step's outputs");
            }
        }
    }

    pub(super) fn step(&mut self, step: &Step, path: &[String], block: Block, index: usize) {
        self.action_count(step, path);
        self.nesting(step, path, block);
        if let Some(action) = step.action() {
            self.action(action, step, path);
        }
        self.outputs(step, path);
        self.durations(step, path);
        if let Some(retry) = &step.retry
            && let (Some(d), Some(m)) = (
                retry.delay.as_ref().and_then(|d| d.parse()),
                retry.max_delay.as_ref().and_then(|d| d.parse()),
            )
            && m < d
        {
            let mut p = path.to_vec();
            p.extend(["retry".into(), "max_delay".into()]);
            self.err_at(
                &p,
                "invalid-value",
                "`max_delay` is shorter than `delay`",
                "make `max_delay` at least `delay`",
            );
        }
        self.templates(step, path, block, index);
    }

    /// A step has exactly one action.
    fn action_count(&mut self, step: &Step, path: &[String]) {
        let actions = step.actions();
        match actions.len() {
            0 => self.err_at(
                path,
                "no-action",
                "step has no action",
                format!("add one of: {}", ACTION_KEYS.join(", ")),
            ),
            1 => {}
            _ => {
                // Name the actions in the order the file gives them and point at the second.
                let mut keys: Vec<&str> = actions.iter().map(Action::key).collect();
                if let Some(map) = self.node(path).and_then(Node::as_map) {
                    let order: Vec<&str> = map.iter().filter_map(|(k, _)| k.as_str()).collect();
                    keys.sort_by_key(|k| order.iter().position(|o| o == k).unwrap_or(usize::MAX));
                }
                let mut p = path.to_vec();
                p.push(keys[1].to_owned());
                let node_pos = self.node(path).and_then(|n| n.key(keys[1])).map(|n| n.pos);
                let pos = node_pos.unwrap_or_else(|| self.pos(&p));
                self.diags.push(
                    Diagnostic::error(
                        "several-actions",
                        format!(
                            "step has {} actions: {}",
                            keys.len(),
                            keys.iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                    .at(self.source, pos)
                    .with_width(keys[1].len())
                    .with_hint("a step does one thing; split it into several steps"),
                );
            }
        }
    }

    /// Rollback, on_failure and finally steps run unattended and on their own: no rollback
    /// of their own, no waiting gates, no includes. `rollback_when` needs a `rollback`.
    fn nesting(&mut self, step: &Step, path: &[String], block: Block) {
        let nested = !matches!(block, Block::Steps);
        if step.rollback_when.is_some() && step.rollback.is_empty() {
            self.err_key(
                path,
                "rollback_when",
                "rollback-when-without-rollback",
                "`rollback_when` is set, but the step has no `rollback` for it to decide about",
                if nested {
                    "only a main step's compensations have a `rollback_when`; remove it here"
                } else {
                    "add the `rollback:` steps that undo this step, or remove `rollback_when`"
                },
            );
        }
        if nested && !step.rollback.is_empty() {
            self.err_key(
                path,
                "rollback",
                "nested-rollback",
                "a compensation or finally step cannot have its own `rollback`",
                "move the compensation to the main step it undoes",
            );
        }
        if let Some(Action::Gate(g)) = step.action()
            && nested
            && (g.approval.is_some()
                || g.confirm.is_some()
                || g.require_run.is_some()
                || g.window.is_some())
        {
            let mut p = path.to_vec();
            p.push("gate".into());
            self.err_at(&p, "gate-in-cleanup", "rollback, on_failure and finally steps cannot wait on an approval, confirmation, window or earlier run",
                    "cleanup must be able to run unattended; only `condition` gates are allowed here");
        }
        if let Some(Action::Include(_)) = step.action()
            && nested
        {
            let mut p = path.to_vec();
            p.push("include".into());
            self.err_at(
                &p,
                "include-in-cleanup",
                "rollback, on_failure and finally steps cannot include a playbook",
                "include it among `steps`; an included playbook's own on_failure and finally run with it",
            );
        }
    }

    /// Output names are identifiers and their regexes compile.
    fn outputs(&mut self, step: &Step, path: &[String]) {
        for (name, spec) in &step.outputs {
            let mut p = path.to_vec();
            p.extend(["outputs".into(), name.clone()]);
            if !is_identifier(name) {
                let mut parent = path.to_vec();
                parent.push("outputs".into());
                self.err_key(
                    &parent,
                    name,
                    "invalid-name",
                    format!("output name `{name}` is not an identifier"),
                    "use letters, digits and `_` so templates can read it",
                );
            }
            if let Some(re) = &spec.regex
                && let Err(e) = regex::Regex::new(re)
            {
                p.push("regex".into());
                let msg = e.to_string();
                let last = msg.lines().last().unwrap_or("invalid regex").trim();
                let last = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                self.err_at(
                    &p,
                    "invalid-regex",
                    format!("output `{name}` has an invalid regex: {last}"),
                    "see https://docs.rs/regex for the syntax",
                );
            }
        }
    }
}
