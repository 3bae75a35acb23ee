//! A second connection that counts in the shared snapshot (`snapshot.rs`), as `pg_dump -j`'s
//! workers dump in one: the checks' connection exports its snapshot
//! (`pg_export_snapshot()`), the helper imports it (`SET TRANSACTION SNAPSHOT`) before its
//! first query, and the two count halves of a long list at once. Both see the database at
//! the same moment, so the counts are the ones one connection would make; they take half the
//! time where the server has a core to spare (each count is the server's work: it opens the
//! table and its indexes, plans and scans). Each sends half as many statements to a message,
//! so the two hold no more tables' locks at once than one did (the server's lock table is
//! shared and small: `snapshot.rs`).
//!
//! The server refuses a snapshot from another cluster or database, so a helper that reached
//! another server (a URL whose name moved) counts nothing. A helper that cannot be had (no
//! connection slot left, a server that cannot export snapshots, a role limited to one
//! connection) or breaks while counting leaves its half to the checks' own connection: the
//! counts are the same, only slower.

use super::snapshot::{counts_on, rows_on};
use crate::db::Db;
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};

/// A list longer than this is split with a helper: one message's worth (`PER_MESSAGE`) is
/// counted in a round trip, where a helper's connection would cost more than it saves.
pub(super) const HELP_OVER: usize = super::snapshot::PER_MESSAGE;

/// The helper's connection, in the shared snapshot.
pub(super) struct Helper {
    conn: PgConnection,
    /// Its server process, which `connections` leaves out: the helper has closed by then,
    /// but the server may not yet have noticed.
    pub(super) pid: i32,
}

impl Helper {
    /// Connects to `url` and joins the snapshot `id` with the checks' timeouts (ms).
    pub(super) async fn open(
        url: &str,
        id: &str,
        timeout_ms: u128,
        lock_ms: u128,
    ) -> Result<Helper, sqlx::Error> {
        // The server makes the identifier (hex digits and dashes); anything else is not one.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(sqlx::Error::Protocol(format!(
                "not a snapshot identifier: {id:?}"
            )));
        }
        let mut conn = Db::connect_postgres(url).await?;
        let joined = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{id}'; \
             SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL lock_timeout = {lock_ms}; \
             SELECT pg_backend_pid()"
        )))
        .fetch_all(&mut conn)
        .await;
        let pid = match joined.map(|rows| rows.first().map(|r| r.try_get::<i32, _>(0))) {
            Ok(Some(Ok(pid))) => pid,
            Ok(Some(Err(e))) | Err(e) => {
                let _ = conn.close().await;
                return Err(e);
            }
            Ok(None) => {
                let _ = conn.close().await;
                return Err(sqlx::Error::RowNotFound);
            }
        };
        Ok(Helper { conn, pid })
    }

    /// Counts `queries` in the snapshot, `per_message` to a message (`snapshot::counts_on`).
    pub(super) async fn counts(
        &mut self,
        queries: &[String],
        per_message: usize,
    ) -> Result<Vec<Result<i64, sqlx::Error>>, sqlx::Error> {
        counts_on(&mut self.conn, queries, per_message).await
    }

    /// One query in the snapshot, with `binds` bound to `$1`... (`snapshot::rows_on`).
    pub(super) async fn rows(
        &mut self,
        sql: &str,
        binds: &[String],
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        rows_on(&mut self.conn, sql, binds).await
    }

    /// Ends the helper's transaction and closes its connection.
    pub(super) async fn close(mut self) {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await;
        let _ = self.conn.close().await;
    }
}
