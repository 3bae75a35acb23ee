//! Naming a backup: `{database}_{UTC time}_{run}_{step}` with the archive's extension, a
//! hidden `.partial` name to write under, and the manifest's name, none of them taken yet.

use super::files::{PARTIAL_SUFFIX, create_backup_dir, remove_path, remove_stale_partials};
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
}

impl Names {
    /// Picks names no file in `dir` has yet (a retried step may run in the same second).
    pub(super) fn new(
        dir: &Path,
        database: &str,
        when: DateTime<Utc>,
        op: &Op<'_>,
        purpose: Purpose,
        format: ArchiveFormat,
    ) -> Result<Names, OpError> {
        create_backup_dir(dir)?;
        for stale in remove_stale_partials(dir, &file_safe(database)) {
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
            let names = Names {
                archive: dir.join(&archive_name),
                partial: dir.join(format!(".{archive_name}{PARTIAL_SUFFIX}")),
                manifest: dir.join(format!("{stem}{MANIFEST_SUFFIX}")),
                archive_name,
            };
            if !names.archive.exists() && !names.partial.exists() && !names.manifest.exists() {
                return Ok(names);
            }
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
fn file_safe(s: &str) -> String {
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
