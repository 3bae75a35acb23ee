//! Semantic validation: what the schema cannot say. Unique ids, one action per step, template
//! references that resolve, well-formed rollback and finally blocks, complete gates, typed
//! parameter defaults, and gates before destructive steps in protected environments.
//!
//! Every check pushes diagnostics and goes on, so the user sees all problems at once.

use crate::config::ConfigDef;
use crate::diagnostic::{Diagnostic, article, did_you_mean};
use crate::playbook::{
    ACTION_KEYS, Action, HealthCheck, ParamType, PlaybookDef, RowBaseline, Step,
};
use crate::source::{Pos, Source};
use crate::template;
use crate::yaml::{Node, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Which block a step is in; it decides what the step's templates may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Steps,
    Rollback { owner: usize },
    OnFailure,
    Finally,
}

struct Checker<'a> {
    def: &'a PlaybookDef,
    source: &'a Source,
    tree: &'a Node,
    config: Option<&'a ConfigDef>,
    diags: Vec<Diagnostic>,
    /// Main step ids in order, with their index.
    main_ids: Vec<(String, usize)>,
    /// How many lines past its first the string being checked spans (block scalars).
    lines: usize,
}

/// Checks a playbook that passed the schema. `config` enables the checks that depend on the
/// environments (variables, protections); without it those are skipped.
pub fn check_playbook(
    def: &PlaybookDef,
    source: &Source,
    tree: &Node,
    config: Option<&ConfigDef>,
) -> Vec<Diagnostic> {
    let main_ids = def
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.id.clone().map(|id| (id, i)))
        .collect();
    let mut c = Checker {
        def,
        source,
        tree,
        config,
        diags: Vec::new(),
        main_ids,
        lines: 0,
    };
    c.params();
    c.environments();
    c.ids();
    if def.steps.is_empty() {
        c.err(
            &["steps"],
            "empty-playbook",
            "the playbook has no steps",
            "add at least one step under `steps:`",
        );
    }
    for (i, step) in def.steps.iter().enumerate() {
        let path = vec!["steps".to_owned(), i.to_string()];
        c.step(step, &path, Block::Steps, i);
        for (j, comp) in step.rollback.iter().enumerate() {
            let mut p = path.clone();
            p.extend(["rollback".to_owned(), j.to_string()]);
            c.step(comp, &p, Block::Rollback { owner: i }, j);
        }
    }
    for (block, name) in [
        (Block::OnFailure, "on_failure"),
        (Block::Finally, "finally"),
    ] {
        let steps = if block == Block::OnFailure {
            &def.on_failure
        } else {
            &def.finally
        };
        for (i, step) in steps.iter().enumerate() {
            c.step(step, &[name.to_owned(), i.to_string()], block, i);
        }
    }
    c.protections();
    c.diags
}

impl Checker<'_> {
    fn node(&self, path: &[String]) -> Option<&Node> {
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        self.tree.lookup(&refs)
    }

    fn pos(&self, path: &[String]) -> Pos {
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        self.tree.pos_of(&refs)
    }

    fn err(
        &mut self,
        path: &[&str],
        code: &'static str,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let owned: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        self.err_at(&owned, code, msg, hint);
    }

    fn err_at(
        &mut self,
        path: &[String],
        code: &'static str,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let pos = self.pos(path);
        let width = self
            .node(path)
            .and_then(Node::as_str)
            .map_or(1, |s| s.chars().count().min(60));
        self.diags.push(
            Diagnostic::error(code, msg)
                .at(self.source, pos)
                .with_width(width)
                .with_hint(hint),
        );
    }

    /// An error pointing at the key `key` of the mapping at `parent`.
    fn err_key(
        &mut self,
        parent: &[String],
        key: &str,
        code: &'static str,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let pos = self.node(parent).and_then(|n| n.key(key)).map(|k| k.pos);
        match pos {
            Some(pos) => self.diags.push(
                Diagnostic::error(code, msg)
                    .at(self.source, pos)
                    .with_width(key.chars().count())
                    .with_hint(hint),
            ),
            None => {
                let mut p = parent.to_vec();
                p.push(key.to_owned());
                self.err_at(&p, code, msg, hint);
            }
        }
    }

    fn params(&mut self) {
        for (name, param) in &self.def.params {
            let path = ["params".to_owned(), name.clone()];
            if !is_identifier(name) {
                let pos = self
                    .node(&["params".to_owned()])
                    .and_then(|n| n.key(name))
                    .map_or(Pos::UNKNOWN, |n| n.pos);
                self.diags.push(
                    Diagnostic::error(
                        "invalid-name",
                        format!("parameter name `{name}` is not an identifier"),
                    )
                    .at(self.source, pos)
                    .with_width(name.chars().count())
                    .with_hint("use letters, digits and `_` so templates can read `params.<name>`"),
                );
            }
            if param.secret && param.default.is_some() {
                let mut p = path.to_vec();
                p.push("default".to_owned());
                self.err_at(&p, "secret-default", format!("secret parameter `{name}` has a default in the playbook"),
                    "a secret written in a playbook is stored in plain text; use `from_env` to read it from the environment");
            }
            if let Some(default) = &param.default {
                if !type_matches(param.kind, default) {
                    let mut p = path.to_vec();
                    p.push("default".to_owned());
                    self.err_at(
                        &p,
                        "wrong-type",
                        format!("default of `{name}` is not {}", article(param.kind.name())),
                        format!("give {} or change `type`", article(param.kind.name())),
                    );
                }
                if let Some(choices) = &param.choices
                    && !choices.contains(default)
                {
                    let mut p = path.to_vec();
                    p.push("default".to_owned());
                    self.err_at(
                        &p,
                        "invalid-value",
                        format!("default of `{name}` is not one of its choices"),
                        "make the default one of `choices`",
                    );
                }
            }
            if let Some(choices) = &param.choices {
                for (i, choice) in choices.iter().enumerate() {
                    if !type_matches(param.kind, choice) {
                        let p = vec![
                            "params".to_owned(),
                            name.clone(),
                            "choices".to_owned(),
                            i.to_string(),
                        ];
                        self.err_at(
                            &p,
                            "wrong-type",
                            format!("choice of `{name}` is not {}", article(param.kind.name())),
                            "every choice must have the parameter's type",
                        );
                    }
                }
            }
            if let Some(var) = &param.from_env
                && !is_env_name(var)
            {
                let p = vec!["params".to_owned(), name.clone(), "from_env".to_owned()];
                self.err_at(
                    &p,
                    "invalid-name",
                    format!("`{var}` is not an environment variable name"),
                    "give the variable's name, like `ADMIN_DEFAULT_PASSWORD`, not its value",
                );
            }
        }
    }

    fn environments(&mut self) {
        let (Some(envs), Some(config)) = (&self.def.environments, self.config) else {
            return;
        };
        for (i, env) in envs.iter().enumerate() {
            if !config.environments.contains_key(env) {
                let hint = match did_you_mean(env, config.environments.keys().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "environments in runbook.yaml: {}",
                        names(config.environments.keys())
                    ),
                };
                self.err_at(
                    &["environments".to_owned(), i.to_string()],
                    "unknown-environment",
                    format!("environment `{env}` is not defined in runbook.yaml"),
                    hint,
                );
            }
        }
    }

    fn ids(&mut self) {
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

    fn step(&mut self, step: &Step, path: &[String], block: Block, index: usize) {
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
        let nested = !matches!(block, Block::Steps);
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
        if let Some(action) = step.action() {
            self.action(action, step, path);
        }
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

    fn action(&mut self, action: Action<'_>, step: &Step, path: &[String]) {
        let mut p = path.to_vec();
        p.push(action.key().to_owned());
        match action {
            Action::Shell(s) => match (&s.argv, &s.script) {
                (None, None) => self.err_at(
                    &p,
                    "incomplete-action",
                    "`shell` needs `argv` or `script`",
                    "write `argv: [program, arg, ...]`; use `script:` only when you need a shell",
                ),
                (Some(_), Some(_)) => self.err_at(
                    &p,
                    "conflicting-keys",
                    "`shell` has both `argv` and `script`",
                    "`argv` runs a program directly, `script` runs `sh -c`; keep one",
                ),
                (Some(argv), None) if argv.is_empty() => {
                    p.push("argv".into());
                    self.err_at(
                        &p,
                        "incomplete-action",
                        "`argv` is empty",
                        "the first item is the program to run",
                    );
                }
                _ => {}
            },
            Action::Sql(s) => {
                if template::is_template(&s.query) {
                    p.push("query".into());
                    let pos = self.pos(&p);
                    let at = self
                        .source
                        .find_from(pos, "{{", s.query.lines().count())
                        .unwrap_or(pos);
                    self.diags.push(
                        Diagnostic::error("template-in-sql", "templates are not allowed in SQL text")
                            .at(self.source, at)
                            .with_hint("pass values in `params:` and mark them `$1`, `$2` (PostgreSQL) or `?` (SQLite); they are bound, never spliced"),
                    );
                } else if s.query.trim().is_empty() {
                    p.push("query".into());
                    self.err_at(
                        &p,
                        "incomplete-action",
                        "`query` is empty",
                        "write the SQL statement to run",
                    );
                }
            }
            Action::Gate(g) => {
                let kinds = g.kinds();
                if kinds.is_empty() {
                    self.err_at(
                        &p,
                        "incomplete-gate",
                        "gate has no kind",
                        "add one of: `approval`, `confirm`, `condition`, `window`, `require_run`",
                    );
                } else if kinds.len() > 1 {
                    self.err_at(
                        &p,
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
                        let mut q = p.clone();
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
                            let mut q = p.clone();
                            q.extend(["approval".into(), "approvers".into()]);
                            self.err_at(
                                &q,
                                "incomplete-gate",
                                format!(
                                    "approval needs {required} approvals but lists only {}",
                                    plural(approvers.len(), "approver")
                                ),
                                "list at least as many approvers as `required`",
                            );
                        }
                    }
                }
                if let Some(c) = &g.confirm
                    && c.message.trim().is_empty()
                {
                    let mut q = p.clone();
                    q.extend(["confirm".into(), "message".into()]);
                    self.err_at(
                        &q,
                        "incomplete-gate",
                        "confirm gate has an empty `message`",
                        "say what the operator is confirming",
                    );
                }
                if let Some(w) = &g.window {
                    if w.start == w.end {
                        let mut q = p.clone();
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
                        let mut q = p.clone();
                        q.extend(["window".into(), "tz".into()]);
                        self.err_at(&q, "invalid-value", format!("`{tz}` is not a time zone"),
                                "use `UTC`, a fixed offset like `+02:00`, or an IANA name like `Europe/Berlin`");
                    }
                }
                if let (Some(r), Some(config)) = (&g.require_run, self.config)
                    && !config.environments.contains_key(&r.env)
                {
                    let mut q = p.clone();
                    q.extend(["require_run".into(), "env".into()]);
                    let hint = match did_you_mean(
                        &r.env,
                        config.environments.keys().map(String::as_str),
                    ) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "environments in runbook.yaml: {}",
                            names(config.environments.keys())
                        ),
                    };
                    self.err_at(
                        &q,
                        "unknown-environment",
                        format!("environment `{}` is not defined in runbook.yaml", r.env),
                        hint,
                    );
                }
            }
            Action::WaitFor(w) => match (&w.sql, &w.argv) {
                (None, None) => self.err_at(
                    &p,
                    "incomplete-action",
                    "`wait_for` needs `sql` or `argv` to poll",
                    "add `sql: SELECT ...` or `argv: [...]`",
                ),
                (Some(_), Some(_)) => self.err_at(
                    &p,
                    "conflicting-keys",
                    "`wait_for` has both `sql` and `argv`",
                    "poll one thing",
                ),
                _ => {}
            },
            Action::Health(h) => {
                if !h.baseline_ignore.is_empty() && h.baseline.is_none() {
                    p.push("baseline_ignore".into());
                    self.err_at(
                        &p,
                        "incomplete-action",
                        "`baseline_ignore` without a `baseline` to compare with",
                        "add `baseline: \"{{ steps.backup.outputs.row_counts }}\"`, or remove `baseline_ignore`",
                    );
                    p.pop();
                }
                if h.baseline.is_some() && !h.checks.includes(HealthCheck::RowCounts) {
                    p.push("baseline".into());
                    self.err_at(
                        &p,
                        "incomplete-action",
                        "`baseline` is compared by the `row_counts` check, which this step does not run",
                        "add `row_counts` to `checks`, or use `checks: all`",
                    );
                    p.pop();
                }
                if let Some(RowBaseline::Template(t)) = &h.baseline
                    && !template::is_template(t)
                {
                    p.push("baseline".into());
                    self.err_at(
                        &p,
                        "invalid-value",
                        "`baseline` is neither a map of table to row count nor a template",
                        "write `baseline: \"{{ steps.before.outputs.counts }}\"` or `baseline: { User: 10 }`",
                    );
                }
            }
            Action::Include(inc) => {
                if inc.playbook.trim().is_empty() {
                    p.push("playbook".into());
                    self.err_at(
                        &p,
                        "incomplete-action",
                        "`include` names no playbook",
                        "give a playbook name or a path",
                    );
                }
                // An include runs the included steps, each with its own options; these would
                // be silently meaningless on the include itself.
                let unsupported = [
                    ("retry", step.retry.is_some()),
                    ("timeout", step.timeout.is_some()),
                    ("continue_on_error", step.continue_on_error),
                    ("outputs", !step.outputs.is_empty()),
                    ("rollback", !step.rollback.is_empty()),
                ];
                for (key, given) in unsupported {
                    if given {
                        self.err_key(
                            path,
                            key,
                            "unsupported-option",
                            format!("`{key}` has no meaning on an `include` step"),
                            "set it on the included playbook's steps; `when` and `tags` do work on an include",
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Checks every template and expression in a step.
    fn templates(&mut self, step: &Step, path: &[String], block: Block, index: usize) {
        let visible: BTreeSet<String> = match block {
            Block::Steps => self
                .main_ids
                .iter()
                .filter(|(_, i)| *i < index)
                .map(|(id, _)| id.clone())
                .collect(),
            Block::Rollback { owner } => self
                .main_ids
                .iter()
                .filter(|(_, i)| *i <= owner)
                .map(|(id, _)| id.clone())
                .collect(),
            Block::OnFailure | Block::Finally => {
                let own = if block == Block::OnFailure {
                    &self.def.on_failure
                } else {
                    &self.def.finally
                };
                self.main_ids
                    .iter()
                    .map(|(id, _)| id.clone())
                    .chain(own.iter().take(index).filter_map(|s| s.id.clone()))
                    .collect()
            }
        };
        let Some(node) = self.node(path) else { return };
        let node = node.clone();
        let allow_result = step.wait_for.is_some();
        // Expressions: `when`, `gate.condition.expr`, `wait_for.until`.
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
                Ok(vars) => self.references(&vars, pos, &visible, result_ok),
                Err(e) => self.diags.push(
                    Diagnostic::error("template-syntax", format!("invalid expression: {}", e.message))
                        .at(self.source, pos)
                        .with_hint("expressions use Jinja syntax, e.g. `params.count > 0 and env.name == \"dev\"`"),
                ),
            }
        }
        // Templates: every other string in the step, except the nested compensation steps
        // (checked on their own), ids, tags, SQL text and output specs.
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
            match template::template_vars(&text) {
                Ok(vars) => {
                    let result_ok =
                        allow_result && rel.first().map(String::as_str) == Some("wait_for");
                    self.lines = text.lines().count();
                    self.references(&vars, pos, &visible, result_ok);
                    self.lines = 0;
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

    /// Checks that each variable path a template reads resolves.
    fn references(
        &mut self,
        vars: &BTreeSet<String>,
        pos: Pos,
        visible: &BTreeSet<String>,
        result_ok: bool,
    ) {
        for var in vars {
            let parts: Vec<&str> = var.split('.').collect();
            let root = parts[0];
            let at = |needle: &str| {
                self.source
                    .find_from(pos, needle, self.lines)
                    .unwrap_or(pos)
            };
            let problem: Option<(Pos, usize, String, String)> = match root {
                "params" => match parts.get(1) {
                    Some(name) if !self.def.params.contains_key(*name) => {
                        let hint =
                            match did_you_mean(name, self.def.params.keys().map(String::as_str)) {
                                Some(s) => format!("did you mean `params.{s}`?"),
                                None if self.def.params.is_empty() => {
                                    "the playbook declares no `params`".to_owned()
                                }
                                None => {
                                    format!("declared params: {}", names(self.def.params.keys()))
                                }
                            };
                        Some((
                            at(name),
                            name.chars().count(),
                            format!("undefined parameter `{name}`"),
                            hint,
                        ))
                    }
                    _ => None,
                },
                "env" => match parts.get(1) {
                    Some(f) if !template::ENV_FIELDS.contains(f) => Some((
                        at(f),
                        f.chars().count(),
                        format!("`env` has no field `{f}`"),
                        match did_you_mean(f, template::ENV_FIELDS.iter().copied()) {
                            Some(s) => format!("did you mean `env.{s}`?"),
                            None => format!("`env` has: {}", template::ENV_FIELDS.join(", ")),
                        },
                    )),
                    _ => None,
                },
                "run" => match parts.get(1) {
                    Some(f) if !template::RUN_FIELDS.contains(f) => Some((
                        at(f),
                        f.chars().count(),
                        format!("`run` has no field `{f}`"),
                        format!("`run` has: {}", template::RUN_FIELDS.join(", ")),
                    )),
                    _ => None,
                },
                "vars" => match (parts.get(1), self.config) {
                    (Some(name), Some(config)) => {
                        let envs: Vec<&String> = config
                            .environments
                            .iter()
                            .filter(|(env_name, _)| {
                                self.def
                                    .environments
                                    .as_ref()
                                    .is_none_or(|e| e.contains(env_name))
                            })
                            .filter(|(_, env)| !env.vars.contains_key(*name))
                            .map(|(n, _)| n)
                            .collect();
                        if envs.is_empty() {
                            None
                        } else {
                            let all: BTreeSet<&str> = config
                                .environments
                                .values()
                                .flat_map(|e| e.vars.keys().map(String::as_str))
                                .collect();
                            let hint = match did_you_mean(name, all.iter().copied()) {
                                Some(s) if s != *name => format!("did you mean `vars.{s}`?"),
                                _ => format!(
                                    "define `{name}` under `vars:` of {} in runbook.yaml, or limit the playbook with `environments:`",
                                    names(envs.iter())
                                ),
                            };
                            Some((
                                at(name),
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
                    }
                    (Some(name), None) => Some((
                        at(name),
                        name.chars().count(),
                        format!("undefined variable `vars.{name}`"),
                        "`vars` come from runbook.yaml, and there is none".to_owned(),
                    )),
                    _ => None,
                },
                "steps" => self.step_reference(&parts, pos, visible),
                "result" if result_ok => None,
                // Names a template defines itself (loop variables, `set`) never reach here:
                // undeclared_variables reports only names read from the context.
                other => {
                    let mut candidates: Vec<String> =
                        template::ROOTS.iter().map(|s| (*s).to_owned()).collect();
                    candidates.extend(self.def.params.keys().map(|k| format!("params.{k}")));
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
                    Some((
                        at(other),
                        other.chars().count(),
                        format!("undefined variable `{other}`"),
                        hint,
                    ))
                }
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

    fn step_reference(
        &self,
        parts: &[&str],
        pos: Pos,
        visible: &BTreeSet<String>,
    ) -> Option<(Pos, usize, String, String)> {
        let id = *parts.get(1)?;
        let at = |needle: &str| {
            self.source
                .find_from(pos, &format!("steps.{needle}"), self.lines)
                .map(|p| Pos::new(p.line, p.col + 6))
                .unwrap_or(pos)
        };
        if !visible.contains(id) {
            let later = self.main_ids.iter().any(|(s, _)| s == id)
                || self
                    .def
                    .on_failure
                    .iter()
                    .chain(&self.def.finally)
                    .any(|s| s.id.as_deref() == Some(id));
            let (msg, hint) = if later {
                (
                    format!("step `{id}` has not run yet at this point"),
                    "a step can read the outputs of steps before it; move this step after `"
                        .to_owned()
                        + id
                        + "`",
                )
            } else {
                let hint = match did_you_mean(id, visible.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `steps.{s}`?"),
                    None if visible.is_empty() => "no step runs before this one".to_owned(),
                    None => format!("steps before this one: {}", names(visible.iter())),
                };
                (format!("no step `{id}` runs before this one"), hint)
            };
            return Some((at(id), id.chars().count(), msg, hint));
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

    /// In a protected environment, a destructive step needs an approval or confirm gate
    /// before it in the same block.
    fn protections(&mut self) {
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
        // (path to the action key, action key, hint)
        let mut findings: Vec<(Vec<String>, String, String)> = Vec::new();
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
                            format!("`{block}` runs unattended, even when the run failed before any gate; move this step into the `rollback` of the step it undoes, or limit the playbook with `environments:`"),
                        ));
                }
            }
        }
        for (parent, key, hint) in findings {
            let what = match key.as_str() {
                "restore" => "`restore` overwrites the database",
                "migrate" => "`migrate: revert` drops schema",
                _ => "this SQL drops or truncates data",
            };
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

/// Checks a config that passed the schema.
pub fn check_config(def: &ConfigDef, source: &Source, tree: &Node) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let envs_node = tree.get("environments");
    for (name, env) in &def.environments {
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
                .with_hint(
                    "give `url_env: VARIABLE_NAME` (PostgreSQL) or `sqlite: path/to/file.db`",
                ),
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
        for (i, w) in env.protections.windows.iter().enumerate() {
            if let Some(tz) = &w.tz
                && !is_time_zone(tz)
            {
                let pos = env_node
                    .and_then(|n| n.lookup(&["protections", "windows", &i.to_string(), "tz"]))
                    .map_or(key_pos, |n| n.pos);
                diags.push(Diagnostic::error("invalid-value", format!("`{tz}` is not a time zone")).at(source, pos)
                        .with_hint("use `UTC`, a fixed offset like `+02:00`, or an IANA name like `Europe/Berlin`"));
            }
        }
    }
    for (name, env) in &def.environments {
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
            if let Some(url) = &t.url
                && crate::plan::redact_url(url) != *url
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
    diags
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

fn names<'a, S: AsRef<str> + 'a>(items: impl IntoIterator<Item = S>) -> String {
    items
        .into_iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `UTC`, a fixed offset, or something shaped like an IANA name (`Area/City`).
pub fn is_time_zone(tz: &str) -> bool {
    if tz == "UTC" || tz == "Z" {
        return true;
    }
    let b = tz.as_bytes();
    if b.len() == 6 && (b[0] == b'+' || b[0] == b'-') && b[3] == b':' {
        return b[1..3].iter().chain(&b[4..6]).all(u8::is_ascii_digit);
    }
    tz.contains('/')
        && tz.split('/').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '+')
        })
}

pub fn type_matches(kind: ParamType, value: &serde_json::Value) -> bool {
    match kind {
        ParamType::String => value.is_string(),
        ParamType::Integer => value.is_i64() || value.is_u64(),
        ParamType::Number => value.is_number(),
        ParamType::Boolean => value.is_boolean(),
    }
}

/// "1 approver", "2 approvers".
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
