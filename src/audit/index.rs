//! The audit folder's index of runs (`index.jsonl`), and the list of chains it holds.

use super::canonical::canonical;
use super::error::{AuditError, io};
use serde_json::Value as Json;
use std::io::Write;
use std::path::Path;

/// Adds a run to the audit folder's index, without an fsync: the index only orders the
/// listing. What says a run exists is its chain file and the state store's row, both made
/// durable; a line a system crash takes (or tears: unreadable lines are skipped) leaves the run
/// listed by its chain file, in the order of its id, which starts with its start time.
pub fn index(dir: &Path, entry: &Json) -> Result<(), AuditError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join("index.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    let mut line = canonical(entry);
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(io(&path))
}

/// The runs the index lists, oldest first.
pub fn read_index(dir: &Path) -> Vec<Json> {
    std::fs::read_to_string(dir.join("index.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The run ids that have a chain in the audit folder, oldest first by the index, then the rest.
pub fn chains(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = read_index(dir)
        .iter()
        .filter_map(|e| e["run_id"].as_str().map(str::to_owned))
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".jsonl"))
                        .map(str::to_owned)
                })
                .filter(|n| n != "index")
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut seen = std::collections::HashSet::with_capacity(ids.len() + files.len());
    ids.retain(|id| seen.insert(id.clone()));
    for f in files {
        if seen.insert(f.clone()) {
            ids.push(f);
        }
    }
    ids
}
