//! Failed queries (PostgreSQL 15 or later): the rate of transactions that ended in a rollback
//! in this database, per minute, over a sample window (the step's `sample_window`, 10 s by
//! default), graded against the checklist's alert at 10 a minute.
//!
//! What is counted: `pg_stat_database.xact_rollback` of the current database, read at the
//! start and the end of the window. A statement that fails aborts its transaction, which then
//! ends in a rollback: in autocommit each failed statement counts once, in a transaction the
//! transaction counts once however many statements failed in it. An explicit `ROLLBACK` counts
//! too (PostgreSQL cannot tell it from a failure), and a failed login or a session killed
//! before it began a transaction does not. PostgreSQL keeps no count of failed statements
//! (pg_stat_statements records only those that finished).
//!
//! Each session adds its counts to the shared statistics when it is idle, at most once a
//! second and at the latest about ten seconds later (PostgreSQL 15 and later): the window sees
//! them with that delay. runbook's own session does not count: its earlier health queries
//! (each ends in a rollback) are flushed before the first reading
//! (`pg_stat_force_next_flush`), and the readings themselves commit.

use super::grade::{graded, num, round1};
use super::postgres::Pg;
use super::{CheckResult, SAMPLE_WINDOW, Status};
use crate::fmt::plural;
use crate::playbook::HealthCheck;
use serde_json::{Value as Json, json};
use sqlx::{Connection, Row};

const C: HealthCheck = HealthCheck::FailedQueries;

/// One reading of the database's counters.
struct Reading {
    rolled_back: i64,
    committed: i64,
    stats_reset: String,
    /// The server's clock, in seconds since the epoch.
    at: f64,
}

impl Pg<'_> {
    /// One query in its own read-only transaction that commits: a rollback would count
    /// itself.
    async fn committed(&mut self, sql: &str) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
        let mut tx = self.conn.begin().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET TRANSACTION READ ONLY; {}",
            super::postgres::set_timeouts(self.opts)
        )))
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn reading(&mut self) -> Result<Option<Reading>, sqlx::Error> {
        let rows = self
            .committed(
                "SELECT xact_rollback::int8, xact_commit::int8, coalesce(stats_reset::text, ''), \
                        extract(epoch FROM clock_timestamp())::float8 \
                 FROM pg_stat_database WHERE datname = current_database()",
            )
            .await?;
        rows.first()
            .map(|r| {
                Ok(Reading {
                    rolled_back: r.try_get(0)?,
                    committed: r.try_get(1)?,
                    stats_reset: r.try_get(2)?,
                    at: r.try_get(3)?,
                })
            })
            .transpose()
    }

    pub(super) async fn failed_queries(&mut self) -> Result<CheckResult, sqlx::Error> {
        if self.version_num < 150_000 {
            return Ok(CheckResult::skip(
                C,
                "needs PostgreSQL 15 or later: older servers report statistics through a collector whose delay runbook cannot account for",
            ));
        }
        let window = self.opts.sample_window.unwrap_or(SAMPLE_WINDOW);
        // Our own earlier rollbacks reach the shared statistics now, before the first reading.
        self.committed("SELECT pg_stat_force_next_flush()").await?;
        let Some(first) = self.reading().await? else {
            return Ok(CheckResult::skip(
                C,
                "pg_stat_database has no row for this database",
            ));
        };
        tokio::time::sleep(window).await;
        let Some(last) = self.reading().await? else {
            return Ok(CheckResult::skip(
                C,
                "pg_stat_database has no row for this database",
            ));
        };
        let rolled_back = last.rolled_back - first.rolled_back;
        let committed = last.committed - first.committed;
        let seconds = last.at - first.at;
        if last.stats_reset != first.stats_reset || rolled_back < 0 || seconds <= 0.0 {
            return Ok(CheckResult::new(
                C,
                Status::Warn,
                Json::Null,
                "the statistics were reset during the sample window: the rate is unknown",
            ));
        }
        let per_minute = round1(rolled_back as f64 * 60.0 / seconds);
        let message = format!(
            "{} rolled back in {} s ({}/min), {} committed",
            plural(rolled_back, "transaction", "transactions"),
            num(round1(seconds)),
            num(per_minute),
            committed
        );
        Ok(graded(C, per_minute, self.opts, json!(per_minute), message)
            .with("rolled_back", rolled_back)
            .with("committed", committed)
            .with("window_seconds", (seconds * 1000.0).round() / 1000.0)
            .with("rolled_back_since_reset", last.rolled_back)
            .with("stats_reset", last.stats_reset))
    }
}
