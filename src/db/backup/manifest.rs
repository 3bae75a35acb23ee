//! The manifest: what makes an archive a runbook backup, how it is written (atomically, last)
//! and read (refusing files that are not runbook manifests), and how an archive's manifest is
//! found.

use super::files::{FolderLock, PARTIAL_SUFFIX, create_partial, read_dir, sync_parent};
use crate::db::Dialect;
use crate::db::op::OpError;
use crate::playbook::BackupMode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Suffix of a manifest's file name: `{stem}.manifest.json` next to `{stem}.dump`.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// The manifest layout this version writes. Its presence marks a runbook manifest.
pub const MANIFEST_LAYOUT: u32 = 1;

/// Why a backup was taken: by a `backup` step, or by `restore` just before it restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Backup,
    PreRestore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveFormat {
    /// pg_dump `--format=custom`: one file.
    Custom,
    /// pg_dump `--format=directory`: a folder of files, dumped and restored in parallel.
    Directory,
    /// A SQLite database file written by `VACUUM INTO`.
    Sqlite,
}

impl ArchiveFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveFormat::Custom => "custom",
            ArchiveFormat::Directory => "directory",
            ArchiveFormat::Sqlite => "sqlite",
        }
    }

    pub(super) fn extension(self) -> &'static str {
        match self {
            ArchiveFormat::Custom => ".dump",
            ArchiveFormat::Directory => ".dir",
            ArchiveFormat::Sqlite => ".sqlite",
        }
    }
}

/// sha256 and size of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub sha256: String,
    pub size: u64,
}

/// What `{stem}.manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest layout ([`MANIFEST_LAYOUT`]); marks the file as a runbook manifest.
    pub runbook_backup: u32,
    pub purpose: Purpose,
    pub dialect: Dialect,
    /// The database backed up: the PostgreSQL database name or the SQLite file's stem.
    pub database: String,
    /// The archive's file (or folder) name, in the manifest's folder.
    pub archive: String,
    pub format: ArchiveFormat,
    pub mode: BackupMode,
    /// Of the file; for a directory archive, of its listing (`sha256  name` lines in name
    /// order, as `sha256sum` prints them), each file's own sum being in `files`.
    pub sha256: String,
    /// Bytes, all files together.
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileSum>,
    /// PostgreSQL `server_version` or the SQLite library version.
    pub server_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_dump_version: Option<String>,
    /// Rows per table at the moment of the backup: `schema.table` for PostgreSQL, the table
    /// name for SQLite. For a `schema_only` archive these are the source's counts; its tables
    /// restore empty.
    pub row_counts: BTreeMap<String, u64>,
    pub run_id: String,
    pub step_id: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub duration_ms: u64,
}

/// Writes to a temporary name, syncs, renames: a manifest is whole or absent.
pub(super) fn write_manifest(path: &Path, manifest: &Manifest) -> Result<(), OpError> {
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| OpError::failed(format!("cannot encode the manifest: {e}")))?;
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}{PARTIAL_SUFFIX}"));
    let write = || -> std::io::Result<()> {
        // Locked while written, as a partial archive is: another backup leaves it alone.
        let mut f = {
            let dir = path.parent().unwrap_or(Path::new("."));
            let folder = FolderLock::take(dir);
            create_partial(&folder, &tmp, false)
                .map_err(|e| std::io::Error::other(e.to_string()))?
        };
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(OpError::failed(format!(
            "cannot write the manifest {}: {e}",
            path.display()
        )));
    }
    sync_parent(path)
}

/// Reads a manifest, refusing files that are not runbook manifests.
pub fn read_manifest(path: &Path) -> Result<Manifest, OpError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        OpError::failed(format!("cannot read the manifest {}: {e}", path.display()))
    })?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        OpError::failed(format!(
            "{} is not a runbook backup manifest: {e}",
            path.display()
        ))
    })?;
    if manifest.runbook_backup > MANIFEST_LAYOUT {
        return Err(OpError::failed(format!(
            "{} has manifest layout {}, newer than this runbook reads ({MANIFEST_LAYOUT})",
            path.display(),
            manifest.runbook_backup
        )));
    }
    if !is_plain_name(&manifest.archive) {
        return Err(OpError::failed(format!(
            "{} names the archive `{}`, which is not a file name in its folder",
            path.display(),
            manifest.archive
        )));
    }
    Ok(manifest)
}

/// A file name without a folder: what a manifest may name (it must not reach outside its
/// folder, for restore or for retention's deletes).
pub(super) fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// The manifest of `from`: `from` itself if it is a manifest, else the one next to the archive
/// (by name, else the manifest in that folder that names it).
pub fn find_manifest(from: &Path) -> Result<PathBuf, OpError> {
    let name = from
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| OpError::failed(format!("{} names no file", from.display())))?;
    if name.ends_with(MANIFEST_SUFFIX) {
        if !from.is_file() {
            return Err(OpError::failed(format!(
                "the manifest {} does not exist",
                from.display()
            )));
        }
        return Ok(from.to_path_buf());
    }
    if !from.exists() {
        return Err(OpError::failed(format!(
            "the archive {} does not exist",
            from.display()
        )));
    }
    let stem = [".dump", ".dir", ".sqlite"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(&name);
    let dir = from.parent().unwrap_or(Path::new("."));
    let by_name = dir.join(format!("{stem}{MANIFEST_SUFFIX}"));
    if by_name.is_file() {
        return Ok(by_name);
    }
    for path in read_dir(dir)? {
        if path.to_string_lossy().ends_with(MANIFEST_SUFFIX)
            && let Ok(m) = read_manifest(&path)
            && m.archive == name
        {
            return Ok(path);
        }
    }
    Err(OpError::failed(format!(
        "{} has no manifest ({stem}{MANIFEST_SUFFIX}): restore needs the manifest `backup` wrote to verify the archive",
        from.display()
    )))
}
