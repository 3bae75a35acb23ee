//! The file system side of a backup: the owner-only backup folder, putting a finished archive
//! in place, syncing folders so renames and deletes survive a crash, listing and measuring.

use crate::db::op::OpError;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Appended to the hidden name a file is written under until it is complete.
pub(super) const PARTIAL_SUFFIX: &str = ".partial";

/// Backups hold the application's data: a folder made here is readable by its owner only.
pub(super) fn create_backup_dir(dir: &Path) -> Result<(), OpError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            OpError::failed(format!(
                "cannot create the backup folder {}: {e}",
                dir.display()
            ))
        })
}

/// A partial archive nothing has written to for this long was left by a run that stopped while
/// writing it (one run per target holds the target's lock, and a live pg_dump writes often).
pub(super) const STALE_PARTIAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the partial archives of `database` (its file-safe name) in `dir` that nothing has
/// written to for [`STALE_PARTIAL`]: crashed backups would otherwise pile up. Returns them.
pub(super) fn remove_stale_partials(dir: &Path, database: &str) -> Vec<PathBuf> {
    let prefix = format!(".{database}_");
    let Ok(entries) = read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.starts_with(&prefix) || !name.ends_with(PARTIAL_SUFFIX) {
            continue;
        }
        let idle = newest_write(&path).and_then(|t| t.elapsed().ok());
        if idle.is_some_and(|d| d >= STALE_PARTIAL) {
            remove_path(&path);
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        sync_dir(dir);
    }
    removed
}

/// The newest modification time of a file, or of a folder and the files in it (a directory
/// archive grows file by file).
fn newest_write(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mut newest = meta.modified().ok()?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).ok()?.flatten() {
            if let Ok(t) = entry.metadata().and_then(|m| m.modified()) {
                newest = newest.max(t);
            }
        }
    }
    Some(newest)
}

/// Removes a file or a folder with everything in it; one that is absent is already removed.
pub(super) fn remove_path(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(p);
        }
        Err(_) => {}
    }
}

/// Makes the finished archive owner-only and renames it from its partial name (pg_dump has
/// already synced its files; the rename is synced with the folder).
pub(super) fn place(partial: &Path, archive: &Path) -> Result<(), OpError> {
    restrict(partial)?;
    std::fs::rename(partial, archive).map_err(|e| {
        OpError::failed(format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            archive.display()
        ))
    })?;
    sync_parent(archive);
    Ok(())
}

fn restrict(path: &Path) -> Result<(), OpError> {
    let set = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| {
            OpError::failed(format!(
                "cannot set the permissions of {}: {e}",
                p.display()
            ))
        })
    };
    if path.is_dir() {
        set(path, 0o700)?;
        for entry in read_dir(path)? {
            set(&entry, 0o600)?;
        }
        Ok(())
    } else {
        set(path, 0o600)
    }
}

/// Syncs the folder holding `path`, so a rename or delete in it survives a crash.
pub(super) fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
}

pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The entries of a folder, sorted by path.
pub(super) fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, OpError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| OpError::failed(format!("cannot read {}: {e}", dir.display())))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| OpError::failed(format!("cannot read {}: {e}", dir.display())))?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// Bytes under `path` (a file, or the files of a folder); 0 while it does not exist.
pub(super) fn disk_usage(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}
