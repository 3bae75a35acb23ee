//! Taking a backup: what a step asks for, the hand-off to the dialect's writer, and the finish
//! every backup shares (the manifest last, then verification of the pair).

use super::guard::explain;
use super::manifest::{ArchiveFormat, FileSum, MANIFEST_LAYOUT, Manifest, Purpose, write_manifest};
use super::names::Names;
use super::pg_tools::PgTools;
use super::postgres::backup_postgres;
use super::sqlite::backup_sqlite;
use super::verify::verify_written;
use crate::db::op::{Op, OpError};
use crate::db::{Db, Dialect, TargetSpec};
use crate::playbook::{BackupFormat, BackupMode};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;
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

/// When a backup began: the time its names and manifest carry, and the start of its duration.
pub(super) struct Began {
    pub(super) created: DateTime<Utc>,
    at: Instant,
}

impl Began {
    pub(super) fn now() -> Began {
        Began {
            at: Instant::now(),
            created: Utc::now(),
        }
    }
}

/// What a dialect's writer knows of the archive it wrote: its manifest but for the request's
/// purpose, the archive's name and the run's stamp, which [`finish`] adds alike for both.
pub(super) struct Archive {
    pub(super) dialect: Dialect,
    pub(super) database: String,
    pub(super) format: ArchiveFormat,
    pub(super) mode: BackupMode,
    pub(super) sha256: String,
    pub(super) size: u64,
    pub(super) files: BTreeMap<String, FileSum>,
    pub(super) server_version: String,
    pub(super) pg_dump_version: Option<String>,
    pub(super) row_counts: BTreeMap<String, u64>,
    /// The table of contents as `pg_restore --list` printed it, when it was read as the archive
    /// was hashed (PostgreSQL, verification on): verification checks it against the manifest
    /// instead of running pg_restore a second time.
    pub(super) toc: Option<String>,
}

/// Writes the manifest (the last file of a backup), then verifies the pair if asked: the
/// manifest read back against the sum the archive was hashed to as it was put in place (not a
/// second read of the archive), then the archive's reading by pg_restore (its listing taken
/// beside the hashing, when there is one) or SQLite. On failure
/// the backup's files are removed: a backup that failed verification is not one.
pub(super) async fn finish(
    names: Names,
    archive: Archive,
    began: &Began,
    req: &BackupRequest,
    tools: Option<&PgTools>,
    op: &Op<'_>,
) -> Result<Backup, OpError> {
    let sum = (archive.sha256.clone(), archive.size, archive.files.clone());
    let toc = archive.toc;
    let manifest = Manifest {
        runbook_backup: MANIFEST_LAYOUT,
        purpose: req.purpose,
        dialect: archive.dialect,
        database: archive.database,
        archive: names.archive_name.clone(),
        format: archive.format,
        mode: archive.mode,
        sha256: archive.sha256,
        size: archive.size,
        files: archive.files,
        server_version: archive.server_version,
        pg_dump_version: archive.pg_dump_version,
        row_counts: archive.row_counts,
        run_id: op.run_id.clone(),
        step_id: op.step_id.clone(),
        created_at: began.created.to_rfc3339_opts(SecondsFormat::Millis, true),
        duration_ms: u64::try_from(began.at.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    names.or_remove(write_manifest(&names.manifest, &manifest))?;
    let verified_in = if req.verify {
        let began = Instant::now();
        names.or_remove(
            verify_written(&names.manifest, sum, toc, tools, op)
                .await
                .map_err(|e| explain(e, |m| format!("the new backup failed verification: {m}"))),
        )?;
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
