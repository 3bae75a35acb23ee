//! Prisma's history table (`_prisma_migrations`), kept as Prisma's migration engine keeps it
//! for a Prisma-layout migration (one with a `prisma_name`), so that `prisma migrate status` and
//! `prisma migrate deploy` agree with runbook afterwards: the table with Prisma's own
//! definition, a row per attempt with a random UUID v4 id, the sha256 of the file's bytes as
//! stored, `started_at`/`finished_at`, `applied_steps_count` 1 for a migration that ran (0 for
//! one marked applied, as `prisma migrate resolve --applied` writes it), `logs` for a failure,
//! and `rolled_back_at` for a row that no longer counts. Timestamps are taken from this
//! process's clock, as Prisma's engine takes them, except on PostgreSQL where a row is written
//! in the same message as its file (a file in a transaction, and the rows before and after a
//! file outside one): there the server's clock stamps it, so rows of one apply come from one
//! clock in the order they were written. SQLite keeps them as Unix milliseconds, which is how
//! Prisma stores a `DateTime` there.

use super::db_failed;
use super::history::PrismaRecord;
use super::postgres::literal;
use super::source::Migration;
use crate::db::Db;
use crate::db::op::OpError;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Prisma's history table.
pub const PRISMA_TABLE: &str = "_prisma_migrations";

/// The table as Prisma's migration engine creates it on PostgreSQL.
pub(super) const POSTGRES_DDL: &str = "CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
)";

/// The table as Prisma's migration engine creates it on SQLite.
pub(super) const SQLITE_DDL: &str = "CREATE TABLE \"_prisma_migrations\" (
    \"id\"                    TEXT PRIMARY KEY NOT NULL,
    \"checksum\"              TEXT NOT NULL,
    \"finished_at\"           DATETIME,
    \"migration_name\"        TEXT NOT NULL,
    \"logs\"                  TEXT,
    \"rolled_back_at\"        DATETIME,
    \"started_at\"            DATETIME NOT NULL DEFAULT current_timestamp,
    \"applied_steps_count\"   INTEGER UNSIGNED NOT NULL DEFAULT 0
)";

/// A `_prisma_migrations` row Prisma counts as failed: not finished, not rolled back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PrismaFailure {
    /// The migration's folder name.
    pub migration_name: String,
    pub started_at: String,
    /// What the failed attempt logged (the database's error), when anything.
    pub logs: Option<String>,
}

/// Whether runbook keeps Prisma's table for this set: some migration is a Prisma folder.
pub(super) fn kept_for(migrations: &[Migration]) -> bool {
    migrations.iter().any(|m| m.prisma_name.is_some())
}

/// A random UUID v4, as Prisma gives each row.
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    // Without randomness the id is still unique enough per run: the time in nanoseconds.
    if getrandom::fill(&mut b).is_err() {
        let t = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        b[..8].copy_from_slice(&t.to_le_bytes());
        b[8..].copy_from_slice(&std::process::id().to_le_bytes().repeat(2));
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Runs `sql` (with `$n` placeholders, rewritten to `?n` for SQLite) with its values.
async fn run(db: &mut Db, sql: &str, values: Vec<Value>) -> Result<u64, sqlx::Error> {
    match db {
        Db::Postgres(c) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            for v in values {
                q = match v {
                    Value::Text(s) => q.bind(s),
                    Value::At(t) => q.bind(t),
                    Value::Int(i) => q.bind(i),
                };
            }
            Ok(q.execute(&mut *c).await?.rows_affected())
        }
        Db::Sqlite(c) => {
            let sql = sql.replace('$', "?");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for v in values {
                q = match v {
                    Value::Text(s) => q.bind(s),
                    // Prisma keeps a `DateTime` as Unix milliseconds on SQLite.
                    Value::At(t) => q.bind(t.map(|t| t.timestamp_millis())),
                    Value::Int(i) => q.bind(i),
                };
            }
            Ok(q.execute(&mut *c).await?.rows_affected())
        }
    }
}

/// A value bound to a statement; a time is bound the dialect's way.
enum Value {
    Text(String),
    At(Option<DateTime<Utc>>),
    Int(i32),
}

const INSERT: &str = "INSERT INTO _prisma_migrations
    (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
    VALUES ($1, $2, $3, $4, NULL, NULL, $5, $6)";

async fn insert(
    db: &mut Db,
    m: &Migration,
    name: &str,
    started: DateTime<Utc>,
    finished: Option<DateTime<Utc>>,
    steps: i32,
) -> Result<String, sqlx::Error> {
    let id = uuid_v4();
    let values = vec![
        Value::Text(id.clone()),
        Value::Text(m.raw_checksum.clone()),
        Value::At(finished),
        Value::Text(name.to_owned()),
        Value::At(Some(started)),
        Value::Int(steps),
    ];
    run(db, INSERT, values).await?;
    Ok(id)
}

/// The row of a migration that ran for `took` and finished now (in its transaction).
pub(super) async fn insert_finished(
    db: &mut Db,
    m: &Migration,
    took: Duration,
) -> Result<(), sqlx::Error> {
    let Some(name) = &m.prisma_name else {
        return Ok(());
    };
    let finished = Utc::now();
    let started = finished - chrono::Duration::from_std(took).unwrap_or_default();
    insert(db, m, name, started, Some(finished), 1).await?;
    Ok(())
}

/// The row of a migration that finished now, as one statement with literal values for a
/// script on PostgreSQL: it ran for `took`, or (`None`) it ran in the same message as this
/// statement, which then takes both times from the server's clock (`statement_timestamp()`,
/// when the message arrived, and `clock_timestamp()`). `None` for a migration that is not a
/// Prisma folder.
pub(super) fn finished_script(m: &Migration, took: Option<Duration>) -> Option<String> {
    let name = m.prisma_name.as_ref()?;
    let at = |t: DateTime<Utc>| {
        format!(
            "'{}'::timestamptz",
            t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    };
    let (started, finished) = match took {
        Some(took) => {
            let finished = Utc::now();
            let started = finished - chrono::Duration::from_std(took).unwrap_or_default();
            (at(started), at(finished))
        }
        None => (
            "statement_timestamp()".to_owned(),
            "clock_timestamp()".to_owned(),
        ),
    };
    Some(format!(
        "INSERT INTO _prisma_migrations
    (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
    VALUES ({}, {}, {finished}, {}, NULL, NULL, {started}, 1);",
        literal(&uuid_v4()),
        literal(&m.raw_checksum),
        literal(name),
    ))
}

/// For a Prisma folder about to run outside a transaction, as statements with literal values
/// for a script on PostgreSQL: the one marking the rows of its earlier failed attempts rolled
/// back (see [`roll_back`]), then the one writing its row as started, and that row's id. The
/// table exists: `apply` created it for a set with Prisma folders.
pub(super) fn started_script(m: &Migration) -> Option<(String, String, String)> {
    let name = literal(m.prisma_name.as_ref()?);
    let id = uuid_v4();
    let rolled_back = format!(
        "UPDATE _prisma_migrations SET rolled_back_at = clock_timestamp()
    WHERE migration_name = {name} AND rolled_back_at IS NULL AND finished_at IS NULL;"
    );
    let started = format!(
        "INSERT INTO _prisma_migrations
    (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
    VALUES ({}, {}, NULL, {name}, NULL, NULL, clock_timestamp(), 0);",
        literal(&id),
        literal(&m.raw_checksum),
    );
    Some((rolled_back, started, id))
}

/// The statement marking a started row finished after its one step, for a script on
/// PostgreSQL (as [`finish`] does).
pub(super) fn finish_script(id: &str) -> String {
    format!(
        "UPDATE _prisma_migrations SET finished_at = clock_timestamp(), applied_steps_count = applied_steps_count + 1 WHERE id = {};",
        literal(id)
    )
}

/// The row of a migration marked applied without running, as `prisma migrate resolve
/// --applied` writes it: finished when started, no steps.
pub(super) async fn insert_marked(db: &mut Db, m: &Migration) -> Result<(), sqlx::Error> {
    let Some(name) = &m.prisma_name else {
        return Ok(());
    };
    let now = Utc::now();
    insert(db, m, name, now, Some(now), 0).await?;
    Ok(())
}

/// The row of a migration about to run outside a transaction: started, not finished, so a
/// crash in the middle shows as Prisma's failed migration. Gives its id.
pub(super) async fn insert_started(
    db: &mut Db,
    m: &Migration,
) -> Result<Option<String>, sqlx::Error> {
    let Some(name) = &m.prisma_name else {
        return Ok(None);
    };
    insert(db, m, name, Utc::now(), None, 0).await.map(Some)
}

/// Marks a started row finished after its one step.
pub(super) async fn finish(db: &mut Db, id: &str) -> Result<(), sqlx::Error> {
    run(
        db,
        "UPDATE _prisma_migrations SET finished_at = $1, applied_steps_count = applied_steps_count + 1 WHERE id = $2",
        vec![Value::At(Some(Utc::now())), Value::Text(id.to_owned())],
    )
    .await
    .map(|_| ())
}

/// Keeps a failed attempt's error in its row's `logs`, as Prisma does.
pub(super) async fn fail(db: &mut Db, id: &str, logs: &str) -> Result<(), sqlx::Error> {
    run(
        db,
        "UPDATE _prisma_migrations SET logs = $1 WHERE id = $2",
        vec![Value::Text(logs.to_owned()), Value::Text(id.to_owned())],
    )
    .await
    .map(|_| ())
}

/// Marks the rows of migration `name` rolled back (`rolled_back_at` now): only its failed
/// rows, as `prisma migrate resolve --rolled-back` does, or (`applied_too`) every row still
/// counted, for a migration runbook reverted. Gives how many rows it marked; none when the
/// table does not exist.
pub(super) async fn roll_back(
    db: &mut Db,
    name: &str,
    applied_too: bool,
) -> Result<u64, sqlx::Error> {
    if !super::history::lookup(db).await?.prisma {
        return Ok(0);
    }
    let sql = if applied_too {
        "UPDATE _prisma_migrations SET rolled_back_at = $1 WHERE migration_name = $2 AND rolled_back_at IS NULL"
    } else {
        "UPDATE _prisma_migrations SET rolled_back_at = $1 WHERE migration_name = $2 AND rolled_back_at IS NULL AND finished_at IS NULL"
    };
    run(
        db,
        sql,
        vec![Value::At(Some(Utc::now())), Value::Text(name.to_owned())],
    )
    .await
}

/// What `_prisma_migrations` says, when it `exists` (the caller knows), in one query: the
/// migrations Prisma finished, and the attempts it counts as failed (oldest first). A row
/// rolled back counts as neither.
pub(super) async fn read(
    db: &mut Db,
    exists: bool,
) -> Result<(Vec<PrismaRecord>, Vec<PrismaFailure>), OpError> {
    if !exists {
        return Ok((Vec::new(), Vec::new()));
    }
    let rows: Result<Vec<ReadRow>, sqlx::Error> = match db {
        Db::Postgres(c) => sqlx::query_as(POSTGRES_READ).fetch_all(&mut *c).await,
        Db::Sqlite(c) => {
            // Prisma keeps times as Unix milliseconds: shown as RFC 3339 like every other time.
            let sql = format!(
                "SELECT migration_name, checksum, {}, {}, logs FROM _prisma_migrations
                 WHERE rolled_back_at IS NULL ORDER BY started_at",
                SQLITE_TIME.replace("{col}", "finished_at"),
                SQLITE_TIME.replace("{col}", "started_at")
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *c)
                .await
        }
    };
    let rows = rows.map_err(|e| db_failed(&format!("cannot read `{PRISMA_TABLE}`"), &e))?;
    Ok(split(rows))
}

/// A row of [`read`]: name, checksum, finished (`None`: not finished), started, logs.
pub(super) type ReadRow = (String, String, Option<String>, String, Option<String>);

/// [`read`]'s query on PostgreSQL.
pub(super) const POSTGRES_READ: &str = "SELECT migration_name, checksum, finished_at::text,
                        to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), logs
                 FROM _prisma_migrations WHERE rolled_back_at IS NULL ORDER BY started_at";

/// The rows of [`read`] as the migrations Prisma finished and the attempts it counts as failed.
pub(super) fn split(rows: Vec<ReadRow>) -> (Vec<PrismaRecord>, Vec<PrismaFailure>) {
    let (mut finished, mut failed) = (Vec::new(), Vec::new());
    for (name, checksum, finished_at, started_at, logs) in rows {
        match finished_at {
            Some(finished_at) => finished.push(PrismaRecord {
                name,
                checksum,
                finished_at,
            }),
            None => failed.push(PrismaFailure {
                migration_name: name,
                started_at,
                logs,
            }),
        }
    }
    (finished, failed)
}

/// A SQLite `DATETIME` column as RFC 3339 text: Prisma's Unix milliseconds, or text as
/// written by hand.
pub(super) const SQLITE_TIME: &str = "CASE WHEN typeof({col}) IN ('integer', 'real') \
     THEN strftime('%Y-%m-%dT%H:%M:%fZ', {col} / 1000.0, 'unixepoch') ELSE CAST({col} AS TEXT) END";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v4() {
        let a = uuid_v4();
        let b = uuid_v4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{a}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{a}");
    }
}
