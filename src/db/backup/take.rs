//! Taking a backup: what a step asks for, the hand-off to the dialect's writer, and the finish
//! every backup shares (the manifest last, then verification of the pair).

use super::guard::explain;
use super::manifest::{Manifest, Purpose, write_manifest};
use super::names::Names;
use super::pg_tools::PgTools;
use super::postgres::backup_postgres;
use super::sqlite::backup_sqlite;
use super::verify::verify_archive;
use crate::db::op::{Op, OpError};
use crate::db::{Db, TargetSpec};
use crate::playbook::{BackupFormat, BackupMode};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a `backup` step (or a pre-restore backup) asks for.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Absolute, or relative to the process's working directory.
    pub dir: PathBuf,
    pub mode: BackupMode,
    pub format: BackupFormat,
    pub jobs: u32,
    pub verify: bool,
    pub purpose: Purpose,
}

/// A written (and, if asked, verified) backup.
#[derive(Debug, Clone)]
pub struct Backup {
    pub archive: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    /// How long verification took, when it ran.
    pub verified_in: Option<Duration>,
}

/// Backs up the target `db` is connected to.
pub async fn backup(
    db: &mut Db,
    target: &TargetSpec,
    req: &BackupRequest,
    op: &Op<'_>,
) -> Result<Backup, OpError> {
    match (db, target) {
        (Db::Postgres(conn), TargetSpec::Postgres(url)) => {
            backup_postgres(conn, url, req, op).await
        }
        (Db::Sqlite(conn), TargetSpec::Sqlite(path)) => backup_sqlite(conn, path, req, op).await,
        _ => Err(OpError::failed("the connection does not match the target")),
    }
}

/// Writes the manifest (the last file of a backup), then verifies the pair if asked. On
/// failure the backup's files are removed: a backup that failed verification is not one.
pub(super) async fn finish(
    names: Names,
    manifest: Manifest,
    verify: bool,
    tools: Option<&PgTools>,
    op: &Op<'_>,
) -> Result<Backup, OpError> {
    if let Err(e) = write_manifest(&names.manifest, &manifest) {
        names.remove();
        return Err(e);
    }
    let verified_in = if verify {
        let began = Instant::now();
        if let Err(e) = verify_archive(&names.manifest, tools, op).await {
            names.remove();
            return Err(explain(e, |m| {
                format!("the new backup failed verification: {m}")
            }));
        }
        Some(began.elapsed())
    } else {
        None
    };
    Ok(Backup {
        archive: names.archive,
        manifest_path: names.manifest,
        manifest,
        verified_in,
    })
}
