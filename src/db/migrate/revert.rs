//! `revert`: down files, newest first, each in its own transaction with its history row
//! removed. Every down file is checked before the first one runs.

use super::history::{HistoryEntry, history};
use super::lock::MigrationLock;
use super::run::{Direction, FileRun, Ran, Settings, run_file};
use super::script::tx_needs;
use super::source::{Migration, MigrationSet, read_sql};
use super::status::{Status, status};
use super::version::{compare_versions, version_key};
use crate::db::op::{Op, OpError};
use crate::db::{Db, TargetSpec};
use crate::fmt::duration;
use std::cmp::Ordering;
use std::path::Path;
use std::time::Duration;

/// How far `revert` goes.
#[derive(Debug, Clone, Copy)]
pub enum RevertTo<'a> {
    /// This many of the newest applied migrations.
    Count(u32),
    /// Every applied migration newer than this version (`0`: all of them).
    Version(&'a str),
}

#[derive(Debug, Clone)]
pub struct RevertReport {
    pub reverted: Vec<Ran>,
    pub status: Status,
    /// What blocked the down files, and the index builds seen.
    pub watched: super::Watched,
}

/// Runs down files, newest first, each in its own transaction with its history row removed.
/// Every down file is checked before the first one runs.
pub async fn revert(
    db: &mut Db,
    target: &TargetSpec,
    set: &MigrationSet,
    to: RevertTo<'_>,
    settings: &Settings,
    op: &Op<'_>,
) -> Result<RevertReport, OpError> {
    let mut lock = MigrationLock::acquire(target, db, op).await?;
    let result = revert_locked(db, set, to, settings, &mut lock, op).await;
    let watched = std::mem::take(&mut lock.watch.seen);
    lock.release(db, op).await;
    result.map(|mut r| {
        r.watched = watched;
        r
    })
}

/// The applied migrations `to` asks for, newest first.
fn choose<'h>(
    hist: &'h [HistoryEntry],
    to: RevertTo<'_>,
) -> Result<Vec<&'h HistoryEntry>, OpError> {
    let mut applied: Vec<&HistoryEntry> = hist.iter().filter(|h| h.success).collect();
    applied.reverse();
    Ok(match to {
        RevertTo::Count(n) => applied.into_iter().take(n as usize).collect(),
        RevertTo::Version(v) => {
            let all = version_key(v) == "0";
            if !all
                && !applied
                    .iter()
                    .any(|h| version_key(&h.version) == version_key(v))
            {
                return Err(OpError::failed(format!(
                    "version `{v}` is not applied, so there is nothing to revert down to (use `0` to revert everything)"
                )));
            }
            applied
                .into_iter()
                .filter(|h| compare_versions(&h.version, v) == Ordering::Greater)
                .collect()
        }
    })
}

/// A down file ready to run: its migration, the file as shown, its SQL.
struct Down<'a> {
    m: &'a Migration,
    file: String,
    sql: String,
}

/// The down file of an applied migration, refused when the up file changed since it ran.
fn down_file<'a>(set: &'a MigrationSet, h: &HistoryEntry) -> Result<Down<'a>, OpError> {
    let Some(m) = set.find(&h.version) else {
        return Err(OpError::failed(format!(
            "cannot revert migration {} ({}): its file is not in `{}`, so there is no down file",
            h.version, h.name, set.shown_dir
        )));
    };
    if h.checksum != m.checksum {
        return Err(OpError::failed(format!(
            "refusing to revert `{}`: it changed after it was applied (expected checksum {}, the file now has {}), so its down file may not match what ran",
            m.file, h.checksum, m.checksum
        )));
    }
    let Some(down) = &m.down else {
        let expected = m.shown_sibling(&m.down_expected);
        // Prisma writes no down migrations: say the two ways back.
        let hint = match &m.prisma_name {
            Some(folder) => format!(
                "; Prisma writes no down migrations. To go back: restore the backup taken before it was applied (the `rollback` playbook), or write `{expected}` with the SQL that undoes it, as Prisma's `migrate diff` produces it while a database is still at the state before `{folder}`: `npx prisma migrate diff --from-schema-datamodel prisma/schema.prisma --to-schema-datasource prisma/schema.prisma --script > {expected}`"
            ),
            None => format!(
                "; write it with the SQL that undoes `{}`, or restore the backup taken before it was applied (the `rollback` playbook)",
                m.file
            ),
        };
        return Err(OpError::failed(format!(
            "cannot revert `{}`: its down file `{expected}` does not exist{hint}",
            m.file
        )));
    };
    let (sql, _) = read_sql(down, Path::new(""))?;
    Ok(Down {
        m,
        file: m.shown_sibling(down),
        sql,
    })
}

async fn revert_locked(
    db: &mut Db,
    set: &MigrationSet,
    to: RevertTo<'_>,
    settings: &Settings,
    lock: &mut MigrationLock,
    op: &Op<'_>,
) -> Result<RevertReport, OpError> {
    let hist = history(db).await?;
    let plan = choose(&hist, to)?
        .into_iter()
        .map(|h| down_file(set, h))
        .collect::<Result<Vec<Down<'_>>, OpError>>()?;
    let mut reverted = Vec::new();
    for d in plan {
        op.check()?;
        let job = FileRun {
            m: d.m,
            file: &d.file,
            sql: &d.sql,
            no_transaction: tx_needs(&d.sql).outside,
            dir: Direction::Down,
        };
        let ran = run_file(db, &job, settings, lock, op).await?;
        op.note(&format!(
            "reverted `{}` with `{}` in {}",
            d.m.file,
            d.file,
            duration(Duration::from_millis(ran.duration_ms))
        ));
        reverted.push(ran);
    }
    let status = status(db, set).await?;
    Ok(RevertReport {
        reverted,
        status,
        watched: Default::default(),
    })
}
