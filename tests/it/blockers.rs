//! A migration that waits on a lock shows who blocks it (pid, user, application, the query
//! with its literals masked, for how long), polled from the migration lock's connection while
//! it waits; `on_blocked` terminates the blocker and the run records whom; a `CREATE INDEX
//! CONCURRENTLY` shows its phases from `pg_stat_progress_create_index`. Real PostgreSQL, real
//! blocking sessions (psql holding a lock in an open transaction).

use crate::support::{Output, Project, Target, pg};
use serde_json::Value as Json;
use std::time::Duration;

const SECRET: &str = "hunter2-in-a-literal";

fn postgres() -> Project {
    Project::new(|_| Target::postgres("blockers"))
}

fn mig(p: &Project, name: &str, text: &str) {
    let dir = p.path().join("migrations/postgres");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

/// Runs a playbook of one `migrate: { ARGS }` step; returns the output and the step's outputs.
fn migrate(p: &Project, args: &str) -> (Output, Json) {
    p.playbook(
        "m",
        &format!("name: m\nsteps:\n  - id: m\n    migrate: {{ {args} }}\n"),
    );
    let out = p.run("m", &[]);
    let (run, _) = p.last_run();
    let status = p.status_json(&run);
    let step = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "m")
        .cloned()
        .unwrap_or(Json::Null);
    (out, step["outputs"].clone())
}

/// The pid of the psql session of this database idle in a transaction.
fn holder_pid(p: &Project) -> i64 {
    let pid = p.target.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'psql' AND state = 'idle in transaction'",
    );
    assert_eq!(pid.len(), 1, "{pid:?}");
    pid[0].parse().unwrap()
}

/// Every file under `.runbook` (state store, audit chains) as text.
fn recorded(p: &Project) -> String {
    let mut all = String::new();
    let mut dirs = vec![p.path().join(".runbook")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
            }
        }
    }
    all
}

#[test]
fn a_waiting_migration_names_its_blocker_and_on_blocked_terminates_it() {
    let p = postgres();
    mig(&p, "001_t.sql", "CREATE TABLE t (id int, note text);\n");
    let (out, _) = migrate(&p, "action: apply");
    assert_eq!(out.code, 0, "{}", out.combined());
    let url = p.target.arg();
    let session = pg::cluster().hold(
        &url,
        &format!("BEGIN;\nSELECT count(*) FROM t WHERE note = '{SECRET}';"),
    );
    let pid = holder_pid(&p);
    mig(&p, "002_c.sql", "ALTER TABLE t ADD COLUMN c int;\n");

    // Without on_blocked: the wait is shown while it lasts, then the lock timeout fails it.
    let (out, _) = migrate(&p, "action: apply, lock_timeout: 2s");
    assert_eq!(out.code, 1, "{}", out.combined());
    let shown =
        format!("`migrations/postgres/002_c.sql` waits for a lock held by pid {pid} (user ");
    assert!(out.stderr.contains(&shown), "{}", out.stderr);
    for needle in [
        ", application psql, from ",
        ", idle in transaction, transaction open ",
        "SELECT count(*) FROM t WHERE note = '***'",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
    let blamed = format!("; it waited for pid {pid} (user ");
    assert!(out.stderr.contains(&blamed), "{}", out.stderr);
    // The failed step's record keeps what it printed: the blocker is in the audit chain.
    assert!(recorded(&p).contains(&format!("held by pid {pid}")));

    // With on_blocked: the blocker is terminated after a second and the migration goes on.
    let (out, o) = migrate(
        &p,
        "action: apply, lock_timeout: 10s, on_blocked: { blocker: terminate, after: 1s }",
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr
            .contains(&format!("on_blocked: terminated pid {pid} (user ")),
        "{}",
        out.stderr
    );
    assert_eq!(o["count"], 1, "{o}");
    let blocked = &o["blocked_by"][0];
    assert_eq!(blocked["pid"], pid, "{o}");
    assert_eq!(blocked["application"], "psql", "{o}");
    assert_eq!(blocked["state"], "idle in transaction", "{o}");
    assert_eq!(
        blocked["query"], "SELECT count(*) FROM t WHERE note = '***';",
        "{o}"
    );
    assert!(blocked["blocked_ms"].as_u64().unwrap() >= 1000, "{o}");
    let stopped = &o["stopped"][0];
    assert_eq!(stopped["pid"], pid, "{o}");
    assert_eq!(stopped["action"], "terminate", "{o}");
    assert_eq!(stopped["signalled"], true, "{o}");
    assert_eq!(
        p.target.query(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
        )),
        ["0"]
    );
    assert_eq!(
        p.target.query("SELECT count(*) FROM information_schema.columns WHERE table_name = 't' AND column_name = 'c'"),
        ["1"]
    );
    let all = recorded(&p);
    assert!(all.contains(&format!("terminated pid {pid}")));
    // The audit record of what the step changed names the session it terminated.
    assert!(all.contains("\"stopped_sessions\""), "{all}");
    assert!(!all.contains(SECRET));
    drop(session);
}

#[test]
fn a_concurrent_index_build_shows_its_phases() {
    let p = postgres();
    mig(
        &p,
        "001_big.sql",
        "CREATE TABLE big (id int, pad text);\nINSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 100000) g;\n",
    );
    let (out, _) = migrate(&p, "action: apply");
    assert_eq!(out.code, 0, "{}", out.combined());
    // A writer in an open transaction: the build waits for it before it starts.
    let session = pg::cluster().hold(&p.target.arg(), "BEGIN;\nINSERT INTO big VALUES (0, 'w');");
    let pid = holder_pid(&p);
    mig(
        &p,
        "002_idx.sql",
        "CREATE INDEX CONCURRENTLY big_id ON big (id);\n",
    );
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2500));
        session.release();
    });
    let (out, o) = migrate(&p, "action: apply");
    release.join().unwrap();
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr.contains(
            "`migrations/postgres/002_idx.sql`: CREATE INDEX CONCURRENTLY big_id: waiting for writers before build"
        ),
        "{}",
        out.stderr
    );
    let phases: Vec<&str> = o["index_progress"]
        .as_array()
        .unwrap_or_else(|| panic!("{o}"))
        .iter()
        .map(|s| s["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases.first(),
        Some(&"waiting for writers before build"),
        "{o}"
    );
    assert_eq!(o["index_progress"][0]["index"], "big_id", "{o}");
    // What the build waited for is its blocker, shown like any other.
    assert_eq!(o["blocked_by"][0]["pid"], pid, "{o}");
    assert_eq!(
        p.target
            .query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'big_id'::regclass"),
        ["t"]
    );
}

#[test]
fn on_blocked_cancel_stops_a_long_statement_and_the_migration_goes_on() {
    let p = postgres();
    mig(
        &p,
        "001_t.sql",
        "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n",
    );
    let (out, _) = migrate(&p, "action: apply");
    assert_eq!(out.code, 0, "{}", out.combined());
    // A statement on its own (no open transaction): cancelled, it lets go of its lock.
    let own = pg::cluster().bin_dir().join("psql");
    let psql = if own.is_file() { own } else { "psql".into() };
    let mut sleeper = std::process::Command::new(psql)
        .args([
            "-X",
            "-q",
            "-d",
            &p.target.arg(),
            "-c",
            "SELECT pg_sleep(60) FROM t",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let active = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                  AND state = 'active' AND query LIKE 'SELECT pg_sleep(60)%'";
    let mut pid = Vec::new();
    for _ in 0..200 {
        pid = p.target.query(active);
        if !pid.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(pid.len(), 1, "the sleeper never ran");
    let pid: i64 = pid[0].parse().unwrap();
    mig(&p, "002_c.sql", "ALTER TABLE t ADD COLUMN c int;\n");

    let (out, o) = migrate(
        &p,
        "action: apply, lock_timeout: 20s, on_blocked: { blocker: cancel, after: 1s }",
    );
    let status = sleeper.wait().unwrap();
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(!status.success(), "the sleeper's statement was cancelled");
    assert!(
        out.stderr.contains(&format!(
            "on_blocked: cancelled the statement of pid {pid} (user "
        )),
        "{}",
        out.stderr
    );
    assert_eq!(o["stopped"][0]["pid"], pid, "{o}");
    assert_eq!(o["stopped"][0]["action"], "cancel", "{o}");
    assert_eq!(o["stopped"][0]["state"], "active", "{o}");
    assert_eq!(
        o["blocked_by"][0]["query"], "SELECT pg_sleep(60) FROM t",
        "{o}"
    );
}
