//! sha256 of archives: a file read in chunks, a directory archive as the sum of its listing;
//! off the async threads, stopping on Ctrl-C or at the step's deadline.

use super::files::read_dir;
use super::guard::timed_out;
use super::manifest::{ArchiveFormat, FileSum};
use crate::db::op::{Op, OpError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Instant;
use tokio::sync::watch;

/// An archive's sha256, its size, and for a directory archive each file's sum.
pub(super) type ArchiveSum = (String, u64, BTreeMap<String, FileSum>);

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
    let path = path.to_path_buf();
    let cancel = op.cancel.clone();
    let deadline = op.left()?.map(|left| Instant::now() + left);
    let task = tokio::task::spawn_blocking(move || {
        if format == ArchiveFormat::Directory {
            hash_dir(&path, &cancel, deadline)
        } else {
            hash_file(&path, &cancel, deadline).map(|s| (s.sha256, s.size, BTreeMap::new()))
        }
    });
    match task.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(HashStop::Io(e))) => Err(OpError::Failed(e)),
        Ok(Err(HashStop::Interrupted)) => Err(OpError::Interrupted),
        Ok(Err(HashStop::TimedOut)) => Err(timed_out(op)),
        Err(e) => Err(OpError::failed(format!("hashing stopped: {e}"))),
    }
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
    let mut files = BTreeMap::new();
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
        files.insert(name, hash_file(&path, cancel, deadline)?);
    }
    let mut listing = String::new();
    let mut size = 0;
    for (name, sum) in &files {
        listing.push_str(&format!("{}  {name}\n", sum.sha256));
        size += sum.size;
    }
    Ok((hex::encode(Sha256::digest(listing.as_bytes())), size, files))
}
