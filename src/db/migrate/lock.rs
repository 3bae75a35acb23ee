//! The migration lock: on PostgreSQL a session advisory lock taken on the connection that
//! runs the migrations (as Prisma, Flyway and sqlx take theirs), polled (never a blocking
//! call) and released on every path; the server releases it too when that connection ends.
//! While it is held the connection is named after the run, so a waiting operator sees who
//! holds it. A second connection, opened only when first needed, watches a statement that runs
//! longer than a moment (`watch.rs`) and cancels one when the run stops. SQLite needs no lock
//! beyond the run lock.

use super::postgres;
use super::watch::Watch;
use crate::db::op::{Op, OpError};
use crate::db::{Db, TargetSpec};
use crate::fmt::{duration, plural};
use sqlx::Connection;
use std::time::{Duration, Instant};

/// The migration lock's advisory key: "rmigrate" in ASCII, distinct from the run lock's.
pub const LOCK_KEY: i64 = 0x726d_6967_7261_7465;

/// How often a held migration lock is tried again.
pub const LOCK_POLL: Duration = Duration::from_secs(1);

/// How long to wait for the migration lock before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// The migration lock (see the module docs). Release it with [`MigrationLock::release`].
pub struct MigrationLock {
    /// Where the second connection connects to, and the backend that holds the lock and runs
    /// the migrations (PostgreSQL only).
    worker: Option<Worker>,
    /// The second connection, once opened: it watches the worker's statement and cancels it.
    side: Option<sqlx::PgConnection>,
    /// What the watcher saw and what `on_blocked` asks of it.
    pub watch: Watch,
    /// How long taking the lock took, and how many tries.
    pub waited: Duration,
    pub attempts: u32,
}

struct Worker {
    url: String,
    /// The second connection's `application_name`.
    side_name: String,
    pid: i32,
    /// The connection's `application_name` before it was named after the run.
    name: String,
}

impl MigrationLock {
    /// Takes the lock on the connection `db` holds to the target, polling every
    /// [`LOCK_POLL`] for at most [`LOCK_WAIT`]; SQLite needs no lock beyond the run lock.
    pub async fn acquire(
        target: &TargetSpec,
        db: &mut Db,
        op: &Op<'_>,
    ) -> Result<MigrationLock, OpError> {
        let started = Instant::now();
        let (TargetSpec::Postgres(url), Db::Postgres(conn)) = (target, &mut *db) else {
            return Ok(MigrationLock {
                worker: None,
                side: None,
                watch: Watch::default(),
                waited: Duration::ZERO,
                attempts: 0,
            });
        };
        let tag: String = format!("runbook migrate run={}", op.run_id)
            .chars()
            .take(63)
            .collect();
        let (pid, name, got) = postgres::lock_named(conn, &tag)
            .await
            .map_err(|e| super::db_failed("cannot take the migration lock", &e))?;
        let worker = Worker {
            url: url.clone(),
            side_name: format!("runbook watch run={}", op.run_id)
                .chars()
                .take(63)
                .collect(),
            pid,
            name,
        };
        let attempts = match poll(conn, got, started, op).await {
            Ok(n) => n,
            Err(e) => {
                postgres::rename(conn, &worker.name).await;
                return Err(e);
            }
        };
        Ok(MigrationLock {
            worker: Some(worker),
            side: None,
            watch: Watch::default(),
            waited: started.elapsed(),
            attempts,
        })
    }

    /// Releases the lock on `db`, the connection it was taken on, and gives the connection
    /// its name back. When that fails (the connection broke) the server releases the lock as
    /// the connection ends. A lock a migration released itself (`pg_advisory_unlock_all`,
    /// `DISCARD ALL`) is noted: the migrations after it ran without it.
    pub async fn release(mut self, db: &mut Db, op: &Op<'_>) {
        if let Some(side) = self.side.take() {
            let _ = side.close().await;
        }
        let (Some(w), Db::Postgres(conn)) = (self.worker.take(), db) else {
            return;
        };
        if postgres::unlock(conn, &w.name).await == Some(false) {
            op.note(
                "the migration lock was no longer held when the migrations ended: a migration released it (pg_advisory_unlock_all or DISCARD ALL)",
            );
        }
    }

    /// The second connection (opened now when it is not yet: `None` when that fails), the
    /// worker's backend pid, and the watch.
    pub(super) async fn watcher(&mut self) -> Option<(&mut sqlx::PgConnection, i32, &mut Watch)> {
        let w = self.worker.as_ref()?;
        if self.side.is_none() {
            self.side = postgres::side_connection(&w.url, &w.side_name).await.ok();
        }
        let pid = w.pid;
        Some((self.side.as_mut()?, pid, &mut self.watch))
    }

    /// Asks the server to cancel the statement running on the connection that holds the
    /// lock, through the second connection.
    pub(super) async fn cancel_worker(&mut self) -> bool {
        match self.watcher().await {
            Some((side, pid, _)) => postgres::cancel_backend(side, pid).await,
            None => false,
        }
    }
}

/// Tries the lock on `conn` (the first try's answer is `got`) until it is taken,
/// [`LOCK_WAIT`] has passed or the run stops; returns the number of tries.
async fn poll(
    conn: &mut sqlx::PgConnection,
    mut got: bool,
    started: Instant,
    op: &Op<'_>,
) -> Result<u32, OpError> {
    let deadline = started + LOCK_WAIT;
    let mut attempts = 1;
    let mut told = false;
    loop {
        if got {
            op.note(&format!(
                "took the migration lock in {} ({})",
                duration(started.elapsed()),
                plural(attempts, "attempt", "attempts")
            ));
            return Ok(attempts);
        }
        let holder = postgres::lock_holder(conn).await;
        if Instant::now() + LOCK_POLL > deadline {
            return Err(OpError::failed(format!(
                "the migration lock is held by {holder}; gave up after {}",
                duration(LOCK_WAIT)
            )));
        }
        if !told {
            op.note(&format!("waiting for the migration lock, held by {holder}"));
            told = true;
        }
        op.sleep(LOCK_POLL).await?;
        attempts += 1;
        got = postgres::try_lock(conn)
            .await
            .map_err(|e| super::db_failed("cannot take the migration lock", &e))?;
    }
}
