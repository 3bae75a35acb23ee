//! Migrations in a connected plan: the pending ones and any drift, squawk's lint findings with
//! live row estimates, and with `--rehearse` a rehearsal in a transaction that is rolled back
//! (refused on protected environments).

use crate::db::migrate::{self, Settings};
use crate::db::op::{Op, Silent};
use crate::db::{Db, Dialect, TargetSpec};
use serde_json::{Map, Value as Json, json};
use std::fmt::Write as _;
use std::path::Path;

/// No lock or statement timeouts and no retries: a plan only reads (and a rehearsal rolls
/// back), so it has nothing to wait for politely.
const SETTINGS: Settings = Settings {
    lock_timeout: None,
    statement_timeout: None,
    lock_retries: 0,
    on_blocked: None,
};

/// Where the migrations are and what the plan may do with them.
pub(super) struct MigrationCheck<'a> {
    pub target: &'a TargetSpec,
    pub root: &'a Path,
    pub dir: &'a Path,
    pub protected: bool,
    pub rehearse: bool,
    /// The timeouts the playbook's `apply` steps set, so lint judges the files as they will run.
    pub settings: Settings,
}

impl MigrationCheck<'_> {
    /// Adds the migrations part of the plan to `text` and `out`.
    pub async fn run(&self, db: &mut Db, text: &mut String, out: &mut Map<String, Json>) {
        let dialect = Dialect::of(self.target);
        let set = match migrate::discover(self.dir, dialect, self.root) {
            Ok(set) => set,
            Err(e) => {
                let _ = writeln!(text, "migrations: {e}");
                return;
            }
        };
        let status = match migrate::status(db, &set).await {
            Ok(status) => status,
            Err(e) => {
                let _ = writeln!(text, "migrations: cannot read the history: {e}");
                return;
            }
        };
        let _ = writeln!(text, "pending migrations: {}", status.pending.len());
        for p in &status.pending {
            let _ = writeln!(text, "  {} {} ({})", p.version, p.name, p.file);
        }
        for d in &status.drifted {
            let _ = writeln!(
                text,
                "  DRIFT {}",
                serde_json::to_string(d).unwrap_or_default()
            );
        }
        let pending: Vec<&migrate::Migration> = status
            .pending
            .iter()
            .filter_map(|p| set.find(&p.version))
            .collect();
        let findings = self.lint(db, dialect, pending, text).await;
        out.insert(
            "migrations".into(),
            json!({
                "pending": status.pending, "drifted": status.drifted, "missing": status.missing,
                "current_version": status.current_version,
            }),
        );
        out.insert("lint".into(), json!(findings));
        if self.rehearse {
            out.insert(
                "rehearsal".into(),
                rehearsal(self.target, &set, self.protected, text).await,
            );
        }
    }

    /// Lints the pending migrations (for a SQLite target, the postgres folder: lint reads
    /// PostgreSQL SQL) with live row estimates, and lists the findings.
    async fn lint(
        &self,
        db: &mut Db,
        dialect: Dialect,
        pending: Vec<&migrate::Migration>,
        text: &mut String,
    ) -> Vec<migrate::Finding> {
        let pg_version = match db {
            Db::Postgres(_) => migrate::server_version(db).await,
            Db::Sqlite(_) => None,
        };
        let lint_set;
        let lint_targets: Vec<&migrate::Migration> = if dialect == Dialect::Postgres {
            pending
        } else {
            lint_set = migrate::discover(self.dir, Dialect::Postgres, self.root).ok();
            lint_set
                .as_ref()
                .map(|s| s.migrations.iter().collect())
                .unwrap_or_default()
        };
        let mut findings = migrate::lint(&lint_targets, pg_version.as_deref(), &self.settings);
        let _ = migrate::annotate(db, &mut findings).await;
        if !findings.is_empty() {
            let _ = writeln!(text, "lint findings: {}", findings.len());
            for f in &findings {
                let rows = f
                    .rows
                    .map(|r| format!(" (table holds ~{})", crate::fmt::plural(r, "row", "rows")))
                    .unwrap_or_default();
                let _ = writeln!(
                    text,
                    "  {}:{} {} [{:?}] {}{rows}",
                    f.file, f.line, f.rule, f.level, f.message
                );
            }
        }
        findings
    }
}

/// The offline plan's lint: every PostgreSQL migration file, as if all were pending on an empty
/// schema (no database says which are applied or how big a table is), into `text`.
pub(super) fn offline_lint(
    root: &Path,
    dir: &Path,
    settings: &Settings,
    text: &mut String,
) -> Vec<migrate::Finding> {
    let (set, findings) = match migrate::lint_offline(dir, root, settings) {
        Ok(linted) => linted,
        Err(e) => {
            let _ = writeln!(text, "\nlint: {e}");
            return Vec::new();
        }
    };
    let _ = writeln!(
        text,
        "\nlint (offline, against an empty schema): {} in `{}`, {}",
        crate::fmt::plural(set.migrations.len(), "file", "files"),
        set.shown_dir,
        crate::fmt::plural(findings.len(), "finding", "findings")
    );
    for f in &findings {
        let _ = writeln!(
            text,
            "  {}:{}:{} {} {}: {}",
            f.file,
            f.line,
            f.column,
            f.level.as_str(),
            f.rule,
            f.message
        );
    }
    findings
}

async fn rehearsal(
    target: &TargetSpec,
    set: &migrate::MigrationSet,
    protected: bool,
    text: &mut String,
) -> Json {
    if protected {
        let _ = writeln!(
            text,
            "rehearse: refused on a protected environment; rehearse on staging or a copy of the \
             database, or in a `migrate: {{ action: rehearse }}` step behind an approval or confirm gate"
        );
        return json!({"refused": "protected environment"});
    }
    // Rehearsal writes (and rolls back), so it needs an ordinary connection.
    let mut db = match Db::connect(target).await {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(text, "rehearse: cannot connect: {e}");
            return json!({"error": e.to_string()});
        }
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let silent = Silent;
    let ctl = Op::new(
        "plan-rehearsal",
        "rehearse",
        rx,
        None,
        crate::redact::global(),
        &silent,
    );
    let result = migrate::rehearse(&mut db, target, set, &SETTINGS, &ctl).await;
    db.close().await;
    match result {
        Ok(r) => {
            let _ = writeln!(text, "rehearsal (rolled back):");
            for f in &r.results {
                let locks: Vec<String> = f
                    .locks
                    .iter()
                    .map(|l| format!("{} {} {}", l.mode, l.kind, l.relation))
                    .collect();
                let _ = writeln!(
                    text,
                    "  {} {} {} in {} ms{}{}",
                    f.status,
                    f.version,
                    f.name,
                    f.duration_ms,
                    if locks.is_empty() {
                        String::new()
                    } else {
                        format!("; locks: {}", locks.join(", "))
                    },
                    f.error
                        .as_deref()
                        .map(|e| format!("; {e}"))
                        .unwrap_or_default()
                );
            }
            json!(r.results)
        }
        Err(e) => {
            let _ = writeln!(text, "rehearse: {e}");
            json!({"error": e.to_string()})
        }
    }
}
