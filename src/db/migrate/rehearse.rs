//! `rehearse`: the pending migrations applied inside one transaction that is always rolled
//! back, with per file whether it ran, how long it took and which locks it took.

use super::apply::preflight;
use super::failure::FileError;
use super::lock::MigrationLock;
use super::run::{Settings, run_pieces, set_timeouts};
use super::script::NO_TRANSACTION;
use super::source::{Migration, MigrationSet};
use super::status::{Status, status};
use super::{db_failed, postgres, tx};
use crate::db::op::{Op, OpError};
use crate::db::{Db, TargetSpec, describe};
use crate::fmt::duration;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A lock a rehearsed migration took.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockTaken {
    pub relation: String,
    /// table, index, sequence, view, ...
    pub kind: String,
    pub mode: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rehearsed {
    pub version: String,
    pub name: String,
    pub file: String,
    /// `ok`, `failed`, `skipped` (runs outside a transaction) or `not_run` (after a failure).
    pub status: String,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub locks: Vec<LockTaken>,
}

#[derive(Debug, Clone)]
pub struct Rehearsal {
    pub results: Vec<Rehearsed>,
    pub status: Status,
}

impl Rehearsal {
    pub fn failed(&self) -> Option<&Rehearsed> {
        self.results.iter().find(|r| r.status == "failed")
    }
}

/// Applies the pending migrations inside one transaction that is always rolled back, and
/// reports per file whether it ran, how long it took and which locks it took (PostgreSQL).
///
/// The locks of a file are those held after it that were not held before it: a lock an
/// earlier file in the rehearsal already took does not show again. The rehearsal holds every
/// lock until its rollback, so it belongs on a staging copy, not on a database in use.
pub async fn rehearse(
    db: &mut Db,
    target: &TargetSpec,
    set: &MigrationSet,
    settings: &Settings,
    op: &Op<'_>,
) -> Result<Rehearsal, OpError> {
    let mut lock = MigrationLock::acquire(target, db, op).await?;
    let result = rehearse_locked(db, set, settings, &mut lock, op).await;
    lock.release(db, op).await;
    result
}

/// The relation locks the session holds (none on SQLite).
async fn held_locks(db: &mut Db) -> Result<BTreeSet<LockTaken>, OpError> {
    match db {
        Db::Postgres(c) => postgres::held_locks(c)
            .await
            .map_err(|e| db_failed("cannot read pg_locks", &e)),
        Db::Sqlite(_) => Ok(BTreeSet::new()),
    }
}

async fn rehearse_locked(
    db: &mut Db,
    set: &MigrationSet,
    settings: &Settings,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<Rehearsal, OpError> {
    let st = status(db, set).await?;
    preflight(db, &st).await?;
    tx::begin(db)
        .await
        .map_err(|e| db_failed("cannot begin the rehearsal", &e))?;
    let result = rehearse_files(db, set, &st, settings, lock, op).await;
    // Whatever happened, nothing of the rehearsal stays.
    let rolled_back = tx::exec(db, "ROLLBACK").await;
    let results = result?;
    rolled_back.map_err(|e| db_failed("cannot roll the rehearsal back", &e))?;
    for r in &results {
        note_result(op, r);
    }
    Ok(Rehearsal {
        results,
        status: st,
    })
}

fn note_result(op: &Op<'_>, r: &Rehearsed) {
    let locks: Vec<String> = r
        .locks
        .iter()
        .map(|l| format!("{} on {} {}", l.mode, l.kind, l.relation))
        .collect();
    op.note(&format!(
        "rehearsed `{}`: {} in {}{}{}",
        r.file,
        r.status,
        duration(Duration::from_millis(r.duration_ms)),
        if locks.is_empty() {
            String::new()
        } else {
            format!("; locks: {}", locks.join(", "))
        },
        r.error.as_ref().map_or(String::new(), |e| format!("; {e}"))
    ));
}

async fn rehearse_files(
    db: &mut Db,
    set: &MigrationSet,
    st: &Status,
    settings: &Settings,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<Vec<Rehearsed>, OpError> {
    set_timeouts(db, settings, true)
        .await
        .map_err(|e| db_failed("cannot set the timeouts", &e))?;
    let mut results = Vec::new();
    let mut stopped_at_failure = false;
    for p in &st.pending {
        let Some(m) = set.find(&p.version) else {
            continue;
        };
        let mut r = Rehearsed {
            version: m.version.clone(),
            name: m.name.clone(),
            file: m.file.clone(),
            status: "ok".into(),
            duration_ms: 0,
            error: None,
            locks: Vec::new(),
        };
        if stopped_at_failure {
            r.status = "not_run".into();
        } else {
            rehearse_one(db, m, &mut r, lock, op).await?;
            stopped_at_failure = r.status == "failed";
        }
        results.push(r);
    }
    Ok(results)
}

/// Rehearses one file into `r`: skipped outside a transaction, failed with its line when it
/// would end the transaction or the server rejects it, else its run time and new locks.
async fn rehearse_one(
    db: &mut Db,
    m: &Migration,
    r: &mut Rehearsed,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<(), OpError> {
    if let Some(line) = m.own_transaction {
        r.status = "skipped".into();
        r.error = Some(format!(
            "it controls its own transaction (line {line}), so it cannot be rehearsed inside one"
        ));
        return Ok(());
    }
    if m.no_transaction {
        r.status = "skipped".into();
        r.error = Some(format!(
            "it runs outside a transaction (`{NO_TRANSACTION}`), so it cannot be rehearsed inside one"
        ));
        return Ok(());
    }
    let before = held_locks(db).await?;
    lock.watch.file = r.file.clone();
    let started = Instant::now();
    let outcome = run_pieces(db, &m.sql, false, lock, op).await;
    r.duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(()) => {
            let after = held_locks(db).await?;
            r.locks = after.difference(&before).cloned().collect();
        }
        Err(FileError::Sql { error, line, .. }) => {
            let at = line.map_or(String::new(), |l| format!("line {l}: "));
            r.status = "failed".into();
            r.error = Some(format!("{at}{}", describe(&error)));
        }
        Err(FileError::Stopped(e) | FileError::Other(e)) => return Err(e),
    }
    Ok(())
}
