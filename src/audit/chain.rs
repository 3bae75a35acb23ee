//! `AuditLog`, one run's open chain: opened after its last complete record (a torn tail cut
//! off and noted), appended one record at a time, optionally mirrored to the sink. A run's
//! records are written without an fsync each (`write`): the state store's commit, which holds
//! the same line, is the durable one, and `restore.rs` writes back what a system crash took
//! from the chain. A record with no state store behind it (a refusal) is `append`ed: written
//! and fsynced. Another process may append to the same chain (`runbook approve` while the run
//! polls at its gate): each write holds the file's `flock` and first takes in, checked, what
//! the other appended.

use super::canonical::sealed;
use super::error::{AuditError, io};
use super::head::{GENESIS, Head, Written};
use super::sink::Sink;
use super::verify::{Problem, Scan, continue_chain, verify_reader};
use serde_json::{Map, Value as Json};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// An open chain of one run, appended to by the executor.
pub struct AuditLog {
    path: PathBuf,
    file: std::fs::File,
    run_id: String,
    head: Head,
    sink: Option<Sink>,
    /// A torn tail found and cut when the chain was opened; recorded with the next append.
    repaired: Option<usize>,
    /// The length of the file when it was last fsynced: what a system crash cannot take.
    durable: u64,
    /// The length of the file as this process last knew it (opened or appended to): records
    /// past it were appended by another process (`catch_up`).
    end: u64,
    /// The chain ends with the run's final record: nothing may follow it.
    sealed: bool,
    /// The chain's folder entry is not known to be durable: this process has not fsynced the
    /// folder, and the file may be new or made by a process that died before it did. Done with
    /// the records (`sync`).
    entry_unsynced: bool,
    /// An fsync of this chain failed: it is never reported durable again (a second fsync after
    /// a failed writeback can succeed with the pages gone).
    sync_failed: bool,
}

impl AuditLog {
    /// Opens (or creates) the chain of `run_id` in `dir`, positioned after its last complete
    /// record. A torn last line is cut off and noted in the next record.
    pub fn open(dir: &Path, run_id: &str) -> Result<AuditLog, AuditError> {
        AuditLog::open_expecting(dir, run_id, None)
    }

    /// Like [`AuditLog::open`], for a chain whose head the state store recorded (`expected`):
    /// a chain cut short before it, or whose record there is another, is refused as damaged
    /// rather than appended to (appending would make a cut chain look whole again).
    pub fn open_expecting(
        dir: &Path,
        run_id: &str,
        expected: Option<&Head>,
    ) -> Result<AuditLog, AuditError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(format!("{run_id}.jsonl"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io(&path))?;
        // Read, and a torn tail cut, under the file's lock: a record another process is
        // writing (its run, while this is an approval) is not taken for a torn one.
        let _locked = Locked::exclusive(file.as_raw_fd());
        let mut existing = Vec::new();
        (&file).read_to_end(&mut existing).map_err(io(&path))?;
        // Only the verdict and the head are needed: no record is kept.
        let report = verify_reader(&existing[..], expected, &Scan::default());
        let mut repaired = None;
        let keep = match &report.problem {
            None => existing.len(),
            Some(Problem::Torn { line, .. }) => {
                repaired = Some(*line);
                existing
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1)
            }
            Some(p) => {
                return Err(AuditError::Damaged(
                    path.display().to_string(),
                    p.describe(),
                ));
            }
        };
        if keep < existing.len() {
            file.set_len(keep as u64).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        // The folder entry is made durable with the records (`sync`), before the store notes
        // the chain as fsynced: until then a system crash may take the whole file, and the
        // store's lines write it back (`restore.rs`), as they do a lost tail.
        if !existing.is_empty() && keep == existing.len() {
            // Records an earlier process wrote without an fsync become durable before any
            // record follows them.
            file.sync_data().map_err(io(&path))?;
        }
        Ok(AuditLog {
            path,
            file,
            run_id: run_id.to_owned(),
            head: Head {
                seq: report.records as i64,
                hash: report.head.unwrap_or_else(|| GENESIS.to_owned()),
            },
            sink: None,
            repaired,
            durable: keep as u64,
            end: keep as u64,
            sealed: report.last_event.as_deref().is_some_and(is_final),
            entry_unsynced: true,
            sync_failed: false,
        })
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends every record to a central append-only table as well.
    pub fn set_sink(&mut self, sink: Sink) {
        self.sink = Some(sink);
    }

    /// Appends one record (the body gets `seq`, `prev`, `hash`, `ts`, `run_id`), fsyncs it, and
    /// returns the new head: for a record no state store commit makes durable.
    pub async fn append(&mut self, body: Map<String, Json>) -> Result<Head, AuditError> {
        let written = self.write(body).await?;
        self.sync()?;
        Ok(written.head)
    }

    /// Writes one record (the body gets `seq`, `prev`, `hash`, `ts`, `run_id`) without an
    /// fsync, and returns the new head and the line (for the state store, whose commit makes
    /// it durable).
    pub async fn write(&mut self, mut body: Map<String, Json>) -> Result<Written, AuditError> {
        if let Some(line) = self.repaired.take() {
            let mut note = Map::new();
            note.insert("event".into(), Json::from("torn_tail_repaired"));
            note.insert(
                "detail".into(),
                Json::from(format!(
                    "line {line} was cut short by a crash while being written and was removed"
                )),
            );
            // Nothing in the state store carries the note: it is made durable here.
            Box::pin(self.write(note)).await?;
            self.sync()?;
        }
        // Another process may append to this chain too (`runbook approve` while the run polls
        // at its gate): each append holds the file's lock and first takes in what the other
        // appended, so every record links to the one before it in the file.
        let _locked = Locked::exclusive(self.file.as_raw_fd());
        self.catch_up()?;
        if self.sealed {
            return Err(AuditError::Sealed(self.path.display().to_string()));
        }
        let seq = self.head.seq + 1;
        body.insert("seq".into(), Json::from(seq));
        body.insert("prev".into(), Json::from(self.head.hash.clone()));
        body.insert("run_id".into(), Json::from(self.run_id.clone()));
        body.entry("ts").or_insert_with(|| {
            Json::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        });
        // One canonical build gives both the hash and the line that carries it.
        let (hash, mut line) = sealed(&body);
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(io(&self.path))?;
        self.end += line.len() as u64;
        self.sealed = body
            .get("event")
            .and_then(Json::as_str)
            .is_some_and(is_final);
        line.pop();
        self.head = Head { seq, hash };
        if let Some(sink) = &mut self.sink {
            body.insert("hash".into(), Json::from(self.head.hash.clone()));
            sink.insert(&self.run_id, seq, &self.head.hash, &Json::Object(body))
                .await?;
        }
        Ok(Written {
            head: self.head.clone(),
            line,
            synced: false,
        })
    }

    /// Takes in the records another process appended since this one last knew the file: they
    /// must chain on from the head known here, which moves past them. Called with the file
    /// locked.
    fn catch_up(&mut self) -> Result<(), AuditError> {
        let len = self.file.metadata().map_err(io(&self.path))?.len();
        if len == self.end {
            return Ok(());
        }
        let damaged = |why: String| AuditError::Damaged(self.path.display().to_string(), why);
        if len < self.end {
            return Err(damaged(format!(
                "it is {len} bytes long, shorter than the {} bytes this process knew",
                self.end
            )));
        }
        let mut added = vec![0; usize::try_from(len - self.end).unwrap_or(0)];
        self.file
            .read_exact_at(&mut added, self.end)
            .map_err(io(&self.path))?;
        let (head, last_event) = continue_chain(&added, &self.head, &self.run_id).map_err(|p| {
            damaged(format!(
                "records another process appended: {}",
                p.describe()
            ))
        })?;
        self.head = head;
        self.sealed = last_event.as_deref().is_some_and(is_final);
        self.end = len;
        Ok(())
    }

    /// Makes every record written so far durable, and the chain's folder entry. After a failed
    /// fsync it always fails.
    pub fn sync(&mut self) -> Result<(), AuditError> {
        if self.sync_failed {
            return Err(io(&self.path)(std::io::Error::other(
                "an earlier fsync of this chain failed: what it held may not be on the disk",
            )));
        }
        let synced = self.sync_once();
        self.sync_failed = synced.is_err();
        synced
    }

    fn sync_once(&mut self) -> Result<(), AuditError> {
        let len = self.file.metadata().map_err(io(&self.path))?.len();
        if len != self.durable {
            self.file.sync_data().map_err(io(&self.path))?;
            self.durable = len;
        }
        if self.entry_unsynced {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
            self.entry_unsynced = false;
        }
        Ok(())
    }

    /// A test hook (`RUNBOOK_FAILPOINT=lost:...`): cuts the file back to what was last made
    /// durable, as a power cut would.
    pub fn lose_unsynced(&self) {
        let _ = self.file.set_len(self.durable);
    }
}

/// The record that ends a chain: a run's `run_finished`, a refusal's `run_refused`.
fn is_final(event: &str) -> bool {
    matches!(event, "run_finished" | "run_refused")
}

/// An exclusive `flock` on a chain's file (its descriptor, open for longer than the guard
/// lives), let go when dropped. A file system without locks gives none: the chain is then
/// appended to as before locks were taken (one process at a time, in practice).
pub(super) struct Locked(Option<std::os::fd::RawFd>);

impl Locked {
    pub(super) fn exclusive(fd: std::os::fd::RawFd) -> Locked {
        // SAFETY: flock on a descriptor the chain's file keeps open.
        let taken = unsafe { libc::flock(fd, libc::LOCK_EX) } == 0;
        Locked(taken.then_some(fd))
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if let Some(fd) = self.0 {
            // SAFETY: as above.
            unsafe {
                libc::flock(fd, libc::LOCK_UN);
            }
        }
    }
}

/// Makes a folder's entries durable (a new chain, a renamed signature).
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify::verify_bytes;

    fn body(event: &str) -> Map<String, Json> {
        let mut b = Map::new();
        b.insert("event".into(), Json::from(event));
        b
    }

    /// Two processes appending to one chain in turn (here two logs of it in one process):
    /// each takes in what the other appended, and the file stays one chain, every record
    /// linked to the one before it.
    #[tokio::test]
    async fn appends_from_two_logs_of_one_chain_stay_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = AuditLog::open(dir.path(), "r1").unwrap();
        run.write(body("run_started")).await.unwrap();
        let mut approver = AuditLog::open(dir.path(), "r1").unwrap();
        run.write(body("step_started")).await.unwrap();
        approver.write(body("approval")).await.unwrap();
        let head = run.write(body("step_started")).await.unwrap().head;
        assert_eq!(head.seq, 4);
        let bytes = std::fs::read(run.path()).unwrap();
        let report = verify_bytes(&bytes, Some(&head));
        assert!(report.problem.is_none(), "{:?}", report.problem);
        assert_eq!(report.records, 4);
    }

    /// A run's final record closes its chain: an approval written after it (by a process
    /// that opened the chain before the run finished, or after) is refused, not appended.
    #[tokio::test]
    async fn nothing_is_appended_after_the_runs_final_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = AuditLog::open(dir.path(), "r1").unwrap();
        run.write(body("run_started")).await.unwrap();
        let mut approver = AuditLog::open(dir.path(), "r1").unwrap();
        run.write(body("run_finished")).await.unwrap();
        let late = approver.write(body("approval")).await;
        assert!(matches!(late, Err(AuditError::Sealed(_))), "{late:?}");
        let mut reopened = AuditLog::open(dir.path(), "r1").unwrap();
        let late = reopened.write(body("approval")).await;
        assert!(matches!(late, Err(AuditError::Sealed(_))), "{late:?}");
        let after = run.write(body("step_started")).await;
        assert!(matches!(after, Err(AuditError::Sealed(_))), "{after:?}");
        let report = verify_bytes(&std::fs::read(run.path()).unwrap(), None);
        assert!(report.problem.is_none(), "{:?}", report.problem);
        assert_eq!(report.records, 2);
    }

    /// What another process appended must chain on: a record that does not link to the head
    /// known here is refused, not written after.
    #[tokio::test]
    async fn an_appended_record_that_does_not_chain_on_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = AuditLog::open(dir.path(), "r1").unwrap();
        run.write(body("run_started")).await.unwrap();
        let mut other = AuditLog::open(dir.path(), "r2").unwrap();
        let line = other.write(body("forged")).await.unwrap().line;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(run.path())
            .unwrap();
        f.write_all(format!("{line}\n").as_bytes()).unwrap();
        let refused = run.write(body("step_started")).await;
        assert!(
            matches!(refused, Err(AuditError::Damaged(..))),
            "{refused:?}"
        );
    }
}
