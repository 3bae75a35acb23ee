//! The children of a run, recorded for `resume`. Each child process the run starts (through
//! `process`, whose observer this is) is appended to `.runbook/children/RUN` when it starts
//! and when it is reaped: its pid, start time and program. After a crash, `resume` stops what
//! the crashed process left running (`stop_left_running`) before it retries a step.
//!
//! A file in the project rather than rows in the state store: a pid means something on one
//! host only (the store may be a PostgreSQL database shared by many hosts), and a line is
//! written at every child's start and end without a round trip to a server. The file is not
//! fsynced: a killed process's writes are in the page cache already, and a host that loses its
//! page cache has lost the children too.

use super::ExecError;
use crate::pids::{self, Group};
use crate::process::{self, ChildId, ChildObserver};
use crate::run::RunRecord;
use crate::ui::Ui;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where the children of `run_id` are recorded; `None` for an id that is not a plain name.
fn log_path(root: &Path, run_id: &str) -> Option<PathBuf> {
    let plain = !run_id.is_empty()
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then(|| root.join(".runbook").join("children").join(run_id))
}

/// The record of one run's children, appended to while the run's engine lives.
struct ChildLog {
    path: PathBuf,
    file: File,
    /// The children started and not yet reaped.
    live: Mutex<BTreeMap<(u32, u64), String>>,
}

impl ChildLog {
    fn append(&self, line: &str) {
        // One short write to a file opened for appending: whole or not at all.
        if let Err(e) = (&self.file).write_all(line.as_bytes()) {
            tracing::warn!(
                "cannot record a child process in {}: {e}",
                self.path.display()
            );
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<(u32, u64), String>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ChildObserver for ChildLog {
    fn started(&self, c: &ChildId) {
        let program: String = c
            .program
            .chars()
            .map(|ch| if ch.is_control() { '?' } else { ch })
            .collect();
        self.live().insert((c.pid, c.start_time), program.clone());
        self.append(&format!("started {} {} {program}\n", c.pid, c.start_time));
    }

    fn reaped(&self, c: &ChildId) {
        self.live().remove(&(c.pid, c.start_time));
        self.append(&format!("reaped {} {}\n", c.pid, c.start_time));
    }
}

/// Records the children of a run while it lives; dropping it stops recording and, when every
/// child was reaped, removes the record.
pub(super) struct Recording {
    log: Arc<ChildLog>,
}

impl Recording {
    /// Starts recording the children of `run_id`; `None` (and a warning in the log) when the
    /// record cannot be written, which does not stop the run.
    pub(super) fn start(root: &Path, run_id: &str) -> Option<Recording> {
        let path = log_path(root, run_id)?;
        let opened = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| File::options().create(true).append(true).open(&path));
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("cannot record child processes in {}: {e}", path.display());
                return None;
            }
        };
        let log = Arc::new(ChildLog {
            path,
            file,
            live: Mutex::new(BTreeMap::new()),
        });
        process::observe(Some(log.clone()));
        Some(Recording { log })
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        process::observe(None);
        if self.log.live().is_empty() {
            let _ = std::fs::remove_file(&self.log.path);
        }
    }
}

/// The children a record says were started and not reaped, oldest first.
fn unreaped(text: &str) -> Vec<ChildId> {
    let mut live: Vec<ChildId> = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(kind), Some(Ok(pid)), Some(Ok(start_time))) = (
            parts.next(),
            parts.next().map(str::parse::<u32>),
            parts.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        match kind {
            "started" => live.push(ChildId {
                pid,
                start_time,
                program: parts.next().unwrap_or("?").to_owned(),
            }),
            "reaped" => live.retain(|c| (c.pid, c.start_time) != (pid, start_time)),
            _ => {}
        }
    }
    live
}

/// A child of the crashed run that was still running, and how many processes its group held.
struct Stopped {
    child: ChildId,
    processes: usize,
}

/// Before a resume retries anything: stops (SIGTERM, a grace period, SIGKILL) what the
/// crashed process of `record` left running on this host, waits for it to end, says so, and
/// clears the record. Returns what was stopped, as `program (pid N)`. Refuses the resume when
/// something outlasts SIGKILL: a step must not run again beside its first attempt.
pub(super) async fn stop_left_running(
    root: &Path,
    record: &RunRecord,
    ui: &Ui,
) -> Result<Vec<String>, ExecError> {
    let Some(path) = log_path(root, &record.id) else {
        return Ok(Vec::new());
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    let children = unreaped(&text);
    if children.is_empty() {
        let _ = std::fs::remove_file(&path);
        return Ok(Vec::new());
    }
    if record.host != crate::run::hostname() {
        ui.note(&format!(
            "run {} ran on host {}: processes it may have left running there cannot be checked from here",
            record.id, record.host
        ));
        return Ok(Vec::new());
    }
    let stopping = tokio::task::spawn_blocking(move || stop(children));
    let (stopped, left) = stopping.await.map_err(|e| {
        ui.error(
            &format!(
                "cannot stop the processes run {} left running: {e}",
                record.id
            ),
            None,
        );
        ExecError::Internal
    })?;
    if let Some(g) = left.first() {
        ui.error(
            &format!(
                "process {} of run {} still runs after SIGKILL",
                g.pgid, record.id
            ),
            Some("a step must not run again beside its first attempt: stop that process, then resume again"),
        );
        return Err(ExecError::Locked);
    }
    let _ = std::fs::remove_file(&path);
    let names: Vec<String> = stopped.iter().map(describe).collect();
    if !names.is_empty() {
        ui.note(&format!(
            "stopped {} left running by run {}: {}",
            crate::fmt::plural(stopped.len(), "process", "processes"),
            record.id,
            names.join(", ")
        ));
    }
    Ok(names)
}

/// Stops the groups of `children` that still run; returns them, and the groups that outlast
/// SIGKILL.
fn stop(children: Vec<ChildId>) -> (Vec<Stopped>, Vec<Group>) {
    let mut running = Vec::new();
    for child in children {
        let group = Group {
            pgid: child.pid,
            start_time: child.start_time,
        };
        let processes = group.members().len();
        if processes > 0 {
            running.push((group, Stopped { child, processes }));
        }
    }
    let groups: Vec<Group> = running.iter().map(|(g, _)| *g).collect();
    let left = pids::stop_groups(&groups);
    (running.into_iter().map(|(_, s)| s).collect(), left)
}

fn describe(s: &Stopped) -> String {
    let c = &s.child;
    if s.processes > 1 {
        format!(
            "{} (pid {}, with {} it started)",
            c.program,
            c.pid,
            crate::fmt::plural(s.processes - 1, "process", "processes")
        )
    } else {
        format!("{} (pid {})", c.program, c.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_gives_the_children_not_reaped() {
        let text = "started 10 100 pg_dump\nstarted 11 101 sh\nreaped 10 100\nstarted 10 200 pg dump 2\nreaped 10 999\ntorn";
        let live = unreaped(text);
        let seen: Vec<(u32, u64, &str)> = live
            .iter()
            .map(|c| (c.pid, c.start_time, c.program.as_str()))
            .collect();
        assert_eq!(seen, vec![(11, 101, "sh"), (10, 200, "pg dump 2")]);
    }

    #[test]
    fn only_plain_run_ids_name_a_record() {
        let root = Path::new("/p");
        assert!(log_path(root, "20260101-abc_1").is_some());
        assert!(log_path(root, "../x").is_none());
        assert!(log_path(root, "").is_none());
    }
}
