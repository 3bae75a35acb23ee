//! What one event writes to the state store: its own row, and the step and run rows it changes
//! (`Effects`), and the values its statements read (`Param`, bound alike by both stores). On
//! SQLite they are written in one `BEGIN IMMEDIATE` transaction (`state_sqlite.rs`); on
//! PostgreSQL here, as one statement whose data-modifying CTEs write the step and the run row
//! and whose main `INSERT` writes the event.
//!
//! One statement is one round trip where `BEGIN`, two or three statements and `COMMIT` took
//! four or five (the pool's ping included), with the same guarantees: a single statement
//! commits or fails as a whole, its commit is as durable as an explicit `COMMIT` (the same
//! `synchronous_commit`), and it takes the same row locks (a concurrent writer of the same
//! step row waits for it, and two writers of the same event number still collide on the
//! primary key). Its text is the same for every kind of event, and the events go on one
//! connection the store holds (`Writer`: the pool pings every connection handed back to it, a
//! round trip per event more), so it is prepared once: the first event takes two round trips,
//! every later one takes one (two after the connection sat idle long enough to be pinged).

use crate::audit::Written;
use crate::run::{Event, EventKind, Phase, StepStatus};
use crate::state_sqlite::Durable;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{AnyConnection, AnyPool, Connection};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a connection may sit idle before it is asked whether it still answers: a step can
/// take minutes, and a server or a firewall may drop a connection meanwhile.
pub(crate) const IDLE_PING: Duration = Duration::from_secs(30);

/// The one connection a PostgreSQL store writes events on: taken from the pool at the first
/// event and held until the store closes. A statement that fails, or whose caller stops
/// waiting for it, takes the connection with it (dropped, which closes it); the next event
/// takes a new one. (The SQLite store writes on a connection of its own:
/// `state_sqlite::Writer`.)
#[derive(Debug, Clone, Default)]
pub(crate) struct Writer(Arc<tokio::sync::Mutex<Option<Held>>>);

#[derive(Debug)]
struct Held {
    conn: AnyConnection,
    used: Instant,
}

impl Writer {
    /// Runs one statement on the held connection.
    pub async fn execute(
        &self,
        pool: &AnyPool,
        q: Query<'_, sqlx::Any, AnyArguments>,
    ) -> Result<(), sqlx::Error> {
        let mut slot = self.0.lock().await;
        // Out of the slot while it works: if this future is dropped half-way, so is the
        // connection, never to be used again with a transaction left open on it.
        let mut held = slot.take();
        if let Some(h) = held.as_mut()
            && h.used.elapsed() > IDLE_PING
            && h.conn.ping().await.is_err()
        {
            held = None;
        }
        let mut h = match held {
            Some(h) => h,
            None => Held {
                conn: pool.acquire().await?.detach(),
                used: Instant::now(),
            },
        };
        q.execute(&mut h.conn).await?;
        h.used = Instant::now();
        *slot = Some(h);
        Ok(())
    }

    /// Closes the held connection, if any.
    pub async fn close(&self) {
        if let Some(h) = self.0.lock().await.take() {
            let _ = h.conn.close().await;
        }
    }
}

/// The step row an event writes.
pub(crate) enum StepWrite {
    /// `step_started`: the step runs (again), attempt `attempt`.
    Started { ord: i64, attempt: i64 },
    /// `step_finished`, `step_failed`, `step_skipped`: the step's verdict.
    Ended {
        status: StepStatus,
        ord: i64,
        outputs: String,
        error: Option<String>,
        change: Option<String>,
    },
}

/// The run row an event changes.
pub(crate) enum RunWrite {
    /// `run_finished`, `run_interrupted`: the run's final status and error.
    Ended {
        status: String,
        error: Option<String>,
    },
    /// `run_waiting`: the run waits at a gate.
    Waiting,
    /// `run_resumed`: the run runs again, in process `pid` (started at `pid_start`) on `host`.
    Resumed {
        pid: i64,
        pid_start: i64,
        host: String,
    },
}

/// What an event changes besides its own row.
pub(crate) struct Effects<'e> {
    /// The step and phase, and what is written to their row.
    pub step: Option<(&'e str, Phase, StepWrite)>,
    pub run: Option<RunWrite>,
}

impl<'e> Effects<'e> {
    pub fn of(event: &'e Event) -> Effects<'e> {
        Effects {
            step: step_write(event),
            run: run_write(event),
        }
    }
}

fn int(event: &Event, key: &str) -> Option<i64> {
    event.data.get(key).and_then(|v| v.as_i64())
}

fn text(event: &Event, key: &str) -> Option<String> {
    event
        .data
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

fn step_write(event: &Event) -> Option<(&str, Phase, StepWrite)> {
    let (Some(step), Some(phase)) = (&event.step, event.phase) else {
        return None;
    };
    let ord = int(event, "ord").unwrap_or(0);
    let write = match event.kind {
        EventKind::StepStarted => StepWrite::Started {
            ord,
            attempt: int(event, "attempt").unwrap_or(1),
        },
        EventKind::StepFinished | EventKind::StepFailed | EventKind::StepSkipped => {
            StepWrite::Ended {
                status: match event.kind {
                    EventKind::StepFinished => StepStatus::Succeeded,
                    // A failed attempt with another due is not the step's verdict: the step
                    // is pending again (what it changed so far kept with it), and a resume
                    // after a stop during the wait runs it again.
                    EventKind::StepFailed
                        if event.data.get("will_retry").and_then(|v| v.as_bool()) == Some(true) =>
                    {
                        StepStatus::Pending
                    }
                    EventKind::StepFailed => StepStatus::Failed,
                    _ => StepStatus::Skipped,
                },
                ord,
                outputs: event
                    .data
                    .get("outputs")
                    .map_or_else(|| "{}".to_owned(), ToString::to_string),
                error: text(event, "error"),
                change: event.data.get("change").map(|c| c.to_string()),
            }
        }
        _ => return None,
    };
    Some((step, phase, write))
}

fn run_write(event: &Event) -> Option<RunWrite> {
    match event.kind {
        EventKind::RunFinished | EventKind::RunInterrupted => Some(RunWrite::Ended {
            status: text(event, "status").unwrap_or_else(|| "failed".into()),
            error: text(event, "error"),
        }),
        EventKind::RunWaiting => Some(RunWrite::Waiting),
        EventKind::RunResumed => Some(RunWrite::Resumed {
            pid: int(event, "pid").unwrap_or(0),
            pid_start: int(event, "pid_start").unwrap_or(0),
            host: text(event, "host").unwrap_or_default(),
        }),
        _ => None,
    }
}

/// The `INSERT` of a run's next event: the run's id is `$1`, the event's seven values are
/// `$first` to `$first + 6` (see `bind_event`), its audit record's line `$line` (see
/// `bind_line`). The next sequence number and the insert in one
/// statement: no window between reading the maximum and writing.
pub(crate) fn event_insert(first: usize, line: usize) -> String {
    let p: Vec<String> = (first..first + 7).map(|n| format!("${n}")).collect();
    format!(
        "INSERT INTO runbook_events (run_id, seq, at, kind, step, phase, data, audit_seq, audit_hash, audit_line)
         SELECT $1, COALESCE(MAX(seq), 0) + 1, {}, ${line} FROM runbook_events WHERE run_id = $1",
        p.join(", ")
    )
}

/// A value the statements of a write read, typed as its column is (a NULL keeps its type:
/// PostgreSQL infers a parameter's type from it). Both stores bind the same list: PostgreSQL
/// through sqlx (`bind`), SQLite through its own connection (`state_sqlite::Writer`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}

impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Self {
        Param::Int(v)
    }
}

impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(Some(v))
    }
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(Some(v.to_owned()))
    }
}

impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Self {
        Param::Text(v)
    }
}

/// Binds `params` in order.
pub(crate) fn bind<'q>(
    q: Query<'q, sqlx::Any, AnyArguments>,
    params: impl IntoIterator<Item = Param>,
) -> Query<'q, sqlx::Any, AnyArguments> {
    params.into_iter().fold(q, |q, p| match p {
        Param::Int(v) => q.bind(v),
        Param::Text(v) => q.bind(v),
    })
}

/// How far the run's chain was fsynced before the commit that carries it, when it was
/// (`Written::synced`): the run row's `audit_synced` (a run stopping, `state_sqlite::run_sql`
/// and `RECORD`).
pub(crate) fn synced_param(audit: Option<&Written>) -> Param {
    Param::Int(audit.filter(|w| w.synced).map(|w| w.head.seq))
}

/// The audit record's line `event_insert` reads (`$line`).
pub(crate) fn line_param(audit: Option<&Written>) -> Param {
    Param::Text(audit.map(|w| w.line.clone()))
}

/// The seven values `event_insert` reads after the run's id.
pub(crate) fn event_params(at: i64, event: &Event, audit: Option<&Written>) -> [Param; 7] {
    let head = audit.map(|w| &w.head);
    [
        at.into(),
        event.kind.as_str().into(),
        event.step.clone().into(),
        event.phase.map(|p| p.as_str().to_owned()).into(),
        event.data.to_string().into(),
        head.map(|h| h.seq).into(),
        head.map(|h| h.hash.clone()).into(),
    ]
}

/// Binds the audit record's line `event_insert` reads (`$line`).
pub(crate) fn bind_line<'q>(
    q: Query<'q, sqlx::Any, AnyArguments>,
    audit: Option<&Written>,
) -> Query<'q, sqlx::Any, AnyArguments> {
    bind(q, [line_param(audit)])
}

/// Binds the seven values `event_insert` reads after the run's id.
pub(crate) fn bind_event<'q>(
    q: Query<'q, sqlx::Any, AnyArguments>,
    at: i64,
    event: &Event,
    audit: Option<&Written>,
) -> Query<'q, sqlx::Any, AnyArguments> {
    bind(q, event_params(at, event, audit))
}

/// An event with its step and run rows in one PostgreSQL statement. The step CTE writes when
/// `$9` (the step's new status) is set: a start sets the attempt and start time and clears
/// the end, keeping outputs; a verdict sets the end, outputs, error and change, keeping the
/// attempt and start time. The run CTE writes when `$17` (the run's new status) is set:
/// `$18` says whether the end time and error change, `$21`/`$22` set the process that runs it,
/// `$24` how far the chain was fsynced before this commit (`synced_param`; NULL keeps it).
/// `$25` true commits without waiting for the server's WAL flush (`synchronous_commit = off`
/// for this statement's transaction: a step's verdict, flushed by the next synchronous commit,
/// as `Durable::WithNext` says). `$26` is the start time of the process `$21` names.
const RECORD: &str = "WITH step AS (
    INSERT INTO runbook_steps AS s (run_id, step, phase, ord, status, attempts, started_at, finished_at, outputs, error, db_change)
    SELECT $1, $4, $5, $10, $9, $11, $12, $13, $14, $15, $16 WHERE $9 IS NOT NULL
        AND ($25::boolean IS NOT TRUE OR set_config('synchronous_commit', 'off', true) IS NOT NULL)
    ON CONFLICT (run_id, step, phase) DO UPDATE SET
        status = EXCLUDED.status,
        attempts = CASE WHEN EXCLUDED.status = 'running' THEN EXCLUDED.attempts ELSE s.attempts END,
        started_at = CASE WHEN EXCLUDED.status = 'running' THEN EXCLUDED.started_at ELSE s.started_at END,
        finished_at = EXCLUDED.finished_at,
        outputs = CASE WHEN EXCLUDED.status = 'running' THEN s.outputs ELSE EXCLUDED.outputs END,
        error = EXCLUDED.error,
        db_change = CASE WHEN EXCLUDED.status = 'running' THEN s.db_change ELSE EXCLUDED.db_change END
), run AS (
    UPDATE runbook_runs SET
        status = $17,
        finished_at = CASE WHEN $18 THEN $19 ELSE finished_at END,
        error = CASE WHEN $18 THEN $20 ELSE error END,
        pid = COALESCE($21, pid),
        pid_start = CASE WHEN $21 IS NULL THEN pid_start ELSE $26 END,
        host = COALESCE($22, host),
        audit_synced = GREATEST(audit_synced, COALESCE($24::bigint, 0))
    WHERE id = $1 AND $17 IS NOT NULL
) ";

/// Writes an event of run `run_id` at `at` with its effects, on PostgreSQL: one statement.
pub(crate) async fn record_postgres(
    (writer, pool): (&Writer, &AnyPool),
    run_id: &str,
    (event, effects): (&Event, &Effects<'_>),
    audit: Option<&Written>,
    (at, durable): (i64, Durable),
) -> Result<(), sqlx::Error> {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{RECORD}{}", event_insert(2, 23)));
    let q = bind_event(
        sqlx::query(sqlx::AssertSqlSafe(SQL.as_str())).bind(run_id),
        at,
        event,
        audit,
    );
    // $9 to $16: the step row.
    let q = match &effects.step {
        Some((_, _, StepWrite::Started { ord, attempt })) => q
            .bind(Some(StepStatus::Running.as_str()))
            .bind(*ord)
            .bind(*attempt)
            .bind(Some(at))
            .bind(None::<i64>)
            .bind("{}")
            .bind(None::<String>)
            .bind(None::<String>),
        Some((
            _,
            _,
            StepWrite::Ended {
                status,
                ord,
                outputs,
                error,
                change,
            },
        )) => q
            .bind(Some(status.as_str()))
            .bind(*ord)
            .bind(0_i64)
            .bind(None::<i64>)
            .bind(Some(at))
            .bind(outputs.as_str())
            .bind(error.clone())
            .bind(change.clone()),
        None => q
            .bind(None::<&str>)
            .bind(0_i64)
            .bind(0_i64)
            .bind(None::<i64>)
            .bind(None::<i64>)
            .bind("{}")
            .bind(None::<String>)
            .bind(None::<String>),
    };
    // $17 to $22: the run row.
    let q = match &effects.run {
        Some(RunWrite::Ended { status, error }) => q
            .bind(Some(status.as_str()))
            .bind(true)
            .bind(Some(at))
            .bind(error.clone())
            .bind(None::<i64>)
            .bind(None::<String>),
        Some(RunWrite::Waiting) => q
            .bind(Some("waiting_approval"))
            .bind(false)
            .bind(None::<i64>)
            .bind(None::<String>)
            .bind(None::<i64>)
            .bind(None::<String>),
        Some(RunWrite::Resumed { pid, host, .. }) => q
            .bind(Some("running"))
            .bind(true)
            .bind(None::<i64>)
            .bind(None::<String>)
            .bind(Some(*pid))
            .bind(Some(host.clone())),
        None => q
            .bind(None::<&str>)
            .bind(false)
            .bind(None::<i64>)
            .bind(None::<String>)
            .bind(None::<i64>)
            .bind(None::<String>),
    };
    // $23: the audit record's line; $24: how far the chain was fsynced; $25: no flush wait;
    // $26: the start time of a resuming process.
    let pid_start = match &effects.run {
        Some(RunWrite::Resumed { pid_start, .. }) => *pid_start,
        _ => 0,
    };
    let q = bind(bind_line(q, audit), [synced_param(audit)])
        .bind(durable == Durable::WithNext)
        .bind(pid_start);
    writer.execute(pool, q).await
}
