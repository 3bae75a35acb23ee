//! `apply`: the pending migrations in version order (up to a version when given), each in its
//! own transaction, under the migration lock; refused while drift, a missing file or an
//! INVALID index makes it unsafe. Migrations Prisma applied are adopted into the history.

use super::failure::{invalid_hint, invalid_indexes};
use super::history::{HISTORY_TABLE, ensure_history, record_all};
use super::lock::MigrationLock;
use super::prisma;
use super::run::{Direction, FileRun, Ran, Settings, run_file};
use super::source::{Migration, MigrationSet};
use super::status::{Status, status_of};
use super::version::compare_versions;
use crate::db::op::{Op, OpError};
use crate::db::{Db, TargetSpec};
use crate::fmt::duration;
use std::cmp::Ordering;
use std::time::Duration;

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    pub applied: Vec<Ran>,
    /// Prisma migrations now recorded in the history table.
    pub adopted: Vec<String>,
    /// The status after applying.
    pub status: Status,
    pub lock_waited: Duration,
    pub lock_attempts: u32,
    /// What blocked the migrations, who `on_blocked` stopped, and the index builds seen.
    pub watched: super::Watched,
}

/// Applies the pending migrations in version order (up to `upto` when given), each in its own
/// transaction, under the migration lock. A failure is `OpError::NothingCommitted` when no
/// migration of this apply committed: it failed before the first one ran, or the first one
/// rolled back whole. runbook's own bookkeeping before it (creating the history table,
/// recording what Prisma applied) does not count: it changes nothing a restore would bring
/// back.
pub async fn apply(
    db: &mut Db,
    target: &TargetSpec,
    set: &MigrationSet,
    upto: Option<&str>,
    settings: &Settings,
    op: &Op<'_>,
) -> Result<ApplyReport, OpError> {
    if let Some(v) = upto
        && set.find(v).is_none()
    {
        return Err(unknown_version(set, v).nothing_committed());
    }
    let mut lock = MigrationLock::acquire(target, db, op)
        .await
        .map_err(OpError::nothing_committed)?;
    let result = apply_locked(db, set, upto, settings, &mut lock, op).await;
    let (waited, attempts) = (lock.waited, lock.attempts);
    let watched = std::mem::take(&mut lock.watch.seen);
    lock.release(db, op).await;
    result.map(|mut r| {
        r.lock_waited = waited;
        r.lock_attempts = attempts;
        r.watched = watched;
        r
    })
}

/// The error for a version no file has.
pub(super) fn unknown_version(set: &MigrationSet, v: &str) -> OpError {
    let known: Vec<&str> = set.migrations.iter().map(|m| m.version.as_str()).collect();
    OpError::failed(format!(
        "no migration has version `{v}` in `{}` (versions: {})",
        set.shown_dir,
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    ))
}

/// Refuses when drift or a missing file makes applying unsafe, or when a failed concurrent
/// build left an INVALID index behind.
pub(super) async fn preflight(db: &mut Db, st: &Status) -> Result<(), OpError> {
    if !st.failed.is_empty() {
        return Err(OpError::failed(prisma_failed(st)));
    }
    let refusals = st.refusals();
    if !refusals.is_empty() {
        return Err(OpError::failed(format!(
            "refusing to apply: {}; restore the applied files as they were (add a new migration for a change)",
            refusals.join("; ")
        )));
    }
    if st.pending.iter().any(|p| p.retry) {
        let invalid = invalid_indexes(db).await?;
        if !invalid.is_empty() {
            let failed_files: Vec<&str> = st
                .pending
                .iter()
                .filter(|p| p.retry)
                .map(|p| p.file.as_str())
                .collect();
            return Err(OpError::failed(format!(
                "refusing to apply: `{}` failed earlier outside a transaction; {}",
                failed_files.join("`, `"),
                invalid_hint(&invalid)
            )));
        }
    }
    Ok(())
}

/// Prisma's P3009, in its words, with the failed migrations and the way out: `resolve`.
fn prisma_failed(st: &Status) -> String {
    let list: Vec<String> = st
        .failed
        .iter()
        .map(|f| {
            let logs = f
                .logs
                .as_deref()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|l| !l.is_empty())
                .map_or(String::new(), |l| format!(" ({l})"));
            format!(
                "the `{}` migration started at {} failed{logs}",
                f.migration_name, f.started_at
            )
        })
        .collect();
    let v = &st.failed[0].version;
    format!(
        "refusing to apply: migrate found failed migrations in the target database, new migrations will not be applied (Prisma's P3009): {}; resolve it first: once its changes are undone, `migrate: {{ action: resolve, version: \"{v}\", as: rolled_back }}` (the next apply runs it again), or once it is completed by hand, `as: applied`; the `resolve` playbook does either: `runbook run resolve --var version={v} --var resolution=rolled_back`",
        list.join("; ")
    )
}

/// Records the migrations Prisma applied in the history table, in one transaction.
async fn adopt_prisma(
    db: &mut Db,
    set: &MigrationSet,
    st: &Status,
    run_id: &str,
) -> Result<Vec<String>, OpError> {
    if st.adopt.is_empty() {
        return Ok(Vec::new());
    }
    let what = format!("cannot record Prisma's migrations in `{HISTORY_TABLE}`");
    let adopted: Vec<&Migration> = st.adopt.iter().filter_map(|v| set.find(v)).collect();
    record_all(db, &adopted, run_id, "prisma", false, &what).await?;
    Ok(st.adopt.clone())
}

/// Notes what the history says before anything runs: adopted Prisma migrations, and applied
/// migrations newer than this checkout.
fn note_history(op: &Op<'_>, st: &Status, adopted: &[String]) {
    if !adopted.is_empty() {
        op.note(&format!(
            "recorded {} Prisma applied: {}",
            crate::fmt::plural(adopted.len(), "migration", "migrations"),
            adopted.join(", ")
        ));
    }
    for m in st.missing.iter().filter(|m| m.future) {
        op.note(&format!(
            "migration {} ({}) is applied but not in this checkout: the database is ahead of it",
            m.version, m.name
        ));
    }
}

async fn apply_locked(
    db: &mut Db,
    set: &MigrationSet,
    upto: Option<&str>,
    settings: &Settings,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<ApplyReport, OpError> {
    let kept = prisma::kept_for(&set.migrations);
    let before = async {
        // A table created now is empty: only the tables that were there are read.
        let existed = ensure_history(db, kept).await?;
        let st = status_of(db, set, existed).await?;
        preflight(db, &st).await?;
        let adopted = adopt_prisma(db, set, &st, &op.run_id).await?;
        Ok::<_, OpError>((st, adopted, existed))
    };
    let (st, adopted, existed) = before.await.map_err(OpError::nothing_committed)?;
    note_history(op, &st, &adopted);
    let mut applied = Vec::new();
    for p in &st.pending {
        if let Some(v) = upto
            && compare_versions(&p.version, v) == Ordering::Greater
        {
            break;
        }
        let Some(m) = set.find(&p.version) else {
            continue;
        };
        op.check().map_err(|e| after(&applied, e))?;
        if p.out_of_order {
            op.note(&format!(
                "`{}` is older than the newest applied migration ({}): applying it out of order",
                m.file,
                st.current_version.as_deref().unwrap_or("?")
            ));
        }
        match apply_one(db, m, settings, lock, op).await {
            Ok(ran) => applied.push(ran),
            // The files before it committed: something of this apply stays.
            Err(e) if !applied.is_empty() => return Err(e.committed()),
            Err(e) => return Err(e),
        }
    }
    let status = status_of(db, set, existed.ensured(kept))
        .await
        .map_err(|e| after(&applied, e))?;
    Ok(ApplyReport {
        applied,
        adopted,
        status,
        lock_waited: Duration::ZERO,
        lock_attempts: 0,
        watched: Default::default(),
    })
}

/// An error between files: this apply committed nothing when no file of it ran yet.
fn after(applied: &[Ran], e: OpError) -> OpError {
    if applied.is_empty() {
        e.nothing_committed()
    } else {
        e.committed()
    }
}

/// Applies one migration and notes how it went.
async fn apply_one(
    db: &mut Db,
    m: &Migration,
    settings: &Settings,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<Ran, OpError> {
    let job = FileRun {
        m,
        file: &m.file,
        sql: &m.sql,
        no_transaction: m.no_transaction,
        dir: Direction::Up,
    };
    let ran = run_file(db, &job, settings, lock, op).await?;
    op.note(&format!(
        "applied `{}` in {}{}{}",
        m.file,
        duration(Duration::from_millis(ran.duration_ms)),
        match m.own_transaction {
            Some(line) => format!(
                " (its own transaction, from line {line}: run as psql runs it, statement by statement)"
            ),
            None if m.no_transaction => " (outside a transaction)".to_owned(),
            None => String::new(),
        },
        if ran.attempts > 1 {
            format!(" after {} attempts", ran.attempts)
        } else {
            String::new()
        }
    ));
    Ok(ran)
}
