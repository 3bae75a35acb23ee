//! How the SQLite state store writes: an event's whole transaction (`BEGIN IMMEDIATE`, the
//! event's `INSERT`, the step or run row it changes, `COMMIT`) on a connection of the store's
//! own (`Writer`), stepped on the caller's thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands it one command at a
//! time: every event was a trip to that thread and back, two or three wake-ups of one thread
//! by the other per event, more than the rest of the engine's overhead per step. Here the
//! statements run where the event is recorded, prepared once and kept; only waiting for the
//! write lock is asynchronous (`BUSY_TIMEOUT`, polled: the runtime's other tasks go on
//! meanwhile). The commit's fsync blocks the thread for as long as the floor's own fsync does.
//!
//! Parameters are numbered (`$n`) across the statements of a write, so every statement reads
//! the same bound values: each statement binds the ones it names.
//!
//! The guarantees are those of the transaction: `BEGIN IMMEDIATE` takes the write lock first,
//! the commit is fsynced before it returns (`synchronous=FULL`), and a write that fails half-way
//! is rolled back and its connection closed (the next write opens another), so nothing is
//! half-written. No write is left half-done by a caller that stops waiting: the statements
//! after `BEGIN` run without a pause in between.

use crate::audit::Written;
use crate::run::Event;
use crate::state_write::{self as write, Effects, Param, RunWrite, StepWrite};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long a write waits for another connection's write lock before it fails, as the pool's
/// connections do (`PRAGMA busy_timeout`).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The event's `INSERT`: `$1` the run, `$2` to `$8` the event (`$2` its time), `$9` the line.
static EVENT: LazyLock<String> = LazyLock::new(|| write::event_insert(2, 9));

/// The step row a start writes: `$4`/`$5` the event's step and phase, `$2` its time, `$10`
/// the order, `$11` the attempt.
const STEP_STARTED: &str = "INSERT INTO runbook_steps (run_id, step, phase, ord, status, attempts, started_at, finished_at, outputs, error)
     VALUES ($1, $4, $5, $10, 'running', $11, $2, NULL, '{}', NULL)
     ON CONFLICT (run_id, step, phase) DO UPDATE SET status = 'running', attempts = $11, started_at = $2, finished_at = NULL, error = NULL";

/// The step row a verdict writes: `$10` the order, `$11` the status, `$12` the outputs, `$13`
/// the error, `$14` the change.
const STEP_ENDED: &str = "INSERT INTO runbook_steps (run_id, step, phase, ord, status, attempts, started_at, finished_at, outputs, error, db_change)
     VALUES ($1, $4, $5, $10, $11, 0, NULL, $2, $12, $13, $14)
     ON CONFLICT (run_id, step, phase) DO UPDATE SET status = $11, finished_at = $2, outputs = $12, error = $13, db_change = $14";

/// The run row's writes; their parameters follow the step's (`$10` on, as no event writes
/// both a step and the run, but numbered by `run_sql` all the same). A run that stops (ended,
/// waiting) also notes how far its chain was fsynced before this commit, when it was
/// (`Written::synced`; NULL leaves the note as it is).
fn run_sql(run: &RunWrite, first: usize) -> String {
    let (a, b, c) = (first, first + 1, first + 2);
    match run {
        RunWrite::Ended { .. } => {
            format!(
                "UPDATE runbook_runs SET status = ${a}, finished_at = $2, error = ${b}, audit_synced = max(audit_synced, COALESCE(${c}, 0)) WHERE id = $1"
            )
        }
        RunWrite::Waiting => format!(
            "UPDATE runbook_runs SET status = 'waiting_approval', audit_synced = max(audit_synced, COALESCE(${a}, 0)) WHERE id = $1"
        ),
        RunWrite::Resumed { .. } => format!(
            "UPDATE runbook_runs SET status = 'running', finished_at = NULL, error = NULL, pid = ${a}, host = ${b}, pid_start = ${c} WHERE id = $1"
        ),
    }
}

/// The statements of an event with these effects, made once per kind and kept.
fn record_sql(effects: &Effects<'_>) -> &'static [String] {
    static TEXTS: [[OnceLock<Vec<String>>; 4]; 3] = [const { [const { OnceLock::new() }; 4] }; 3];
    let (s, step, next) = match &effects.step {
        None => (0, "", 10),
        Some((_, _, StepWrite::Started { .. })) => (1, STEP_STARTED, 12),
        Some((_, _, StepWrite::Ended { .. })) => (2, STEP_ENDED, 15),
    };
    let r = match &effects.run {
        None => 0,
        Some(RunWrite::Ended { .. }) => 1,
        Some(RunWrite::Waiting) => 2,
        Some(RunWrite::Resumed { .. }) => 3,
    };
    TEXTS[s][r].get_or_init(|| {
        let mut all = vec![EVENT.clone()];
        if !step.is_empty() {
            all.push(step.to_owned());
        }
        if let Some(run) = &effects.run {
            all.push(run_sql(run, next));
        }
        all
    })
}

/// The statements that write an event of run `run_id` at `at` with its effects, and the
/// values they read.
pub(crate) fn record(
    run_id: &str,
    (event, effects): (&Event, &Effects<'_>),
    audit: Option<&Written>,
    at: i64,
) -> (&'static [String], Vec<Param>) {
    let mut p: Vec<Param> = Vec::with_capacity(16);
    p.push(run_id.into());
    p.extend(write::event_params(at, event, audit));
    p.push(write::line_param(audit));
    match &effects.step {
        Some((_, _, StepWrite::Started { ord, attempt })) => {
            p.extend([(*ord).into(), (*attempt).into()]);
        }
        Some((
            _,
            _,
            StepWrite::Ended {
                status,
                ord,
                outputs,
                error,
                change,
            },
        )) => p.extend([
            (*ord).into(),
            status.as_str().into(),
            outputs.clone().into(),
            error.clone().into(),
            change.clone().into(),
        ]),
        None => {}
    }
    let synced = write::synced_param(audit);
    match &effects.run {
        Some(RunWrite::Ended { status, error }) => {
            p.extend([status.clone().into(), error.clone().into(), synced]);
        }
        Some(RunWrite::Waiting) => p.push(synced),
        Some(RunWrite::Resumed {
            pid,
            pid_start,
            host,
        }) => p.extend([(*pid).into(), host.clone().into(), (*pid_start).into()]),
        None => {}
    }
    (record_sql(effects), p)
}

/// The connection the SQLite store writes on: opened at the first write, held until the store
/// closes or a write fails (then closed, which rolls back what it began).
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    path: PathBuf,
    conn: Arc<Mutex<Option<Open>>>,
}

/// When a write's commit must be on the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    /// Fsynced before the commit returns (`synchronous=FULL`).
    Now,
    /// In the operating system's hands when the commit returns: kept if the process dies, on
    /// the disk with the next `Now` commit (or `Writer::sync`), which fsyncs the write-ahead log
    /// through it (`synchronous=NORMAL`, WAL mode only; without WAL every commit is `Now`).
    WithNext,
}

/// The writer's open connection: whether its file is in WAL mode, and the durability its
/// `synchronous` setting now gives.
#[derive(Debug)]
struct Open {
    conn: rusqlite::Connection,
    wal: bool,
    durable: Durable,
}

/// Why a write did not happen.
enum Failed {
    /// Another connection holds the write lock: try again later.
    Busy,
    Error(rusqlite::Error),
}

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Self {
        Failed::Error(e)
    }
}

impl Writer {
    pub fn new(path: &Path) -> Writer {
        Writer {
            path: path.to_owned(),
            conn: Arc::default(),
        }
    }

    /// Runs `statements` in one `BEGIN IMMEDIATE` transaction, each binding the parameters it
    /// names (`$n` is `params[n - 1]`), waiting up to `BUSY_TIMEOUT` for the write lock.
    pub async fn execute(
        &self,
        statements: &[impl AsRef<str>],
        params: &[Param],
    ) -> Result<(), rusqlite::Error> {
        self.execute_as(statements, params, Durable::Now).await
    }

    /// [`Writer::execute`], its commit as durable as `durable` says.
    pub async fn execute_as(
        &self,
        statements: &[impl AsRef<str>],
        params: &[Param],
        durable: Durable,
    ) -> Result<(), rusqlite::Error> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match self.try_execute(statements, params, durable) {
                Ok(()) => return Ok(()),
                Err(Failed::Error(e)) => return Err(e),
                Err(Failed::Busy) if started.elapsed() >= BUSY_TIMEOUT => {
                    return Err(busy_error());
                }
                Err(Failed::Busy) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        }
    }

    /// One attempt, on this thread: the transaction whole, or nothing.
    fn try_execute(
        &self,
        statements: &[impl AsRef<str>],
        params: &[Param],
        durable: Durable,
    ) -> Result<(), Failed> {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut open = match slot.take() {
            Some(c) => c,
            None => open(&self.path).map_err(|e| {
                if busy(&e) {
                    Failed::Busy
                } else {
                    Failed::Error(e)
                }
            })?,
        };
        let durable = if open.wal { durable } else { Durable::Now };
        if open.durable != durable {
            open.conn.execute_batch(match durable {
                Durable::Now => "PRAGMA synchronous=FULL",
                Durable::WithNext => "PRAGMA synchronous=NORMAL",
            })?;
            open.durable = durable;
        }
        match transaction(&open.conn, statements, params) {
            Ok(()) => {
                *slot = Some(open);
                Ok(())
            }
            // The lock was not taken: nothing began, the connection is kept.
            Err(Failed::Busy) => {
                debug_assert!(open.conn.is_autocommit(), "a transaction was left open");
                *slot = Some(open);
                Err(Failed::Busy)
            }
            // Dropped with the connection: closing rolls back what the write began.
            Err(e) => Err(e),
        }
    }

    /// Puts on the disk what `Durable::WithNext` commits left in the operating system's hands:
    /// fsyncs the write-ahead log (an fsync of the file, through a descriptor of its own), also
    /// when the connection that wrote them was closed after a failed write.
    pub fn sync(&self) -> std::io::Result<()> {
        match std::fs::File::open(self.wal_path()) {
            Ok(f) => f.sync_data(),
            // No log (not in WAL mode, where every commit is fsynced, or checkpointed and
            // removed): nothing is left unsynced.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The write-ahead log SQLite writes: beside the file the store's path resolves to (SQLite
    /// follows a symlink, so a link's folder holds no log), its name and `-wal`.
    fn wal_path(&self) -> PathBuf {
        let file = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let mut wal = file.into_os_string();
        wal.push("-wal");
        PathBuf::from(wal)
    }

    /// Reads with `read` on this thread, on a connection opened for it and closed after: rows
    /// come straight from SQLite, not one by one through the pool's worker thread. Not the
    /// writer's connection, which closes without a checkpoint: a command that only reads keeps
    /// the pool's connection the file's last, which checkpoints it on closing. A lock another
    /// process holds for a moment (its WAL recovery) is waited for up to `BUSY_TIMEOUT`, as
    /// the pool's connections wait.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, rusqlite::Error> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        read(&conn)
    }

    /// Closes the connection, if one is open.
    pub fn close(&self) {
        drop(
            self.conn
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}

/// Opens the store's file for writing, with the settings the pool's connections have.
fn open(path: &Path) -> Result<Open, rusqlite::Error> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // No busy wait inside SQLite: it would hold the runtime's thread; `execute` polls instead
    // for the lock `BEGIN IMMEDIATE` takes, the only one a write waits for in WAL mode. A file
    // that is not in WAL mode (a file system without shared memory refuses it) also waits at
    // `COMMIT` for the readers to go: there SQLite waits, as the pool's connections do.
    let wal = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))?
        .eq_ignore_ascii_case("wal");
    conn.busy_timeout(if wal { Duration::ZERO } else { BUSY_TIMEOUT })?;
    // With synchronous=FULL each commit is fsynced before it returns. (The pool's connections
    // set WAL mode, which stays with the file.)
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON")?;
    // Closing does not checkpoint: the store closes its pool first, so this connection is
    // the file's last (of this process), and a last connection's checkpoint (two fsyncs, the
    // pages copied into the file, the WAL deleted, then created and its header fsynced again
    // by the next run) would be the longest part of a short run's end and start. The WAL is
    // as durable as the file: `state.db` is the two (and `-shm`) together, so a copy of the
    // store copies all three, or uses `sqlite3 state.db .backup`. SQLite checkpoints the WAL
    // at a commit once it passes `wal_autocheckpoint` pages, and a command that only reads
    // the store checkpoints it on closing.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(Open {
        conn,
        wal,
        durable: Durable::Now,
    })
}

/// `BEGIN IMMEDIATE`, the statements, `COMMIT`; a failure after `BEGIN` leaves the
/// transaction for the caller to roll back by closing the connection.
fn transaction(
    conn: &rusqlite::Connection,
    statements: &[impl AsRef<str>],
    params: &[Param],
) -> Result<(), Failed> {
    match conn.execute_batch("BEGIN IMMEDIATE") {
        Ok(()) => {}
        Err(e) if busy(&e) => return Err(Failed::Busy),
        Err(e) => return Err(e.into()),
    }
    for sql in statements {
        let mut stmt = conn.prepare_cached(sql.as_ref())?;
        for i in 1..=stmt.parameter_count() {
            let value = stmt
                .parameter_name(i)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| params.get(n.checked_sub(1)?));
            match value {
                Some(Param::Int(v)) => stmt.raw_bind_parameter(i, v)?,
                Some(Param::Text(v)) => stmt.raw_bind_parameter(i, v)?,
                None => return Err(rusqlite::Error::InvalidParameterCount(i, params.len()).into()),
            }
        }
        stmt.raw_execute()?;
    }
    conn.execute_batch("COMMIT")?;
    Ok(())
}

/// Whether another connection's lock stopped `e` (only ever retried where nothing began).
fn busy(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
}

/// The error a write that waited `BUSY_TIMEOUT` for the lock fails with.
fn busy_error() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        Some(format!(
            "database is locked: another connection held the write lock for {} s",
            BUSY_TIMEOUT.as_secs()
        )),
    )
}

#[cfg(test)]
mod tests {
    use crate::run::{Event, EventKind, Phase, RunRecord, RunStatus};
    use crate::state::{StateSpec, StateStore};
    use serde_json::json;
    use sqlx::Connection;
    use std::time::Duration;

    fn run() -> RunRecord {
        RunRecord {
            id: "r1".into(),
            playbook: "p".into(),
            file: "p.yaml".into(),
            env: "dev".into(),
            target: "t".into(),
            operator: "o".into(),
            host: "h".into(),
            pid: 1,
            pid_start: 0,
            content_hash: String::new(),
            plan_hash: String::new(),
            migrations_hash: String::new(),
            params: json!({}),
            vars: Vec::new(),
            tags: Vec::new(),
            skip_tags: Vec::new(),
            status: RunStatus::Running,
            started_at: 1,
            finished_at: None,
            error: None,
        }
    }

    fn started(step: &str) -> Event {
        Event::step(
            EventKind::StepStarted,
            step,
            Phase::Main,
            json!({"ord": 1, "attempt": 1}),
        )
    }

    /// A store at `path` holding run `r1`, started.
    async fn with_run(path: &std::path::Path) -> StateStore {
        let store = StateStore::open(&StateSpec::Sqlite(path.to_owned()))
            .await
            .unwrap();
        let first = Event::run(EventKind::RunStarted, json!({}));
        store.create_run(&run(), "k", &first, None).await.unwrap();
        store
    }

    /// The events the store holds: (seq, step).
    async fn events(store: &StateStore) -> Vec<(i64, Option<String>)> {
        let all = store.load_events("r1").await.unwrap();
        all.into_iter()
            .map(|(seq, _, _, step, _)| (seq, step))
            .collect()
    }

    /// A store of the current layout is opened as it is: no table is made again at each start,
    /// so one that someone dropped stays missing (and is named when used) instead of coming
    /// back empty.
    #[tokio::test]
    async fn a_current_store_opens_as_it_is_and_a_dropped_table_stays_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        with_run(&path).await.close().await;
        let url = format!("sqlite://{}", path.display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("DROP TABLE runbook_approvals")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        let store = StateStore::open(&StateSpec::Sqlite(path.clone()))
            .await
            .unwrap();
        assert!(store.load_run("r1").await.unwrap().is_some());
        store.close().await;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'runbook_approvals'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
        assert_eq!(left, 0, "opening made the dropped table again");
    }

    /// An event whose text fails half-way, or whose caller stops waiting before its `COMMIT`,
    /// leaves no row behind, and the next event is written (on a new connection: the one
    /// with the open transaction is closed).
    #[tokio::test]
    async fn an_event_cut_short_leaves_nothing_and_the_next_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = with_run(&path).await;
        store.record("r1", &started("s1"), None).await.unwrap();

        // The step row's insert fails after the event's: the event is not kept.
        let url = format!("sqlite://{}", path.display());
        let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(
            "CREATE TRIGGER boom BEFORE INSERT ON runbook_steps WHEN NEW.step = 'boom'
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .execute(&mut other)
        .await
        .unwrap();
        let err = store.record("r1", &started("boom"), None).await;
        assert!(err.is_err(), "the trigger did not fail the event");
        store.record("r1", &started("s2"), None).await.unwrap();

        // Given up on while it waits for the write lock: the text never gets to its COMMIT.
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();
        let gone = tokio::time::timeout(
            Duration::from_millis(300),
            store.record("r1", &started("gone"), None),
        )
        .await;
        assert!(gone.is_err(), "the event was written past another's lock");
        sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
        other.close().await.unwrap();
        store.record("r1", &started("s3"), None).await.unwrap();

        let steps = |v: &[&str]| -> Vec<(i64, Option<String>)> {
            let mut out = vec![(1, None)];
            out.extend((2..).zip(v.iter().map(|s| Some((*s).to_owned()))));
            out
        };
        assert_eq!(events(&store).await, steps(&["s1", "s2", "s3"]));
        let mut rows: Vec<String> = store
            .load_steps("r1")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.step)
            .collect();
        rows.sort();
        assert_eq!(rows, ["s1", "s2", "s3"]);
        store.close().await;

        // A new process's store opens it and writes on.
        let store = StateStore::open(&StateSpec::Sqlite(path)).await.unwrap();
        store.record("r1", &started("s4"), None).await.unwrap();
        assert_eq!(events(&store).await, steps(&["s1", "s2", "s3", "s4"]));
        store.close().await;
    }

    /// The log `sync` fsyncs is the one SQLite writes, also when the store's path is a
    /// symlink: SQLite keeps the log beside the file the link names, and a log looked for
    /// beside the link was not found and taken for "nothing to sync".
    #[tokio::test]
    async fn the_log_synced_is_the_one_sqlite_writes_through_a_symlink() {
        let real = tempfile::tempdir().unwrap();
        let links = tempfile::tempdir().unwrap();
        let file = real.path().join("state.db");
        with_run(&file).await.close().await;
        let link = links.path().join("state.db");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let writer = super::Writer::new(&link);
        writer
            .execute(&["CREATE TABLE probe (x INTEGER)"], &[])
            .await
            .unwrap();
        let wal = writer.wal_path();
        assert_eq!(
            wal,
            std::fs::canonicalize(real.path())
                .unwrap()
                .join("state.db-wal")
        );
        assert!(std::fs::metadata(&wal).unwrap().len() > 0, "no log written");
        assert!(!links.path().join("state.db-wal").exists());
        writer.sync().unwrap();
    }

    /// Closing the store does not checkpoint: its writes stay in the WAL, which is kept (a
    /// checkpoint would have copied them into the file and deleted it), and a store opened
    /// next, as by the next process, reads every one of them and writes on.
    #[tokio::test]
    async fn closing_keeps_the_wal_and_the_next_store_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = with_run(&path).await;
        store.record("r1", &started("s1"), None).await.unwrap();
        store.close().await;
        let wal = dir.path().join("state.db-wal");
        let kept = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert!(kept > 0, "closing checkpointed: the WAL is gone or empty");

        let store = StateStore::open(&StateSpec::Sqlite(path)).await.unwrap();
        assert_eq!(
            events(&store).await,
            [(1, None), (2, Some("s1".to_owned()))]
        );
        store.record("r1", &started("s2"), None).await.unwrap();
        assert_eq!(events(&store).await.len(), 3);
        store.close().await;
    }

    /// A write that finds another connection holding the write lock waits for it without
    /// holding the runtime's thread (the runtime's other tasks go on meanwhile), and is
    /// written once the lock is let go.
    #[tokio::test(flavor = "current_thread")]
    async fn a_write_waiting_for_the_lock_lets_the_runtime_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = with_run(&path).await;

        let url = format!("sqlite://{}", path.display());
        let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let waited = started("waited");
        let write = store.record("r1", &waited, None);
        let release = async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let during = ticks.load(std::sync::atomic::Ordering::Relaxed);
            sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
            during
        };
        let (written, during) = tokio::join!(write, release);
        written.unwrap();
        ticker.abort();
        assert!(
            during >= 10,
            "the runtime's other task ticked {during} times in 400 ms while the write waited"
        );
        other.close().await.unwrap();
        assert_eq!(
            events(&store).await,
            vec![(1, None), (2, Some("waited".to_owned()))]
        );
        store.close().await;
    }

    /// Runs are listed from the writer's connection, newest first (ties by id), each as the
    /// pool reads it.
    #[tokio::test]
    async fn runs_listed_on_this_thread_read_as_the_pool_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = with_run(&dir.path().join("state.db")).await;
        let first = Event::run(EventKind::RunStarted, json!({}));
        for (id, started_at) in [("r2", 3), ("r3", 3)] {
            let mut r = run();
            r.id = id.into();
            r.started_at = started_at;
            r.vars = vec![("v".into(), id.into())];
            r.tags = vec!["t".into()];
            r.params = json!({"n": started_at});
            store.create_run(&r, "k", &first, None).await.unwrap();
        }
        let ids = |runs: &[RunRecord]| runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&store.list_runs(2).await.unwrap()), ["r3", "r2"]);
        let all = store.list_runs(10).await.unwrap();
        assert_eq!(ids(&all), ["r3", "r2", "r1"]);
        for listed in &all {
            let loaded = store.load_run(&listed.id).await.unwrap().unwrap();
            assert_eq!(
                serde_json::to_value(listed).unwrap(),
                serde_json::to_value(&loaded).unwrap()
            );
        }
        assert_eq!(all[0].vars, [("v".to_owned(), "r3".to_owned())]);
        store.close().await;
    }

    /// A command that only reads the store (here, the run listing) leaves it checkpointed on
    /// closing, its write-ahead log merged and removed: the listing's own connection is closed
    /// before the pool's, whose connection is then the file's last.
    #[tokio::test]
    async fn a_store_only_read_is_checkpointed_on_closing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let wal = dir.path().join("state.db-wal");
        with_run(&path).await.close().await;
        assert!(
            std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0),
            "the writer kept its WAL"
        );
        let store = StateStore::open(&StateSpec::Sqlite(path.clone()))
            .await
            .unwrap();
        assert_eq!(store.list_runs(10).await.unwrap().len(), 1);
        store.close().await;
        assert!(
            std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
            "a store only read was closed without a checkpoint"
        );
    }
}
