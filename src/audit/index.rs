//! The audit folder's index of runs (`index.jsonl`), and the list of chains it holds.

use super::canonical::canonical;
use super::error::{AuditError, io};
use serde_json::Value as Json;
use std::io::Write;
use std::path::Path;

/// Adds a run to the audit folder's index, without an fsync: the index only orders the
/// listing. What says a run exists is its chain file and the state store's row, both made
/// durable; a line a system crash takes leaves the run listed by its chain file, in the order
/// of its id, which starts with its start time. A line a crash tore is skipped when read, and
/// the next entry starts on a line of its own.
pub fn index(dir: &Path, entry: &Json) -> Result<(), AuditError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join("index.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)
        .map_err(io(&path))?;
    let mut line = String::new();
    if !ends_a_line(&f).map_err(io(&path))? {
        line.push('\n');
    }
    line.push_str(&canonical(entry));
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(io(&path))
}

/// Whether the file is empty or ends with a line break (a crash can tear the last line).
fn ends_a_line(f: &std::fs::File) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8];
    f.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

/// The runs the index lists, oldest first (a torn line, even one cut inside a character, is
/// skipped alone).
pub fn read_index(dir: &Path) -> Vec<Json> {
    String::from_utf8_lossy(&std::fs::read(dir.join("index.jsonl")).unwrap_or_default())
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

#[cfg(test)]
mod tests {
    use super::{index, read_index};
    use serde_json::json;

    /// A crash tore the index's last line inside a character: reading skips that line alone,
    /// and the next entry starts on a line of its own.
    #[test]
    fn a_torn_last_line_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        index(dir.path(), &json!({"run_id": "a"})).unwrap();
        let path = dir.path().join("index.jsonl");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice("{\"run_id\":\"b\",\"operator\":\"é".as_bytes());
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        index(dir.path(), &json!({"run_id": "c"})).unwrap();
        let ids: Vec<String> = read_index(dir.path())
            .iter()
            .map(|e| e["run_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(ids, ["a", "c"]);
    }
}
