//! `baseline`: marks every migration up to a version as applied without running it, for a
//! database that already has that schema.

use super::apply::unknown_version;
use super::history::{HISTORY_TABLE, ensure_history, record_all};
use super::lock::MigrationLock;
use super::prisma::{self, PRISMA_TABLE};
use super::source::{Migration, MigrationSet};
use super::status::{PendingMigration, Status, status_of};
use super::version::compare_versions;
use crate::db::op::{Op, OpError};
use crate::db::{Db, TargetSpec};
use std::cmp::Ordering;

#[derive(Debug, Clone)]
pub struct BaselineReport {
    /// Migrations marked applied without running.
    pub marked: Vec<PendingMigration>,
    pub status: Status,
}

/// Marks every migration up to `version` as applied without running it (for a database that
/// already has that schema).
pub async fn baseline(
    db: &mut Db,
    target: &TargetSpec,
    set: &MigrationSet,
    version: &str,
    op: &Op<'_>,
) -> Result<BaselineReport, OpError> {
    if set.find(version).is_none() {
        return Err(unknown_version(set, version));
    }
    let lock = MigrationLock::acquire(target, db, op).await?;
    let result = baseline_locked(db, set, version, op).await;
    lock.release(db, op).await;
    result
}

async fn baseline_locked(
    db: &mut Db,
    set: &MigrationSet,
    version: &str,
    op: &Op<'_>,
) -> Result<BaselineReport, OpError> {
    let kept = prisma::kept_for(&set.migrations);
    let existed = ensure_history(db, kept).await?;
    let st = status_of(db, set, existed).await?;
    let marked: Vec<PendingMigration> = st
        .pending
        .iter()
        .filter(|p| compare_versions(&p.version, version) != Ordering::Greater)
        .cloned()
        .collect();
    let what = format!("cannot write `{HISTORY_TABLE}` and `{PRISMA_TABLE}`");
    let files: Vec<&Migration> = marked.iter().filter_map(|p| set.find(&p.version)).collect();
    record_all(db, &files, &op.run_id, "baseline", true, &what).await?;
    for p in &marked {
        op.note(&format!("baselined `{}` (marked applied, not run)", p.file));
    }
    let status = status_of(db, set, existed.ensured(kept)).await?;
    Ok(BaselineReport { marked, status })
}
