//! Writing back what a system crash took from a chain. A run's records go to its chain without
//! an fsync each; the state store commits each record's line (`Written`) with its event, and
//! that commit is the durable write-ahead record. A power cut can therefore leave the chain
//! ending before the head the state store recorded: before the chain is opened for more
//! records, the lines the store holds past the chain's end are appended (a torn last line cut
//! off first) and fsynced. Opening then verifies every hash and link as always, so a line the
//! store holds that does not continue the chain is refused like any damage.

use super::chain::{Locked, sync_dir};
use super::error::{AuditError, io};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// The number of complete lines (records) in the chain of `run_id`: 0 when there is none.
pub fn complete_records(dir: &Path, run_id: &str) -> Result<i64, AuditError> {
    let path = dir.join(format!("{run_id}.jsonl"));
    match std::fs::read(&path) {
        Ok(b) => Ok(b.iter().filter(|&&c| c == b'\n').count() as i64),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Appends to the chain of `run_id`, which has `have` complete records, the `lines` the state
/// store holds (sequence number and line, in order) from record `have + 1` on, and makes them
/// durable. Returns how many were written back: none when the store's lines do not start right
/// after the chain's end or leave a gap (the chain then stays short, and opening it says so).
pub fn write_back(
    dir: &Path,
    run_id: &str,
    have: i64,
    lines: &[(i64, String)],
) -> Result<usize, AuditError> {
    let continues = |have: i64| -> Vec<&str> {
        lines
            .iter()
            .zip(have + 1..)
            .take_while(|((seq, _), want)| seq == want)
            .map(|((_, line), _)| line.as_str())
            .collect()
    };
    if continues(have).is_empty() {
        return Ok(0);
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(format!("{run_id}.jsonl"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path))?;
    // Under the chain's lock, as its writers append: the chain is read again, and what the
    // store holds is written back after the records it has now.
    let _locked = Locked::exclusive(file.as_raw_fd());
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io(&path))?;
    // A torn last line is the first record written back: cut it.
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let have = bytes[..keep].iter().filter(|&&b| b == b'\n').count() as i64;
    let next = continues(have);
    if next.is_empty() {
        return Ok(0);
    }
    file.set_len(keep as u64).map_err(io(&path))?;
    let mut text = String::new();
    for line in &next {
        text.push_str(line);
        text.push('\n');
    }
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(keep as u64))
        .map_err(io(&path))?;
    file.write_all(text.as_bytes()).map_err(io(&path))?;
    file.sync_data().map_err(io(&path))?;
    // The file may be new, or made by the process that crashed before its folder was synced.
    sync_dir(dir);
    Ok(next.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, verify_bytes};
    use serde_json::{Map, Value as Json};

    fn body(event: &str) -> Map<String, Json> {
        let mut m = Map::new();
        m.insert("event".into(), Json::from(event));
        m
    }

    /// Three records written, the chain then cut back to its first one and a torn half line
    /// (what a power cut leaves); the lines the store kept bring it back whole.
    #[test]
    fn lines_the_store_kept_make_a_cut_chain_whole_again() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut log = AuditLog::open(dir.path(), "r1").unwrap();
        let lines: Vec<(i64, String)> = ["run_started", "step_started", "step_finished"]
            .iter()
            .map(|e| {
                let w = rt.block_on(log.write(body(e))).unwrap();
                (w.head.seq, w.line)
            })
            .collect();
        let head = log.head().clone();
        drop(log);
        let path = dir.path().join("r1.jsonl");
        let whole = std::fs::read(&path).unwrap();
        let first = lines[0].1.len() + 1;
        std::fs::write(&path, &whole[..first + 10]).unwrap();
        let have = complete_records(dir.path(), "r1").unwrap();
        assert_eq!(have, 1);
        // A gap in what the store gives writes nothing back.
        assert_eq!(write_back(dir.path(), "r1", have, &lines[2..]).unwrap(), 0);
        assert_eq!(write_back(dir.path(), "r1", have, &lines[1..]).unwrap(), 2);
        let report = verify_bytes(&std::fs::read(&path).unwrap(), Some(&head));
        assert_eq!(report.problem, None);
        assert_eq!(report.records, 3);
        assert_eq!(std::fs::read(&path).unwrap(), whole);
    }

    /// A chain lost entirely (its file never reached the disk) is written back from the store.
    #[test]
    fn a_chain_lost_whole_is_written_back() {
        let dir = tempfile::tempdir().unwrap();
        let line = "{\"a\":1}".to_owned();
        assert_eq!(complete_records(dir.path(), "gone").unwrap(), 0);
        assert_eq!(write_back(dir.path(), "gone", 0, &[(1, line)]).unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("gone.jsonl")).unwrap(),
            "{\"a\":1}\n"
        );
    }
}
