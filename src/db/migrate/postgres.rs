//! PostgreSQL's side of migrations: the history table's SQL, the advisory migration lock,
//! session timeouts, statements cancelled on the server, INVALID indexes, the locks a
//! rehearsal holds, and table sizes for lint.

use super::history::{HISTORY_SELECT, HistoryEntry};
use super::lock::{LOCK_KEY, MigrationLock};
use super::prisma::{POSTGRES_READ, ReadRow};
use super::rehearse::LockTaken;
use super::run::{ScriptError, Settings};
use super::script::line_of;
use super::source::Migration;
use crate::db::op::Op;
use futures_util::StreamExt;
use sqlx::{AssertSqlSafe, ConnectOptions, PgConnection, Row};
use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

/// How long a cancelled statement may take to end before the connection is given up.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

pub(super) const HISTORY_DDL: &str = "CREATE TABLE IF NOT EXISTS runbook_migrations (
    version TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    execution_ms BIGINT NOT NULL,
    success BOOLEAN NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    run_id TEXT,
    kind TEXT NOT NULL DEFAULT 'apply'
)";

pub(super) const BEGIN: &str = "BEGIN";

/// Runs a script; a cancel or the deadline cancels the running statement on the server and
/// waits for it to end, so the connection stays usable for the rollback.
pub(super) async fn run_script(
    c: &mut PgConnection,
    sql: &str,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<(), ScriptError> {
    run_counted(c, sql, lock, op)
        .await
        .map(|_| ())
        .map_err(|(_, e)| e)
}

/// Runs a script of several statements in one message, as `run_script` does, counting the
/// statements that completed: on an error, that count is the index of the failing statement
/// (the server stops at the first error and skips the rest of the message).
pub(super) async fn run_counted(
    c: &mut PgConnection,
    sql: &str,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<usize, (usize, ScriptError)> {
    let fut = async {
        let mut done = 0;
        let mut results = sqlx::raw_sql(AssertSqlSafe(sql)).execute_many(&mut *c);
        while let Some(r) = results.next().await {
            r.map_err(|e| (done, ScriptError::Sql(e)))?;
            done += 1;
        }
        Ok(done)
    };
    tokio::pin!(fut);
    let stop = tokio::select! {
        r = &mut fut => {
            lock.settle(op).await;
            return r;
        }
        e = op.stopped() => e,
        never = lock.watch(op) => match never {},
    };
    if lock.cancel_worker().await {
        let _ = tokio::time::timeout(CANCEL_GRACE, &mut fut).await;
    }
    Err((0, ScriptError::Stopped(stop)))
}

/// A string as a PostgreSQL literal, as libpq's `PQescapeLiteral` writes it: quotes doubled,
/// and backslashes doubled behind `E` when there are any, so it reads the same whatever
/// `standard_conforming_strings` says.
pub(super) fn literal(s: &str) -> String {
    let quoted = s.replace('\'', "''");
    if s.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// `BEGIN` and the step's timeouts, transaction-local, as one script without a line break (so
/// a file sent after it keeps its line numbers); gives the script and its statement count.
pub(super) fn begin_with_timeouts(s: &Settings) -> (String, usize) {
    let timeouts = timeouts(s);
    let mut sql = String::from("BEGIN;");
    for (name, value) in &timeouts {
        sql.push_str(&format!("SET LOCAL {name} = '{value}';"));
    }
    (sql, 1 + timeouts.len())
}

/// The step's timeouts that are set, with their values as PostgreSQL reads them (`5000ms`).
pub(super) fn timeouts(s: &Settings) -> Vec<(&'static str, String)> {
    [
        ("lock_timeout", s.lock_timeout),
        ("statement_timeout", s.statement_timeout),
    ]
    .into_iter()
    .filter_map(|(name, d)| d.map(|d| (name, format!("{}ms", d.as_millis().max(1)))))
    .collect()
}

/// The time since the message that runs it began, in milliseconds (`statement_timestamp()` is
/// when the server received the message: the same for every statement in it).
pub(super) const MESSAGE_MS: &str =
    "(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)::bigint";

/// The statement that writes a history row stamped with the server's clock (the row of an
/// earlier attempt replaced), with literal values: one statement. `execution_ms` is an SQL
/// expression ([`MESSAGE_MS`] when the file ran in the same message); `success: false` is the
/// row of a file about to run outside a transaction, until it is done.
pub(super) fn record_script(
    m: &Migration,
    execution_ms: &str,
    success: bool,
    run_id: &str,
    kind: &str,
) -> String {
    format!(
        "INSERT INTO runbook_migrations (version, name, checksum, execution_ms, success, applied_at, run_id, kind)
VALUES ({v}, {}, {}, {execution_ms}, {success}, clock_timestamp(), {}, {})
ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, checksum = EXCLUDED.checksum,
    execution_ms = EXCLUDED.execution_ms, success = EXCLUDED.success, applied_at = EXCLUDED.applied_at,
    run_id = EXCLUDED.run_id, kind = EXCLUDED.kind;",
        literal(&m.name),
        literal(&m.checksum),
        literal(run_id),
        literal(kind),
        v = literal(&m.version),
    )
}

/// The 1-based character position in the query text a PostgreSQL error points at, if any.
pub(super) fn error_position(e: &sqlx::Error) -> Option<usize> {
    let pos = e
        .as_database_error()?
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?
        .position()?;
    match pos {
        sqlx::postgres::PgErrorPosition::Original(chars) => Some(chars),
        _ => None,
    }
}

/// The 1-based line in `text` of a PostgreSQL error position in the chunk at byte `offset`.
pub(super) fn error_line(e: &sqlx::Error, text: &str, offset: usize) -> Option<usize> {
    let chunk = text.get(offset..)?;
    let line = line_at_char(chunk, error_position(e)?)?;
    Some(line_of(text, offset) + line - 1)
}

/// The 1-based line of the 1-based character position `chars` in `text` (one past its end
/// names the end of input, as the server does); `None` beyond that.
pub(super) fn line_at_char(text: &str, chars: usize) -> Option<usize> {
    let byte = text
        .char_indices()
        .nth(chars.saturating_sub(1))
        .map_or(text.len(), |(b, _)| b);
    (byte < text.len() || chars == text.chars().count() + 1).then(|| line_of(text, byte))
}

/// The history table's rows (`applied_at` is a `timestamptz`, shown as RFC 3339 in UTC).
pub(super) async fn history_rows(c: &mut PgConnection) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    let rows = sqlx::query(HISTORY_SELECT).fetch_all(&mut *c).await?;
    rows.iter()
        .map(|r| {
            let at: chrono::DateTime<chrono::Utc> = r.try_get(5)?;
            HistoryEntry::from_row(r, at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        })
        .collect()
}

/// Both history tables' rows in one message, when both exist: the history table's, and
/// `_prisma_migrations`' as `prisma::read` reads them. `applied_at` comes as microseconds since
/// the epoch, so the text the simple protocol sends reads the same whatever the session's
/// `DateStyle` and `TimeZone` (a migration may set them). An error says which table (0 or 1).
pub(super) async fn both_histories(
    c: &mut PgConnection,
) -> Result<(Vec<HistoryEntry>, Vec<ReadRow>), (usize, sqlx::Error)> {
    let history = HISTORY_SELECT.replace(
        "applied_at,",
        "(extract(epoch FROM applied_at) * 1000000)::int8,",
    );
    let sql = format!("{history};\n{POSTGRES_READ}");
    let (mut hist, mut prisma) = (Vec::new(), Vec::new());
    let mut done = 0;
    let mut results = sqlx::raw_sql(AssertSqlSafe(sql)).fetch_many(&mut *c);
    while let Some(item) = results.next().await {
        match item {
            Ok(sqlx::Either::Left(_)) => done += 1,
            Ok(sqlx::Either::Right(r)) if done == 0 => {
                let micros: i64 = r.try_get(5).map_err(|e| (0, e))?;
                let at = chrono::DateTime::from_timestamp_micros(micros)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                hist.push(HistoryEntry::from_row(&r, at).map_err(|e| (0, e))?);
            }
            Ok(sqlx::Either::Right(r)) => {
                let row = (|| {
                    Ok::<ReadRow, sqlx::Error>((
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                    ))
                })()
                .map_err(|e| (1, e))?;
                prisma.push(row);
            }
            Err(e) => return Err((done, e)),
        }
    }
    Ok((hist, prisma))
}

/// Whether each of `tables` exists (on the search path), in one query: one round trip, as
/// text (a statement a connection prepares takes two its first time, and apply asks this once).
pub(super) async fn tables_exist(
    c: &mut PgConnection,
    [a, b]: [&str; 2],
) -> Result<[bool; 2], sqlx::Error> {
    let row = sqlx::raw_sql(AssertSqlSafe(format!(
        "SELECT to_regclass({}) IS NOT NULL, to_regclass({}) IS NOT NULL",
        literal(a),
        literal(b)
    )))
    .fetch_one(&mut *c)
    .await?;
    Ok([row.try_get(0)?, row.try_get(1)?])
}

/// Writes a history row stamped with the server's clock.
pub(super) async fn insert_history(
    c: &mut PgConnection,
    m: &Migration,
    execution_ms: i64,
    success: bool,
    run_id: &str,
    kind: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO runbook_migrations
                 (version, name, checksum, execution_ms, success, applied_at, run_id, kind)
                 VALUES ($1, $2, $3, $4, $5, clock_timestamp(), $6, $7)",
    )
    .bind(&m.version)
    .bind(&m.name)
    .bind(&m.checksum)
    .bind(execution_ms)
    .bind(success)
    .bind(run_id)
    .bind(kind)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn delete_history(c: &mut PgConnection, version: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM runbook_migrations WHERE version = $1")
        .bind(version)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Sets `lock_timeout` and `statement_timeout`: transaction-local inside a transaction, else
/// for the session; returns the session values to restore.
pub(super) async fn set_timeouts(
    c: &mut PgConnection,
    s: &Settings,
    local: bool,
) -> Result<Vec<(&'static str, String)>, sqlx::Error> {
    let mut previous = Vec::new();
    for (name, value) in timeouts(s) {
        if !local {
            let old: String = sqlx::query_scalar("SELECT current_setting($1)")
                .bind(name)
                .fetch_one(&mut *c)
                .await?;
            previous.push((name, old));
        }
        sqlx::query("SELECT set_config($1, $2, $3)")
            .bind(name)
            .bind(value)
            .bind(local)
            .execute(&mut *c)
            .await?;
    }
    Ok(previous)
}

pub(super) async fn restore_timeouts(c: &mut PgConnection, previous: &[(&'static str, String)]) {
    for (name, value) in previous {
        let _ = sqlx::query("SELECT set_config($1, $2, false)")
            .bind(*name)
            .bind(value)
            .execute(&mut *c)
            .await;
    }
}

/// INVALID indexes (left by failed concurrent builds): the index and its table, quoted.
pub(super) const INVALID_INDEXES: &str =
    "SELECT format('%I.%I', n.nspname, c.relname), format('%I.%I', tn.nspname, t.relname)
         FROM pg_index i
         JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
         WHERE NOT i.indisvalid ORDER BY 1";

/// The rows of [`INVALID_INDEXES`].
pub(super) async fn invalid_indexes(
    c: &mut PgConnection,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(INVALID_INDEXES).fetch_all(&mut *c).await
}

/// The relation locks this session holds outside the system schemas.
pub(super) async fn held_locks(c: &mut PgConnection) -> Result<BTreeSet<LockTaken>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname),
                CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
                  WHEN 'i' THEN 'index' WHEN 'I' THEN 'partitioned index'
                  WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view'
                  WHEN 'm' THEN 'materialized view' WHEN 't' THEN 'toast table'
                  ELSE c.relkind::text END,
                l.mode
         FROM pg_locks l
         JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%'",
    )
    .fetch_all(&mut *c)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(relation, kind, mode)| LockTaken {
            relation,
            kind,
            mode,
        })
        .collect())
}

/// A table's size summed over its partitions: `reltuples` (non-negative part), whether any
/// part was analyzed, `n_live_tup`, heap bytes. `None` when the table does not exist.
pub(super) async fn table_size(
    c: &mut PgConnection,
    table: &str,
) -> Result<Option<(f64, bool, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT coalesce(sum(greatest(l.reltuples, 0)), 0)::float8,
                coalesce(bool_or(l.reltuples >= 0), false),
                coalesce(sum(s.n_live_tup), 0)::int8,
                coalesce(sum(pg_relation_size(l.oid)), 0)::int8
         FROM pg_class c
         CROSS JOIN LATERAL (
           SELECT relid FROM pg_partition_tree(c.oid) WHERE isleaf
           UNION SELECT c.oid
         ) t
         JOIN pg_class l ON l.oid = t.relid
         LEFT JOIN pg_stat_user_tables s ON s.relid = l.oid
         WHERE c.oid = to_regclass($1)
         GROUP BY c.oid",
    )
    .bind(table)
    .fetch_optional(&mut *c)
    .await
}

/// The table an index (as written in SQL) belongs to, as the server names it; `None` when there
/// is no such index.
pub(super) async fn index_table(
    c: &mut PgConnection,
    index: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT indrelid::regclass::text FROM pg_index WHERE indexrelid = to_regclass($1)",
    )
    .bind(index)
    .fetch_optional(&mut *c)
    .await
}

/// The server's version for squawk (`15.4`).
pub(super) async fn server_version(c: &mut PgConnection) -> Option<String> {
    let v: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut *c)
        .await
        .ok()?;
    v.split_whitespace().next().map(str::to_owned)
}

/// Names the connection `tag` and tries the migration lock on it, in one round trip (as text:
/// prepared, it would take two); gives the backend's pid, the connection's name before, and
/// whether the lock was taken.
pub(super) async fn lock_named(
    c: &mut PgConnection,
    tag: &str,
) -> Result<(i32, String, bool), sqlx::Error> {
    // A target list is evaluated in order: the name is read before it is set.
    let row = sqlx::raw_sql(AssertSqlSafe(format!(
        "SELECT pg_backend_pid(), current_setting('application_name'), \
         set_config('application_name', {}, false), pg_try_advisory_lock({LOCK_KEY})",
        literal(tag)
    )))
    .fetch_one(c)
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(3)?))
}

/// A short-lived connection beside the one that runs the migrations (to cancel its statement).
pub(super) async fn side_connection(url: &str, tag: &str) -> Result<PgConnection, sqlx::Error> {
    sqlx::postgres::PgConnectOptions::from_str(url)?
        .application_name(tag)
        .connect()
        .await
}

pub(super) async fn try_lock(c: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(c)
        .await
}

/// Gives the connection back its name `name`.
pub(super) async fn rename(c: &mut PgConnection, name: &str) {
    let _ = sqlx::query("SELECT set_config('application_name', $1, false)")
        .bind(name)
        .execute(c)
        .await;
}

/// Releases the migration lock and gives the connection back its name `name`, in one round
/// trip (as text): `Some(false)` when the lock was not held, `None` when the connection failed.
pub(super) async fn unlock(c: &mut PgConnection, name: &str) -> Option<bool> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SELECT pg_advisory_unlock({LOCK_KEY}), set_config('application_name', {}, false)",
        literal(name)
    )))
    .fetch_one(c)
    .await
    .ok()
    .and_then(|row| row.try_get(0).ok())
}

/// Asks the server to cancel the statement backend `pid` runs.
pub(super) async fn cancel_backend(c: &mut PgConnection, pid: i32) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT pg_cancel_backend($1)")
        .bind(pid)
        .fetch_one(c)
        .await
        .unwrap_or(false)
}

/// Who holds the migration lock: the holder's `application_name` and pid.
pub(super) async fn lock_holder(conn: &mut PgConnection) -> String {
    let row = sqlx::query(
        "SELECT coalesce(nullif(a.application_name, ''), 'a session'), a.pid
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND ((l.classid::bigint << 32) | l.objid::bigint) = $1
         LIMIT 1",
    )
    .bind(LOCK_KEY)
    .fetch_optional(conn)
    .await;
    match row {
        Ok(Some(r)) => {
            let name: String = r.try_get(0).unwrap_or_default();
            let pid: i32 = r.try_get(1).unwrap_or_default();
            format!("`{name}` (pid {pid})")
        }
        _ => "another session".to_owned(),
    }
}
