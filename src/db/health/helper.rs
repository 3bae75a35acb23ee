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
//! connection slot left, a server that cannot export snapshots, a role's connection limit,
//! no answer within the lock timeout) or breaks while counting leaves its half to the
//! checks' own connection: the counts are the same, only slower.
//!
//! While the checks' connection reads the catalog after the counts (`indexes`, the foreign
//! keys' list), the helper, idle then, measures the size checks (`postgres::SIDE`: the
//! database's and the tablespaces' sizes, walks of every file), in its place in the list or
//! out of turn, for `database_size` before `row_counts`. A size check the helper cannot
//! measure is measured on the checks' connection.
//!
//! When the snapshot ends the helper ends its transaction with it; after a split of the row
//! counts its connection stays open for `table_sizes` (`upkeep.rs`), which sizes on each
//! connection the half of the tables it counted, each in a transaction of its own.

use super::postgres::{Pg, SIDE, orphans_counted, own_rows, set_timeouts, timeouts};
use super::report::errored;
use super::shared::SharedCounts;
use super::snapshot::counts_on;
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

    /// Counts `queries` in the snapshot, `per_message` to a message (`snapshot::counts_on`).
    pub(super) async fn counts(
        &mut self,
        queries: &[String],
        per_message: usize,
    ) -> Result<Vec<Result<i64, sqlx::Error>>, sqlx::Error> {
        counts_on(&mut self.conn, queries, per_message).await
    }

    /// Measures `checks` (size checks, `postgres::SIDE`) on the helper's connection, in its
    /// transaction when it is still in the snapshot's, each with its error.
    async fn sizes(
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

impl Pg<'_> {
    /// After `row_counts` (at `at` in `checks`): the catalog reads that follow it run on the
    /// checks' connection while the helper, if `row_counts` opened one, measures every size
    /// check not yet in `slots`; the orphan counts, when they come next, are then shared out
    /// to both as they come free (`shared.rs`), so the checks' connection starts on them
    /// while the helper is still measuring. What the helper could not measure is measured
    /// here: now when its place has passed, else in its place.
    pub(super) async fn side_checks(
        &mut self,
        checks: &[HealthCheck],
        slots: &mut [Option<CheckResult>],
        at: usize,
    ) {
        let side: Vec<usize> = (0..checks.len())
            .filter(|&j| SIDE.contains(&checks[j]) && slots[j].is_none())
            .collect();
        let mut measured = Vec::new();
        if let Some(helper) = self.helper.take() {
            measured = self.beside(helper, checks, slots, at, &side).await;
        }
        let mut measured = measured.into_iter();
        for &j in &side {
            match measured.next() {
                Some(Ok(r)) => {
                    tracing::debug!("the helper measured {} meanwhile", super::name(checks[j]));
                    slots[j] = Some(r);
                }
                Some(Err(e)) => tracing::debug!(
                    "the helper could not measure {}: {e}",
                    super::name(checks[j])
                ),
                None => {}
            }
            if slots[j].is_none() && j < at {
                slots[j] = Some(self.run(checks[j]).await);
            }
        }
    }

    /// `side_checks` with the helper: the catalog reads (and the orphan counts) on this
    /// connection while `helper` measures the size checks at `side` (then counts orphans);
    /// the results of this connection's checks go into `slots`, the helper's are returned.
    async fn beside(
        &mut self,
        mut helper: Helper,
        checks: &[HealthCheck],
        slots: &mut [Option<CheckResult>],
        at: usize,
        side: &[usize],
    ) -> Vec<Result<CheckResult, sqlx::Error>> {
        let catalog: Vec<usize> = (at + 1..checks.len())
            .take_while(|&j| matches!(checks[j], HealthCheck::Indexes | HealthCheck::ForeignKeys))
            .collect();
        let orphans = Some(at + 1 + catalog.len())
            .filter(|&j| checks.get(j) == Some(&HealthCheck::OrphanedRows));
        let opts = self.opts;
        let wanted: Vec<HealthCheck> = side.iter().map(|&j| checks[j]).collect();
        let shared = SharedCounts::default();
        // Sent once the orphan counts are listed; dropped unsent, there are none to share.
        let (listed, ready) = tokio::sync::oneshot::channel::<()>();
        let ((mine, fks), (theirs, helped)) = tokio::join!(
            async {
                let mut out = Vec::with_capacity(catalog.len());
                for &j in &catalog {
                    out.push((j, self.run(checks[j]).await));
                }
                let mut fks = None;
                if orphans.is_some() {
                    fks = Some(match self.orphan_list().await {
                        Ok((list, queries)) => {
                            tracing::debug!(
                                "the orphan counts shared with the helper as the two come free"
                            );
                            shared.fill(queries);
                            let _ = listed.send(());
                            Ok((list, shared.count_on(self.conn).await))
                        }
                        Err(e) => {
                            drop(listed);
                            Err(e)
                        }
                    });
                } else {
                    drop(listed);
                }
                (out, fks)
            },
            async {
                let measured = helper.sizes(opts, &wanted).await;
                let helped = match ready.await {
                    Ok(()) => shared.count_on(&mut helper.conn).await.is_ok(),
                    Err(_) => true,
                };
                (measured, helped)
            }
        );
        self.helper = Some(helper);
        if !helped {
            // It broke while counting: no helper again in this snapshot.
            self.close_helper().await;
            self.snapshot_id = None;
        }
        for (j, r) in mine {
            slots[j] = Some(r);
        }
        if let (Some(j), Some(fks)) = (orphans, fks) {
            let counted = match fks {
                Ok((list, Ok(()))) => shared.finish(self.conn).await.map(|c| (list, c)),
                Ok((_, Err(e))) | Err(e) => Err(e),
            };
            slots[j] = Some(match counted {
                Ok((list, counted)) => orphans_counted(&list, counted, opts),
                Err(e) => errored(HealthCheck::OrphanedRows, &e, opts),
            });
        }
        theirs
    }
}
