//! What a migration's statement waits on, watched from the migration lock's second connection
//! (opened at the first look) while it runs (PostgreSQL): the sessions blocking it (`pg_blocking_pids`, `pg_stat_activity`) and
//! the progress of a `CREATE INDEX CONCURRENTLY` (`pg_stat_progress_create_index`), polled
//! every [`WATCH_POLL`]. Each new blocker and each new index build phase is a note; the wait
//! and the build's counts are the step's detail. With `on_blocked`, a session that blocked the
//! migration for longer than `after` (since runbook first saw it, across lock retries) is
//! cancelled or terminated, once, and named in a note. A failing poll is skipped: watching
//! never fails a migration.

use super::blockers::{self, Blocker, Stopped};
use super::lock::MigrationLock;
use crate::db::op::{Op, OpError};
use crate::fmt::duration;
use crate::playbook::BlockerStop;
use serde::Serialize;
use sqlx::{PgConnection, Row};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a running migration statement is looked at.
pub const WATCH_POLL: Duration = Duration::from_millis(500);

/// Index build phases kept in the outputs; more are counted in the notes only.
const MAX_SAMPLES: usize = 50;

/// One sample of an index build, kept when its phase changes.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSample {
    pub file: String,
    pub index: String,
    pub phase: String,
    pub blocks_done: i64,
    pub blocks_total: i64,
    pub tuples_done: i64,
    pub tuples_total: i64,
    /// Milliseconds since the statement started.
    pub at_ms: u64,
}

/// What the watcher saw during one operation (apply, revert, rehearse).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Watched {
    pub blocked_by: Vec<Blocker>,
    pub stopped: Vec<Stopped>,
    pub index_progress: Vec<BuildSample>,
}

/// The watcher's state, kept by the migration lock for the whole operation.
#[derive(Debug, Default)]
pub struct Watch {
    /// What `on_blocked` asks for, and after how long.
    pub on_blocked: Option<(BlockerStop, Duration)>,
    /// The file running now, as shown to people.
    pub file: String,
    pub seen: Watched,
    /// When each blocker (by pid and backend start) was first seen.
    first_seen: HashMap<(i32, i64), Instant>,
    phase: Option<String>,
    /// A blocker whose stop was sent and not yet answered: the watcher is dropped when the
    /// migration's statement ends, which the stop itself lets happen at once (`settle`).
    stopping: Option<(Blocker, BlockerStop)>,
}

impl MigrationLock {
    /// Records a stop the watcher sent but was dropped before it heard back (the statement
    /// it unblocked ended first): a session that is gone now was stopped by it; one still
    /// there is stopped now, as was asked.
    pub(super) async fn settle(&mut self, op: &Op<'_>) {
        let Some((b, how)) = self.watch.stopping.take() else {
            return;
        };
        let Some((conn, _, watch)) = self.watcher().await else {
            return;
        };
        let mut stopped = blockers::stop(conn, &b, how).await;
        // Not signalled now because it is gone: the stop sent before ended it.
        stopped.signalled = stopped.signalled || blockers::gone(conn, &b).await;
        watch.record_stop(stopped, op);
    }

    /// Polls what the target connection's statement waits on, for as long as it runs (the
    /// caller drops this future when the statement ends). Never resolves.
    pub(super) async fn watch(&mut self, op: &Op<'_>) -> std::convert::Infallible {
        let started = Instant::now();
        self.watch.phase = None;
        loop {
            tokio::time::sleep(WATCH_POLL).await;
            // The second connection opens here, once a statement has run a moment.
            let Some((conn, pid, watch)) = self.watcher().await else {
                continue;
            };
            poll_blockers(conn, pid, watch, op).await;
            poll_build(conn, pid, watch, started, op).await;
        }
    }
}

impl Watch {
    fn record_stop(&mut self, stopped: Stopped, op: &Op<'_>) {
        op.note(&stopped.describe(&self.file));
        self.seen.stopped.push(stopped);
    }

    /// A lock timeout's error, naming the sessions seen blocking the file that timed out.
    pub(super) fn blame(&self, e: OpError) -> OpError {
        let who: Vec<String> = self
            .seen
            .blocked_by
            .iter()
            .filter(|b| b.file == self.file)
            .map(|b| {
                format!(
                    "pid {} (user {}, application {})",
                    b.pid, b.user, b.application
                )
            })
            .collect();
        if who.is_empty() {
            return e;
        }
        let add = |m: String| format!("{m}; it waited for {}", who.join(", "));
        match e {
            OpError::Failed(m) => OpError::Failed(add(m)),
            OpError::NothingCommitted(m) => OpError::NothingCommitted(add(m)),
            other => other,
        }
    }
}

async fn poll_blockers(c: &mut PgConnection, pid: i32, w: &mut Watch, op: &Op<'_>) {
    let list = match blockers::blocking(c, pid).await {
        Ok(list) => list,
        Err(e) => {
            tracing::debug!("cannot read what blocks the migration: {e}");
            return;
        }
    };
    for mut b in list {
        let key = (b.pid, b.backend_start);
        let first = *w.first_seen.entry(key).or_insert_with(Instant::now);
        let blocked = first.elapsed();
        b.file = w.file.clone();
        b.blocked_ms = blocked.as_millis() as u64;
        match w
            .seen
            .blocked_by
            .iter_mut()
            .find(|s| (s.pid, s.backend_start) == key)
        {
            Some(known) => known.blocked_ms = b.blocked_ms,
            None => {
                op.note(&format!(
                    "`{}` waits for a lock held by {}",
                    w.file,
                    b.describe()
                ));
                w.seen.blocked_by.push(b.clone());
            }
        }
        op.detail(&format!(
            "blocked by pid {} for {}",
            b.pid,
            duration(Duration::from_millis(b.blocked_ms))
        ));
        let Some((how, after)) = w.on_blocked else {
            continue;
        };
        if blocked < after
            || w.seen
                .stopped
                .iter()
                .any(|s| (s.pid, s.backend_start) == key)
        {
            continue;
        }
        w.stopping = Some((b.clone(), how));
        let stopped = blockers::stop(c, &b, how).await;
        w.stopping = None;
        w.record_stop(stopped, op);
    }
}

async fn poll_build(c: &mut PgConnection, pid: i32, w: &mut Watch, started: Instant, op: &Op<'_>) {
    let row = sqlx::query(
        "SELECT phase::text, coalesce(blocks_done, 0)::int8, coalesce(blocks_total, 0)::int8, \
                coalesce(tuples_done, 0)::int8, coalesce(tuples_total, 0)::int8, \
                coalesce(nullif(index_relid, 0)::regclass::text, relid::regclass::text), \
                command::text \
         FROM pg_stat_progress_create_index WHERE pid = $1",
    )
    .bind(pid)
    .fetch_optional(&mut *c)
    .await;
    let row = match row {
        Ok(Some(row)) => row,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!("cannot read the index build's progress: {e}");
            return;
        }
    };
    let get = |i: usize| row.try_get::<i64, _>(i).unwrap_or(0);
    let s = BuildSample {
        file: w.file.clone(),
        index: row.try_get(5).unwrap_or_default(),
        phase: row.try_get(0).unwrap_or_default(),
        blocks_done: get(1),
        blocks_total: get(2),
        tuples_done: get(3),
        tuples_total: get(4),
        at_ms: started.elapsed().as_millis() as u64,
    };
    let command: String = row.try_get(6).unwrap_or_default();
    let counts = s.counts();
    op.detail(&format!("{command} {}: {}{counts}", s.index, s.phase));
    if w.phase.as_deref() != Some(s.phase.as_str()) {
        op.note(&format!(
            "`{}`: {command} {}: {}{counts}",
            w.file, s.index, s.phase
        ));
        w.phase = Some(s.phase.clone());
        if w.seen.index_progress.len() < MAX_SAMPLES {
            w.seen.index_progress.push(s);
        }
    }
}

impl BuildSample {
    /// `, blocks 120 of 5000 (2%)` and the tuples likewise, where the phase counts them.
    fn counts(&self) -> String {
        let mut out = String::new();
        for (what, done, total) in [
            ("blocks", self.blocks_done, self.blocks_total),
            ("tuples", self.tuples_done, self.tuples_total),
        ] {
            if total > 0 {
                let pct = crate::fmt::percent(done as f64, total as f64);
                out.push_str(&format!(", {what} {done} of {total} ({pct:.0}%)"));
            }
        }
        out
    }
}
