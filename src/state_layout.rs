//! The state store's tables: their layout version, the tables made on a new store, the columns
//! added to an older one, a newer one refused. A store of the current layout opens without a
//! statement per table (the version is written last). Processes opening a new or older
//! PostgreSQL store at once are serialized by a transaction-scoped advisory lock, in the
//! transaction that makes or upgrades the tables: one makes them, the others find them made
//! (two `CREATE TABLE IF NOT EXISTS` of one table at once fail one of them on PostgreSQL).

use crate::state::StateError;
use sqlx::{AnyConnection, AnyPool, Row};

/// The tables of the current layout, each made when missing.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS runbook_runs (
        id TEXT PRIMARY KEY,
        playbook TEXT NOT NULL,
        file TEXT NOT NULL,
        env TEXT NOT NULL,
        target TEXT NOT NULL,
        target_key TEXT NOT NULL,
        operator TEXT NOT NULL,
        host TEXT NOT NULL,
        pid BIGINT NOT NULL,
        pid_start BIGINT NOT NULL DEFAULT 0,
        content_hash TEXT NOT NULL,
        migrations_hash TEXT NOT NULL DEFAULT '',
        audit_seq BIGINT NOT NULL DEFAULT 0,
        audit_head TEXT NOT NULL DEFAULT '',
        audit_synced BIGINT NOT NULL DEFAULT 0,
        plan_hash TEXT NOT NULL,
        params TEXT NOT NULL,
        vars TEXT NOT NULL,
        tags TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        finished_at BIGINT,
        error TEXT
    )",
    "CREATE TABLE IF NOT EXISTS runbook_steps (
        run_id TEXT NOT NULL,
        step TEXT NOT NULL,
        phase TEXT NOT NULL,
        ord BIGINT NOT NULL,
        status TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        started_at BIGINT,
        finished_at BIGINT,
        outputs TEXT NOT NULL,
        error TEXT,
        db_change TEXT,
        PRIMARY KEY (run_id, step, phase)
    )",
    "CREATE TABLE IF NOT EXISTS runbook_events (
        run_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at BIGINT NOT NULL,
        kind TEXT NOT NULL,
        step TEXT,
        phase TEXT,
        data TEXT NOT NULL,
        audit_seq BIGINT,
        audit_hash TEXT,
        audit_line TEXT,
        PRIMARY KEY (run_id, seq)
    )",
    "CREATE INDEX IF NOT EXISTS runbook_runs_started ON runbook_runs (started_at)",
    "CREATE TABLE IF NOT EXISTS runbook_fleets (
        id TEXT PRIMARY KEY,
        playbook TEXT NOT NULL,
        env TEXT NOT NULL,
        selector TEXT NOT NULL,
        options TEXT NOT NULL,
        targets TEXT NOT NULL,
        operator TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        finished_at BIGINT
    )",
    "CREATE TABLE IF NOT EXISTS runbook_fleet_targets (
        fleet_id TEXT NOT NULL,
        target TEXT NOT NULL,
        run_id TEXT,
        status TEXT NOT NULL,
        exit_code BIGINT,
        reason TEXT,
        PRIMARY KEY (fleet_id, target)
    )",
    "CREATE TABLE IF NOT EXISTS runbook_approvals (
        run_id TEXT NOT NULL,
        gate TEXT NOT NULL,
        actor TEXT NOT NULL,
        decision TEXT NOT NULL,
        comment TEXT,
        plan_hash TEXT NOT NULL,
        at BIGINT NOT NULL,
        signed TEXT
    )",
];

/// The layout version of the state store tables. A store written by a newer runbook is
/// refused rather than misread.
const STATE_VERSION: i64 = 9;

/// The advisory lock the upgrade of a PostgreSQL store holds ("runbook" in ASCII, then 1).
const LAYOUT_LOCK: i64 = 0x7275_6e62_6f6f_6b01;

/// The store's layout version (0 when it has none, or no table to hold one).
async fn version(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    let version: Option<String> =
        sqlx::query("SELECT value FROM runbook_meta WHERE key = 'state_version'")
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
    Ok(version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Refuses a store of a newer layout; whether it is of this one.
fn current(version: i64) -> Result<bool, StateError> {
    if version > STATE_VERSION {
        return Err(StateError::Corrupt(format!(
            "the state store has layout version {version}, newer than this runbook understands ({STATE_VERSION}); upgrade runbook"
        )));
    }
    Ok(version == STATE_VERSION)
}

/// Makes the store's tables whole for this layout. A store made whole by a runbook of this
/// layout is opened as it is: a table someone dropped is named missing when it is used rather
/// than made again empty.
pub(crate) async fn migrate(pool: &AnyPool, postgres: bool) -> Result<(), StateError> {
    let mut conn = pool.acquire().await?;
    // A store without `runbook_meta` fails this read: it is made below.
    if let Ok(v) = version(&mut conn).await
        && current(v)?
    {
        return Ok(());
    }
    if !postgres {
        // SQLite takes its write lock for each statement, waiting for another process's.
        return upgrade(&mut conn, false).await;
    }
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    let upgraded = async {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LAYOUT_LOCK)
            .execute(&mut *conn)
            .await?;
        upgrade(&mut conn, true).await
    }
    .await;
    let end = if upgraded.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    let ended = sqlx::query(end).execute(&mut *conn).await;
    upgraded?;
    ended?;
    Ok(())
}

/// Makes the tables and adds the columns the store's layout lacks, then writes the version.
/// On PostgreSQL inside the caller's transaction, under its lock: a process that waited for
/// the lock finds the store made and does nothing.
async fn upgrade(conn: &mut AnyConnection, postgres: bool) -> Result<(), StateError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS runbook_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    let version = version(conn).await?;
    if current(version)? {
        return Ok(());
    }
    for stmt in SCHEMA {
        sqlx::query(*stmt).execute(&mut *conn).await?;
    }
    // Columns later layouts added: (the layout that added it, table, column definition).
    const ADDED: [(i64, &str, &str); 7] = [
        // Stores made before the version was recorded lack the `pid` column.
        (1, "runbook_runs", "pid BIGINT NOT NULL DEFAULT 0"),
        // What a step changed (a step without one counts as having changed the target).
        (5, "runbook_steps", "db_change TEXT"),
        // Approvals signed with an SSH key keep the statement, signature and key (JSON).
        (6, "runbook_approvals", "signed TEXT"),
        // Why a fleet's target failed, for one whose child never started a run too.
        (7, "runbook_fleet_targets", "reason TEXT"),
        // The audit record's line, from which a chain a system crash cut short is restored.
        (8, "runbook_events", "audit_line TEXT"),
        // The last record the run's chain was fsynced through.
        (8, "runbook_runs", "audit_synced BIGINT NOT NULL DEFAULT 0"),
        // The start time of the run's process, which tells it from a process given its pid
        // later (a run without it is judged by the program's name).
        (9, "runbook_runs", "pid_start BIGINT NOT NULL DEFAULT 0"),
    ];
    for (layout, table, column) in ADDED {
        if version >= layout {
            continue;
        }
        if postgres {
            // In a transaction a failed statement would end it: the column is added only
            // when missing (a table made above has it already).
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}"
            )))
            .execute(&mut *conn)
            .await?;
        } else {
            // SQLite has no `IF NOT EXISTS` here: a column a table made above has already
            // fails to be added again, which is what is wanted.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE {table} ADD COLUMN {column}"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
    sqlx::query("INSERT INTO runbook_meta (key, value) VALUES ('state_version', $1) ON CONFLICT (key) DO UPDATE SET value = $1")
        .bind(STATE_VERSION.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
