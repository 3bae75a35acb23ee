//! Restoring an archive into the target: find and check its manifest, hand off to the
//! dialect's restore (which verifies the archive and takes the pre-restore backup before it
//! changes anything), then count rows on a fresh connection and compare them with the
//! manifest's.

use super::counts::{compare_counts, recount};
use super::guard::{explain, guard};
use super::manifest::{Manifest, Purpose, find_manifest, read_manifest};
use super::pg_tools::PgTools;
use super::restore_postgres::restore_postgres;
use super::restore_sqlite::restore_sqlite;
use super::take::{Backup, BackupRequest};
use super::verify::{Verified, verify_archive};
use crate::db::op::{Op, OpError};
use crate::db::{Db, Dialect, TargetSpec};
use crate::fmt::{bytes, plural};
use crate::playbook::{BackupFormat, BackupMode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a `restore` step asks for.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The archive or its manifest.
    pub from: PathBuf,
    pub jobs: u32,
    /// Take a backup of the current state first.
    pub pre_backup: bool,
    /// Where the pre-restore backup goes; next to the archive when `None`.
    pub pre_backup_dir: Option<PathBuf>,
}

/// A finished restore.
#[derive(Debug, Clone)]
pub struct Restored {
    pub archive: PathBuf,
    pub manifest: Manifest,
    pub pre_backup: Option<Backup>,
    /// Rows per table after the restore, equal to the manifest's.
    pub row_counts: BTreeMap<String, u64>,
}

/// Restores an archive into the target: verifies it, takes a pre-restore backup, restores,
/// and compares row counts with the manifest. `db` is the target's connection (opened here if
/// `None`); it is closed and left `None` after a restore, so the next step connects afresh to
/// the restored database.
pub async fn restore(
    db: &mut Option<Db>,
    target: &TargetSpec,
    req: &RestoreRequest,
    op: &Op<'_>,
) -> Result<Restored, OpError> {
    let manifest_path = find_manifest(&req.from)?;
    let manifest = read_manifest(&manifest_path)?;
    let dialect = Dialect::of(target);
    if manifest.dialect != dialect {
        return Err(OpError::failed(format!(
            "{} is a {} backup and the target is {}",
            manifest_path.display(),
            manifest.dialect.label(),
            dialect.label()
        )));
    }
    if db.is_none() {
        let conn = guard(
            op,
            &format!("cannot connect to {}", target.describe()),
            None,
            Db::connect(target),
        )
        .await?;
        *db = Some(conn);
    }
    let pre_dir = match &req.pre_backup_dir {
        Some(d) => d.clone(),
        None => manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf(),
    };
    let result = match (db.as_mut(), target) {
        (Some(Db::Postgres(conn)), TargetSpec::Postgres(url)) => {
            restore_postgres(conn, url, &manifest_path, &pre_dir, req, op).await
        }
        (Some(Db::Sqlite(conn)), TargetSpec::Sqlite(_)) => {
            restore_sqlite(conn, &manifest_path, &pre_dir, req, op).await
        }
        _ => Err(OpError::failed("the connection does not match the target")),
    };
    let (verified, pre_backup) = result?;
    let actual = recount(db, target, op).await?;
    let row_counts = compare_counts(&verified.manifest, actual, &pre_note(&pre_backup), op)?;
    Ok(Restored {
        archive: verified.archive,
        manifest: verified.manifest,
        pre_backup,
        row_counts,
    })
}

/// The end of a failure message that names the pre-restore backup, when there is one.
pub(super) fn pre_note(pre_backup: &Option<Backup>) -> String {
    pre_backup
        .as_ref()
        .map(|b| format!("; the pre-restore backup is {}", b.archive.display()))
        .unwrap_or_default()
}

/// A backup taken just before a restore: full, custom format, verified.
pub(super) fn pre_request(dir: &Path) -> BackupRequest {
    BackupRequest {
        dir: dir.to_path_buf(),
        mode: BackupMode::Full,
        format: BackupFormat::Custom,
        jobs: 1,
        verify: true,
        purpose: Purpose::PreRestore,
    }
}

/// Verifies the archive before anything changes: a corrupt or mismatched archive stops the
/// restore here. Notes what was verified, counting `one`/`many` entries.
pub(super) async fn verify_first(
    manifest_path: &Path,
    tools: Option<&PgTools>,
    op: &Op<'_>,
    one: &str,
    many: &str,
) -> Result<Verified, OpError> {
    let v = verify_archive(manifest_path, tools, op)
        .await
        .map_err(|e| explain(e, |m| format!("refusing to restore: {m}")))?;
    op.note(&format!(
        "verified {} (sha256 {}, {}, {})",
        v.archive.display(),
        short(&v.manifest.sha256),
        bytes(v.manifest.size),
        plural(v.entries, one, many)
    ));
    Ok(v)
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The outcome of the pre-restore backup: noted when it was taken; a failure says that nothing
/// was restored.
pub(super) fn pre_backup_taken(
    taken: Result<Backup, OpError>,
    op: &Op<'_>,
) -> Result<Backup, OpError> {
    let b = taken.map_err(|e| {
        explain(e, |m| {
            format!("the pre-restore backup failed, nothing was restored: {m}")
        })
    })?;
    op.note(&format!(
        "pre-restore backup {} ({})",
        b.archive.display(),
        bytes(b.manifest.size)
    ));
    Ok(b)
}
