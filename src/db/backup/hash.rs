//! sha256 of archives: a file read in chunks, a directory archive as the sum of its listing
//! (its files hashed on several threads); off the async threads, stopping on Ctrl-C or at the
//! step's deadline. A new archive is synced to disk on a thread of its own while it is hashed
//! ([`seal_archive`]): the disk writes it back while the hashing reads it from the cache.

use super::files::read_dir;
use super::guard::timed_out;
use super::manifest::{ArchiveFormat, FileSum};
use crate::db::op::{Op, OpError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::watch;

/// An archive's sha256, its size, and for a directory archive each file's sum.
pub(super) type ArchiveSum = (String, u64, BTreeMap<String, FileSum>);

/// At most this many threads hash the files of a directory archive.
const MAX_HASH_THREADS: usize = 8;

enum HashStop {
    Io(String),
    Interrupted,
    TimedOut,
}

/// sha256 and size of an archive; for a directory archive, of its listing, with each file's.
pub(super) async fn hash_archive(
    path: &Path,
    format: ArchiveFormat,
    op: &Op<'_>,
) -> Result<ArchiveSum, OpError> {
    hash_and_sync(path, format, false, op).await
}

/// As [`hash_archive`], for an archive just written and not yet synced (pg_dump ran with
/// `--no-sync`, `VACUUM INTO` never syncs): its files and, for a directory archive, the folder
/// itself are synced to disk beside the hashing, and the sum is returned once both are done.
pub(super) async fn seal_archive(
    path: &Path,
    format: ArchiveFormat,
    op: &Op<'_>,
) -> Result<ArchiveSum, OpError> {
    hash_and_sync(path, format, true, op).await
}

async fn hash_and_sync(
    path: &Path,
    format: ArchiveFormat,
    sync: bool,
    op: &Op<'_>,
) -> Result<ArchiveSum, OpError> {
    let path = path.to_path_buf();
    let cancel = op.cancel.clone();
    let deadline = op.left()?.map(|left| Instant::now() + left);
    let task = tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            let synced = sync.then(|| scope.spawn(|| sync_archive(&path, &cancel, deadline)));
            let sum = if format == ArchiveFormat::Directory {
                hash_dir(&path, &cancel, deadline)
            } else {
                hash_file(&path, &cancel, deadline).map(|s| (s.sha256, s.size, BTreeMap::new()))
            };
            let synced = synced.map_or(Ok(()), |t| {
                t.join()
                    .unwrap_or_else(|_| Err(HashStop::Io("a syncing thread panicked".to_owned())))
            });
            let sum = sum?;
            synced?;
            Ok(sum)
        })
    });
    match task.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(HashStop::Io(e))) => Err(OpError::Failed(e)),
        Ok(Err(HashStop::Interrupted)) => Err(OpError::Interrupted),
        Ok(Err(HashStop::TimedOut)) => Err(timed_out(op)),
        Err(e) => Err(OpError::failed(format!("hashing stopped: {e}"))),
    }
}

/// Syncs an archive to disk: a file, or a folder's files and then the folder (its entries).
/// Ctrl-C or the step's deadline stops it between two files (a file's sync, once begun, is
/// the kernel's to finish).
fn sync_archive(
    path: &Path,
    cancel: &watch::Receiver<bool>,
    deadline: Option<Instant>,
) -> Result<(), HashStop> {
    let sync = |p: &Path| {
        if *cancel.borrow() {
            return Err(HashStop::Interrupted);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(HashStop::TimedOut);
        }
        std::fs::File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|e| HashStop::Io(format!("cannot sync {}: {e}", p.display())))
    };
    if path.is_dir() {
        for file in read_dir(path).map_err(|e| HashStop::Io(e.to_string()))? {
            sync(&file)?;
        }
    }
    sync(path)
}

fn hash_file(
    path: &Path,
    cancel: &watch::Receiver<bool>,
    deadline: Option<Instant>,
) -> Result<FileSum, HashStop> {
    let io = |e: std::io::Error| HashStop::Io(format!("cannot read {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        if *cancel.borrow() {
            return Err(HashStop::Interrupted);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(HashStop::TimedOut);
        }
    }
    Ok(FileSum {
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

fn hash_dir(
    dir: &Path,
    cancel: &watch::Receiver<bool>,
    deadline: Option<Instant>,
) -> Result<ArchiveSum, HashStop> {
    let entries = read_dir(dir).map_err(|e| HashStop::Io(e.to_string()))?;
    let mut named = Vec::with_capacity(entries.len());
    for path in entries {
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !path.is_file() {
            return Err(HashStop::Io(format!(
                "{} holds `{name}`, which is not a file",
                dir.display()
            )));
        }
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        named.push((name, path, len));
    }
    // The largest first: a thread that takes it last would hash it alone after the others
    // are done.
    named.sort_by_key(|f| std::cmp::Reverse(f.2));
    // The files on as many threads as there are cores (pg_dump -j wrote them in parallel):
    // each thread takes the next file not yet taken.
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_HASH_THREADS)
        .min(named.len().max(1));
    let next = AtomicUsize::new(0);
    let sums: Vec<Result<Vec<(String, FileSum)>, HashStop>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some((name, path, _)) =
                        named.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        done.push((name.clone(), hash_file(path, cancel, deadline)?));
                    }
                    Ok(done)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(HashStop::Io("a hashing thread panicked".to_owned())))
            })
            .collect()
    });
    let mut files = BTreeMap::new();
    for sum in sums {
        files.extend(sum?);
    }
    let mut listing = String::new();
    let mut size = 0;
    for (name, sum) in &files {
        listing.push_str(&format!("{}  {name}\n", sum.sha256));
        size += sum.size;
    }
    Ok((hex::encode(Sha256::digest(listing.as_bytes())), size, files))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::op::Silent;
    use crate::redact::Redactor;

    /// A new archive is hashed as an existing one is, while it is synced; the sync stops on
    /// Ctrl-C and at the deadline; a folder whose entry cannot be opened to be synced is
    /// refused, not taken as durable.
    #[test]
    fn a_sealed_archive_sums_as_a_hashed_one_and_an_unsyncable_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.dir");
        std::fs::create_dir(&archive).unwrap();
        std::fs::write(archive.join("toc.dat"), b"toc").unwrap();
        std::fs::write(archive.join("3001.dat.gz"), vec![7u8; 3 << 20]).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let redactor = Redactor::default();
        let (_keep, cancel) = tokio::sync::watch::channel(false);
        let op = Op::new("run", "backup", cancel, None, &redactor, &Silent);
        let (sealed, hashed) = rt.block_on(async {
            (
                seal_archive(&archive, ArchiveFormat::Directory, &op).await,
                hash_archive(&archive, ArchiveFormat::Directory, &op).await,
            )
        });
        let (sealed, hashed) = (sealed.ok().unwrap(), hashed.ok().unwrap());
        assert_eq!(sealed, hashed);
        assert_eq!(sealed.1, (3 << 20) + 3);
        let (stop, cancel) = tokio::sync::watch::channel(false);
        assert!(sync_archive(&archive, &cancel, None).is_ok());
        let past = Some(Instant::now());
        assert!(matches!(
            sync_archive(&archive, &cancel, past),
            Err(HashStop::TimedOut)
        ));
        stop.send(true).unwrap();
        assert!(matches!(
            sync_archive(&archive, &cancel, None),
            Err(HashStop::Interrupted)
        ));
        let (_keep, cancel) = tokio::sync::watch::channel(false);
        std::os::unix::fs::symlink(dir.path().join("gone"), archive.join("3002.dat.gz")).unwrap();
        match sync_archive(&archive, &cancel, None) {
            Err(HashStop::Io(e)) => assert!(e.starts_with("cannot sync"), "{e}"),
            _ => panic!("an entry that cannot be synced must fail the archive"),
        }
    }
}
