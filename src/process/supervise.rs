//! Supervision of every child `run`, `run_fed` and `spawn` start: the watchdog's client (its
//! pipe, restarted when the watchdog is gone), the observer the executor sets, and `Tracked`,
//! the record of a started child until it is reaped.

use super::{signal_groups, with_stdin};
use crate::pids::{self, Group};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// A child process as the rest of runbook records it: its pid (its process group's id too),
/// its start time (which tells it from a later process given the same pid) and its program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildId {
    pub pid: u32,
    pub start_time: u64,
    pub program: String,
}

/// Hears of every child `run` and `spawn` start: when it started and when it was reaped.
/// Called on the thread that starts or reaps the child; it must be quick and must not fail.
pub trait ChildObserver: Send + Sync {
    fn started(&self, child: &ChildId);
    fn reaped(&self, child: &ChildId);
}

static OBSERVER: RwLock<Option<Arc<dyn ChildObserver>>> = RwLock::new(None);

/// Sets (or, with `None`, removes) the one observer of children.
pub fn observe(observer: Option<Arc<dyn ChildObserver>>) {
    *OBSERVER.write().unwrap_or_else(|e| e.into_inner()) = observer;
}

fn observer() -> Option<Arc<dyn ChildObserver>> {
    OBSERVER.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The groups told to the watchdog, and the watchdog once started.
struct Supervision {
    enabled: bool,
    live: BTreeSet<Group>,
    watchdog: Option<Watchdog>,
}

/// A running watchdog: the write end of its stdin (we never wait for it: it ends after us).
struct Watchdog {
    pipe: std::io::PipeWriter,
    _handle: duct::Handle,
}

static SUPERVISION: Mutex<Supervision> = Mutex::new(Supervision {
    enabled: false,
    live: BTreeSet::new(),
    watchdog: None,
});

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// From now on the children of this process are stopped when it dies (see `src/watchdog.rs`).
/// Only the runbook binary calls this: the watchdog is that binary run with a hidden argument.
pub fn supervise() {
    lock(&SUPERVISION).enabled = true;
}

impl Supervision {
    /// Tells the watchdog a group started, starting the watchdog first if none runs (again,
    /// if it died: it is told every group still live).
    fn started(&mut self, group: Group) {
        if !self.enabled {
            return;
        }
        self.live.insert(group);
        let line = crate::watchdog::started_line(group);
        if self.send(&line) {
            return;
        }
        match start_watchdog() {
            Ok(watchdog) => {
                self.watchdog = Some(watchdog);
                let all: String = self
                    .live
                    .iter()
                    .map(|g| crate::watchdog::started_line(*g))
                    .collect();
                if !self.send(&all) {
                    tracing::warn!(
                        "the watchdog ended at once; children of this run are not stopped if runbook dies"
                    );
                }
            }
            Err(e) => tracing::warn!(
                "cannot start the watchdog ({e}); children of this run are not stopped if runbook dies"
            ),
        }
    }

    fn reaped(&mut self, group: Group) {
        if self.live.remove(&group) {
            self.send(&crate::watchdog::ended_line(group));
        }
    }

    /// Writes to the watchdog; false (and forgets it) when there is none or it is gone.
    fn send(&mut self, text: &str) -> bool {
        let Some(w) = self.watchdog.as_mut() else {
            return false;
        };
        if w.pipe.write_all(text.as_bytes()).is_ok() {
            return true;
        }
        self.watchdog = None;
        false
    }
}

/// Starts the runbook binary as the watchdog, reading the pipe we keep the write end of. The
/// pipe is close-on-exec, so no other child holds it open after we are gone.
fn start_watchdog() -> std::io::Result<Watchdog> {
    let (reader, pipe) = std::io::pipe()?;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let args = [crate::watchdog::ARG.to_owned()];
    let handle = with_stdin(&exe, &args, Path::new("/"), &BTreeMap::new())
        .stdin_file(reader)
        .stdout_null()
        .stderr_null()
        .start()?;
    Ok(Watchdog {
        pipe,
        _handle: handle,
    })
}

/// The groups of children `run`, `run_fed` or `spawn` started, told to the watchdog and the
/// observer until they are reaped. With `kill_on_drop`, dropping it before the children were
/// reaped (the future of `run` or `run_fed` dropped) kills their groups.
pub(super) struct Tracked {
    children: Vec<ChildId>,
    kill_on_drop: bool,
    /// The duct handle that reaps the children, when duct started them.
    handle: Option<Arc<duct::Handle>>,
}

impl Tracked {
    pub(super) fn new(
        pids: &[u32],
        program: &Path,
        kill_on_drop: bool,
        handle: Option<Arc<duct::Handle>>,
    ) -> Tracked {
        let program = program.file_name().map_or_else(
            || program.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        // Not reaped yet, so /proc still has it (a zombie at worst).
        let children: Vec<ChildId> = pids
            .iter()
            .map(|&pid| ChildId {
                pid,
                start_time: pids::start_time(pid).unwrap_or(0),
                program: program.clone(),
            })
            .collect();
        {
            let mut supervision = lock(&SUPERVISION);
            for c in &children {
                supervision.started(group_of(c));
            }
        }
        if let Some(o) = observer() {
            children.iter().for_each(|c| o.started(c));
        }
        Tracked {
            children,
            kill_on_drop,
            handle,
        }
    }

    /// The children were reaped: their groups are no longer ours to stop.
    pub(super) fn reaped(&mut self) {
        self.kill_on_drop = false;
        self.handle = None;
        let children = std::mem::take(&mut self.children);
        if children.is_empty() {
            return;
        }
        {
            let mut supervision = lock(&SUPERVISION);
            for c in &children {
                supervision.reaped(group_of(c));
            }
        }
        if let Some(o) = observer() {
            children.iter().for_each(|c| o.reaped(c));
        }
    }
}

impl Drop for Tracked {
    /// A `run` abandoned before its child ended kills the child's group. A `spawn`ed child
    /// dropped unreaped stays told to the watchdog: it is stopped when runbook ends.
    fn drop(&mut self) {
        if self.kill_on_drop {
            let pids: Vec<u32> = self.children.iter().map(|c| c.pid).collect();
            signal_groups(&pids, libc::SIGKILL);
            if let Some(handle) = self.handle.take() {
                let _ = handle.kill();
            }
            // Reaped by the waiting thread (duct's, or `run_fed`'s pump).
            self.reaped();
        }
    }
}

fn group_of(c: &ChildId) -> Group {
    Group {
        pgid: c.pid,
        start_time: c.start_time,
    }
}
