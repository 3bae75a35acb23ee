//! A second connection that counts in the shared snapshot (`snapshot.rs`), as `pg_dump -j`'s
//! workers dump in one: the checks' connection exports its snapshot
//! (`pg_export_snapshot()`), the helper imports it (`SET TRANSACTION SNAPSHOT`) before its
//! first query, and the two count a long list at once, the checks' connection from its front
//! and the helper from its back until they meet (`shared.rs`). Both see the database at the
//! same moment, so the counts are the ones one connection would make; they take half the time
//! where the server has a core to spare (each count is the server's work: it opens the table
//! and its indexes, plans and scans). Each sends at most half as many statements to a message,
//! so the two hold no more tables' locks at once than one did (the server's lock table is
//! shared and small: `snapshot.rs`).
//!
//! The server refuses a snapshot from another cluster or database, so a helper that reached
//! another server (a URL whose name moved) counts nothing. A helper that cannot be had (no
//! connection slot left, a server that cannot export snapshots, a role's connection limit,
//! no answer within the lock timeout) or breaks while counting leaves its part to the
//! checks' own connection: the counts are the same, only slower.
//!
//! While the checks' connection reads the catalog after the counts, the helper measures the
//! size checks and then shares the orphan counts (`side.rs`).
//!
//! When the snapshot ends the helper ends its transaction with it; after a split of the row
//! counts its connection stays open for `table_sizes` (`upkeep.rs`), which sizes on each
//! connection the part of the tables it counted, each in a transaction of its own.

use super::postgres::{Pg, own_rows, set_timeouts, timeouts};
use super::shared::{End, SharedCounts};
use super::{CheckResult, HealthOptions};
use crate::db::Db;
use crate::playbook::HealthCheck;
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};
use std::time::Duration;

/// A list longer than this is split with a helper: one message's worth (`PER_MESSAGE`) is
/// counted in a round trip, where a helper's connection would cost more than it saves.
pub(super) const HELP_OVER: usize = super::snapshot::PER_MESSAGE;

/// The helper's connection: in the shared snapshot until it ends, then open for
/// `table_sizes`.
pub(super) struct Helper {
    conn: PgConnection,
    /// Whether it is still in the snapshot's transaction.
    in_transaction: bool,
    /// Its server process, which the activity checks leave out: it may still be open, for
    /// `table_sizes`, or closed without the server having noticed yet.
    pub(super) pid: i32,
}

impl Helper {
    /// Connects to `url` and joins the snapshot `id` with the checks' timeouts
    /// (`postgres::timeouts`), giving up after the lock timeout: the counts do not wait for
    /// a helper (a pooler with no server connection free, a network that drops packets).
    pub(super) async fn open(
        url: &str,
        id: &str,
        opts: &HealthOptions,
    ) -> Result<Helper, sqlx::Error> {
        // The server makes the identifier (hex digits and dashes); anything else is not one.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(sqlx::Error::Protocol(format!(
                "not a snapshot identifier: {id:?}"
            )));
        }
        let wait = Duration::from_millis(u64::try_from(timeouts(opts).1).unwrap_or(5_000));
        let sql = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{id}'; \
             {}; SELECT pg_backend_pid()",
            set_timeouts(opts)
        );
        let joined = tokio::time::timeout(wait, async {
            let mut conn = Db::connect_postgres(url).await?;
            let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut conn)
                .await;
            let pid = match rows.map(|rows| rows.first().map(|r| r.try_get::<i32, _>(0))) {
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
            Ok(Helper {
                conn,
                in_transaction: true,
                pid,
            })
        })
        .await;
        joined.unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    /// Measures `checks` (size checks, `postgres::SIDE`) on the helper's connection, in its
    /// transaction when it is still in the snapshot's, each with its error.
    pub(super) async fn sizes(
        &mut self,
        opts: &HealthOptions,
        checks: &[HealthCheck],
    ) -> Vec<Result<CheckResult, sqlx::Error>> {
        let mut pg = Pg::on(&mut self.conn, opts);
        pg.in_snapshot = self.in_transaction;
        let mut out = Vec::with_capacity(checks.len());
        for &c in checks {
            out.push(pg.side(c).await);
        }
        out
    }

    /// Counts from `shared`, taking from `end`, until nothing is left to take
    /// (`SharedCounts::count_on`).
    pub(super) async fn count_shared(
        &mut self,
        shared: &SharedCounts,
        end: End,
    ) -> Result<(), sqlx::Error> {
        shared.count_on(&mut self.conn, end).await
    }

    /// Ends the helper's transaction in the snapshot; its connection stays open.
    pub(super) async fn end_transaction(&mut self) -> Result<(), sqlx::Error> {
        if self.in_transaction {
            sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await?;
            self.in_transaction = false;
        }
        Ok(())
    }

    /// One query in its own read-only transaction with the checks' timeouts, with `binds`
    /// bound to `$1`... (`postgres::own_rows`), once `end_transaction` has run.
    pub(super) async fn own_rows(
        &mut self,
        opts: &HealthOptions,
        sql: &str,
        binds: &[String],
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        own_rows(&mut self.conn, opts, sql, binds).await
    }

    /// Ends the helper's transaction, if it is in one, and closes its connection.
    pub(super) async fn close(mut self) {
        let _ = self.end_transaction().await;
        let _ = self.conn.close().await;
    }
}
