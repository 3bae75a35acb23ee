//! The guides' workload and upkeep checks (PostgreSQL): deadlocks of the database since its
//! statistics were reset, the slowest statements by mean time from `pg_stat_statements` (when
//! the extension is installed), indexes never scanned, dead-tuple bloat, and the largest
//! tables.

use super::CheckResult;
use super::grade::{graded, num, round1};
use super::postgres::{Pg, own_rows};
use crate::fmt::{bytes, plural};
use crate::playbook::HealthCheck;
use serde_json::json;
use sqlx::Row;

/// A table needs this many live and dead rows before its dead share means anything.
const MIN_TUPLES: i64 = 1_000;
/// How many statements, indexes or tables the details list.
const LISTED: i64 = 10;

impl Pg<'_> {
    pub(super) async fn deadlocks(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows(
                "SELECT deadlocks::int8, coalesce(stats_reset::text, '') \
                 FROM pg_stat_database WHERE datname = current_database()",
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(CheckResult::skip(
                HealthCheck::Deadlocks,
                "pg_stat_database has no row for this database",
            ));
        };
        let (n, reset): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
        let since = if reset.is_empty() {
            "since the statistics began".to_owned()
        } else {
            format!("since {reset}")
        };
        Ok(graded(
            HealthCheck::Deadlocks,
            n as f64,
            self.opts,
            json!(n),
            format!("{} {since}", plural(n, "deadlock", "deadlocks")),
        )
        .with("deadlocks", n)
        .with("stats_reset", reset))
    }

    pub(super) async fn slow_statements(&mut self) -> Result<CheckResult, sqlx::Error> {
        let c = HealthCheck::SlowStatements;
        let installed = self
            .rows("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_stat_statements'")
            .await?;
        let Some(schema) = installed
            .first()
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?
        else {
            return Ok(CheckResult::skip(
                c,
                "pg_stat_statements is not installed in this database (shared_preload_libraries = 'pg_stat_statements', then CREATE EXTENSION pg_stat_statements)",
            ));
        };
        let sql = format!(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 200), calls::int8, mean_exec_time::float8, \
                    total_exec_time::float8 \
             FROM {}.pg_stat_statements s \
             WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND calls > 0 \
             ORDER BY mean_exec_time DESC LIMIT {LISTED}",
            crate::fmt::quote_ident(&schema)
        );
        let rows = match self.rows(&sql).await {
            Ok(rows) => rows,
            Err(e) => {
                return Ok(CheckResult::skip(
                    c,
                    format!(
                        "pg_stat_statements cannot be read: {}",
                        crate::db::describe(&e)
                    ),
                ));
            }
        };
        let mut list = Vec::new();
        let mut worst = 0.0f64;
        for r in &rows {
            let (query, calls, mean, total): (String, i64, f64, f64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            worst = worst.max(mean);
            list.push(json!({"query": query, "calls": calls, "mean_ms": round1(mean), "total_ms": round1(total)}));
        }
        let worst = round1(worst);
        let message = match list.first() {
            Some(top) => format!(
                "slowest statement by mean time: {} ms over {} ({})",
                num(worst),
                plural(top["calls"].as_i64().unwrap_or(0), "call", "calls"),
                top["query"].as_str().unwrap_or_default()
            ),
            None => "no statements recorded yet".to_owned(),
        };
        Ok(graded(c, worst, self.opts, json!(worst), message).with("statements", list))
    }

    pub(super) async fn unused_indexes(&mut self) -> Result<CheckResult, sqlx::Error> {
        // Primary keys and unique indexes enforce something even when never scanned; indexes
        // behind a constraint are left out for the same reason.
        let rows = self
            .rows(
                "SELECT s.schemaname::text, s.relname::text, s.indexrelname::text, \
                        pg_relation_size(s.indexrelid)::int8 \
                 FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid \
                 WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary \
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid) \
                 ORDER BY pg_relation_size(s.indexrelid) DESC, 1, 2, 3",
            )
            .await?;
        let mut list = Vec::new();
        let mut size = 0i64;
        for r in &rows {
            let (schema, table, index, b): (String, String, String, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            size += b;
            if (list.len() as i64) < LISTED {
                list.push(json!({"schema": schema, "table": table, "index": index, "bytes": b}));
            }
        }
        let n = rows.len() as i64;
        let message = if n == 0 {
            "every index has been scanned since the statistics were reset".to_owned()
        } else {
            let names: Vec<String> = list
                .iter()
                .map(|i| i["index"].as_str().unwrap_or_default().to_owned())
                .collect();
            format!(
                "{} never scanned since the statistics were reset ({}): {}",
                plural(n, "index", "indexes"),
                bytes(size.max(0) as u64),
                names.join(", ")
            )
        };
        Ok(graded(
            HealthCheck::UnusedIndexes,
            n as f64,
            self.opts,
            json!(n),
            message,
        )
        .with("indexes", list)
        .with("bytes", size))
    }

    pub(super) async fn dead_tuples(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows(&format!(
                "SELECT schemaname::text, relname::text, n_live_tup::int8, n_dead_tup::int8, \
                        coalesce(greatest(last_vacuum, last_autovacuum)::text, '') \
                 FROM pg_stat_user_tables WHERE n_live_tup + n_dead_tup >= {MIN_TUPLES} \
                 ORDER BY n_dead_tup::float8 / (n_live_tup + n_dead_tup) DESC, 1, 2 LIMIT {LISTED}"
            ))
            .await?;
        let mut list = Vec::new();
        let mut worst = 0.0f64;
        for r in &rows {
            let (schema, table, live, dead, vacuumed): (String, String, i64, i64, String) = (
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            );
            let pct = round1(dead as f64 * 100.0 / (live + dead).max(1) as f64);
            worst = worst.max(pct);
            list.push(json!({"schema": schema, "table": table, "live": live, "dead": dead, "dead_percent": pct, "last_vacuum": vacuumed}));
        }
        let message = match list.first() {
            Some(t) if worst > 0.0 => format!(
                "worst table {}: {}% dead tuples ({} dead, {} live){}",
                t["table"].as_str().unwrap_or_default(),
                num(worst),
                t["dead"],
                t["live"],
                match t["last_vacuum"].as_str() {
                    Some("") | None => ", never vacuumed".to_owned(),
                    Some(at) => format!(", last vacuumed {at}"),
                }
            ),
            Some(_) => "no dead tuples".to_owned(),
            None => format!("no table with {MIN_TUPLES} rows or more"),
        };
        Ok(graded(
            HealthCheck::DeadTuples,
            worst,
            self.opts,
            json!(worst),
            message,
        )
        .with("tables", list))
    }

    pub(super) async fn table_sizes(&mut self) -> Result<CheckResult, sqlx::Error> {
        let mut list = Vec::new();
        for (schema, table, total, heap) in self.largest_tables().await? {
            list.push(json!({"schema": schema, "table": table, "bytes": total, "heap_bytes": heap, "human": bytes(total.max(0) as u64)}));
        }
        let largest = list.first().and_then(|t| t["bytes"].as_i64()).unwrap_or(0);
        let mib = round1(largest as f64 / (1024.0 * 1024.0));
        let message = match list.first() {
            Some(t) => format!(
                "largest table {} ({} with indexes and TOAST)",
                t["table"].as_str().unwrap_or_default(),
                t["human"].as_str().unwrap_or_default()
            ),
            None => "no tables".to_owned(),
        };
        Ok(graded(
            HealthCheck::TableSizes,
            mib,
            self.opts,
            json!(largest),
            message,
        )
        .with("tables", list))
    }

    /// The LISTED largest tables with indexes and TOAST: schema, table, total and heap bytes,
    /// largest first, then by schema and name. Sizing a table opens it, which costs most the
    /// first time a connection does: with a helper still open after `row_counts` (which split
    /// the tables at `split`), each connection sizes the part it counted, at once, each in a
    /// transaction of its own begun now.
    async fn largest_tables(&mut self) -> Result<Vec<(String, String, i64, i64)>, sqlx::Error> {
        let rows = |rows: Vec<sqlx::postgres::PgRow>| -> Result<Vec<_>, sqlx::Error> {
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                .collect()
        };
        let order = format!("ORDER BY 3 DESC, 1, 2 LIMIT {LISTED}");
        if let (Some((schema, table)), Some(helper)) = (self.split.clone(), self.helper.as_mut()) {
            tracing::debug!(
                "table sizes measured on both connections, the helper's from {schema}.{table}"
            );
            let binds = [schema, table];
            let at = "(n.nspname::text, c.relname::text)";
            let mine = format!("{SIZES} AND {at} < ($1, $2) {order}");
            let theirs = format!("{SIZES} AND {at} >= ($1, $2) {order}");
            let opts = self.opts;
            let (mine, theirs) = tokio::join!(
                own_rows(self.conn, opts, &mine, &binds),
                helper.own_rows(opts, &theirs, &binds)
            );
            match (mine.and_then(rows), theirs.and_then(rows)) {
                (Ok(m), Ok(t)) => return Ok(merged(m, t)),
                (Err(e), _) => return Err(e),
                // The helper broke: this connection sizes every table.
                (Ok(_), Err(_)) => self.close_helper().await,
            }
        }
        rows(self.rows(&format!("{SIZES} {order}")).await?)
    }
}

/// The tables `table_sizes` considers: tables, partitioned tables and materialized views of
/// the user's schemas, partitions with their parent.
const SIZES: &str = "SELECT n.nspname::text, c.relname::text, pg_total_relation_size(c.oid)::int8, \
                            pg_relation_size(c.oid)::int8 \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition \
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";

/// The LISTED largest of two lists each in `table_sizes`' order, every table of `first`
/// before every table of `second` by schema and name: of two the same size, `first`'s
/// comes first, as one query's `ORDER BY` would have it.
fn merged<T>(
    first: Vec<(String, String, i64, T)>,
    second: Vec<(String, String, i64, T)>,
) -> Vec<(String, String, i64, T)> {
    let mut out = Vec::new();
    let (mut a, mut b) = (first.into_iter().peekable(), second.into_iter().peekable());
    while out.len() < LISTED as usize {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.2 >= y.2,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
    out
}
