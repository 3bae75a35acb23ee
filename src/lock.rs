//! One run per target. PostgreSQL targets take a session advisory lock on a dedicated
//! connection, polled with `pg_try_advisory_lock` (never a blocking call) until a deadline;
//! SQLite targets take an exclusive `flock` on a file next to the database (the file its path
//! resolves to: a symlink or another spelling reaches the same lock). Both are released
//! explicitly on every path, and by the server or the kernel if the process dies. The
//! PostgreSQL lock's session is kept from the server's `idle_session_timeout`, and asked
//! before each step whether it still holds the lock (`check_held`): a session the server
//! ended took the lock with it, and the run stops before its next step.
//!
//! The holder is named: the lock connection's `application_name` (PostgreSQL) or the lock
//! file's contents (SQLite) say which run and operator hold it.

use crate::db::TargetSpec;
use crate::db::reach::ConnectError;
use sqlx::{ConnectOptions, Connection, Row};
use std::io::{Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The advisory lock key: "runbook" in ASCII. Advisory locks are per database, so one key per
/// database is one lock per target.
const PG_LOCK_KEY: i64 = 0x0072_756e_626f_6f6b;

/// How long the lock's session is given to say it still holds the lock.
const CHECK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the target is locked by run {holder}")]
    Held { holder: String },
    #[error("cannot take the run lock: {0}")]
    Failed(String),
    /// The target cannot be reached: the user's environment (it carries the hint).
    #[error("{0}")]
    Unreachable(ConnectError),
}

pub enum TargetLock {
    Postgres(Option<sqlx::PgConnection>),
    Sqlite {
        file: std::fs::File,
        path: std::path::PathBuf,
    },
}

/// A connection to a PostgreSQL target opened for its run lock, the lock not yet taken.
pub struct Preconnected(sqlx::PgConnection);

/// Opens the connection the run lock of `target` will be taken on, when it is a PostgreSQL
/// database; `None` otherwise, or when it cannot be opened (the lock then connects itself, and
/// says why it cannot).
pub async fn preconnect(
    target: Option<&TargetSpec>,
    run_id: &str,
    operator: &str,
) -> Option<Preconnected> {
    match target? {
        TargetSpec::Postgres(url) => connect(url, run_id, operator).await.ok().map(Preconnected),
        TargetSpec::Sqlite(_) => None,
    }
}

/// A connection for the lock, named after the run and operator that hold it.
async fn connect(url: &str, run_id: &str, operator: &str) -> Result<sqlx::PgConnection, LockError> {
    let tag: String = format!("runbook run={run_id} operator={operator}")
        .chars()
        .take(63)
        .collect();
    let opts = sqlx::postgres::PgConnectOptions::from_str(url)
        .map_err(|e| LockError::Failed(crate::db::describe(&e)))?
        .application_name(&tag);
    opts.connect().await.map_err(|e| {
        let e = ConnectError::from(&e);
        if e.is_environment() {
            LockError::Unreachable(e)
        } else {
            LockError::Failed(e.message)
        }
    })
}

impl TargetLock {
    /// Takes the lock for `run_id`, polling until `wait` has passed.
    pub async fn acquire(
        target: &TargetSpec,
        run_id: &str,
        operator: &str,
        wait: Duration,
    ) -> Result<TargetLock, LockError> {
        Self::acquire_on(target, run_id, operator, wait, None).await
    }

    /// As [`acquire`](Self::acquire), on a lock connection opened beforehand with
    /// [`preconnect`] when there is one (opened while the run is checked, so the run does not
    /// wait for a second connection after the checks).
    pub async fn acquire_on(
        target: &TargetSpec,
        run_id: &str,
        operator: &str,
        wait: Duration,
        pre: Option<Preconnected>,
    ) -> Result<TargetLock, LockError> {
        let deadline = Instant::now() + wait;
        match target {
            TargetSpec::Postgres(url) => {
                // A connection opened beforehand may have been dropped meanwhile (by the
                // server, or a proxy): it is replaced once before the lock is given up on.
                let (mut conn, mut fresh) = match pre {
                    Some(Preconnected(conn)) => (conn, false),
                    None => (connect(url, run_id, operator).await?, true),
                };
                loop {
                    // As text: one round trip where a prepared statement takes two. The same
                    // round trip keeps the session from the server's `idle_session_timeout`
                    // (PostgreSQL 14 and later; a managed server may end sessions idle for
                    // minutes): the session idles while the run's steps work on another
                    // connection, and the lock ends with it. `current_setting(.., true)` is
                    // NULL where the setting does not exist, and the CASE then never calls
                    // `set_config` (reading it from `pg_settings` instead cost a new session
                    // 1.5-2 ms: the view builds every setting's row).
                    let got: bool = match sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "SELECT pg_try_advisory_lock({PG_LOCK_KEY}), CASE WHEN current_setting('idle_session_timeout', true) IS NOT NULL THEN set_config('idle_session_timeout', '0', false) END"
                    )))
                    .fetch_one(&mut conn)
                    .await
                    .and_then(|r| r.try_get(0))
                    {
                        Ok(got) => got,
                        Err(_) if !fresh => {
                            conn = connect(url, run_id, operator).await?;
                            fresh = true;
                            continue;
                        }
                        Err(e) => return Err(LockError::Failed(crate::db::describe(&e))),
                    };
                    if got {
                        tracing::debug!(run = run_id, "took the PostgreSQL advisory lock");
                        return Ok(TargetLock::Postgres(Some(conn)));
                    }
                    if Instant::now() >= deadline {
                        let holder = pg_holder(&mut conn)
                            .await
                            .unwrap_or_else(|| "another runbook process".to_owned());
                        let _ = conn.close().await;
                        return Err(LockError::Held { holder });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            TargetSpec::Sqlite(db) => {
                let path = sqlite_lock_path(db)?;
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(|e| LockError::Failed(format!("{}: {e}", path.display())))?;
                loop {
                    // SAFETY: flock on a descriptor we own; LOCK_NB makes it non-blocking.
                    let rc =
                        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                    if rc == 0 {
                        let _ = file.set_len(0);
                        let _ = file.rewind();
                        let _ = write!(
                            file,
                            "run={run_id} operator={operator} pid={}",
                            std::process::id()
                        );
                        let _ = file.sync_all();
                        return Ok(TargetLock::Sqlite { file, path });
                    }
                    if Instant::now() >= deadline {
                        let holder = std::fs::read_to_string(&path).unwrap_or_default();
                        let holder = if holder.trim().is_empty() {
                            "another runbook process".to_owned()
                        } else {
                            holder.trim().to_owned()
                        };
                        return Err(LockError::Held { holder });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Whether the lock is still this run's. A file lock lasts as long as the process; a
    /// PostgreSQL advisory lock as long as its session, which the server may have ended
    /// (`pg_terminate_backend`, a restart, a dropped connection): the session is asked whether
    /// it holds the lock (behind a connection pooler, the session that answers may not be the
    /// one that took it), and given `CHECK_WAIT` to answer. Why not, when it is not.
    pub async fn check_held(&mut self) -> Result<(), String> {
        let conn = match self {
            TargetLock::Sqlite { .. } => return Ok(()),
            TargetLock::Postgres(None) => return Err("its session was closed".to_owned()),
            TargetLock::Postgres(Some(conn)) => conn,
        };
        let (classid, objid) = (PG_LOCK_KEY >> 32, PG_LOCK_KEY & 0xffff_ffff);
        let asked = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND classid = {classid} AND objid = {objid} AND objsubid = 1)"
        )))
        .fetch_one(conn);
        let lost = match tokio::time::timeout(CHECK_WAIT, asked).await {
            Ok(Ok(row)) => match row.try_get::<bool, _>(0) {
                Ok(true) => return Ok(()),
                Ok(false) => "its session no longer holds it".to_owned(),
                Err(e) => crate::db::describe(&e),
            },
            Ok(Err(e)) => format!("its session ended: {}", crate::db::describe(&e)),
            Err(_) => format!(
                "its session did not answer within {} s",
                CHECK_WAIT.as_secs()
            ),
        };
        // The session is let go: a question left unanswered would keep the release waiting
        // for its answer on a connection that may never give one.
        *self = TargetLock::Postgres(None);
        Err(lost)
    }

    /// Releases the lock. Dropping the lock releases it too (the connection or file closes).
    pub async fn release(mut self) {
        match &mut self {
            TargetLock::Postgres(conn) => {
                if let Some(mut c) = conn.take() {
                    // Bounded: a connection that no longer answers is dropped, and the lock
                    // ends with its session on the server.
                    let unlock = async {
                        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "SELECT pg_advisory_unlock({PG_LOCK_KEY})"
                        )))
                        .execute(&mut c)
                        .await
                    };
                    if let Ok(Ok(_)) = tokio::time::timeout(CHECK_WAIT, unlock).await {
                        let _ = tokio::time::timeout(CHECK_WAIT, c.close()).await;
                    }
                }
            }
            TargetLock::Sqlite { file, path } => {
                let _ = file.set_len(0);
                // SAFETY: unlocking a descriptor we own.
                unsafe {
                    libc::flock(file.as_raw_fd(), libc::LOCK_UN);
                }
                let _ = path;
            }
        }
    }
}

/// The lock file of a SQLite database: next to the file the path resolves to, so a symlink,
/// `..` or a relative path reach the same lock. A database not created yet resolves through
/// its folder (created here, as opening the database would) and any symlink naming it.
fn sqlite_lock_path(db: &Path) -> Result<PathBuf, LockError> {
    let file = crate::db::identity::sqlite_file(db)
        .map_err(|e| LockError::Failed(format!("{}: {e}", db.display())))?;
    let mut name = file
        .file_name()
        .map(|f| f.to_os_string())
        .unwrap_or_default();
    name.push(".runbook-lock");
    Ok(file.with_file_name(name))
}

/// Who holds the advisory lock, from the holder connection's `application_name`.
async fn pg_holder(conn: &mut sqlx::PgConnection) -> Option<String> {
    let row = sqlx::query(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND ((l.classid::bigint << 32) | l.objid::bigint) = $1
         LIMIT 1",
    )
    .bind(PG_LOCK_KEY)
    .fetch_optional(conn)
    .await
    .ok()??;
    let name: String = row.try_get(0).ok()?;
    Some(name.strip_prefix("runbook ").unwrap_or(&name).to_owned())
}
