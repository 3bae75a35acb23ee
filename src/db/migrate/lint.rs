//! `lint`: squawk's rules over migration files, with each finding's level, and live row
//! estimates from the target that say how long a lock would last (`annotate`).

use super::run::Settings;
use super::script::{Parsed, column_of, line_of};
use super::source::{Migration, MigrationSet};
use super::{db_failed, postgres, sqlstate};
use crate::db::Db;
use crate::db::op::OpError;
use crate::fmt::count;
use crate::playbook::LintLevel;
use serde::Serialize;
use squawk_linter::{Rule, Violation};
use squawk_syntax::ast::{self, AstNode};
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

/// One lint finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub file: String,
    pub version: String,
    pub line: usize,
    pub column: usize,
    /// squawk's rule name, e.g. `require-concurrent-index-creation`.
    pub rule: String,
    pub level: LintLevel,
    pub message: String,
    pub help: Option<String>,
    /// The table a lock-taking statement locks, as written (none for other rules).
    pub table: Option<String>,
    /// The table's live row estimate on the target.
    pub rows: Option<i64>,
    /// Whether the rule is about a lock held on the table while it is scanned, rewritten or
    /// indexed: only then do its rows change how bad it is.
    #[serde(skip)]
    pub blocks_table: bool,
    /// The index a `DROP INDEX` names, as written, when its table is not known from the files:
    /// `annotate` asks the target which table it belongs to.
    #[serde(skip)]
    pub index: Option<String>,
}

impl Finding {
    /// A syntax warning at byte `at` of `m` (at 1:1 when `at` is `None`).
    fn syntax(m: &Migration, at: Option<usize>, message: String) -> Finding {
        let text = m.sql.as_str();
        Finding {
            file: m.file.clone(),
            version: m.version.clone(),
            line: at.map_or(1, |at| line_of(text, at)),
            column: at.map_or(1, |at| column_of(text, at)),
            rule: "syntax".into(),
            level: LintLevel::Warning,
            message,
            help: None,
            table: None,
            rows: None,
            blocks_table: false,
            index: None,
        }
    }
}

/// The level of a squawk rule, and whether it is about a long lock on a table.
///
/// Errors: statements that hold a lock blocking reads or writes of an existing table while
/// it is scanned, rewritten or indexed, or that cannot run as written (a concurrent index in
/// a transaction, transaction control inside runbook's transaction). Warnings: the rest
/// (type and style advice, changes running code may not expect, intended drops).
fn rule_level(rule: Rule) -> (LintLevel, bool) {
    use squawk_linter::Rule as R;
    match rule {
        R::RequireConcurrentIndexCreation
        | R::RequireConcurrentIndexDeletion
        | R::ConstraintMissingNotValid
        | R::AddingFieldWithDefault
        | R::AddingForeignKeyConstraint
        | R::ChangingColumnType
        | R::AddingNotNullableField
        | R::AddingSerialPrimaryKeyField
        | R::DisallowedUniqueConstraint
        | R::AddingRequiredField
        | R::RequireConcurrentPartitionDetach
        | R::RequireConcurrentReindex
        | R::PreferRepack
        | R::BanAlterDomainWithAddConstraint => (LintLevel::Error, true),
        R::BanConcurrentIndexCreationInTransaction
        | R::TransactionNesting
        | R::BanUncommittedTransaction
        | R::BanDuplicateColumnAssignments => (LintLevel::Error, false),
        _ => (LintLevel::Warning, false),
    }
}

/// Lints migrations with squawk's default rules, as PostgreSQL `pg_version` (e.g. `15.4`). A
/// file that runs in a transaction is linted as one (so `CREATE INDEX CONCURRENTLY` in it is
/// an error); a `-- runbook:no-transaction` file is not.
///
/// runbook sets `lock_timeout` and `statement_timeout` per migration from the step, not from
/// the file: squawk's rules asking for them in the file are dropped when `settings` has them,
/// and otherwise say where runbook takes them from.
pub fn lint(
    migrations: &[&Migration],
    pg_version: Option<&str>,
    settings: &Settings,
) -> Vec<Finding> {
    let mut exclude = Vec::new();
    if settings.lock_timeout.is_some() {
        exclude.push(Rule::RequireLockTimeout);
    }
    if settings.statement_timeout.is_some() {
        exclude.push(Rule::RequireStatementTimeout);
    }
    let mut out = Vec::new();
    // Indexes the files create, by name: a later `DROP INDEX` of one locks that table.
    let mut created = HashMap::new();
    for m in migrations {
        lint_file(m, pg_version, &exclude, &mut created, &mut out);
    }
    out
}

/// An index or table name as PostgreSQL resolves it, for comparing names as written: the last
/// part of a qualified name, unquoted as written in quotes, lower-cased otherwise.
fn name_key(text: &str) -> String {
    let last = text.trim().rsplit('.').next().unwrap_or_default().trim();
    match last.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => last.to_lowercase(),
    }
}

/// Lints one file into `out`; `created` collects the indexes the files create (name key to
/// table as written), in file order.
fn lint_file(
    m: &Migration,
    pg_version: Option<&str>,
    exclude: &[Rule],
    created: &mut HashMap<String, String>,
    out: &mut Vec<Finding>,
) {
    let text = m.sql.as_str();
    let fresh;
    let kept = match m.parsed.as_ref() {
        Some(kept) => Some(kept),
        None => {
            fresh = Parsed::of(text);
            fresh.as_ref()
        }
    };
    let Some(Parsed {
        tree: parse,
        errors,
    }) = kept
    else {
        out.push(Finding::syntax(
            m,
            None,
            "squawk could not parse this file, so it was not linted".into(),
        ));
        return;
    };
    // A syntax error is a warning: squawk's grammar may lag the server's, and the server
    // has the last word when the file runs (or is rehearsed).
    for e in errors {
        let at = usize::from(e.range().start());
        out.push(Finding::syntax(
            m,
            Some(at),
            format!("squawk cannot parse this: {}", e.message()),
        ));
    }
    let mut linter = squawk_linter::Linter::with_rules(&[], exclude);
    linter.settings.assume_in_transaction = !m.no_transaction;
    if let Some(v) = pg_version.and_then(|v| squawk_linter::Version::from_str(v).ok()) {
        linter.settings.pg_version = v;
    }
    let Ok(violations) =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| linter.lint(parse, text)))
    else {
        return;
    };
    let stmts: Vec<ast::Stmt> = parse.tree().stmts().collect();
    for v in violations {
        let mut f = finding(m, &stmts, v);
        if let Some(index) = f.index.take() {
            match created.get(&name_key(&index)) {
                Some(table) => f.table = Some(table.clone()),
                None => f.index = Some(index),
            }
        }
        out.push(f);
    }
    for stmt in &stmts {
        if let ast::Stmt::CreateIndex(ci) = stmt
            && let Some(name) = ci.index().and_then(|i| i.path())
            && let Some(table) = ci.table_relation_name().and_then(|t| t.table_name_ref())
        {
            let table = table.syntax().text().to_string().trim().to_owned();
            created.insert(name_key(&name.syntax().text().to_string()), table);
        }
    }
}

/// A squawk violation in `m` as a finding.
fn finding(m: &Migration, stmts: &[ast::Stmt], v: Violation) -> Finding {
    let text = m.sql.as_str();
    let at = usize::from(v.text_range.start());
    let (level, blocks_table) = rule_level(v.code);
    let table = if blocks_table {
        locked_table(stmts, &v)
    } else {
        None
    };
    // `DROP INDEX` names the index, not the table whose writes it blocks.
    let index = match v.code {
        Rule::RequireConcurrentIndexDeletion if table.is_none() => dropped_index(stmts, &v),
        _ => None,
    };
    let option = match v.code {
        Rule::RequireLockTimeout => Some("lock_timeout"),
        Rule::RequireStatementTimeout => Some("statement_timeout"),
        _ => None,
    };
    let help = match option {
        Some(option) => Some(format!(
            "give the `migrate` steps `{option}:` (runbook sets it for each migration), or set it in the file"
        )),
        None => v.help.clone(),
    };
    Finding {
        file: m.file.clone(),
        version: m.version.clone(),
        line: line_of(text, at),
        column: column_of(text, at),
        rule: v.code.to_string(),
        level,
        message: v.message.trim_end_matches('.').to_owned(),
        help,
        table,
        rows: None,
        blocks_table,
        index,
    }
}

/// The first index a violating `DROP INDEX` statement names, as written.
fn dropped_index(stmts: &[ast::Stmt], v: &Violation) -> Option<String> {
    stmts
        .iter()
        .find(|s| {
            s.syntax()
                .text_range()
                .contains_inclusive(v.text_range.start())
        })
        .and_then(|s| match s {
            ast::Stmt::DropIndex(d) => d.index_refs().next(),
            _ => None,
        })
        .map(|i| i.syntax().text().to_string().trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The table whose rows decide how long the lock lasts: the first table the violating
/// statement names (the indexed or altered table, or the one a foreign key locks).
fn locked_table(stmts: &[ast::Stmt], v: &Violation) -> Option<String> {
    stmts
        .iter()
        .find(|s| {
            s.syntax()
                .text_range()
                .contains_inclusive(v.text_range.start())
        })
        .and_then(|s| {
            s.syntax()
                .descendants()
                .find_map(ast::TableNameRef::cast)
                .map(|t| t.syntax().text().to_string().trim().to_owned())
        })
        .filter(|t| !t.is_empty())
}

/// A table's size on the target.
#[derive(Debug, Clone, Copy)]
pub struct TableSize {
    /// Live rows: the larger of `pg_class.reltuples` and `pg_stat_user_tables.n_live_tup`
    /// (summed over partitions); `None` when neither knows yet.
    pub rows: Option<i64>,
    /// Heap bytes (exact: zero means empty).
    pub bytes: i64,
}

/// The size of `table` (as written in SQL, e.g. `public."User"`), `None` if it does not exist.
pub async fn table_size(db: &mut Db, table: &str) -> Result<Option<TableSize>, OpError> {
    let Db::Postgres(c) = db else {
        return Ok(None);
    };
    let row = postgres::table_size(c, table).await.or_else(|e| {
        // A name squawk read but the server cannot (e.g. invalid syntax): no estimate.
        if sqlstate(&e).is_some() {
            Ok(None)
        } else {
            Err(db_failed("cannot estimate table sizes", &e))
        }
    })?;
    Ok(row.map(|(reltuples, analyzed, live, bytes)| {
        let from_class = analyzed.then_some(reltuples.round() as i64);
        let rows = match (from_class, live) {
            (Some(a), b) => Some(a.max(b)),
            (None, b) if b > 0 || bytes == 0 => Some(b),
            (None, _) => None,
        };
        TableSize { rows, bytes }
    }))
}

/// Adds each finding's table size on the target to its message and `rows`. A lock-taking
/// error on a table that is empty (or not created yet) becomes a warning: the lock is brief.
pub async fn annotate(db: &mut Db, findings: &mut [Finding]) -> Result<(), OpError> {
    if !db.is_postgres() {
        return Ok(());
    }
    let mut sizes: HashMap<String, Option<TableSize>> = HashMap::new();
    for f in findings.iter_mut() {
        if f.table.is_none()
            && let Some(index) = f.index.clone()
        {
            index_of(db, f, &index).await?;
        }
        let Some(table) = f.table.clone() else {
            continue;
        };
        let size = match sizes.get(&table) {
            Some(s) => *s,
            None => {
                let s = table_size(db, &table).await?;
                sizes.insert(table.clone(), s);
                s
            }
        };
        match size {
            Some(s) => annotate_size(f, &table, s),
            None => {
                f.message
                    .push_str(&format!("; `{table}` does not exist on the target yet"));
                if f.blocks_table && f.level == LintLevel::Error {
                    f.level = LintLevel::Warning;
                    f.rows = Some(0);
                    f.message.push_str(
                        " (an earlier migration creates it), so it is empty when this runs",
                    );
                }
            }
        }
    }
    Ok(())
}

/// The table a `DROP INDEX` finding's index belongs to on the target, into `f.table`. An index
/// that exists neither there nor in the files has no table to lock: the finding says so and is
/// a warning.
async fn index_of(db: &mut Db, f: &mut Finding, index: &str) -> Result<(), OpError> {
    let Db::Postgres(c) = db else {
        return Ok(());
    };
    let table = postgres::index_table(c, index).await.or_else(|e| {
        if sqlstate(&e).is_some() {
            Ok(None)
        } else {
            Err(db_failed("cannot look up an index", &e))
        }
    })?;
    match table {
        Some(t) => {
            f.message
                .push_str(&format!("; `{index}` is an index of `{t}`"));
            f.table = Some(t);
        }
        None => {
            f.message.push_str(&format!(
                "; the index `{index}` does not exist on the target"
            ));
            if f.level == LintLevel::Error {
                f.level = LintLevel::Warning;
                f.rows = Some(0);
                f.message.push_str(", so dropping it locks no table");
            }
        }
    }
    Ok(())
}

/// Lints every PostgreSQL migration under `dir` with no database (`runbook plan --offline`,
/// `runbook validate --migrations`): all of them, as if pending on an empty schema, judged so
/// (`assume_empty_schema`), under the timeouts the step that applies them sets (`settings`).
/// Gives the set read and its findings.
pub fn lint_offline(
    dir: &Path,
    root: &Path,
    settings: &Settings,
) -> Result<(MigrationSet, Vec<Finding>), OpError> {
    let set = super::source::discover_parsed(dir, crate::db::Dialect::Postgres, root)?;
    let all: Vec<&Migration> = set.migrations.iter().collect();
    let mut findings = lint(&all, None, settings);
    assume_empty_schema(&mut findings);
    Ok((set, findings))
}

/// Judges findings without a database, as against an empty schema (`runbook plan --offline`):
/// every table a lock-taking statement locks was created empty by an earlier file, so the lock
/// is brief, and the finding is a warning that says on what assumption.
pub fn assume_empty_schema(findings: &mut [Finding]) {
    for f in findings.iter_mut().filter(|f| f.blocks_table) {
        if f.level == LintLevel::Error {
            f.level = LintLevel::Warning;
            f.rows = Some(0);
            f.message.push_str(
                "; judged against an empty schema (no database: every table is new and empty); on a database with rows it is an error",
            );
        }
    }
}

/// Adds the size of `table`, which exists on the target, to a finding.
fn annotate_size(f: &mut Finding, table: &str, s: TableSize) {
    f.rows = s.rows;
    match s.rows {
        Some(0) | None if s.bytes == 0 => {
            f.rows = Some(0);
            f.message
                .push_str(&format!("; `{table}` is empty on the target"));
            if f.blocks_table && f.level == LintLevel::Error {
                f.level = LintLevel::Warning;
                f.message.push_str(", so the lock is brief");
            }
        }
        Some(n) => f.message.push_str(&format!(
            "; `{table}` has ~{} on the target (estimate)",
            crate::fmt::plural(count(n), "row", "rows")
        )),
        None => f.message.push_str(&format!(
            "; `{table}` has {} kB on the target (not analyzed yet, no row estimate)",
            count(s.bytes / 1024)
        )),
    }
}

/// The server's version for squawk (`15.4`), PostgreSQL only.
pub async fn server_version(db: &mut Db) -> Option<String> {
    let Db::Postgres(c) = db else {
        return None;
    };
    postgres::server_version(c).await
}

#[cfg(test)]
mod tests {
    use super::super::source::{MigrationSet, discover, discover_parsed};
    use super::lint;
    use crate::db::Dialect;
    use crate::fmt::count;

    #[test]
    fn offline_lint_reads_the_parse_discovery_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pg = dir.path().join("migrations/postgres");
        std::fs::create_dir_all(&pg).unwrap();
        std::fs::write(
            pg.join("001_a.sql"),
            "CREATE TABLE t (id int);\nCREATE INDEX t_id ON t (id);\nSELEC 1;\n",
        )
        .unwrap();
        std::fs::write(
            pg.join("002_b.sql"),
            "CREATE INDEX CONCURRENTLY t_x ON t (id);\nALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 1;\nDROP INDEX t_id;\n",
        )
        .unwrap();
        let base = dir.path().join("migrations");
        let kept = discover_parsed(&base, Dialect::Postgres, dir.path()).unwrap();
        let plain = discover(&base, Dialect::Postgres, dir.path()).unwrap();
        assert!(kept.migrations.iter().all(|m| m.parsed.is_some()));
        assert!(plain.migrations.iter().all(|m| m.parsed.is_none()));
        let findings = |set: &MigrationSet| {
            let all: Vec<_> = set.migrations.iter().collect();
            lint(&all, None, &Default::default())
                .into_iter()
                .map(|f| (f.file, f.line, f.column, f.rule, f.message, f.table))
                .collect::<Vec<_>>()
        };
        let found = findings(&kept);
        assert!(found.iter().any(|f| f.3 == "syntax"), "{found:?}");
        assert!(
            found
                .iter()
                .any(|f| f.3 == "require-concurrent-index-deletion"),
            "{found:?}"
        );
        assert_eq!(found, findings(&plain));
    }

    #[test]
    fn row_estimates_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(50_000), "50,000");
        assert_eq!(count(10_000_000), "10,000,000");
    }
}
