//! The checks of a running PostgreSQL server's activity: connections in use, the cache hit
//! ratio, long running queries and sessions waiting on locks. SQLite has none of these.

use super::CheckResult;
use super::grade::{graded, num, round1, thresholds};
use super::postgres::Pg;
use crate::fmt::percent;
use crate::playbook::HealthCheck;
use serde_json::json;
use sqlx::Row;

/// The cache hit ratio means little until the server has done this many block reads.
const MIN_CACHE_SAMPLE: i64 = 10_000;

/// ` AND pid NOT IN (...)` leaving out `pids`, or nothing.
fn helpers(pids: &[i32]) -> String {
    if pids.is_empty() {
        return String::new();
    }
    let list: Vec<String> = pids.iter().map(i32::to_string).collect();
    format!(" AND pid NOT IN ({})", list.join(", "))
}

impl Pg<'_> {
    pub(super) async fn connections(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows(&format!(
                "SELECT count(*)::int8, \
                        count(*) FILTER (WHERE state = 'active')::int8, \
                        count(*) FILTER (WHERE state LIKE 'idle in transaction%')::int8, \
                        current_setting('max_connections')::int8, \
                        current_setting('superuser_reserved_connections')::int8 \
                 FROM pg_stat_activity WHERE backend_type = 'client backend'{}",
                // The helpers of this check (`helper.rs`): open for `table_sizes`, or closed
                // without the server having seen them go yet.
                helpers(&self.helper_pids)
            ))
            .await?;
        let Some(r) = rows.first() else {
            return Ok(CheckResult::skip(
                HealthCheck::Connections,
                "pg_stat_activity returned nothing",
            ));
        };
        let (total, active, idle_tx, max, reserved): (i64, i64, i64, i64, i64) = (
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
        );
        let usable = (max - reserved).max(1);
        let in_use = percent(total as f64, usable as f64);
        Ok(graded(
            HealthCheck::Connections,
            in_use,
            self.opts,
            json!(total),
            format!(
                "{total} of {usable} connections in use ({}%), {active} active, {idle_tx} idle in transaction",
                num(in_use)
            ),
        )
        .with("total", total)
        .with("active", active)
        .with("idle_in_transaction", idle_tx)
        .with("max_connections", max)
        .with("usable", usable)
        .with("percent", in_use))
    }

    pub(super) async fn cache(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows("SELECT blks_hit::int8, blks_read::int8 FROM pg_stat_database WHERE datname = current_database()")
            .await?;
        let (hit, read): (i64, i64) = match rows.first() {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (0, 0),
        };
        if hit + read < MIN_CACHE_SAMPLE {
            return Ok(CheckResult::skip(
                HealthCheck::CacheHitRatio,
                format!(
                    "too few block reads to judge yet ({} of {MIN_CACHE_SAMPLE} needed)",
                    hit + read
                ),
            )
            .with("blocks_hit", hit)
            .with("blocks_read", read));
        }
        let hit_ratio = percent(hit as f64, (hit + read) as f64);
        Ok(graded(
            HealthCheck::CacheHitRatio,
            hit_ratio,
            self.opts,
            json!(hit_ratio),
            format!(
                "{}% of block reads served from shared buffers",
                num(hit_ratio)
            ),
        )
        .with("percent", hit_ratio)
        .with("blocks_hit", hit)
        .with("blocks_read", read))
    }

    pub(super) async fn long_running(&mut self) -> Result<CheckResult, sqlx::Error> {
        // This database only: other databases on the server are other applications'.
        let rows = self
            .rows(&format!(
                "SELECT pid::int8, coalesce(usename::text, ''), coalesce(application_name, '')::text, state::text, \
                        extract(epoch FROM now() - CASE WHEN state = 'active' THEN query_start ELSE state_change END)::float8, \
                        left(query, 200)::text \
                 FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND datname = current_database() \
                   AND pid <> pg_backend_pid(){} \
                   AND (state = 'active' OR state LIKE 'idle in transaction%') \
                 ORDER BY 5 DESC NULLS LAST",
                // The helper of this check (`helper.rs`) is its own.
                helpers(&self.helper_pids)
            ))
            .await?;
        let (warn, fail) = thresholds(
            HealthCheck::LongRunningQueries,
            self.opts.thresholds.get(&HealthCheck::LongRunningQueries),
        );
        let floor = warn.or(fail).unwrap_or(f64::INFINITY);
        let mut longest: f64 = 0.0;
        let mut listed = Vec::new();
        for r in &rows {
            let secs: f64 = r.try_get::<Option<f64>, _>(4)?.unwrap_or(0.0).max(0.0);
            longest = longest.max(secs);
            if secs >= floor {
                listed.push(json!({
                    "pid": r.try_get::<i64, _>(0)?,
                    "user": r.try_get::<String, _>(1)?,
                    "application": r.try_get::<String, _>(2)?,
                    "state": r.try_get::<String, _>(3)?,
                    "seconds": round1(secs),
                    "query": r.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
                }));
            }
        }
        let message = match listed.first() {
            None => format!("no queries running longer than {}s", num(floor)),
            Some(q) => format!(
                "{} quer{} running longer than {}s (longest {}s, pid {}: {})",
                listed.len(),
                if listed.len() == 1 { "y" } else { "ies" },
                num(floor),
                num(round1(longest)),
                q["pid"],
                one_line(q["query"].as_str().unwrap_or(""), 80)
            ),
        };
        Ok(graded(
            HealthCheck::LongRunningQueries,
            longest,
            self.opts,
            json!(listed.len()),
            message,
        )
        .with("longest_seconds", round1(longest))
        .with("queries", listed))
    }

    pub(super) async fn blocking(&mut self) -> Result<CheckResult, sqlx::Error> {
        // pg_locks.waitstart (PostgreSQL 14+) says when the wait began; before that the
        // query's start is the best bound there is.
        let since = if self.version_num >= 140_000 {
            "coalesce((SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted), a.query_start)"
        } else {
            "a.query_start"
        };
        let sql = format!(
            "SELECT a.pid::int8, pg_blocking_pids(a.pid)::int4[], \
                    extract(epoch FROM now() - {since})::float8, left(a.query, 200)::text \
             FROM pg_stat_activity a \
             WHERE a.datname = current_database() AND cardinality(pg_blocking_pids(a.pid)) > 0 \
             ORDER BY 3 DESC NULLS LAST"
        );
        let rows = self.rows(&sql).await?;
        let mut longest: f64 = 0.0;
        let mut blocked = Vec::new();
        for r in &rows {
            let secs = r.try_get::<Option<f64>, _>(2)?.unwrap_or(0.0).max(0.0);
            longest = longest.max(secs);
            blocked.push(json!({
                "pid": r.try_get::<i64, _>(0)?,
                "blocked_by": r.try_get::<Vec<i32>, _>(1)?,
                "seconds": round1(secs),
                "query": r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
            }));
        }
        let message = match blocked.first() {
            None => "no sessions are waiting on locks".to_owned(),
            Some(b) => format!(
                "{} session{} waiting on locks (longest {}s: pid {} blocked by {})",
                blocked.len(),
                if blocked.len() == 1 { "" } else { "s" },
                num(round1(longest)),
                b["pid"],
                b["blocked_by"]
            ),
        };
        Ok(graded(
            HealthCheck::BlockingLocks,
            longest,
            self.opts,
            json!(blocked.len()),
            message,
        )
        .with("longest_seconds", round1(longest))
        .with("blocked", blocked))
    }
}

/// The first `max` characters of `text` on one line.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}...")
    } else {
        flat
    }
}
