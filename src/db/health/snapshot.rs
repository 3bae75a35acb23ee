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

use super::postgres::Pg;
use futures_util::StreamExt;
use sqlx::Row;
use sqlx::postgres::PgRow;

/// Statements in one message: enough that round trips cost nothing, small enough that a
/// message's text stays a few dozen kilobytes.
const PER_MESSAGE: usize = 250;

/// Ends a savepoint's subtransaction, releasing the locks taken inside it, and the savepoint
/// itself, so that savepoints do not nest one per message.
const UNDO: &str = "ROLLBACK TO SAVEPOINT runbook_count; RELEASE SAVEPOINT runbook_count";

impl Pg<'_> {
    /// Opens the shared snapshot: a read-only `REPEATABLE READ` transaction with the statement
    /// and lock timeouts. Until `end_snapshot`, `rows` and `counts` run in it.
    pub(super) async fn begin_snapshot(&mut self) -> Result<(), sqlx::Error> {
        if self.in_snapshot {
            return Ok(());
        }
        let ms = self.opts.statement_timeout.as_millis().max(1);
        let lock_ms = ms.min(5_000);
        let began = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
             SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {lock_ms}"
        )))
        .execute(&mut *self.conn)
        .await;
        match began {
            Ok(_) => {
                self.in_snapshot = true;
                Ok(())
            }
            Err(e) => {
                // Half begun (a setting refused): nothing of it may stay open.
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *self.conn).await;
                Err(e)
            }
        }
    }

    /// Ends the shared snapshot, if one is open.
    pub(super) async fn end_snapshot(&mut self) {
        if self.in_snapshot {
            self.in_snapshot = false;
            // Read only: there is nothing to undo, and a broken connection shows on the next
            // query.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *self.conn).await;
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

    async fn counts_in_snapshot(
        &mut self,
        queries: &[String],
    ) -> Result<Vec<Result<i64, sqlx::Error>>, sqlx::Error> {
        let mut out = Vec::with_capacity(queries.len());
        let mut next = 0;
        while let Some(rest) = queries.get(next..).filter(|r| !r.is_empty()) {
            let (counted, failed) = self.message(&rest[..rest.len().min(PER_MESSAGE)]).await?;
            next += counted.len();
            out.extend(counted);
            if failed.is_some() {
                // The statement that ended the message, alone: the error is its own.
                let alone = &queries[next..=next];
                let (mut counted, failed) = self.message(alone).await?;
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
        &mut self,
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
            let mut results = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_many(&mut *self.conn);
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
                sqlx::raw_sql(UNDO).execute(&mut *self.conn).await?;
                Ok((counted, Some(e)))
            }
        }
    }
}
