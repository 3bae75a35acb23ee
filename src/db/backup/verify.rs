//! Verifying a backup without changing anything: the archive's sha256 and size (and each file
//! of a directory archive) against its manifest, then that it reads as what it claims to be.

use super::guard::{check_cancel, guard};
use super::hash::{ArchiveSum, hash_archive};
use super::manifest::{ArchiveFormat, FileSum, Manifest, read_manifest};
use super::pg_tools::PgTools;
use super::postgres::{checked_toc, list_archive};
use super::sqlite::sqlite_check;
use crate::db::Dialect;
use crate::db::op::{Op, OpError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A verified archive.
#[derive(Debug, Clone)]
pub struct Verified {
    pub archive: PathBuf,
    pub manifest: Manifest,
    /// Entries in the archive's table of contents (PostgreSQL), or tables (SQLite).
    pub entries: usize,
    /// The table of contents as `pg_restore --list` prints it (PostgreSQL); empty for SQLite.
    pub toc: String,
}

/// Verifies a backup: the archive's sha256 and size against its manifest, then that it reads
/// as what it claims to be (`pg_restore --list` and its table of contents against the mode and
/// the tables of the manifest, or `PRAGMA integrity_check`). Changes nothing.
pub async fn verify_archive(
    manifest_path: &Path,
    tools: Option<&PgTools>,
    op: &Op<'_>,
) -> Result<Verified, OpError> {
    verify(manifest_path, None, tools, op).await
}

/// Verifies a backup just written, whose archive was hashed as it was put in place (`sum`) and,
/// for PostgreSQL, listed by `pg_restore --list` at the same time (`toc`, when read): the
/// manifest as read back against that sum, then that the archive reads as what it claims to
/// be, as [`verify_archive`] does, without reading the whole archive a second time.
pub(super) async fn verify_written(
    manifest_path: &Path,
    sum: ArchiveSum,
    toc: Option<String>,
    tools: Option<&PgTools>,
    op: &Op<'_>,
) -> Result<Verified, OpError> {
    verify(manifest_path, Some((sum, toc)), tools, op).await
}

async fn verify(
    manifest_path: &Path,
    known: Option<(ArchiveSum, Option<String>)>,
    tools: Option<&PgTools>,
    op: &Op<'_>,
) -> Result<Verified, OpError> {
    let manifest = read_manifest(manifest_path)?;
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let archive = dir.join(&manifest.archive);
    if !archive.exists() {
        return Err(OpError::failed(format!(
            "the archive {} named by {} does not exist",
            archive.display(),
            manifest_path.display()
        )));
    }
    op.detail(&format!("{} verifying {}", op.label, manifest.archive));
    let ((sha256, size, files), listed) = match known {
        Some((sum, toc)) => (sum, toc),
        None => (hash_archive(&archive, manifest.format, op).await?, None),
    };
    if manifest.format == ArchiveFormat::Directory {
        check_files(&archive, &manifest.files, &files)?;
    }
    if sha256 != manifest.sha256 || size != manifest.size {
        return Err(OpError::failed(format!(
            "{} is corrupt: sha256 {sha256} ({size} bytes), the manifest says {} ({} bytes)",
            archive.display(),
            manifest.sha256,
            manifest.size
        )));
    }
    check_cancel(op)?;
    let (entries, toc) = match manifest.dialect {
        Dialect::Postgres => match listed {
            Some(toc) => (checked_toc(&archive, &toc, &manifest)?, toc),
            None => list_archive(&archive, &manifest, tools, op).await?,
        },
        Dialect::Sqlite => {
            let checked = guard(
                op,
                "cannot check the SQLite archive",
                None,
                sqlite_check(&archive),
            )
            .await?;
            (checked.len(), String::new())
        }
    };
    Ok(Verified {
        archive,
        manifest,
        entries,
        toc,
    })
}

/// The files of a directory archive against the manifest's: each one present with its sum,
/// and none that the manifest does not list.
fn check_files(
    archive: &Path,
    want: &BTreeMap<String, FileSum>,
    got: &BTreeMap<String, FileSum>,
) -> Result<(), OpError> {
    for (name, sum) in want {
        match got.get(name) {
            None => {
                return Err(OpError::failed(format!(
                    "{} is corrupt: `{name}` is missing",
                    archive.display()
                )));
            }
            Some(found) if found != sum => {
                return Err(OpError::failed(format!(
                    "{} is corrupt: `{name}` has sha256 {} ({} bytes), the manifest says {} ({} bytes)",
                    archive.display(),
                    found.sha256,
                    found.size,
                    sum.sha256,
                    sum.size
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = got.keys().find(|n| !want.contains_key(*n)) {
        return Err(OpError::failed(format!(
            "{} is not as written: `{extra}` is not in the manifest",
            archive.display()
        )));
    }
    Ok(())
}
