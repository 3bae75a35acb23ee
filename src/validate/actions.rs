//! Each action's own rules: `shell` has `argv` or `script`, SQL text is never a template,
//! `wait_for` polls one thing, a health baseline is comparable, an include names a playbook
//! and carries no options that would mean nothing on it, `find_backup` names a folder. Gates
//! are in `gates`.

use super::checker::Checker;
use crate::diagnostic::Diagnostic;
use crate::playbook::{
    Action, HealthAction, HealthCheck, HealthChecks, IncludeAction, RowBaseline, ShellAction,
    SqlAction, Step, WaitForAction,
};
use crate::template;

impl Checker<'_> {
    pub(super) fn action(&mut self, action: Action<'_>, step: &Step, path: &[String]) {
        let mut p = path.to_vec();
        p.push(action.key().to_owned());
        self.maintain(action, &p);
        match action {
            Action::Shell(s) => self.shell(s, p),
            Action::Sql(s) => self.sql(s, p),
            Action::Gate(g) => self.gate(g, &p),
            Action::WaitFor(w) => self.wait_for(w, &p),
            Action::Health(h) => self.health(h, p),
            Action::Http(h) => self.http(h, &p),
            Action::Include(inc) => self.include(inc, step, path, p),
            Action::FindBackup(f) if f.dir.trim().is_empty() => {
                p.push("dir".into());
                self.err_at(
                    &p,
                    "incomplete-action",
                    "`find_backup` has an empty `dir`",
                    "give the folder `backup` steps write to, e.g. `dir: \"{{ vars.backup_dir }}\"`",
                );
            }
            _ => {}
        }
    }

    fn shell(&mut self, s: &ShellAction, mut p: Vec<String>) {
        match (&s.argv, &s.script) {
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
        }
        self.secrets_on_command_line(s, &p);
    }

    /// A secret parameter never goes into a script: any user on the host reads a process's
    /// command line (`sh -c SCRIPT` in `ps`, `/proc/PID/cmdline`). It goes in `env:`, which
    /// only the process's own user can read. (`argv` is not checked yet: some programs take a
    /// secret only as an argument.)
    fn secrets_on_command_line(&mut self, s: &ShellAction, p: &[String]) {
        let mut places: Vec<(Vec<String>, &str)> = Vec::new();
        if let Some(script) = &s.script {
            places.push((vec!["script".into()], script));
        }
        for (rel, text) in places {
            let Ok(vars) = template::template_vars(text) else {
                continue;
            };
            let secret = vars.iter().find_map(|v| {
                let name = v.strip_prefix("params.")?.split('.').next()?;
                self.def
                    .params
                    .get(name)
                    .filter(|param| param.secret)
                    .map(|_| name.to_owned())
            });
            if let Some(name) = secret {
                let mut q = p.to_vec();
                q.extend(rel.iter().cloned());
                self.err_at(
                    &q,
                    "secret-on-command-line",
                    format!("secret parameter `{name}` is written into a shell script, where any user on the host reads it (`ps`)"),
                    format!("pass it in the environment: `env: {{ {}: \"{{{{ params.{name} }}}}\" }}`, and read `${}` in the script", name.to_uppercase(), name.to_uppercase()),
                );
            }
        }
    }

    fn sql(&mut self, s: &SqlAction, mut p: Vec<String>) {
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

    fn wait_for(&mut self, w: &WaitForAction, p: &[String]) {
        match (&w.sql, &w.argv) {
            (None, None) => self.err_at(
                p,
                "incomplete-action",
                "`wait_for` needs `sql` or `argv` to poll",
                "add `sql: SELECT ...` or `argv: [...]`",
            ),
            (Some(_), Some(_)) => self.err_at(
                p,
                "conflicting-keys",
                "`wait_for` has both `sql` and `argv`",
                "poll one thing",
            ),
            _ => {}
        }
    }

    fn health(&mut self, h: &HealthAction, mut p: Vec<String>) {
        if matches!(&h.checks, HealthChecks::List(l) if l.is_empty()) {
            p.push("checks".into());
            self.err_at(
                &p,
                "invalid-value",
                "`checks` is empty: the step would check nothing",
                "list the checks, like `checks: [connection]`, or use `checks: all`",
            );
            p.pop();
        }
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

    fn include(&mut self, inc: &IncludeAction, step: &Step, path: &[String], mut p: Vec<String>) {
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
}
