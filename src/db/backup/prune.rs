//! Retention: deleting a database's older backups by age and by number. Only archives with a
//! runbook manifest are candidates, and only what the manifest names is deleted. Retention
//! also removes the database's partial files whose writer is gone (as the next backup does).

use super::files::{FolderLock, read_dir, remove_dead_partials, sync_dir};
use super::manifest::{ArchiveFormat, MANIFEST_SUFFIX, Manifest, is_plain_name, read_manifest};
use super::names::file_safe;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

/// What retention keeps: backups younger than `retention_days`, and at most `keep` of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    pub retention_days: Option<u32>,
    pub keep: Option<u32>,
}

/// What retention did.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    /// Archives deleted (with their manifests).
    pub deleted: Vec<PathBuf>,
    /// Partial files left by backups whose writer is gone (a crashed or killed run).
    pub partials: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// Deletes the backups in `dir` of the same database as `current` that are older than
/// `retention_days` or beyond the `keep` newest (`current` counts and is never deleted). Only
/// archives with a runbook manifest are candidates, by the manifest's `created_at`; every
/// other file stays. A directory archive loses only the files its manifest lists.
pub fn prune(dir: &Path, current: &Manifest, policy: Retention, now: DateTime<Utc>) -> Pruned {
    let mut pruned = Pruned::default();
    if policy.retention_days.is_none() && policy.keep.is_none() {
        return pruned;
    }
    pruned.partials =
        remove_dead_partials(&FolderLock::take(dir), dir, &file_safe(&current.database));
    let entries = match read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            pruned.warnings.push(format!("retention skipped: {e}"));
            return pruned;
        }
    };
    let mut candidates: Vec<(DateTime<Utc>, PathBuf, Manifest)> = Vec::new();
    for path in entries {
        let is_manifest = path
            .file_name()
            .and_then(|f| f.to_str())
            .is_some_and(|f| f.ends_with(MANIFEST_SUFFIX) && !f.starts_with('.'));
        if !is_manifest {
            continue;
        }
        let Ok(m) = read_manifest(&path) else {
            continue;
        };
        if m.dialect != current.dialect
            || m.database != current.database
            || m.archive == current.archive
        {
            continue;
        }
        match DateTime::parse_from_rfc3339(&m.created_at) {
            Ok(t) => candidates.push((t.with_timezone(&Utc), path, m)),
            Err(_) => pruned.warnings.push(format!(
                "{} has no readable `created_at`; retention left it",
                path.display()
            )),
        }
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    // The new backup is one of the `keep`.
    let others = policy.keep.map(|k| k.max(1) as usize - 1);
    let cutoff = policy
        .retention_days
        .map(|d| now - chrono::Duration::days(i64::from(d)));
    for (i, (created, manifest_path, m)) in candidates.into_iter().enumerate() {
        let too_old = cutoff.is_some_and(|c| created < c);
        let too_many = others.is_some_and(|k| i >= k);
        if !(too_old || too_many) {
            continue;
        }
        let archive = dir.join(&m.archive);
        match delete_archive(&archive, &m) {
            Ok(()) => match std::fs::remove_file(&manifest_path) {
                Ok(()) => pruned.deleted.push(archive),
                Err(e) => pruned
                    .warnings
                    .push(format!("cannot delete {}: {e}", manifest_path.display())),
            },
            Err(e) => pruned.warnings.push(e),
        }
    }
    if !pruned.deleted.is_empty() {
        sync_dir(dir);
    }
    pruned
}

/// Deletes an archive its manifest describes; an absent one is already deleted.
fn delete_archive(archive: &Path, m: &Manifest) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(archive) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", archive.display())),
    };
    if m.format == ArchiveFormat::Directory {
        if !meta.is_dir() {
            return Err(format!(
                "{} is not a folder as its manifest says; retention left it",
                archive.display()
            ));
        }
        for name in m.files.keys().filter(|n| is_plain_name(n)) {
            let p = archive.join(name);
            if let Err(e) = std::fs::remove_file(&p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(format!("cannot delete {}: {e}", p.display()));
            }
        }
        // Fails, and keeps the folder and its manifest, if it holds files the manifest does
        // not list.
        std::fs::remove_dir(archive).map_err(|e| {
            format!(
                "{} holds files its manifest does not list; retention left it: {e}",
                archive.display()
            )
        })
    } else {
        if !meta.is_file() {
            return Err(format!(
                "{} is not a file as its manifest says; retention left it",
                archive.display()
            ));
        }
        std::fs::remove_file(archive)
            .map_err(|e| format!("cannot delete {}: {e}", archive.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Dialect;
    use crate::db::backup::Purpose;
    use crate::playbook::BackupMode;

    fn current(database: &str) -> Manifest {
        Manifest {
            runbook_backup: crate::db::backup::MANIFEST_LAYOUT,
            purpose: Purpose::Backup,
            dialect: Dialect::Postgres,
            database: database.to_owned(),
            archive: format!("{database}_new.dump"),
            format: ArchiveFormat::Custom,
            mode: BackupMode::Full,
            sha256: String::new(),
            size: 0,
            files: Default::default(),
            server_version: "17".to_owned(),
            pg_dump_version: None,
            row_counts: Default::default(),
            run_id: "r".to_owned(),
            step_id: "s".to_owned(),
            created_at: "2026-01-01T00:00:00Z".to_owned(),
            duration_ms: 0,
        }
    }

    #[test]
    fn retention_removes_the_partial_files_whose_writer_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, "x").unwrap();
            p
        };
        let dead = file(".app_1_r_s.dump.partial");
        let live = file(".app_2_r_s.dump.partial");
        let other = file(".other_1_r_s.dump.partial");
        let writer = std::fs::File::open(&live).unwrap();
        writer.lock().unwrap();
        let keep_all = Retention::default();
        let pruned = prune(dir.path(), &current("app"), keep_all, Utc::now());
        assert!(
            pruned.partials.is_empty() && dead.exists(),
            "no retention, no removal"
        );

        let keep = Retention {
            retention_days: None,
            keep: Some(5),
        };
        let pruned = prune(dir.path(), &current("app"), keep, Utc::now());
        assert_eq!(pruned.partials, vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(live.exists(), "a partial a live writer holds was removed");
        assert!(other.exists(), "another database's partial was removed");
    }
}
