//! A helper lost while it counts (`src/db/health/snapshot.rs`, `shared.rs`): a server that
//! ends its backend (an administrator's `pg_terminate_backend`, a pooler, a restart of the
//! process) costs the counts nothing but time. Its half of the row counts, or the message of
//! orphan counts it had taken, is counted on the checks' connection in the same snapshot,
//! every figure exact and no error reported.
//!
//! The helper is made to wait where the test wants it: a session holds a table the helper is
//! about to read, the test sees the helper wait for that lock, ends its backend, then lets the
//! table go.

use crate::health::health_outputs;
use crate::health_helper::{TABLES, tables};
use crate::support::pg::Session;
use crate::support::{Project, Target};
use std::time::{Duration, Instant};

/// Ends the backend that waits for a lock on `table` in `db` once one does, and returns its
/// pid.
fn end_the_waiter(db: &str, table: &str) -> i32 {
    let cluster = crate::support::pg::cluster();
    let began = Instant::now();
    loop {
        let pid = cluster.psql(
            db,
            &format!(
                "SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 WHERE c.relname = '{table}' AND NOT l.granted"
            ),
        );
        if let Ok(pid) = pid.parse::<i32>() {
            assert_eq!(
                cluster.psql(db, &format!("SELECT pg_terminate_backend({pid})")),
                "t"
            );
            return pid;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "nothing waited for {table}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The newest backend of the run in `db` that is not `psql`'s: the helper, which connects
/// after the run's lock and the checks' connection.
fn newest_runbook_backend(db: &str) -> i32 {
    crate::support::pg::cluster()
        .psql(
            db,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name NOT LIKE 'psql%' AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend' ORDER BY backend_start DESC LIMIT 1",
        )
        .parse()
        .unwrap()
}

/// Runs `checks` in `p` in the background while `held` keeps `table` locked: ends the
/// backend that waits for it, which must be the helper, then lets the table go. Returns
/// the step's `checks` output; the run must pass.
fn run_losing_the_helper(
    p: &Project,
    db: &str,
    checks: &str,
    held: Session,
    table: &str,
) -> serde_json::Value {
    p.playbook(
        "checks",
        &format!("name: checks\nsteps:\n  - id: health\n    health: {{ checks: {checks} }}\n"),
    );
    let mut run = p.start("checks", &[]);
    let newest = loop {
        // The helper is the newest backend once it waits; read before it is ended.
        let waiting = crate::support::pg::cluster().psql(
            db,
            &format!(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 WHERE c.relname = '{table}' AND NOT l.granted"
            ),
        );
        if waiting != "0" {
            break newest_runbook_backend(db);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let ended = end_the_waiter(db, table);
    assert_eq!(
        ended, newest,
        "the checks' connection waited for {table}, not the helper"
    );
    held.release();
    let status = run.wait().unwrap();
    let log = std::fs::read_to_string(p.path().join("runbook.log")).unwrap_or_default();
    assert!(status.success(), "{log}");
    health_outputs(p)["checks"].clone()
}

/// The helper counts the second half of the tables by name (`T99` is the last): ended while
/// it waits for `T99`, its half is counted by the checks' connection, every table exactly.
#[test]
fn a_helper_ended_mid_count_leaves_its_half_to_the_checks_connection() {
    let p = Project::new(|_| Target::postgres("health_helper_ended"));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    tables(&url, "i % 5");
    let cluster = crate::support::pg::cluster();
    let held = cluster.hold(&url, "BEGIN; LOCK TABLE \"T99\" IN ACCESS EXCLUSIVE MODE;");
    let checks = run_losing_the_helper(&p, &url, "[row_counts]", held, "T99");
    let rows = &checks["row_counts"];
    assert!(rows["errors"].as_object().unwrap().is_empty(), "{rows:#}");
    let counted = rows["tables"].as_object().unwrap();
    assert_eq!(counted.len(), TABLES, "{rows:#}");
    for i in 0..TABLES {
        assert_eq!(counted[&format!("T{i}")], i % 5, "T{i}");
    }
}

/// Children `C000`..`C299` of `P`, each behind a `NOT VALID` foreign key with `i % 3` orphaned
/// rows; `C180` is large (1.1 million rows, 1,100 of them orphans), so `row_counts` estimates
/// it from the statistics and only the orphan counts read it.
fn children(url: &str) {
    crate::support::pg::cluster().psql(
        url,
        "CREATE TABLE \"P\" (id int PRIMARY KEY); INSERT INTO \"P\" VALUES (1);
         DO $$ BEGIN FOR i IN 0..299 LOOP
           EXECUTE format('CREATE TABLE \"C%s\" (id int, p int) WITH (autovacuum_enabled = off)', lpad(i::text, 3, '0'));
           IF i = 180 THEN
             INSERT INTO \"C180\" SELECT g, CASE WHEN g % 1000 = 0 THEN 99 ELSE 1 END FROM generate_series(1, 1100000) g;
           ELSE
             EXECUTE format('INSERT INTO \"C%s\" SELECT g, CASE WHEN g <= %s THEN 99 ELSE 1 END FROM generate_series(1, 3) g', lpad(i::text, 3, '0'), i % 3);
           END IF;
           EXECUTE format('ALTER TABLE \"C%s\" ADD FOREIGN KEY (p) REFERENCES \"P\" (id) NOT VALID', lpad(i::text, 3, '0'));
         END LOOP; END $$;
         ANALYZE;",
    );
}

/// With `row_counts` before them, the orphan counts are shared out a message (125 keys) at a
/// time: the checks' connection takes the first, the helper the second, which holds `C180`.
/// Ended while it waits for `C180`, the helper gives that message back, and the checks'
/// connection counts it at the end: every key's orphans exact, no error.
#[test]
fn a_helper_ended_while_sharing_the_orphan_counts_gives_its_message_back() {
    let p = Project::new(|_| Target::postgres("health_helper_gives_back"));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    children(&url);
    let cluster = crate::support::pg::cluster();
    let held = cluster.hold(&url, "BEGIN; LOCK TABLE \"C180\" IN ACCESS EXCLUSIVE MODE;");
    let checks = run_losing_the_helper(
        &p,
        &url,
        "[row_counts, foreign_keys, orphaned_rows]",
        held,
        "C180",
    );
    assert!(
        checks["row_counts"]["estimated"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("C180")),
        "{:#}",
        checks["row_counts"]
    );
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
    let mut want: Vec<(String, i64)> = (0..300)
        .filter(|i| i % 3 > 0 || *i == 180)
        .map(|i| (format!("C{i:03}"), if i == 180 { 1100 } else { i % 3 }))
        .collect();
    want.sort();
    assert_eq!(found, want, "{orphans:#}");
}
