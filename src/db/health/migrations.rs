//! The migration status check: where the target stands against the project's migrations,
//! read the way the `migrate` action reads them (its history table, its file layouts,
//! Prisma's history). Pending migrations warn; a file changed since it was applied never
//! passes.

use super::grade::graded;
use super::{CheckResult, HealthOptions, Status};
use crate::db::{Db, Dialect, describe, migrate};
use crate::fmt::list_some;
use crate::playbook::HealthCheck;
use serde_json::Value as Json;

const CHECK: HealthCheck = HealthCheck::MigrationStatus;

/// Runs the check on `db` (it needs the whole `Db`, so it runs before the dialect's checks).
pub(super) async fn migration_status(db: &mut Db, opts: &HealthOptions) -> CheckResult {
    let dialect = db.dialect();
    let exists = match history_table_exists(db).await {
        Ok(e) => e,
        Err(e) => {
            return warn(format!(
                "could not look for `{}`: {}",
                migrate::HISTORY_TABLE,
                describe(&e)
            ));
        }
    };
    let (set, no_files) = match migration_set(opts, dialect) {
        Ok(found) => found,
        Err(r) => return r,
    };
    let status = match migrate::status(db, &set).await {
        Ok(s) => s,
        Err(e) => {
            return warn(format!("could not read `{}`: {e}", migrate::HISTORY_TABLE));
        }
    };
    status_result(&status, &set, exists, no_files, opts)
}

/// A check that could not tell: worth a look, not proof of a problem.
fn warn(message: String) -> CheckResult {
    CheckResult::new(CHECK, Status::Warn, Json::Null, message)
}

/// The project's migrations, and why there are none when the folder is missing. No
/// migrations folder is not a problem of the database: nothing is pending.
fn migration_set(
    opts: &HealthOptions,
    dialect: Dialect,
) -> Result<(migrate::MigrationSet, Option<String>), CheckResult> {
    match migrate::locate(&opts.migrations_dir, dialect, &opts.root) {
        Err(e) => Ok((
            migrate::MigrationSet {
                dir: opts.migrations_dir.clone(),
                shown_dir: crate::source::display_path(&opts.migrations_dir),
                migrations: Vec::new(),
                skipped: Vec::new(),
            },
            Some(e.to_string()),
        )),
        Ok(_) => match migrate::discover(&opts.migrations_dir, dialect, &opts.root) {
            Ok(set) => Ok((set, None)),
            Err(e) => Err(warn(format!("cannot read the migration files: {e}"))),
        },
    }
}

/// The migrations named in the result, each as `VERSION_NAME`.
struct Named {
    last: Option<String>,
    pending: Vec<String>,
    drifted: Vec<String>,
    /// Applied migrations without a file here (empty when there is no migrations folder).
    missing: Vec<String>,
}

fn named(status: &migrate::Status, no_files: bool) -> Named {
    let last = status.current_version.as_ref().map(|v| {
        match status.applied.iter().rev().find(|h| &h.version == v) {
            Some(h) if !h.name.is_empty() => format!("{v}_{}", h.name),
            _ => v.clone(),
        }
    });
    let pending = status
        .pending
        .iter()
        .map(|p| format!("{}_{}", p.version, p.name))
        .collect();
    let drifted = status
        .drifted
        .iter()
        .map(|d| format!("{}_{}", d.version, d.name))
        .collect();
    let missing = if no_files {
        Vec::new()
    } else {
        status
            .missing
            .iter()
            .map(|m| format!("{}_{}", m.version, m.name))
            .collect()
    };
    Named {
        last,
        pending,
        drifted,
        missing,
    }
}

/// The message: the last migration applied, then what is pending, changed or missing.
fn message(n: &Named, applied: usize, exists: bool, shown_dir: &str) -> String {
    let mut message = match (&n.last, exists) {
        (Some(l), _) => format!("last migration: {l} ({applied} applied)"),
        (None, false) if applied == 0 => format!(
            "no migrations applied (no `{}` table)",
            migrate::HISTORY_TABLE
        ),
        (None, _) => "no migrations applied".to_owned(),
    };
    if !n.pending.is_empty() {
        message.push_str(&format!(
            "; {} pending in `{shown_dir}`: {}",
            n.pending.len(),
            list_some(&n.pending)
        ));
    }
    if !n.drifted.is_empty() {
        message.push_str(&format!(
            "; {} changed since applied: {}",
            n.drifted.len(),
            list_some(&n.drifted)
        ));
    }
    if !n.missing.is_empty() {
        message.push_str(&format!(
            "; {} applied without a file here: {}",
            n.missing.len(),
            list_some(&n.missing)
        ));
    }
    message
}

fn status_result(
    status: &migrate::Status,
    set: &migrate::MigrationSet,
    exists: bool,
    no_files: Option<String>,
    opts: &HealthOptions,
) -> CheckResult {
    let n = named(status, no_files.is_some());
    let applied = status.applied.len();
    let mut r = graded(
        CHECK,
        n.pending.len() as f64,
        opts,
        n.last.clone().map_or(Json::Null, Json::String),
        message(&n, applied, exists, &set.shown_dir),
    );
    // A changed migration file makes `migrate apply` refuse: never a plain pass.
    if !n.drifted.is_empty() {
        r.status = r.status.max(Status::Warn);
    }
    r.with("table_exists", exists)
        .with("applied", applied)
        .with("last", n.last.map_or(Json::Null, Json::String))
        .with("pending", n.pending)
        .with("drifted", n.drifted)
        .with("missing_files", n.missing)
        .with("files", set.migrations.len())
        .with("files_note", no_files.map_or(Json::Null, Json::String))
}

/// Whether the history table exists where the connection looks for tables.
async fn history_table_exists(db: &mut Db) -> Result<bool, sqlx::Error> {
    let n: i64 = match db {
        Db::Postgres(c) => {
            let sql = format!(
                "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = '{}' AND schemaname = ANY (current_schemas(false))",
                migrate::HISTORY_TABLE
            );
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut *c)
                .await?
        }
        Db::Sqlite(c) => {
            let sql = format!(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{}'",
                migrate::HISTORY_TABLE
            );
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut *c)
                .await?
        }
    };
    Ok(n > 0)
}
