//! Running one migration file, up or down: in its own transaction together with its history
//! row, or outside one statement by statement (its row written as failed first), with the
//! step's timeouts and lock-timeout retries.

use super::failure::{FileError, file_failure, invalid_indexes, script_error};
use super::history::{HISTORY_TABLE, record, unrecord};
use super::lock::MigrationLock;
use super::outside::{self, Before};
use super::prisma::{self, PRISMA_TABLE};
use super::script::pieces;
use super::{db_failed, postgres, tx};
use crate::db::op::{Op, OpError};
use crate::db::{Db, describe};
use crate::fmt::duration;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Waits between attempts after a lock timeout: 1s, 2s, 4s, ... at most 30s.
const RETRY_BASE: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Per-migration settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    /// Attempts after the first when a migration times out waiting for a lock (55P03).
    pub lock_retries: u32,
    /// What to do to a session that blocks a migration, and after how long (PostgreSQL).
    pub on_blocked: Option<(crate::playbook::BlockerStop, Duration)>,
}

/// One migration applied or reverted by this run.
#[derive(Debug, Clone, Serialize)]
pub struct Ran {
    pub version: String,
    pub name: String,
    pub file: String,
    /// sha256 of the migration's up file (LF line endings), as the history table keeps it.
    pub checksum: String,
    /// `apply` or `revert`.
    pub direction: &'static str,
    pub duration_ms: u64,
    pub attempts: u32,
    pub no_transaction: bool,
}

/// What a file's bookkeeping does in its transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Up,
    Down,
}

/// One file to run: the up file of `m` going up, its down file going down.
pub(super) struct FileRun<'a> {
    pub m: &'a super::Migration,
    /// The file as shown to people.
    pub file: &'a str,
    pub sql: &'a str,
    pub no_transaction: bool,
    pub dir: Direction,
}

/// How a script ended early.
pub(super) enum ScriptError {
    Stopped(OpError),
    Sql(sqlx::Error),
}

/// Runs a script (one or more statements, simple protocol), unless the run stopped already.
/// On PostgreSQL a cancel or the deadline cancels the running statement on the server; SQLite
/// runs in-process and briefly, so a run stops between migrations rather than inside one.
async fn run_script(
    db: &mut Db,
    sql: &str,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<(), ScriptError> {
    op.check().map_err(ScriptError::Stopped)?;
    match db {
        Db::Postgres(c) => postgres::run_script(c, sql, lock, op).await,
        Db::Sqlite(_) => tx::exec(db, sql).await.map_err(ScriptError::Sql),
    }
}

/// Sets the step's timeouts (PostgreSQL; see `postgres::set_timeouts`).
pub(super) async fn set_timeouts(
    db: &mut Db,
    s: &Settings,
    local: bool,
) -> Result<Vec<(&'static str, String)>, sqlx::Error> {
    match db {
        Db::Postgres(c) => postgres::set_timeouts(c, s, local).await,
        Db::Sqlite(_) => Ok(Vec::new()),
    }
}

/// Sets the step's timeouts for one file: `local` to its transaction, else to the session.
async fn file_timeouts(
    db: &mut Db,
    s: &Settings,
    local: bool,
) -> Result<Vec<(&'static str, String)>, FileError> {
    set_timeouts(db, s, local)
        .await
        .map_err(|e| FileError::Other(db_failed("cannot set the timeouts", &e)))
}

async fn restore_timeouts(db: &mut Db, previous: &[(&'static str, String)]) {
    if let Db::Postgres(c) = db {
        postgres::restore_timeouts(c, previous).await;
    }
}

/// Runs a file's pieces in order. `outside`: not in a transaction, so a failure after the
/// first piece leaves the earlier ones applied.
pub(super) async fn run_pieces(
    db: &mut Db,
    sql: &str,
    outside: bool,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<(), FileError> {
    let pieces = pieces(db.is_postgres(), sql);
    let whole = pieces.len() == 1 && pieces[0].line.is_none();
    for (i, piece) in pieces.iter().enumerate() {
        if let Err(e) = run_script(db, piece.text, lock, op).await {
            // A file run whole may have applied any part of itself before failing.
            let partial = outside && (i > 0 || whole);
            return Err(script_error(e, sql, piece, partial));
        }
    }
    Ok(())
}

/// The history rows after a file ran: written going up, removed going down; for a Prisma
/// folder, Prisma's row too (`prisma_row`: the row written as started before the file ran
/// outside a transaction), finished going up, rolled back going down.
async fn bookkeep(
    db: &mut Db,
    job: &FileRun<'_>,
    took: Duration,
    run_id: &str,
    prisma_row: Option<&str>,
) -> Result<(), FileError> {
    match job.dir {
        Direction::Up => record(db, job.m, took.as_millis() as i64, true, run_id, "apply").await,
        Direction::Down => unrecord(db, &job.m.version).await,
    }
    .map_err(history_failed)?;
    match (job.dir, prisma_row, &job.m.prisma_name) {
        (Direction::Up, Some(id), _) => prisma::finish(db, id).await,
        (Direction::Up, None, _) => prisma::insert_finished(db, job.m, took).await,
        (Direction::Down, _, Some(name)) => prisma::roll_back(db, name, true).await.map(|_| ()),
        (Direction::Down, _, None) => Ok(()),
    }
    .map_err(prisma_failed)
}

/// Prisma's history table could not be written.
pub(super) fn prisma_failed(e: sqlx::Error) -> FileError {
    FileError::Other(db_failed(&format!("cannot update `{PRISMA_TABLE}`"), &e))
}

/// What a failed attempt leaves in its Prisma row's `logs`, as Prisma keeps the database's
/// error there.
fn prisma_logs(e: &FileError) -> String {
    match e {
        FileError::Sql { error, .. } => match super::sqlstate(error) {
            Some(code) => format!(
                "Database error code: {code}\n\nDatabase error:\n{}",
                describe(error)
            ),
            None => format!("Database error:\n{}", describe(error)),
        },
        FileError::Stopped(s) | FileError::Other(s) => s.to_string(),
    }
}

/// The history table could not be written.
pub(super) fn history_failed(e: sqlx::Error) -> FileError {
    FileError::Other(db_failed(&format!("cannot update `{HISTORY_TABLE}`"), &e))
}

/// How one attempt at a file ended: the SQL's run time, or the error and whether nothing of
/// the attempt was committed (its transaction was still open when it rolled back).
pub(super) type Attempt = Result<Duration, (FileError, bool)>;

/// Runs a file inside a transaction with its bookkeeping.
async fn run_inside(
    db: &mut Db,
    job: &FileRun<'_>,
    settings: &Settings,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Attempt {
    if db.is_postgres() && job.dir == Direction::Up {
        return super::batched::apply_inside(db, job, settings, lock, op).await;
    }
    if let Err(e) = tx::begin(db).await {
        return Err((
            FileError::Other(db_failed("cannot begin a transaction", &e)),
            true,
        ));
    }
    let result = async {
        file_timeouts(db, settings, true).await?;
        let started = Instant::now();
        run_pieces(db, job.sql, false, lock, op).await?;
        let took = started.elapsed();
        bookkeep(db, job, took, &op.run_id, None).await?;
        Ok(took)
    }
    .await;
    match result {
        Ok(took) => match tx::commit(db).await {
            Ok(()) => Ok(took),
            Err(error) => {
                // The server refused the commit (a deferred constraint, a serialization
                // failure): the transaction is gone and nothing of it committed. A lost
                // connection leaves that unknown.
                let refused = error.as_database_error().is_some();
                let undone = tx::rollback(db).await || refused;
                Err((FileError::sql(error), undone))
            }
        },
        Err(e) => {
            let undone = tx::rollback(db).await;
            Err((e, undone))
        }
    }
}

/// Runs a file outside a transaction, one statement at a time (PostgreSQL). Going up, its
/// history row is written as failed first and marked done at the end; Prisma's row (for a
/// Prisma folder) is written as started, then finished, or with the error in its `logs`.
/// Going up on PostgreSQL that bookkeeping takes one message before the file and one after it
/// (`outside.rs`).
async fn run_outside(
    db: &mut Db,
    job: &FileRun<'_>,
    settings: &Settings,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<Duration, FileError> {
    let batched = job.dir == Direction::Up;
    let before = match db {
        Db::Postgres(c) if batched => outside::before(c, job, settings, &op.run_id).await?,
        _ => before_outside(db, job, settings, op).await?,
    };
    let started = Instant::now();
    let outcome = run_pieces(db, job.sql, true, lock, op).await;
    let took = started.elapsed();
    match outcome {
        Ok(()) => {
            match db {
                Db::Postgres(c) if batched => {
                    outside::after(c, job, took, &op.run_id, &before).await?;
                }
                _ => {
                    restore_timeouts(db, &before.previous).await;
                    bookkeep(db, job, took, &op.run_id, before.prisma_row.as_deref()).await?;
                }
            }
            Ok(took)
        }
        Err(mut e) => {
            // A file with its own transaction (up or down) may have failed inside it: the
            // session's open transaction is rolled back, as psql's exit would, so nothing waits
            // on it (without one, the server only notes there was none). Then the session's
            // timeouts can be put back.
            tx::rollback(db).await;
            restore_timeouts(db, &before.previous).await;
            if let FileError::Sql { invalid, .. } = &mut e {
                let after = invalid_indexes(db).await.unwrap_or_default();
                *invalid = after.difference(&before.invalid).cloned().collect();
            }
            if let Some(id) = &before.prisma_row {
                prisma::fail(db, id, &prisma_logs(&e))
                    .await
                    .map_err(prisma_failed)?;
            }
            Err(e)
        }
    }
}

/// Before a file runs outside a transaction, statement by statement: the INVALID indexes, its
/// rows written as started (going up), the step's timeouts set for the session.
async fn before_outside(
    db: &mut Db,
    job: &FileRun<'_>,
    settings: &Settings,
    op: &Op<'_>,
) -> Result<Before, FileError> {
    let invalid = invalid_indexes(db).await.map_err(FileError::Other)?;
    let mut prisma_row = None;
    if job.dir == Direction::Up {
        record(db, job.m, 0, false, &op.run_id, "apply")
            .await
            .map_err(history_failed)?;
        prisma_row = prisma_started(db, job.m).await?;
    }
    let previous = file_timeouts(db, settings, false).await?;
    Ok(Before {
        invalid,
        prisma_row,
        previous,
    })
}

/// Prisma's row for a Prisma folder about to run outside a transaction, written as started.
/// A failed row of the same migration left before is runbook's own earlier attempt (apply
/// refuses Prisma's own failures first): it is marked rolled back, as `prisma migrate resolve
/// --rolled-back` would before Prisma tries again.
async fn prisma_started(db: &mut Db, m: &super::Migration) -> Result<Option<String>, FileError> {
    let Some(name) = &m.prisma_name else {
        return Ok(None);
    };
    prisma::roll_back(db, name, false)
        .await
        .map_err(prisma_failed)?;
    prisma::insert_started(db, m).await.map_err(prisma_failed)
}

/// Runs one file (up or down) with lock-timeout retries; the error names the file.
pub(super) async fn run_file(
    db: &mut Db,
    job: &FileRun<'_>,
    settings: &Settings,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<Ran, OpError> {
    lock.watch.on_blocked = settings.on_blocked;
    lock.watch.file = job.file.to_owned();
    let mut attempt = 1;
    // Whether every attempt so far rolled back whole.
    let mut undone_all = true;
    loop {
        let r = if job.no_transaction {
            // Outside a transaction, statements commit as they run.
            run_outside(db, job, settings, lock, op)
                .await
                .map_err(|e| (e, false))
        } else {
            run_inside(db, job, settings, lock, op).await
        };
        let (e, undone) = match r {
            Ok(took) => {
                return Ok(Ran {
                    version: job.m.version.clone(),
                    name: job.m.name.clone(),
                    file: job.file.to_owned(),
                    checksum: job.m.checksum.clone(),
                    direction: match job.dir {
                        Direction::Up => "apply",
                        Direction::Down => "revert",
                    },
                    duration_ms: took.as_millis() as u64,
                    attempts: attempt,
                    no_transaction: job.no_transaction,
                });
            }
            Err(failed) => failed,
        };
        undone_all &= undone;
        if e.is_lock_timeout() && e.retry_safe() && attempt <= settings.lock_retries {
            let wait = RETRY_BASE
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(RETRY_MAX);
            op.note(&format!(
                "`{}` timed out waiting for a lock (attempt {attempt} of {}); trying again in {}",
                job.file,
                settings.lock_retries + 1,
                duration(wait)
            ));
            op.sleep(wait).await?;
            attempt += 1;
            continue;
        }
        // A file that controls its own transaction runs outside runbook's (`tx_needs`), so
        // `file_failure` never calls what it committed undone.
        let lock_timeout = e.is_lock_timeout();
        let failure = file_failure(e, job, settings, attempt, undone_all);
        return Err(if lock_timeout {
            lock.watch.blame(failure)
        } else {
            failure
        });
    }
}
