//! What templates read: `params.*` declared, `env.*` and `run.*` fields that exist, `vars.*`
//! defined for every environment the playbook runs in, `steps.<id>` that ran before with
//! outputs that the step produces.

use super::checker::Checker;
use super::names::names;
use super::visible::Visible;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::source::Pos;
use crate::template;
use std::collections::BTreeSet;

/// A variable path that does not resolve: where, how wide, the message and the hint.
type Unresolved = (Pos, usize, String, String);

impl Checker<'_> {
    /// Checks that each variable path a template reads resolves.
    pub(super) fn references(
        &mut self,
        vars: &BTreeSet<String>,
        pos: Pos,
        visible: &Visible<'_>,
        result_ok: bool,
    ) {
        for var in vars {
            let parts: Vec<&str> = var.split('.').collect();
            let root = parts[0];
            let problem = match root {
                "params" => parts.get(1).and_then(|name| self.param_ref(name, pos)),
                "env" => parts.get(1).and_then(|f| self.field_ref("env", f, pos)),
                "run" => parts.get(1).and_then(|f| self.field_ref("run", f, pos)),
                "vars" => parts.get(1).and_then(|name| self.vars_ref(name, pos)),
                "steps" => self.step_reference(&parts, pos, visible),
                "result" if result_ok => None,
                // Names a template defines itself (loop variables, `set`) never reach here:
                // undeclared_variables reports only names read from the context.
                other => Some(self.unknown_root(other, pos, visible)),
            };
            if let Some((p, width, msg, hint)) = problem {
                self.diags.push(
                    Diagnostic::error("undefined-variable", msg)
                        .at(self.source, p)
                        .with_width(width)
                        .with_hint(hint),
                );
            }
        }
    }

    /// Where `needle` is in the text being checked, from `pos` on; `pos` when it is not found.
    fn find(&self, pos: Pos, needle: &str) -> Pos {
        self.source
            .find_from(pos, needle, self.lines)
            .unwrap_or(pos)
    }

    fn param_ref(&self, name: &str, pos: Pos) -> Option<Unresolved> {
        if self.def.params.contains_key(name) {
            return None;
        }
        let hint = match did_you_mean(name, self.def.params.keys().map(String::as_str)) {
            Some(s) => format!("did you mean `params.{s}`?"),
            None if self.def.params.is_empty() => "the playbook declares no `params`".to_owned(),
            None => format!("declared params: {}", names(self.def.params.keys())),
        };
        Some((
            self.find(pos, name),
            name.chars().count(),
            format!("undefined parameter `{name}`"),
            hint,
        ))
    }

    /// A field of `env` or `run`, which have fixed fields.
    fn field_ref(&self, root: &str, f: &str, pos: Pos) -> Option<Unresolved> {
        let fields = if root == "env" {
            template::ENV_FIELDS
        } else {
            template::RUN_FIELDS
        };
        if fields.contains(&f) {
            return None;
        }
        let hint = match did_you_mean(f, fields.iter().copied()) {
            Some(s) if root == "env" => format!("did you mean `env.{s}`?"),
            _ => format!("`{root}` has: {}", fields.join(", ")),
        };
        Some((
            self.find(pos, f),
            f.chars().count(),
            format!("`{root}` has no field `{f}`"),
            hint,
        ))
    }

    /// A config variable must be defined for every environment the playbook can run in.
    fn vars_ref(&self, name: &str, pos: Pos) -> Option<Unresolved> {
        let Some(config) = self.config else {
            return Some((
                self.find(pos, name),
                name.chars().count(),
                format!("undefined variable `vars.{name}`"),
                "`vars` come from runbook.yaml, and there is none".to_owned(),
            ));
        };
        let envs: Vec<&String> = config
            .environments
            .iter()
            .filter(|(env_name, _)| {
                self.def
                    .environments
                    .as_ref()
                    .is_none_or(|e| e.contains(env_name))
            })
            .filter(|(_, env)| !env.vars.contains_key(name))
            .map(|(n, _)| n)
            .collect();
        if envs.is_empty() {
            return None;
        }
        let all: BTreeSet<&str> = config
            .environments
            .values()
            .flat_map(|e| e.vars.keys().map(String::as_str))
            .collect();
        let hint = match did_you_mean(name, all.iter().copied()) {
            Some(s) if s != name => format!("did you mean `vars.{s}`?"),
            _ => format!(
                "define `{name}` under `vars:` of {} in runbook.yaml, or limit the playbook with `environments:`",
                names(envs.iter())
            ),
        };
        Some((
            self.find(pos, name),
            name.chars().count(),
            format!(
                "variable `{name}` is not defined for {} {}",
                if envs.len() == 1 {
                    "environment"
                } else {
                    "environments"
                },
                names(envs.iter())
            ),
            hint,
        ))
    }

    /// A name that is none of the roots templates can read.
    fn unknown_root(&self, other: &str, pos: Pos, visible: &Visible<'_>) -> Unresolved {
        let hint = if self.def.params.contains_key(other) {
            format!("parameters are read as `params.{other}`")
        } else if visible.contains(other) {
            format!("step outputs are read as `steps.{other}.outputs.<name>`")
        } else {
            match did_you_mean(other, template::ROOTS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("templates can read: {}", template::ROOTS.join(", ")),
            }
        };
        (
            self.find(pos, other),
            other.chars().count(),
            format!("undefined variable `{other}`"),
            hint,
        )
    }

    /// `steps.<id>.outputs.<name>` or `steps.<id>.status`, for a step that runs before.
    fn step_reference(
        &self,
        parts: &[&str],
        pos: Pos,
        visible: &Visible<'_>,
    ) -> Option<Unresolved> {
        let id = *parts.get(1)?;
        if !visible.contains(id) {
            return Some(self.invisible_step(id, pos, visible));
        }
        let field = *parts.get(2)?;
        if field != "outputs" && field != "status" {
            let p = self
                .source
                .find_from(pos, &format!("{id}.{field}"), self.lines)
                .map(|p| Pos::new(p.line, p.col + id.chars().count() + 1))
                .unwrap_or(pos);
            let hint = match did_you_mean(field, ["outputs", "status"]) {
                Some(s) => format!("did you mean `steps.{id}.{s}`?"),
                None => "read `steps.<id>.outputs.<name>` or `steps.<id>.status`".to_owned(),
            };
            return Some((
                p,
                field.chars().count(),
                format!("`steps.{id}` has no field `{field}`"),
                hint,
            ));
        }
        let output = *parts.get(3)?;
        if field != "outputs" {
            return None;
        }
        self.output_ref(id, output, pos)
    }

    /// A step that is not visible: later in the playbook, or not there at all.
    fn invisible_step(&self, id: &str, pos: Pos, visible: &Visible<'_>) -> Unresolved {
        let later = self.main_ids.contains_key(id)
            || self
                .def
                .on_failure
                .iter()
                .chain(&self.def.finally)
                .any(|s| s.id.as_deref() == Some(id));
        let (msg, hint) = if later {
            (
                format!("step `{id}` has not run yet at this point"),
                "a step can read the outputs of steps before it; move this step after `".to_owned()
                    + id
                    + "`",
            )
        } else {
            let hint = match did_you_mean(id, visible.sorted()) {
                Some(s) => format!("did you mean `steps.{s}`?"),
                None if visible.is_empty() => "no step runs before this one".to_owned(),
                None => format!("steps before this one: {}", names(visible.sorted())),
            };
            (format!("no step `{id}` runs before this one"), hint)
        };
        let at = self
            .source
            .find_from(pos, &format!("steps.{id}"), self.lines)
            .map(|p| Pos::new(p.line, p.col + 6))
            .unwrap_or(pos);
        (at, id.chars().count(), msg, hint)
    }

    /// An output the step's action or its `outputs:` produces.
    fn output_ref(&self, id: &str, output: &str, pos: Pos) -> Option<Unresolved> {
        let step = self
            .def
            .steps
            .iter()
            .chain(&self.def.on_failure)
            .chain(&self.def.finally)
            .find(|s| s.id.as_deref() == Some(id))?;
        let action = step.action()?;
        let known = action.outputs()?;
        if known.contains(&output) || step.outputs.contains_key(output) {
            return None;
        }
        let mut all: Vec<&str> = known.to_vec();
        all.extend(step.outputs.keys().map(String::as_str));
        let hint = match did_you_mean(output, all.iter().copied()) {
            Some(s) => format!("did you mean `steps.{id}.outputs.{s}`?"),
            None => format!("`{}` steps produce: {}", action.key(), all.join(", ")),
        };
        let p = self
            .source
            .find_from(pos, &format!("outputs.{output}"), self.lines)
            .map(|p| Pos::new(p.line, p.col + 8))
            .unwrap_or(pos);
        Some((
            p,
            output.chars().count(),
            format!("step `{id}` has no output `{output}`"),
            hint,
        ))
    }
}
