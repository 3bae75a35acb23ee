//! Templates and expressions in a step: expressions are not templates, both parse, and what
//! they read is checked in `references` against the steps visible from the step's block.

use super::checker::{Block, Checker};
use super::visible::Visible;
use crate::diagnostic::Diagnostic;
use crate::playbook::Step;
use crate::source::Pos;
use crate::template;
use crate::yaml::{Node, Value};

impl<'a> Checker<'a> {
    /// Checks every template and expression in a step.
    pub(super) fn templates(&mut self, step: &Step, path: &[String], block: Block, index: usize) {
        let visible = self.visible(block, index);
        let Some(node) = self.node(path) else { return };
        let node = node.clone();
        self.expressions(step, path, &visible);
        // Templates: every other string in the step, except the nested compensation steps
        // (checked on their own), ids, tags, SQL text and output specs.
        let allow_result = step.wait_for.is_some();
        let mut strings = Vec::new();
        collect_strings(&node, &mut Vec::new(), &mut strings);
        for (rel, text, pos) in strings {
            let first = rel.first().map(String::as_str);
            if matches!(first, Some("rollback" | "id" | "tags" | "outputs" | "when"))
                || rel == ["gate", "condition", "expr"]
                || rel == ["wait_for", "until"]
                || rel == ["sql", "query"]
            {
                continue;
            }
            if !template::is_template(&text) {
                continue;
            }
            let result_ok = allow_result && first == Some("wait_for");
            self.template(&text, pos, &visible, result_ok);
        }
    }

    /// The step ids whose outputs a step in `block` at `index` can read: main steps before it
    /// (a compensation also sees its owner), and for cleanup blocks every main step and the
    /// block's earlier steps.
    fn visible(&self, block: Block, index: usize) -> Visible<'a> {
        let main = self.main_ids.clone();
        match block {
            Block::Steps => Visible::new(main, index, &[]),
            Block::Rollback { owner } => Visible::new(main, owner.saturating_add(1), &[]),
            Block::OnFailure => {
                let own = &self.def.on_failure;
                Visible::new(main, usize::MAX, &own[..index.min(own.len())])
            }
            Block::Finally => {
                let own = &self.def.finally;
                Visible::new(main, usize::MAX, &own[..index.min(own.len())])
            }
        }
    }

    /// Expressions: `when`, `gate.condition.expr`, `wait_for.until` (which may read
    /// `result`).
    fn expressions(&mut self, step: &Step, path: &[String], visible: &Visible<'_>) {
        let mut expressions: Vec<(Vec<String>, &str, bool)> = Vec::new();
        if let Some(w) = &step.when {
            expressions.push((vec!["when".into()], w, false));
        }
        if let Some(c) = step.gate.as_ref().and_then(|g| g.condition.as_ref()) {
            expressions.push((
                vec!["gate".into(), "condition".into(), "expr".into()],
                &c.expr,
                false,
            ));
        }
        if let Some(w) = &step.wait_for {
            expressions.push((vec!["wait_for".into(), "until".into()], &w.until, true));
        }
        for (rel, expr, result_ok) in expressions {
            let mut p = path.to_vec();
            p.extend(rel);
            let pos = self.pos(&p);
            if template::is_template(expr) {
                self.diags.push(
                    Diagnostic::error("template-in-expression", "this field is an expression, not a template")
                        .at(self.source, pos)
                        .with_hint("drop the `{{ }}` and write the expression itself, e.g. `steps.disk.outputs.free_percent >= 30`"),
                );
                continue;
            }
            match template::expression_vars(expr) {
                Ok(vars) => {
                    self.references(&vars, pos, visible, result_ok);
                    self.unknown_filter(expr, &vars, pos, true);
                }
                Err(e) => self.diags.push(
                    Diagnostic::error("template-syntax", format!("invalid expression: {}", e.message))
                        .at(self.source, pos)
                        .with_hint("expressions use Jinja syntax, e.g. `params.count > 0 and env.name == \"dev\"`"),
                ),
            }
        }
    }

    /// One template string at `pos`: it parses, and what it reads resolves.
    fn template(&mut self, text: &str, pos: Pos, visible: &Visible<'_>, result_ok: bool) {
        match template::template_vars(text) {
            Ok(vars) => {
                self.lines = text.lines().count();
                self.references(&vars, pos, visible, result_ok);
                self.lines = 0;
                self.unknown_filter(text, &vars, pos, false);
            }
            Err(e) => {
                let at = self
                    .source
                    .find_from(pos, "{", text.lines().count())
                    .unwrap_or(pos);
                self.diags.push(
                    Diagnostic::error(
                        "template-syntax",
                        format!("invalid template: {}", e.message),
                    )
                    .at(self.source, at)
                    .with_hint(
                        "templates look like `{{ params.name }}`; check the braces and filters",
                    ),
                )
            }
        }
    }
}

impl Checker<'_> {
    /// A filter or test that does not exist, in a template or expression at `pos`.
    fn unknown_filter(
        &mut self,
        text: &str,
        vars: &std::collections::BTreeSet<String>,
        pos: Pos,
        expression: bool,
    ) {
        let Some(message) = template::unknown_filter(text, vars, expression) else {
            return;
        };
        // minijinja says "filter shout is unknown": the name, in backquotes.
        let name = message
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let kind = if message.starts_with("test") {
            "test"
        } else {
            "filter"
        };
        let at = self
            .source
            .find_from(pos, &name, text.lines().count())
            .unwrap_or(pos);
        self.diags.push(
            Diagnostic::error("unknown-filter", format!("unknown {kind} `{name}`"))
                .at(self.source, at)
                .with_width(name.chars().count().max(1))
                .with_hint("the filters are minijinja's built-in ones (`upper`, `default`, `length`, `join`, `tojson`, ...); check the spelling"),
        );
    }
}

/// Collects every string scalar under a node with its relative path and position.
fn collect_strings(node: &Node, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String, Pos)>) {
    match &node.value {
        Value::Str(s) => out.push((path.clone(), s.clone(), node.pos)),
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                collect_strings(item, path, out);
                path.pop();
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                path.push(k.as_str().unwrap_or_default().to_owned());
                collect_strings(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}
