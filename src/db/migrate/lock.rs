//! The migration lock: on PostgreSQL a session advisory lock on a dedicated connection,
//! polled (never a blocking call) and released on every path; the same connection cancels a
//! statement running on the target connection. SQLite needs none beyond the run lock.

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
    pub(super) conn: Option<sqlx::PgConnection>,
    /// The target connection's backend, cancelled through `conn` when the run stops and
    /// watched through it while a statement runs (`watch.rs`).
    pub(super) worker_pid: Option<i32>,
    /// What the watcher saw and what `on_blocked` asks of it.
    pub watch: Watch,
    /// How long taking the lock took, and how many tries.
    pub waited: Duration,
    pub attempts: u32,
}

impl MigrationLock {
    /// Takes the lock for the target `db` is connected to, polling every [`LOCK_POLL`] for at
    /// most [`LOCK_WAIT`]; SQLite needs no lock beyond the run lock.
    pub async fn acquire(
        target: &TargetSpec,
        db: &mut Db,
        op: &Op<'_>,
    ) -> Result<MigrationLock, OpError> {
        let started = Instant::now();
        let (TargetSpec::Postgres(url), Db::Postgres(worker)) = (target, &mut *db) else {
            return Ok(MigrationLock {
                conn: None,
                worker_pid: None,
                watch: Watch::default(),
                waited: Duration::ZERO,
                attempts: 0,
            });
        };
        let worker_pid = postgres::backend_pid(worker)
            .await
            .map_err(|e| super::db_failed("cannot read the backend pid", &e))?;
        let conn = postgres::lock_connection(url, &op.run_id)
            .await
            .map_err(|e| OpError::failed(format!("cannot take the migration lock: {e}")))?;
        let (conn, attempts) = poll(conn, started, op).await?;
        Ok(MigrationLock {
            conn: Some(conn),
            worker_pid: Some(worker_pid),
            watch: Watch::default(),
            waited: started.elapsed(),
            attempts,
        })
    }

    /// Releases the lock and closes its connection. Dropping it instead also releases the
    /// lock: the server ends the session when the connection closes.
    pub async fn release(mut self) {
        if let Some(mut c) = self.conn.take() {
            postgres::unlock(&mut c).await;
            let _ = c.close().await;
        }
    }

    /// Asks the server to cancel the statement running on the target connection.
    pub(super) async fn cancel_worker(&mut self) -> bool {
        let (Some(c), Some(pid)) = (self.conn.as_mut(), self.worker_pid) else {
            return false;
        };
        postgres::cancel_backend(c, pid).await
    }
}

/// Tries the lock on `conn` until it is taken, [`LOCK_WAIT`] has passed or the run stops;
/// returns the connection holding it and the number of tries. Closes it on failure.
async fn poll(
    mut conn: sqlx::PgConnection,
    started: Instant,
    op: &Op<'_>,
) -> Result<(sqlx::PgConnection, u32), OpError> {
    let deadline = started + LOCK_WAIT;
    let mut attempts = 0;
    let mut told = false;
    loop {
        attempts += 1;
        match postgres::try_lock(&mut conn).await {
            Ok(true) => {
                op.note(&format!(
                    "took the migration lock in {} ({})",
                    duration(started.elapsed()),
                    plural(attempts, "attempt", "attempts")
                ));
                return Ok((conn, attempts));
            }
            Ok(false) => {}
            Err(e) => {
                let _ = conn.close().await;
                return Err(super::db_failed("cannot take the migration lock", &e));
            }
        }
        let holder = postgres::lock_holder(&mut conn).await;
        if Instant::now() + LOCK_POLL > deadline {
            let _ = conn.close().await;
            return Err(OpError::failed(format!(
                "the migration lock is held by {holder}; gave up after {}",
                duration(LOCK_WAIT)
            )));
        }
        if !told {
            op.note(&format!("waiting for the migration lock, held by {holder}"));
            told = true;
        }
        if let Err(e) = op.sleep(LOCK_POLL).await {
            let _ = conn.close().await;
            return Err(e);
        }
    }
}
