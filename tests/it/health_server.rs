//! The guides' server checks on real PostgreSQL (the test cluster preloads
//! pg_stat_statements): TLS, least privilege, deadlocks from a real deadlock, slow statements,
//! unused indexes, dead-tuple bloat and table sizes, each graded by its thresholds or skipped
//! saying why.

use crate::support::pg::cluster;
use crate::support::{Project, Target};
use serde_json::Value as Json;
use std::time::{Duration, Instant};

/// Runs a health step with these checks (and thresholds) against `url`; the exit code and
/// the checks' outputs (or, when the step failed, the failure text).
pub(crate) fn health(url: &str, checks: &str, thresholds: &str) -> (i32, Json, String) {
    let p = Project::new(|_| Target::Postgres(url.to_owned()));
    p.playbook(
        "h",
        &format!(
            "name: h\nsteps:\n  - id: health\n    health:\n      checks: [{checks}]\n      metrics_file: h.prom\n{thresholds}"
        ),
    );
    let out = p.run("h", &[]);
    // The metrics file holds the results whether the step passed or failed.
    let text = std::fs::read_to_string(p.path().join("h.prom")).unwrap_or_default();
    let (id, _) = p.last_run();
    let st = p.status_json(&id);
    let outputs = st["steps"][0]["outputs"]["checks"].clone();
    (out.code, outputs, format!("{}\n{text}", out.stderr))
}

fn wait_until(url: &str, sql: &str) {
    let began = Instant::now();
    while cluster().psql(url, sql) != "t" {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "never true: {sql}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tls_and_least_privilege_say_what_the_session_and_role_are() {
    let url = cluster().create_db("sec");
    // The test cluster has ssl off and runbook connects over TCP as a superuser: both warn.
    let (code, o, _) = health(&url, "tls, superuser", "");
    assert_eq!(code, 0);
    let tls = &o["tls"];
    assert_eq!(tls["status"], "warn", "{tls:#}");
    assert_eq!(tls["ssl"], false);
    assert_eq!(tls["session_tls"], false);
    assert!(tls["without_tls"].as_i64().unwrap() >= 1, "{tls:#}");
    let msg = tls["message"].as_str().unwrap();
    assert!(msg.contains("this session does not use TLS"), "{msg}");
    // A superuser reads pg_hba_file_rules: the cluster lets TCP clients in without TLS.
    assert_eq!(tls["enforced"], false, "{tls:#}");
    assert_eq!(o["superuser"]["status"], "warn");
    assert!(
        o["superuser"]["message"]
            .as_str()
            .unwrap()
            .contains("is a superuser"),
        "{o:#}"
    );
    // A database owner without superuser rights passes, and cannot say whether TLS is enforced.
    let owned = cluster().create_owned_db("secown");
    let (code, o, _) = health(&owned, "tls, superuser", "");
    assert_eq!(code, 0);
    assert_eq!(o["superuser"]["status"], "pass", "{o:#}");
    assert_eq!(o["superuser"]["value"], false);
    assert!(o["tls"]["enforced"].is_null(), "{o:#}");
    assert!(
        o["tls"]["message"].as_str().unwrap().contains("is unknown"),
        "{o:#}"
    );
}

#[test]
fn a_real_deadlock_is_counted() {
    let url = cluster().create_db("dead");
    cluster().psql(
        &url,
        "CREATE TABLE a (id int PRIMARY KEY, v int); CREATE TABLE b (id int PRIMARY KEY, v int); \
         INSERT INTO a VALUES (1, 0); INSERT INTO b VALUES (1, 0);",
    );
    let (_, o, _) = health(&url, "deadlocks", "");
    assert_eq!(o["deadlocks"]["status"], "pass", "{o:#}");
    assert_eq!(o["deadlocks"]["value"], 0);
    // Two sessions lock the two rows in opposite orders: the server ends one of them.
    let session = |first: &str, second: &str| {
        let mut child = std::process::Command::new(cluster().bin_dir().join("psql"))
            .args(["-X", "-q", "-d", &url])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let script = format!(
            "BEGIN;\nUPDATE {first} SET v = 1 WHERE id = 1;\nSELECT pg_sleep(0.5);\nUPDATE {second} SET v = 2 WHERE id = 1;\nCOMMIT;\n"
        );
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
        drop(child.stdin.take());
        child
    };
    let mut one = session("a", "b");
    let mut two = session("b", "a");
    one.wait().unwrap();
    two.wait().unwrap();
    wait_until(
        &url,
        "SELECT deadlocks > 0 FROM pg_stat_database WHERE datname = current_database()",
    );
    let (code, o, _) = health(&url, "deadlocks", "");
    assert_eq!(code, 0);
    let d = &o["deadlocks"];
    assert_eq!(d["status"], "warn", "{d:#}");
    assert_eq!(d["value"], 1, "{d:#}");
    // With `fail: 1` the same figure fails the step.
    let (code, _, said) = health(
        &url,
        "deadlocks",
        "      thresholds:\n        deadlocks: { fail: 1 }\n",
    );
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("deadlocks fail: 1 deadlock"), "{said}");
}

#[test]
fn slow_statements_come_from_pg_stat_statements_when_it_is_installed() {
    let url = cluster().create_db("slow");
    let (code, o, _) = health(&url, "slow_statements", "");
    assert_eq!(code, 0);
    let s = &o["slow_statements"];
    assert_eq!(s["status"], "skip", "{s:#}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("pg_stat_statements is not installed"),
        "{s:#}"
    );
    cluster().psql(&url, "CREATE EXTENSION pg_stat_statements");
    for _ in 0..3 {
        cluster().psql(&url, "SELECT pg_sleep(0.15)");
    }
    let (code, o, _) = health(&url, "slow_statements", "");
    assert_eq!(code, 0);
    let s = &o["slow_statements"];
    assert_eq!(s["status"], "warn", "{s:#}");
    let worst = s["value"].as_f64().unwrap();
    assert!((140.0..1000.0).contains(&worst), "{s:#}");
    assert!(
        s["statements"][0]["query"]
            .as_str()
            .unwrap()
            .contains("pg_sleep"),
        "{s:#}"
    );
    // The guide's 100 ms for warnings, and a stricter fail threshold fails the step.
    let (code, _, said) = health(
        &url,
        "slow_statements",
        "      thresholds:\n        slow_statements: { fail: 120 }\n",
    );
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("slow_statements fail"), "{said}");
    assert!(
        said.contains("runbook_health_check_status{environment=\"dev\",check=\"slow_statements\",status=\"fail\"} 1"),
        "{said}"
    );
}

#[test]
fn unused_indexes_dead_tuples_and_table_sizes_are_measured() {
    let url = cluster().create_db("bloat");
    cluster().psql(
        &url,
        "CREATE TABLE events (id int PRIMARY KEY, kind text, body text) WITH (autovacuum_enabled = false); \
         CREATE INDEX events_kind ON events (kind); \
         CREATE TABLE small (id int PRIMARY KEY); \
         INSERT INTO events SELECT g, 'k' || (g % 10), repeat('x', 200) FROM generate_series(1, 2000) g; \
         INSERT INTO small VALUES (1);",
    );
    cluster().psql(&url, "DELETE FROM events WHERE id > 500");
    wait_until(
        &url,
        "SELECT n_dead_tup >= 1500 FROM pg_stat_user_tables WHERE relname = 'events'",
    );
    let (code, o, said) = health(&url, "unused_indexes, dead_tuples, table_sizes", "");
    // 75% dead tuples is past the fail threshold (50%).
    assert_eq!(code, 1, "{said}");
    let u = &o["unused_indexes"];
    assert!(u.is_null(), "a failed step records no outputs: {o:#}");
    assert!(
        said.contains("dead_tuples fail: worst table events: 75% dead tuples"),
        "{said}"
    );
    assert!(
        said.contains("check=\"unused_indexes\",status=\"warn\"} 1"),
        "{said}"
    );
    assert!(
        said.contains("check=\"table_sizes\",status=\"pass\"} 1"),
        "{said}"
    );
    // A VACUUM clears the dead tuples; the index is still never used; events is the largest.
    cluster().psql(&url, "VACUUM events");
    wait_until(
        &url,
        "SELECT n_dead_tup = 0 FROM pg_stat_user_tables WHERE relname = 'events'",
    );
    let (code, o, said) = health(&url, "unused_indexes, dead_tuples, table_sizes", "");
    assert_eq!(code, 0, "{said}");
    assert_eq!(o["dead_tuples"]["status"], "pass", "{o:#}");
    let u = &o["unused_indexes"];
    assert_eq!(u["status"], "warn", "{u:#}");
    assert_eq!(u["value"], 1, "{u:#}");
    assert_eq!(u["indexes"][0]["index"], "events_kind");
    let t = &o["table_sizes"];
    assert_eq!(t["status"], "pass", "{t:#}");
    assert_eq!(t["tables"][0]["table"], "events", "{t:#}");
    assert!(t["tables"][0]["bytes"].as_i64().unwrap() > 100_000, "{t:#}");
}
