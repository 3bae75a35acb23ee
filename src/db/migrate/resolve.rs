//! `resolve`: marks one migration applied or rolled back without running anything, in
//! runbook's history and (for a Prisma folder) in Prisma's, as `prisma migrate resolve
//! --applied` / `--rolled-back` does. It is the way out of a failed migration: after its
//! changes were undone by hand (`rolled_back`: the next apply runs it again) or completed by
//! hand (`applied`: the next apply skips it).

use super::apply::unknown_version;
use super::history::{HISTORY_TABLE, ensure_history, read_history, record, tables, unrecord};
use super::lock::MigrationLock;
use super::prisma::{self, PRISMA_TABLE};
use super::source::{Migration, MigrationSet};
use super::status::{Status, status};
use super::version::version_key;
use super::{db_failed, tx};
use crate::db::op::{Op, OpError};
use crate::db::{Db, TargetSpec};

/// What a migration is marked as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Its changes are in the database (completed by hand): counted as applied.
    Applied,
    /// Its changes are not (undone by hand): no longer counted, so the next apply runs it.
    RolledBack,
}

impl Resolution {
    pub fn name(self) -> &'static str {
        match self {
            Resolution::Applied => "applied",
            Resolution::RolledBack => "rolled_back",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResolveReport {
    pub version: String,
    pub name: String,
    pub file: String,
    /// The checksum runbook's history holds for it (the file's, LF line endings).
    pub checksum: String,
    pub resolution: Resolution,
    /// Failed `_prisma_migrations` rows marked rolled back.
    pub prisma_rolled_back: u64,
    pub status: Status,
}

/// Marks migration `version` as `how`, in both histories, in one transaction.
pub async fn resolve(
    db: &mut Db,
    target: &TargetSpec,
    set: &MigrationSet,
    version: &str,
    how: Resolution,
    op: &Op<'_>,
) -> Result<ResolveReport, OpError> {
    let Some(m) = set.find(version) else {
        return Err(unknown_version(set, version));
    };
    let lock = MigrationLock::acquire(target, db, op).await?;
    let result = resolve_locked(db, set, m, how, op).await;
    lock.release(db, op).await;
    result
}

/// Where `m` stands in both histories.
struct Standing {
    /// runbook's history: `Some(true)` applied, `Some(false)` a failed attempt.
    own: Option<bool>,
    /// Prisma counts it as applied (a finished row, not rolled back).
    prisma_applied: bool,
    /// Prisma's failed rows for it (runbook's own failed attempts among them).
    prisma_failed: usize,
}

async fn standing(db: &mut Db, m: &Migration) -> Result<Standing, OpError> {
    let key = version_key(&m.version);
    let exist = tables(db).await?;
    let own = read_history(db, exist.history)
        .await?
        .into_iter()
        .find(|h| version_key(&h.version) == key)
        .map(|h| h.success);
    let (prisma_applied, prisma_failed) = match &m.prisma_name {
        Some(name) => {
            let (finished, failed) = prisma::read(db, exist.prisma).await?;
            (
                finished.iter().any(|p| &p.name == name),
                failed.iter().filter(|f| &f.migration_name == name).count(),
            )
        }
        None => (false, 0),
    };
    Ok(Standing {
        own,
        prisma_applied,
        prisma_failed,
    })
}

/// Refuses what Prisma refuses: `applied` for a migration applied already (P3008),
/// `rolled_back` for one that never ran (P3011) or did not fail (P3012).
fn check(m: &Migration, how: Resolution, s: &Standing) -> Result<(), OpError> {
    let failed = s.prisma_failed > 0 || s.own == Some(false);
    let applied = s.own == Some(true) || s.prisma_applied;
    match how {
        Resolution::Applied if applied && !failed => Err(OpError::failed(format!(
            "migration {} (`{}`) is already recorded as applied, so there is nothing to resolve (Prisma's P3008)",
            m.version, m.file
        ))),
        Resolution::RolledBack if !failed => Err(OpError::failed(if applied {
            format!(
                "migration {} (`{}`) cannot be marked rolled back: it is not in a failed state (Prisma's P3012); to undo an applied migration, revert it (`migrate: {{ action: revert }}`) or restore the backup taken before it",
                m.version, m.file
            )
        } else {
            format!(
                "migration {} (`{}`) cannot be marked rolled back: it was never applied (Prisma's P3011), so it is pending already",
                m.version, m.file
            )
        })),
        _ => Ok(()),
    }
}

async fn resolve_locked(
    db: &mut Db,
    set: &MigrationSet,
    m: &Migration,
    how: Resolution,
    op: &Op<'_>,
) -> Result<ResolveReport, OpError> {
    ensure_history(db, m.prisma_name.is_some()).await?;
    let s = standing(db, m).await?;
    check(m, how, &s)?;
    let what = format!("cannot update `{HISTORY_TABLE}` and `{PRISMA_TABLE}`");
    tx::begin(db).await.map_err(|e| db_failed(&what, &e))?;
    let written = write(db, m, how, &s, &op.run_id).await;
    let rolled_back = match written {
        Ok(n) => n,
        Err(e) => {
            tx::rollback(db).await;
            return Err(db_failed(&what, &e));
        }
    };
    tx::commit(db).await.map_err(|e| db_failed(&what, &e))?;
    op.note(&format!(
        "resolved `{}` as {}: {}",
        m.file,
        how.name(),
        match how {
            Resolution::Applied =>
                "recorded as applied without running it; the next apply skips it",
            Resolution::RolledBack =>
                "no longer recorded as applied or failed; the next apply runs it again",
        }
    ));
    let status = status(db, set).await?;
    Ok(ResolveReport {
        version: m.version.clone(),
        name: m.name.clone(),
        file: m.file.clone(),
        checksum: m.checksum.clone(),
        resolution: how,
        prisma_rolled_back: rolled_back,
        status,
    })
}

/// The rows: Prisma's failed rows are marked rolled back either way (as Prisma does); going
/// `applied`, a finished Prisma row (as `resolve --applied` writes it) and a success row in
/// runbook's history; going `rolled_back`, runbook's failed row is removed, so the migration
/// is plainly pending.
async fn write(
    db: &mut Db,
    m: &Migration,
    how: Resolution,
    s: &Standing,
    run_id: &str,
) -> Result<u64, sqlx::Error> {
    let rolled_back = match &m.prisma_name {
        Some(name) => prisma::roll_back(db, name, false).await?,
        None => 0,
    };
    match how {
        Resolution::Applied => {
            if !s.prisma_applied {
                prisma::insert_marked(db, m).await?;
            }
            if s.own != Some(true) {
                record(db, m, 0, true, run_id, "resolve").await?;
            }
        }
        Resolution::RolledBack => {
            if s.own == Some(false) {
                unrecord(db, &m.version).await?;
            }
        }
    }
    Ok(rolled_back)
}
