//! `runbook_copy_progress`, the table in the target that records each table's copy: done with
//! the source's row count and checksum (a re-run skips it while the source is unchanged), or
//! failed with the error (a re-run loads it again).

use super::checksum::Checksum;
use super::{OpError, db_error};
use sqlx::{PgConnection, Row};
use std::collections::HashMap;

/// The table in the target that records which tables were copied, so a re-run skips them.
pub const PROGRESS_TABLE: &str = "runbook_copy_progress";

/// A recorded row of the progress table.
#[derive(Debug, Clone)]
pub(super) struct Recorded {
    pub(super) source_rows: i64,
    pub(super) checksum: String,
    pub(super) status: String,
}

/// Creates the progress table when the target has none yet.
pub(super) async fn create(pg: &mut PgConnection) -> Result<(), OpError> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (\
           table_name text PRIMARY KEY, \
           source text NOT NULL, \
           source_rows bigint NOT NULL, \
           checksum text NOT NULL, \
           status text NOT NULL, \
           error text, \
           updated_at timestamptz NOT NULL DEFAULT now())"
    )))
    .execute(&mut *pg)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Every recorded table, by name.
pub(super) async fn recorded(pg: &mut PgConnection) -> Result<HashMap<String, Recorded>, OpError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT table_name, source_rows, checksum, status FROM {PROGRESS_TABLE}"
    )))
    .fetch_all(&mut *pg)
    .await
    .map_err(db_error)?;
    let mut out = HashMap::new();
    for r in rows {
        out.insert(
            r.try_get::<String, _>(0).map_err(db_error)?,
            Recorded {
                source_rows: r.try_get(1).map_err(db_error)?,
                checksum: r.try_get(2).map_err(db_error)?,
                status: r.try_get(3).map_err(db_error)?,
            },
        );
    }
    Ok(out)
}

/// Forgets the tables `replace: true` dropped.
pub(super) async fn forget(pg: &mut PgConnection, tables: Vec<String>) -> Result<(), OpError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {PROGRESS_TABLE} WHERE table_name = ANY($1)"
    )))
    .bind(tables)
    .execute(&mut *pg)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Records a table as copied and verified, inside its load's transaction.
pub(super) async fn record_done(
    pg: &mut PgConnection,
    table: &str,
    source_name: &str,
    sum: &Checksum,
) -> Result<(), OpError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {PROGRESS_TABLE} (table_name, source, source_rows, checksum, status, error) \
         VALUES ($1, $2, $3, $4, 'done', NULL) \
         ON CONFLICT (table_name) DO UPDATE SET source = $2, source_rows = $3, checksum = $4, \
         status = 'done', error = NULL, updated_at = now()"
    )))
    .bind(table)
    .bind(source_name)
    .bind(i64::try_from(sum.rows).unwrap_or(i64::MAX))
    .bind(sum.hex())
    .execute(&mut *pg)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Records a table as failed, with why. Best effort: the failure itself is what the step
/// reports, and a connection that broke cannot record anything.
pub(super) async fn record_failed(
    pg: &mut PgConnection,
    table: &str,
    source_name: &str,
    msg: &str,
) {
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {PROGRESS_TABLE} (table_name, source, source_rows, checksum, status, error) \
         VALUES ($1, $2, 0, '', 'failed', $3) \
         ON CONFLICT (table_name) DO UPDATE SET status = 'failed', error = $3, \
         source = $2, updated_at = now()"
    )))
    .bind(table)
    .bind(source_name)
    .bind(msg)
    .execute(&mut *pg)
    .await;
}
