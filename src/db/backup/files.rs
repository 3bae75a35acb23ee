//! The file system side of a backup: the owner-only backup folder, partial files locked while
//! they are written (and removed by a later backup once their writer is gone), putting a
//! finished archive in place, syncing folders so renames and deletes survive a crash, listing
//! and measuring.

use crate::db::op::OpError;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Appended to the hidden name a file is written under until it is complete.
pub(super) const PARTIAL_SUFFIX: &str = ".partial";

/// Backups hold the application's data: a folder made here is readable by its owner only.
/// The folders it makes are synced into their parents, so a backup written into them survives
/// a crash with its folder.
pub(super) fn create_backup_dir(dir: &Path) -> Result<(), OpError> {
    if dir.is_dir() {
        return Ok(());
    }
    let made: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            OpError::failed(format!(
                "cannot create the backup folder {}: {e}",
                dir.display()
            ))
        })?;
    made.iter().rev().try_for_each(|d| sync_parent(d))
}

/// The backup folder, locked (`flock` on the folder itself) while a backup removes the partial
/// files of dead writers and while one creates and locks a partial file of its own: no partial
/// is ever seen between its creation and its lock. Released when dropped.
pub(super) struct FolderLock {
    _folder: Option<std::fs::File>,
}

impl FolderLock {
    /// Waits for the folder's lock (its holders keep it for moments). On a file system without
    /// locks the backup goes on unlocked, and partial files are then never taken for dead.
    pub(super) fn take(dir: &Path) -> FolderLock {
        let folder = std::fs::File::open(dir).and_then(|f| f.lock().map(|()| f));
        if let Err(e) = &folder {
            tracing::debug!("cannot lock the backup folder {}: {e}", dir.display());
        }
        FolderLock {
            _folder: folder.ok(),
        }
    }
}

/// Creates the partial file `path` (a folder when `folder`, for a directory archive), empty and
/// owner-only, and locks it: the returned handle holds the lock for as long as it is open, and
/// the kernel drops it when the writer dies, however it dies. The caller holds `_folder`.
pub(super) fn create_partial(
    _folder: &FolderLock,
    path: &Path,
    folder: bool,
) -> Result<std::fs::File, OpError> {
    use std::os::unix::fs::OpenOptionsExt;
    let created = if folder {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(path)
            .and_then(|()| std::fs::File::open(path))
    } else {
        std::fs::File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
    };
    let file =
        created.map_err(|e| OpError::failed(format!("cannot create {}: {e}", path.display())))?;
    if let Err(e) = file.try_lock() {
        tracing::debug!("cannot lock {}: {e}", path.display());
    }
    Ok(file)
}

/// Removes the partial files of `database` (its file-safe name) in `dir` whose lock can be
/// taken: their writer is gone (a crashed or killed run), since a live one holds the lock from
/// creation to rename. Crashed backups would otherwise pile up. A partial that cannot be
/// locked for another reason (a file system without locks) stays. Returns those removed.
pub(super) fn remove_dead_partials(
    _folder: &FolderLock,
    dir: &Path,
    database: &str,
) -> Vec<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
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
        // Non-blocking: opening a FIFO someone named like a partial must not hang the backup.
        let opened = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path);
        let Ok(file) = opened else {
            continue;
        };
        if file.try_lock().is_ok() {
            remove_path(&path);
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        sync_dir(dir);
    }
    removed
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

/// Makes the finished archive owner-only and renames it from its partial name (its files were
/// synced as they were hashed; the rename is synced with the folder).
pub(super) fn place(partial: &Path, archive: &Path) -> Result<(), OpError> {
    restrict(partial)?;
    std::fs::rename(partial, archive).map_err(|e| {
        OpError::failed(format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            archive.display()
        ))
    })?;
    sync_parent(archive)
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

/// Syncs the folder holding `path`, so a rename or a new entry in it survives a crash. A
/// folder that cannot be synced fails the backup: its archive or manifest may not survive.
pub(super) fn sync_parent(path: &Path) -> Result<(), OpError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Some file systems cannot fsync a folder at all (EINVAL, EBADF: FUSE, 9p); PostgreSQL
    // passes over those errors for folders, as this does.
    let synced = std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .or_else(|e| match e.raw_os_error() {
            Some(libc::EINVAL | libc::EBADF) => Ok(()),
            _ => Err(e),
        });
    synced.map_err(|e| {
        OpError::failed(format!(
            "cannot sync the folder {} (what was renamed in it may not survive a crash): {e}",
            parent.display()
        ))
    })
}

/// Best effort, for removals: a removal a crash undoes is done again by the next backup.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The folder a rename was made in must be synced for the backup to count: one that cannot
    /// be opened to be synced fails it, where it was passed over.
    #[test]
    fn a_folder_that_cannot_be_synced_fails_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        assert!(sync_parent(&dir.path().join("archive")).is_ok());
        let gone = dir.path().join("gone").join("archive");
        let err = sync_parent(&gone).unwrap_err().to_string();
        assert!(err.contains("cannot sync the folder"), "{err}");
    }

    /// New backup folders, several levels of them, are made owner-only and synced into their
    /// parents.
    #[test]
    fn new_backup_folders_are_made_and_synced() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a").join("b").join("backups");
        create_backup_dir(&deep).unwrap();
        let mode = std::fs::metadata(&deep).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        create_backup_dir(&deep).unwrap();
    }
}
