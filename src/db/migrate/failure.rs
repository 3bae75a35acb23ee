//! Why a migration file did not run, in words an operator can act on: the failing line, what
//! stayed applied, lock timeouts, and INVALID indexes left by failed concurrent builds.

use super::run::{Direction, FileRun, ScriptError, Settings};
use super::script::Piece;
use super::{db_failed, postgres, sqlstate};
use crate::db::op::OpError;
use crate::db::{Db, describe};
use crate::fmt::{duration, plural};
use std::collections::BTreeSet;

/// How running one file failed.
pub(super) enum FileError {
    Stopped(OpError),
    Sql {
        error: sqlx::Error,
        line: Option<usize>,
        /// Outside a transaction: statements before the failing one stay applied.
        partial: bool,
        /// Indexes left INVALID by this attempt.
        invalid: BTreeSet<String>,
    },
    Other(OpError),
}

impl FileError {
    /// A statement the server ended because it could not get its locks in time (55P03).
    pub(super) fn is_lock_timeout(&self) -> bool {
        matches!(self, FileError::Sql { error, .. } if sqlstate(error).as_deref() == Some("55P03"))
    }

    /// Nothing of the attempt stayed behind, so it can run again.
    pub(super) fn retry_safe(&self) -> bool {
        matches!(self, FileError::Sql { partial: false, invalid, .. } if invalid.is_empty())
    }

    /// A statement's error, without a transaction around it.
    pub(super) fn sql(error: sqlx::Error) -> FileError {
        FileError::Sql {
            error,
            line: None,
            partial: false,
            invalid: BTreeSet::new(),
        }
    }
}

/// The error of one piece of the file `text`, with its line when the server or the split
/// knows it.
pub(super) fn script_error(
    e: ScriptError,
    text: &str,
    piece: &Piece<'_>,
    partial: bool,
) -> FileError {
    match e {
        ScriptError::Stopped(s) => FileError::Stopped(s),
        ScriptError::Sql(error) => {
            let line = postgres::error_line(&error, text, piece.offset).or(piece.line);
            FileError::Sql {
                error,
                line,
                partial,
                invalid: BTreeSet::new(),
            }
        }
    }
}

/// The error for a file that failed after `attempts` tries: where, why, and what of it stayed
/// applied. `undone`: it ran in a transaction that was still open when it rolled back, so it
/// committed nothing (`OpError::NothingCommitted`).
pub(super) fn file_failure(
    e: FileError,
    job: &FileRun<'_>,
    settings: &Settings,
    attempts: u32,
    undone: bool,
) -> OpError {
    let undone = undone && !job.no_transaction;
    let err = file_error(e, job, settings, attempts, undone);
    if undone { err.nothing_committed() } else { err }
}

fn file_error(
    e: FileError,
    job: &FileRun<'_>,
    settings: &Settings,
    attempts: u32,
    undone: bool,
) -> OpError {
    let (file, no_transaction) = (job.file, job.no_transaction);
    let (error, line, partial, invalid) = match e {
        FileError::Stopped(s) => return stopped(s, file, no_transaction),
        FileError::Other(m) => return OpError::failed(format!("`{file}`: {m}")),
        FileError::Sql {
            error,
            line,
            partial,
            invalid,
        } => (error, line, partial, invalid),
    };
    let at = line.map_or(String::new(), |l| format!(" at line {l}"));
    let mut msg = format!("`{file}` failed{at}: {}", describe(&error));
    if sqlstate(&error).as_deref() == Some("55P03") {
        let lt = settings
            .lock_timeout
            .map_or("`lock_timeout`".to_owned(), |d| {
                format!("`lock_timeout` {}", duration(d))
            });
        msg.push_str(&format!(
            "; it could not get its locks within {lt} ({})",
            plural(attempts, "attempt", "attempts")
        ));
    }
    if undone {
        msg.push_str("; its transaction was rolled back, so none of it is applied");
    } else if !no_transaction {
        msg.push_str("; it ended runbook's transaction itself, so statements before the failing one may stay applied");
    } else if let Some(begin) = job.m.own_transaction.filter(|_| job.dir == Direction::Up) {
        msg.push_str(&format!(
            "; it controls its own transaction (line {begin}): what it committed before the failing statement stays applied, its open transaction was rolled back"
        ));
    } else if partial {
        msg.push_str("; it runs outside a transaction, so the statements before the failing one stay applied");
    } else {
        msg.push_str("; it runs outside a transaction; its first statement failed");
    }
    if no_transaction && job.dir == Direction::Up {
        msg.push_str(" (recorded as failed: the next apply runs it again)");
    }
    if !invalid.is_empty() {
        msg.push_str("; ");
        msg.push_str(&invalid_hint(&invalid));
    }
    OpError::failed(msg)
}

/// A file stopped by a cancel or the deadline: a timeout says what happened to its statement.
fn stopped(s: OpError, file: &str, no_transaction: bool) -> OpError {
    match s {
        OpError::TimedOut(t) => OpError::failed(format!(
            "`{file}` timed out after {}: its statement was cancelled{}",
            duration(t),
            if no_transaction {
                ""
            } else {
                " and its transaction rolled back"
            }
        )),
        other => other,
    }
}

/// INVALID indexes (left by failed concurrent builds), as `index on table`; none on SQLite.
pub(super) async fn invalid_indexes(db: &mut Db) -> Result<BTreeSet<String>, OpError> {
    let Db::Postgres(c) = db else {
        return Ok(BTreeSet::new());
    };
    let rows = postgres::invalid_indexes(c)
        .await
        .map_err(|e| db_failed("cannot list invalid indexes", &e))?;
    Ok(rows
        .into_iter()
        .map(|(i, t)| format!("`{i}` on `{t}`"))
        .collect())
}

/// What to do about INVALID indexes: drop them before applying again.
pub(super) fn invalid_hint(invalid: &BTreeSet<String>) -> String {
    let list: Vec<&str> = invalid.iter().map(String::as_str).collect();
    let names: Vec<String> = invalid
        .iter()
        .filter_map(|s| {
            s.split('`')
                .nth(1)
                .map(|n| format!("`DROP INDEX CONCURRENTLY {n};`"))
        })
        .collect();
    format!(
        "INVALID index left by a failed concurrent build: {}; drop it ({}) before applying again",
        list.join(", "),
        names.join(", ")
    )
}
