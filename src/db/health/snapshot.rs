//! One read-only `REPEATABLE READ` snapshot for the checks that read the tables themselves
//! (`row_counts`, `indexes`, `foreign_keys`, `orphaned_rows`: their catalog reads and their
//! counts see the database at one moment), and the counting queries in it, set-based.
//!
//! Each count is a plain statement (`SELECT count(*)::int8 FROM ...`, one row), sent
//! `PER_MESSAGE` to a message through the simple query protocol and read in order: one round
//! trip per message, and the server plans each statement on its own (a `UNION ALL` of 50
//! `count(*)` subqueries planned slower per table than its branches alone, one of 250 slower
//! still; one query per table in its own transaction took 1 s at 1,000 tables and 11 s at
//! 10,000).
//!
//! A transaction keeps the lock of every table it read until it ends, and the server's lock
//! table is shared and small (`max_locks_per_transaction` x connections: 6,400 by default):
//! so each message runs under a savepoint that is rolled back once its rows are read, which
//! releases the locks taken inside it, and one snapshot counts any number of tables.
//!
//! A statement that fails (a table the role may not read, a timeout) ends its message: the
//! counts read before it stand, it runs again alone under a savepoint of its own, so the error
//! is its own (or it counts, when the timeout was the whole message's on servers before 13),
//! and the statements after it go on in the next message.

use super::helper::{HELP_OVER, Helper};
use super::postgres::{Pg, set_timeouts};
use super::shared::{End, SharedCounts};
use futures_util::StreamExt;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

/// Statements in one message: enough that round trips cost nothing, small enough that a
/// message's text stays a few dozen kilobytes.
pub(super) const PER_MESSAGE: usize = 250;

/// Statements in one message of each of two connections counting at once (`helper.rs`):
/// together they hold the locks of no more tables at a time than one connection alone.
pub(super) const SHARED: usize = PER_MESSAGE / 2;

/// Ends a savepoint's subtransaction, releasing the locks taken inside it, and the savepoint
/// itself, so that savepoints do not nest one per message.
const UNDO: &str = "ROLLBACK TO SAVEPOINT runbook_count; RELEASE SAVEPOINT runbook_count";

impl Pg<'_> {
    /// Opens the shared snapshot: a read-only `REPEATABLE READ` transaction with the statement
    /// and lock timeouts. Until `end_snapshot`, `rows` and `counts` run in it. With the
    /// target's URL at hand it exports the snapshot for a helper (`helper.rs`); a server that
    /// cannot export it gets the transaction without.
    pub(super) async fn begin_snapshot(&mut self) -> Result<(), sqlx::Error> {
        if self.in_snapshot {
            return Ok(());
        }
        // A helper of an earlier snapshot would count in that one.
        self.close_helper().await;
        if self.opts.url.is_some() {
            match self.begin(true).await {
                Ok(id) => {
                    self.snapshot_id = id;
                    self.in_snapshot = true;
                    return Ok(());
                }
                Err(e) => tracing::debug!("no snapshot to share with a helper: {e}"),
            }
        }
        self.begin(false).await?;
        self.in_snapshot = true;
        Ok(())
    }

    /// `BEGIN` with the timeouts, and with `export` the exported snapshot's identifier.
    async fn begin(&mut self, export: bool) -> Result<Option<String>, sqlx::Error> {
        let export = if export {
            "; SELECT pg_export_snapshot()::text"
        } else {
            ""
        };
        let began = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; {}{export}",
            set_timeouts(self.opts)
        )))
        .fetch_all(&mut *self.conn)
        .await;
        match began {
            Ok(rows) => Ok(rows.first().and_then(|r| r.try_get::<String, _>(0).ok())),
            Err(e) => {
                // Half begun (a setting refused): nothing of it may stay open.
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *self.conn).await;
                Err(e)
            }
        }
    }

    /// Ends the shared snapshot, if one is open, and the helper's transaction in it: the
    /// helper's connection stays open for `table_sizes` (`close_helper` closes it), outside
    /// any transaction, so it neither holds the snapshot's horizon back nor waits idle in a
    /// transaction, and sizes the tables as they are then.
    pub(super) async fn end_snapshot(&mut self) {
        self.snapshot_id = None;
        if let Some(helper) = self.helper.as_mut()
            && helper.end_transaction().await.is_err()
        {
            self.close_helper().await;
        }
        if self.in_snapshot {
            self.in_snapshot = false;
            // Read only: there is nothing to undo, and a broken connection shows on the next
            // query.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *self.conn).await;
        }
    }

    /// Closes a helper that broke (or could not be had): none is tried again in this snapshot.
    pub(super) async fn lose_helper(&mut self) {
        self.close_helper().await;
        self.snapshot_id = None;
    }

    /// Closes the helper's connection, if one is open.
    pub(super) async fn close_helper(&mut self) {
        self.split = None;
        if let Some(helper) = self.helper.take() {
            helper.close().await;
        }
    }

    /// One query in the shared snapshot, under a savepoint rolled back afterwards: its locks
    /// go, and a failure leaves the snapshot usable.
    pub(super) async fn rows_in_snapshot(&mut self, sql: &str) -> Result<Vec<PgRow>, sqlx::Error> {
        sqlx::raw_sql("SAVEPOINT runbook_count")
            .execute(&mut *self.conn)
            .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut *self.conn)
            .await;
        sqlx::raw_sql(UNDO).execute(&mut *self.conn).await?;
        rows
    }

    /// The one `int8` each of `queries` returns (a `SELECT count(*)::int8 ...`), all read in
    /// one snapshot (the shared one when open); a query that fails gives its error. Fails only
    /// when the snapshot itself cannot be had or kept.
    pub(super) async fn counts(
        &mut self,
        queries: &[String],
    ) -> Result<Vec<Result<i64, sqlx::Error>>, sqlx::Error> {
        let own = !self.in_snapshot;
        self.begin_snapshot().await?;
        let counted = self.counts_in_snapshot(queries).await;
        if own {
            self.end_snapshot().await;
        }
        counted
    }

    /// Counts `queries` in the open snapshot: a list longer than one message's worth shared
    /// with the helper (opened meanwhile when there is none yet), this connection taking from
    /// the front and the helper from the back (`shared.rs`); this connection counts what no
    /// helper can be had for, or what one that broke gave back. Sets `helper_from`.
    async fn counts_in_snapshot(
        &mut self,
        queries: &[String],
    ) -> Result<Vec<Result<i64, sqlx::Error>>, sqlx::Error> {
        self.helper_from = None;
        let (Some(url), Some(id), true) = (
            self.opts.url.as_deref(),
            self.snapshot_id.as_deref(),
            queries.len() > HELP_OVER,
        ) else {
            return counts_on(self.conn, queries, PER_MESSAGE).await;
        };
        let shared = SharedCounts::default();
        shared.fill(queries.to_vec());
        let opts = self.opts;
        let conn = &mut *self.conn;
        let helper = &mut self.helper;
        let pids = &mut self.helper_pids;
        let helped = async {
            if helper.is_none() {
                match Helper::open(url, id, opts).await {
                    Ok(h) => {
                        pids.push(h.pid);
                        *helper = Some(h);
                    }
                    Err(e) => tracing::debug!("counting without a helper: {e}"),
                }
            }
            match helper.as_mut() {
                Some(h) => h.count_shared(&shared, End::Back).await.is_ok(),
                None => {
                    shared.alone();
                    false
                }
            }
        };
        let (mine, helped) = tokio::join!(shared.count_on(conn, End::Front), helped);
        if !helped {
            // No helper, or it broke: what it gave back is counted here.
            self.lose_helper().await;
        }
        mine?;
        let from = shared.meeting();
        let counted = shared.finish(self.conn).await?;
        self.helper_from = (helped && from < queries.len()).then_some(from);
        if let Some(from) = self.helper_from {
            tracing::debug!(
                "the helper counted statements {from} to {} of {}",
                queries.len() - 1,
                queries.len()
            );
        }
        Ok(counted)
    }
}

/// The one `int8` each of `queries` returns, counted on `conn`, which is in a snapshot: in
/// messages of `per_message` statements, a statement that fails run again alone. Fails only
/// when the snapshot itself cannot be kept.
pub(super) async fn counts_on(
    conn: &mut PgConnection,
    queries: &[String],
    per_message: usize,
) -> Result<Vec<Result<i64, sqlx::Error>>, sqlx::Error> {
    let mut out = Vec::with_capacity(queries.len());
    let mut next = 0;
    while let Some(rest) = queries.get(next..).filter(|r| !r.is_empty()) {
        let (counted, failed) = message(conn, &rest[..rest.len().min(per_message)]).await?;
        next += counted.len();
        out.extend(counted);
        if failed.is_some() {
            // The statement that ended the message, alone: the error is its own.
            let alone = &queries[next..=next];
            let (mut counted, failed) = message(conn, alone).await?;
            out.push(match (counted.pop(), failed) {
                (Some(n), _) => n,
                (None, Some(e)) => Err(e),
                (None, None) => Err(sqlx::Error::RowNotFound),
            });
            next += 1;
        }
    }
    Ok(out)
}

/// Sends `queries` as one message under a savepoint rolled back once their rows are read.
/// Returns the results of the statements that ran, in order, and the error that stopped
/// the message before the next one, if any.
async fn message(
    conn: &mut PgConnection,
    queries: &[String],
) -> Result<(Vec<Result<i64, sqlx::Error>>, Option<sqlx::Error>), sqlx::Error> {
    let mut sql = String::from("SAVEPOINT runbook_count");
    for q in queries {
        sql.push_str(";\n");
        sql.push_str(q);
    }
    sql.push_str(";\n");
    sql.push_str(UNDO);
    let mut counted = Vec::with_capacity(queries.len());
    // Statements completed, the savepoint first; the row of the one running.
    let mut done = 0usize;
    let mut row: Option<Result<i64, sqlx::Error>> = None;
    let mut failed = None;
    {
        let mut results = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_many(&mut *conn);
        while let Some(item) = results.next().await {
            match item {
                Ok(sqlx::Either::Right(r)) => {
                    row.get_or_insert_with(|| r.try_get::<i64, _>(0));
                }
                Ok(sqlx::Either::Left(_)) => {
                    if (1..=queries.len()).contains(&done) {
                        counted.push(row.take().unwrap_or(Err(sqlx::Error::RowNotFound)));
                    }
                    done += 1;
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    match failed {
        None => Ok((counted, None)),
        // The savepoint itself, or its rollback, failed: the snapshot is not usable.
        Some(e) if done == 0 || counted.len() == queries.len() => Err(e),
        Some(e) => {
            sqlx::raw_sql(UNDO).execute(&mut *conn).await?;
            Ok((counted, Some(e)))
        }
    }
}
