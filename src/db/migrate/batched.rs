//! A migration file applied inside a transaction on PostgreSQL in one round trip, as psql would
//! send a file: `BEGIN`, the step's timeouts, the file's statements, its history rows
//! (runbook's and, for a Prisma folder, Prisma's, timed by the server) and `COMMIT`, all in one
//! message. The server parses the whole message first (a syntax error anywhere runs nothing),
//! then runs its statements in order and stops at the first error, skipping the rest; the count
//! of statements that completed before it tells which part failed, so an error names its line
//! as a statement-by-statement run would, and the transaction is rolled back as before.
//!
//! The count needs the file's statements counted: a file squawk's parser cannot split runs in
//! two messages instead (the file after the head, then the rows and `COMMIT`), so that nothing
//! an unterminated string or comment at its end could swallow is appended to it. SQLite, files
//! that run outside a transaction and reverts take the general path in `run.rs`.

use super::failure::FileError;
use super::lock::MigrationLock;
use super::run::{Attempt, FileRun, ScriptError, Settings, history_failed, prisma_failed};
use super::script::pieces;
use super::{db_failed, postgres, prisma, tx};
use crate::db::Db;
use crate::db::op::{Op, OpError};
use std::collections::BTreeSet;
use std::time::Instant;

/// The parts of a message, in statements: each part's count tells where an error was.
struct Layout {
    /// `BEGIN` and the timeouts, and their length in characters.
    head: usize,
    head_chars: usize,
    /// The file's statements in this message.
    file: FilePart,
    /// Whether the bookkeeping holds Prisma's row.
    prisma: bool,
}

/// The file's place in a message.
#[derive(Clone, Copy)]
enum FilePart {
    /// Its statements, counted, with the bookkeeping after them.
    Counted(usize),
    /// Last in the message, its statements not counted.
    Last,
    /// Not in this message (the bookkeeping of a file sent before).
    Absent,
}

/// Which part of a message an error came from.
enum Part {
    Head,
    File,
    History,
    Prisma,
    Commit,
}

impl Layout {
    /// The part that failed after `done` statements completed. A syntax error stops the whole
    /// message before anything runs: its position says where it is.
    fn failed(&self, done: usize, e: &sqlx::Error) -> Part {
        let file = match self.file {
            FilePart::Absent => 0,
            FilePart::Last => usize::MAX,
            FilePart::Counted(n) => n,
        };
        let syntax_in_file = !matches!(self.file, FilePart::Absent)
            && done == 0
            && postgres::error_position(e).is_some_and(|pos| pos > self.head_chars);
        if syntax_in_file {
            return Part::File;
        }
        if done < self.head {
            return Part::Head;
        }
        let after_head = done - self.head;
        if after_head < file {
            return Part::File;
        }
        match after_head - file {
            0 => Part::History,
            1 if self.prisma => Part::Prisma,
            _ => Part::Commit,
        }
    }
}

/// Applies `job` (going up) in its own transaction with its bookkeeping; `Db` is PostgreSQL.
pub(super) async fn apply_inside(
    db: &mut Db,
    job: &FileRun<'_>,
    settings: &Settings,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Attempt {
    if let Err(e) = op.check() {
        return Err((FileError::Stopped(e), true));
    }
    let (head, head_n) = postgres::begin_with_timeouts(settings);
    // Counted when the migration was read (going up, the file is its up file).
    let statements = job.m.statements;
    let split = statements.is_some();
    let mut layout = Layout {
        head: head_n,
        head_chars: head.chars().count(),
        file: statements.map_or(FilePart::Last, FilePart::Counted),
        prisma: job.m.prisma_name.is_some(),
    };
    let mut script = format!("{head}{}", job.sql);
    let started = Instant::now();
    if split {
        // A line break ends a comment on the file's last line; the empty statement a
        // semicolon after the file's own makes is not one the server counts.
        script.push_str("\n;");
        script.push_str(&bookkeeping(job, op, None));
        let sent = send(db, &script, lock, op).await;
        return finish(db, sent, &layout, job, started).await;
    }
    if let Err(failed) = send(db, &script, lock, op).await {
        return finish(db, Err(failed), &layout, job, started).await;
    }
    let took = started.elapsed();
    layout.head = 0;
    layout.file = FilePart::Absent;
    let book = bookkeeping(job, op, Some(took));
    match send(db, &book, lock, op).await {
        Ok(_) => Ok(took),
        failed => finish(db, failed, &layout, job, started).await,
    }
}

/// The history rows and `COMMIT`, as one script: for a file that ran for `took`, or (`None`)
/// one in the same message.
fn bookkeeping(job: &FileRun<'_>, op: &Op<'_>, took: Option<std::time::Duration>) -> String {
    let ms = took.map(|t| t.as_millis().to_string());
    let ms = ms.as_deref().unwrap_or(postgres::MESSAGE_MS);
    let mut book = postgres::record_script(job.m, ms, true, &op.run_id, "apply");
    if let Some(row) = prisma::finished_script(job.m, took) {
        book.push_str(&row);
    }
    book.push_str("COMMIT");
    book
}

/// How the last message ended: done, or the error of the part that failed, with the
/// transaction rolled back (and whether that undid all of it).
async fn finish(
    db: &mut Db,
    sent: Result<usize, (usize, ScriptError)>,
    layout: &Layout,
    job: &FileRun<'_>,
    started: Instant,
) -> Attempt {
    let (done, error) = match sent {
        Ok(_) => return Ok(started.elapsed()),
        Err((_, ScriptError::Stopped(s))) => {
            let undone = tx::rollback(db).await;
            return Err((FileError::Stopped(s), undone));
        }
        Err((done, ScriptError::Sql(error))) => (done, error),
    };
    let e = match layout.failed(done, &error) {
        Part::Head => FileError::Other(db_failed(
            "cannot begin a transaction with the step's timeouts",
            &error,
        )),
        Part::File => file_error(error, done, layout, job.sql),
        Part::History => history_failed(error),
        Part::Prisma => prisma_failed(error),
        Part::Commit => {
            // The server refused the commit (a deferred constraint, a serialization failure):
            // the transaction is gone and nothing of it committed. A lost connection leaves
            // that unknown.
            let refused = error.as_database_error().is_some();
            let undone = tx::rollback(db).await || refused;
            return Err((FileError::sql(error), undone));
        }
    };
    // A message whose `BEGIN` never ran (the server found a syntax error before running any of
    // it) ran nothing: no transaction was open to roll back.
    let nothing_ran = done == 0 && layout.head > 0;
    let undone = tx::rollback(db).await || nothing_ran;
    Err((e, undone))
}

/// A file statement's error, with its line: where the server points (the head has no line
/// break, so a position's line in the message is its line in the file), else where the
/// failing statement starts.
fn file_error(error: sqlx::Error, done: usize, layout: &Layout, sql: &str) -> FileError {
    let line = postgres::error_position(&error)
        .and_then(|pos| pos.checked_sub(layout.head_chars))
        .and_then(|chars| postgres::line_at_char(sql, chars))
        .or_else(|| {
            pieces(true, sql)
                .get(done.saturating_sub(layout.head))
                .and_then(|piece| piece.line)
        });
    FileError::Sql {
        error,
        line,
        partial: false,
        invalid: BTreeSet::new(),
    }
}

/// Sends a script in one message (PostgreSQL only: the caller checks).
async fn send(
    db: &mut Db,
    sql: &str,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<usize, (usize, ScriptError)> {
    match db {
        Db::Postgres(c) => postgres::run_counted(c, sql, lock, op).await,
        Db::Sqlite(_) => Err((
            0,
            ScriptError::Stopped(OpError::failed(
                "internal: the batched migration path is PostgreSQL's",
            )),
        )),
    }
}
