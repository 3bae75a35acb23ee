//! A helper lost while it counts (`src/db/health/snapshot.rs`, `shared.rs`): a server that
//! ends its backend (an administrator's `pg_terminate_backend`, a pooler dropping it) costs
//! the counts nothing but time. The message of row or orphan counts it had taken from the
//! list it shares with the checks' connection is counted on the checks' connection, every
//! figure exact and no error reported.
//!
//! The helper is made to wait where the test wants it: a session holds a table the helper is
//! about to read, the test sees the helper wait for that lock, ends its backend, then lets the
//! table go (well within the checks' lock timeout of at most 5 s).

use crate::health::health_outputs;
use crate::health_helper::{TABLES, checks_playbook, tables};
use crate::support::pg::Session;
use crate::support::{Project, Running, Target};
use std::time::{Duration, Instant};

/// The backends that wait for a lock on `table` in `db`'s database.
fn waiting_for(db: &str, table: &str) -> Vec<i32> {
    crate::support::pg::cluster()
        .psql(
            db,
            &format!(
                "SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 WHERE c.relname = '{table}' AND NOT l.granted \
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
        )
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// runbook's backends in `db`'s database, oldest first (psql's left out).
fn runbook_backends(db: &str) -> Vec<i32> {
    crate::support::pg::cluster()
        .psql(
            db,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name NOT LIKE 'psql%' AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend' ORDER BY backend_start",
        )
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// Runs `checks` in `p` in the background, logging at debug level, while `held` keeps
/// `table` locked (and `also` keeps other tables locked): once a backend waits for `table`,
/// checks that it is the helper (the newest of the run's three backends: the run lock's, the
/// checks' and the helper), ends it, then lets every table go. Returns the run's log and the
/// step's `checks` output; the run must pass.
fn run_losing_the_helper(
    p: &Project,
    db: &str,
    checks: &str,
    (held, table): (Session, &str),
    also: Vec<Session>,
) -> (String, serde_json::Value) {
    checks_playbook(p, checks);
    let target = p.target.arg();
    let log = p.path().join("runbook.log");
    let mut run = Running(
        p.base(&["run", "checks", "--target", &target])
            .env("RUST_LOG", "runbook=debug")
            .start(&log),
    );
    let began = Instant::now();
    let waiter = loop {
        if let [pid] = waiting_for(db, table)[..] {
            break pid;
        }
        let ended = run.0.try_wait().unwrap();
        let printed = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            ended.is_none(),
            "the run ended before anything waited for {table}:\n{printed}"
        );
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "nothing waited for {table}:\n{printed}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let backends = runbook_backends(db);
    assert_eq!(backends.len(), 3, "the run's backends: {backends:?}");
    assert_eq!(
        backends.last(),
        Some(&waiter),
        "the checks' connection waited for {table}, not the helper"
    );
    let cluster = crate::support::pg::cluster();
    assert_eq!(
        cluster.psql(db, &format!("SELECT pg_terminate_backend({waiter})")),
        "t"
    );
    held.release();
    for session in also {
        session.release();
    }
    let status = run.0.wait().unwrap();
    let printed = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{printed}");
    (printed, health_outputs(p)["checks"].clone())
}

/// Shared in name order, the checks' connection counting from the front (it waits at `T0`,
/// the first) and the helper from the back, whose first message holds `T99` (the last): ended
/// while it waits for `T99`, its part is counted by the checks' connection, every table
/// exactly.
#[test]
fn a_helper_ended_mid_count_leaves_its_part_to_the_checks_connection() {
    let p = Project::new(|_| Target::postgres("health_helper_ended"));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    tables(&url, "i % 5");
    let cluster = crate::support::pg::cluster();
    let first = cluster.hold(&url, "BEGIN; LOCK TABLE \"T0\" IN ACCESS EXCLUSIVE MODE;");
    let held = cluster.hold(&url, "BEGIN; LOCK TABLE \"T99\" IN ACCESS EXCLUSIVE MODE;");
    let (_, checks) = run_losing_the_helper(&p, &url, "[row_counts]", (held, "T99"), vec![first]);
    let rows = &checks["row_counts"];
    assert!(rows["errors"].as_object().unwrap().is_empty(), "{rows:#}");
    let counted = rows["tables"].as_object().unwrap();
    assert_eq!(counted.len(), TABLES, "{rows:#}");
    for i in 0..TABLES {
        assert_eq!(counted[&format!("T{i}")], i % 5, "T{i}");
    }
}

/// Children `C000`..`C299` of `P`, each behind a `NOT VALID` foreign key with `i % 3` orphaned
/// rows, in key order by name; `C000` and `C180` are large (1.1 million rows, 1,100 of them
/// orphans), so `row_counts` estimates them from the statistics and only the orphan counts
/// read them.
fn children(url: &str) {
    crate::support::pg::cluster().psql(
        url,
        "CREATE TABLE \"P\" (id int PRIMARY KEY); INSERT INTO \"P\" VALUES (1);
         DO $$ BEGIN FOR i IN 0..299 LOOP
           EXECUTE format('CREATE TABLE \"C%s\" (id int, p int) WITH (autovacuum_enabled = off)', lpad(i::text, 3, '0'));
           IF i IN (0, 180) THEN
             EXECUTE format('INSERT INTO \"C%s\" SELECT g, CASE WHEN g %% 1000 = 0 THEN 99 ELSE 1 END FROM generate_series(1, 1100000) g', lpad(i::text, 3, '0'));
           ELSE
             EXECUTE format('INSERT INTO \"C%s\" SELECT g, CASE WHEN g <= %s THEN 99 ELSE 1 END FROM generate_series(1, 3) g', lpad(i::text, 3, '0'), i % 3);
           END IF;
           EXECUTE format('ALTER TABLE \"C%s\" ADD FOREIGN KEY (p) REFERENCES \"P\" (id) NOT VALID', lpad(i::text, 3, '0'));
         END LOOP; END $$;
         ANALYZE;",
    );
}

/// With a size check before `row_counts` and the catalog read after it, the helper measures
/// the size while the checks' connection reads the keys, then the orphan counts are shared out
/// a message at a time. The checks' connection takes the first (75 keys, a quarter of the
/// list) and waits there for `C000`; the helper takes from the back, its messages a quarter of
/// what is left, and its third holds `C180`. Ended while it waits for `C180`,
/// the helper gives that message back, and the checks' connection counts it at the end: every
/// key's orphans exact, no error.
#[test]
fn a_helper_ended_while_sharing_the_orphan_counts_gives_its_message_back() {
    let p = Project::new(|_| Target::postgres("health_helper_gives_back"));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    children(&url);
    let cluster = crate::support::pg::cluster();
    let first = cluster.hold(&url, "BEGIN; LOCK TABLE \"C000\" IN ACCESS EXCLUSIVE MODE;");
    let held = cluster.hold(&url, "BEGIN; LOCK TABLE \"C180\" IN ACCESS EXCLUSIVE MODE;");
    let (printed, checks) = run_losing_the_helper(
        &p,
        &url,
        "[database_size, row_counts, foreign_keys, orphaned_rows]",
        (held, "C180"),
        vec![first],
    );
    assert!(
        printed.contains("the orphan counts shared with the helper"),
        "{printed}"
    );
    let estimated = checks["row_counts"]["estimated"].as_array().unwrap();
    for large in ["C000", "C180"] {
        assert!(
            estimated.contains(&serde_json::json!(large)),
            "{:#}",
            checks["row_counts"]
        );
    }
    let orphans = &checks["orphaned_rows"];
    assert!(
        orphans["errors"].as_array().is_none_or(Vec::is_empty),
        "{orphans:#}"
    );
    let mut found: Vec<(String, i64)> = orphans["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["table"].as_str().unwrap().to_owned(),
                o["rows"].as_i64().unwrap(),
            )
        })
        .collect();
    found.sort();
    let want: Vec<(String, i64)> = (0..300)
        .map(|i| (format!("C{i:03}"), if i % 180 == 0 { 1100 } else { i % 3 }))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(found, want, "{orphans:#}");
}
