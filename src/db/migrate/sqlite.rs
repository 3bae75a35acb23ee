//! SQLite's side of migrations: the history table's SQL and how a script runs. SQLite has no
//! migration lock (the run lock serialises runs), no session timeouts and no lock catalogue.

use super::history::{HISTORY_SELECT, HistoryEntry};
use super::source::Migration;
use sqlx::{Row, SqliteConnection};

pub(super) const HISTORY_DDL: &str = "CREATE TABLE IF NOT EXISTS runbook_migrations (
    version TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    execution_ms INTEGER NOT NULL,
    success INTEGER NOT NULL,
    applied_at TEXT NOT NULL,
    run_id TEXT,
    kind TEXT NOT NULL DEFAULT 'apply'
)";

/// Takes the write lock up front rather than at the first write.
pub(super) const BEGIN: &str = "BEGIN IMMEDIATE";

/// The history table's rows (`applied_at` is stored as RFC 3339 text).
pub(super) async fn history_rows(
    c: &mut SqliteConnection,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    let rows = sqlx::query(HISTORY_SELECT).fetch_all(&mut *c).await?;
    rows.iter()
        .map(|r| HistoryEntry::from_row(r, r.try_get(5)?))
        .collect()
}

/// Whether each of `tables` exists, in one query.
pub(super) async fn tables_exist(
    c: &mut SqliteConnection,
    [a, b]: [&str; 2],
) -> Result<[bool; 2], sqlx::Error> {
    let (a, b): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1),
                EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?2)",
    )
    .bind(a)
    .bind(b)
    .fetch_one(&mut *c)
    .await?;
    Ok([a, b])
}

/// Writes a history row stamped with this process's clock (SQLite has no time zone type).
pub(super) async fn insert_history(
    c: &mut SqliteConnection,
    m: &Migration,
    execution_ms: i64,
    success: bool,
    run_id: &str,
    kind: &str,
) -> Result<(), sqlx::Error> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    sqlx::query(
        "INSERT INTO runbook_migrations
                 (version, name, checksum, execution_ms, success, applied_at, run_id, kind)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&m.version)
    .bind(&m.name)
    .bind(&m.checksum)
    .bind(execution_ms)
    .bind(success)
    .bind(now)
    .bind(run_id)
    .bind(kind)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn delete_history(
    c: &mut SqliteConnection,
    version: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM runbook_migrations WHERE version = ?")
        .bind(version)
        .execute(&mut *c)
        .await?;
    Ok(())
}
