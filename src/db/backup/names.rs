//! Naming a backup: `{database}_{UTC time}_{run}_{step}` with the archive's extension, a
//! hidden `.partial` name to write under, and the manifest's name, none of them taken yet.

use super::files::{
    FolderLock, PARTIAL_SUFFIX, create_backup_dir, create_partial, remove_dead_partials,
    remove_path,
};
use super::manifest::{ArchiveFormat, MANIFEST_SUFFIX, Purpose};
use crate::db::op::{Op, OpError};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

/// The paths of a backup being written.
pub(super) struct Names {
    pub(super) archive: PathBuf,
    pub(super) archive_name: String,
    pub(super) partial: PathBuf,
    pub(super) manifest: PathBuf,
    /// The partial archive, created empty and locked until the backup is done: while it is
    /// locked, the next backup of the database knows its writer lives and leaves it.
    _writing: std::fs::File,
}

impl Names {
    /// Picks names no file in `dir` has yet (a retried step may run in the same second) and
    /// creates the partial archive, locked. First removes the partial files of the database
    /// whose writer is gone.
    pub(super) fn new(
        dir: &Path,
        database: &str,
        when: DateTime<Utc>,
        op: &Op<'_>,
        purpose: Purpose,
        format: ArchiveFormat,
    ) -> Result<Names, OpError> {
        create_backup_dir(dir)?;
        let folder = FolderLock::take(dir);
        for stale in remove_dead_partials(&folder, dir, &file_safe(database)) {
            op.note(&format!(
                "removed {}: a partial backup left by a run that stopped while writing it",
                stale.display()
            ));
        }
        let mut stem = format!(
            "{}_{}_{}_{}",
            file_safe(database),
            when.format("%Y%m%dT%H%M%SZ"),
            file_safe(&op.run_id),
            file_safe(&op.step_id)
        );
        if purpose == Purpose::PreRestore {
            stem.push_str("_pre-restore");
        }
        for n in 1..1000 {
            let stem = if n == 1 {
                stem.clone()
            } else {
                format!("{stem}-{n}")
            };
            let archive_name = format!("{stem}{}", format.extension());
            let archive = dir.join(&archive_name);
            let partial = dir.join(format!(".{archive_name}{PARTIAL_SUFFIX}"));
            let manifest = dir.join(format!("{stem}{MANIFEST_SUFFIX}"));
            if archive.exists() || partial.exists() || manifest.exists() {
                continue;
            }
            // pg_dump writes into an existing empty file or folder, as `VACUUM INTO` does.
            let writing = create_partial(&folder, &partial, format == ArchiveFormat::Directory)?;
            return Ok(Names {
                archive,
                archive_name,
                partial,
                manifest,
                _writing: writing,
            });
        }
        Err(OpError::failed(format!(
            "cannot find a free name for the backup `{stem}` in {}",
            dir.display()
        )))
    }

    /// `result`, having removed whatever of this backup was written when it is an error.
    pub(super) fn or_remove<T>(&self, result: Result<T, OpError>) -> Result<T, OpError> {
        result.inspect_err(|_| self.remove())
    }

    /// Removes whatever of this backup was written (after a failure).
    pub(super) fn remove(&self) {
        for p in [&self.partial, &self.archive, &self.manifest] {
            remove_path(p);
        }
    }
}

/// A name part that is safe in a file name: other characters become `_`, and it never starts
/// with a dot (which would hide it).
pub(super) fn file_safe(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let out = out.trim_start_matches('.');
    if out.is_empty() {
        "db".to_owned()
    } else {
        out.to_owned()
    }
}
