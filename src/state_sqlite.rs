//! How the SQLite state store writes an event: its whole transaction as one text,
//! `BEGIN IMMEDIATE; INSERT the event; write the step or run row; COMMIT`, run as one command on
//! the connection the store holds for its writes (`state_write::Writer`).
//!
//! sqlx runs each SQLite connection on a thread of its own and hands it one command at a time:
//! `BEGIN`, two or three statements and `COMMIT` were four or five commands, each a trip to that
//! thread and back. One text is one trip. Its parameters are numbered (`$n`) across the
//! statements, so every statement reads the same bound values, and the statements are prepared
//! once per text and kept (there are a dozen texts, one per kind of step and run write).
//!
//! The guarantees are those of the transaction: `BEGIN IMMEDIATE` takes the write lock first
//! (waiting up to the busy timeout), the commit is fsynced before the command answers
//! (`synchronous=FULL`), and a text that stops before its `COMMIT` (a failed statement, or a
//! caller that gave up waiting) leaves its transaction open on that connection only: the writer
//! closes it then, and closing rolls the transaction back, so nothing is half-written and the
//! next event goes on a new connection.

use crate::audit::Written;
use crate::run::Event;
use crate::state_write::{self as write, Effects, RunWrite, StepWrite};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use std::sync::{LazyLock, OnceLock};

type Q<'q> = Query<'q, sqlx::Any, AnyArguments>;

/// The event's `INSERT`: `$1` the run, `$2` to `$8` the event (`$2` its time), `$9` the line.
static EVENT: LazyLock<String> = LazyLock::new(|| write::event_insert(2, 9));

/// The step row a start writes: `$4`/`$5` the event's step and phase, `$2` its time, `$10`
/// the order, `$11` the attempt.
const STEP_STARTED: &str = "INSERT INTO runbook_steps (run_id, step, phase, ord, status, attempts, started_at, finished_at, outputs, error)
     VALUES ($1, $4, $5, $10, 'running', $11, $2, NULL, '{}', NULL)
     ON CONFLICT (run_id, step, phase) DO UPDATE SET status = 'running', attempts = $11, started_at = $2, finished_at = NULL, error = NULL";

/// The step row a verdict writes: `$10` the order, `$11` the status, `$12` the outputs, `$13`
/// the error, `$14` the change.
const STEP_ENDED: &str = "INSERT INTO runbook_steps (run_id, step, phase, ord, status, attempts, started_at, finished_at, outputs, error, db_change)
     VALUES ($1, $4, $5, $10, $11, 0, NULL, $2, $12, $13, $14)
     ON CONFLICT (run_id, step, phase) DO UPDATE SET status = $11, finished_at = $2, outputs = $12, error = $13, db_change = $14";

/// The run row's writes; their parameters follow the step's (`$10` on, as no event writes
/// both a step and the run, but numbered by `run_sql` all the same).
fn run_sql(run: &RunWrite, first: usize) -> String {
    let (a, b) = (first, first + 1);
    match run {
        RunWrite::Ended { .. } => {
            format!(
                "UPDATE runbook_runs SET status = ${a}, finished_at = $2, error = ${b} WHERE id = $1"
            )
        }
        RunWrite::Waiting => {
            "UPDATE runbook_runs SET status = 'waiting_approval' WHERE id = $1".into()
        }
        RunWrite::Resumed { .. } => format!(
            "UPDATE runbook_runs SET status = 'running', finished_at = NULL, error = NULL, pid = ${a}, host = ${b} WHERE id = $1"
        ),
    }
}

/// The transaction's text for an event with these effects, made once per kind and kept.
fn record_sql(effects: &Effects<'_>) -> &'static str {
    static TEXTS: [[OnceLock<String>; 4]; 3] = [const { [const { OnceLock::new() }; 4] }; 3];
    let (s, step, next) = match &effects.step {
        None => (0, "", 10),
        Some((_, _, StepWrite::Started { .. })) => (1, STEP_STARTED, 12),
        Some((_, _, StepWrite::Ended { .. })) => (2, STEP_ENDED, 15),
    };
    let r = match &effects.run {
        None => 0,
        Some(RunWrite::Ended { .. }) => 1,
        Some(RunWrite::Waiting) => 2,
        Some(RunWrite::Resumed { .. }) => 3,
    };
    TEXTS[s][r].get_or_init(|| {
        let mut text = format!("BEGIN IMMEDIATE; {};", EVENT.as_str());
        if !step.is_empty() {
            text.push_str(&format!(" {step};"));
        }
        if let Some(run) = &effects.run {
            text.push_str(&format!(" {};", run_sql(run, next)));
        }
        text.push_str(" COMMIT");
        text
    })
}

/// The query that writes an event of run `run_id` at `at` with its effects, in one text.
pub(crate) fn record<'q>(
    run_id: &str,
    (event, effects): (&Event, &Effects<'_>),
    audit: Option<&Written>,
    at: i64,
) -> Q<'q> {
    let q = sqlx::query(sqlx::AssertSqlSafe(record_sql(effects))).bind(run_id.to_owned());
    let q = write::bind_line(write::bind_event(q, at, event, audit), audit);
    let q = match &effects.step {
        Some((_, _, StepWrite::Started { ord, attempt })) => q.bind(*ord).bind(*attempt),
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
            .bind(*ord)
            .bind(status.as_str())
            .bind(outputs.clone())
            .bind(error.clone())
            .bind(change.clone()),
        None => q,
    };
    match &effects.run {
        Some(RunWrite::Ended { status, error }) => q.bind(status.clone()).bind(error.clone()),
        Some(RunWrite::Resumed { pid, host }) => q.bind(*pid).bind(host.clone()),
        Some(RunWrite::Waiting) | None => q,
    }
}

/// The transaction that records a new run (`$1` to `$17`, `bind_run`) and its first event.
pub(crate) fn create_run_sql(run_insert: &str) -> String {
    format!(
        "BEGIN IMMEDIATE; {run_insert}; {}; COMMIT",
        write::event_insert(18, 25)
    )
}

/// The transaction that records an approval (`$1` to `$8`) and its event.
pub(crate) fn approval_sql(insert: &str) -> String {
    format!(
        "BEGIN IMMEDIATE; {insert}; {}; COMMIT",
        write::event_insert(9, 16)
    )
}

#[cfg(test)]
mod tests {
    use crate::run::{Event, EventKind, Phase, RunRecord, RunStatus};
    use crate::state::{StateSpec, StateStore};
    use serde_json::json;
    use sqlx::Connection;
    use std::time::Duration;

    fn run() -> RunRecord {
        RunRecord {
            id: "r1".into(),
            playbook: "p".into(),
            file: "p.yaml".into(),
            env: "dev".into(),
            target: "t".into(),
            operator: "o".into(),
            host: "h".into(),
            pid: 1,
            content_hash: String::new(),
            plan_hash: String::new(),
            migrations_hash: String::new(),
            params: json!({}),
            vars: Vec::new(),
            tags: Vec::new(),
            skip_tags: Vec::new(),
            status: RunStatus::Running,
            started_at: 1,
            finished_at: None,
            error: None,
        }
    }

    fn started(step: &str) -> Event {
        Event::step(
            EventKind::StepStarted,
            step,
            Phase::Main,
            json!({"ord": 1, "attempt": 1}),
        )
    }

    /// The events the store holds: (seq, step).
    async fn events(store: &StateStore) -> Vec<(i64, Option<String>)> {
        let all = store.load_events("r1").await.unwrap();
        all.into_iter()
            .map(|(seq, _, _, step, _)| (seq, step))
            .collect()
    }

    /// An event whose text fails half-way, or whose caller stops waiting before its `COMMIT`,
    /// leaves no row behind, and the next event is written (on a new connection: the one
    /// with the open transaction is closed).
    #[tokio::test]
    async fn an_event_cut_short_leaves_nothing_and_the_next_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = StateStore::open(&StateSpec::Sqlite(path.clone()))
            .await
            .unwrap();
        let first = Event::run(EventKind::RunStarted, json!({}));
        store.create_run(&run(), "k", &first, None).await.unwrap();
        store.record("r1", &started("s1"), None).await.unwrap();

        // The step row's insert fails after the event's: the event is not kept.
        let url = format!("sqlite://{}", path.display());
        let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(
            "CREATE TRIGGER boom BEFORE INSERT ON runbook_steps WHEN NEW.step = 'boom'
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .execute(&mut other)
        .await
        .unwrap();
        let err = store.record("r1", &started("boom"), None).await;
        assert!(err.is_err(), "the trigger did not fail the event");
        store.record("r1", &started("s2"), None).await.unwrap();

        // Given up on while it waits for the write lock: the text never gets to its COMMIT.
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();
        let gone = tokio::time::timeout(
            Duration::from_millis(300),
            store.record("r1", &started("gone"), None),
        )
        .await;
        assert!(gone.is_err(), "the event was written past another's lock");
        sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
        other.close().await.unwrap();
        store.record("r1", &started("s3"), None).await.unwrap();

        let steps = |v: &[&str]| -> Vec<(i64, Option<String>)> {
            let mut out = vec![(1, None)];
            out.extend((2..).zip(v.iter().map(|s| Some((*s).to_owned()))));
            out
        };
        assert_eq!(events(&store).await, steps(&["s1", "s2", "s3"]));
        let mut rows: Vec<String> = store
            .load_steps("r1")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.step)
            .collect();
        rows.sort();
        assert_eq!(rows, ["s1", "s2", "s3"]);
        store.close().await;

        // A new process's store opens it and writes on.
        let store = StateStore::open(&StateSpec::Sqlite(path)).await.unwrap();
        store.record("r1", &started("s4"), None).await.unwrap();
        assert_eq!(events(&store).await, steps(&["s1", "s2", "s3", "s4"]));
        store.close().await;
    }
}
