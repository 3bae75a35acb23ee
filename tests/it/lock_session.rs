//! The PostgreSQL run lock lasts the run: its dedicated session is kept from the server's
//! `idle_session_timeout` (a managed server's setting ends idle sessions, and the advisory
//! lock with them), and a run whose lock session ended anyway (a `pg_terminate_backend`, a
//! dropped connection) stops before its next step acts, recorded as interrupted, where
//! `runbook resume` takes the lock again and finishes it.

use crate::support::{Project, Target};

/// The run's id once `runbook runs` lists it as running.
#[test]
fn the_lock_session_outlives_the_servers_idle_session_timeout() {
    let p = Project::new(|_| Target::postgres("lockidle"));
    let Target::Postgres(url) = &p.target else {
        unreachable!()
    };
    let db = url.rsplit('/').next().unwrap().to_owned();
    p.target.query(&format!(
        "ALTER DATABASE \"{db}\" SET idle_session_timeout = '1s'"
    ));
    p.playbook(
        "long",
        "name: long\nsteps:\n  - id: slow\n    sql: { query: \"SELECT pg_sleep(2.5)\" }\n  - id: held\n    sql: { query: \"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid = 7501166 AND objid = 1651470187 AND objsubid = 1\", expect: { scalar: 1 } }\n  - id: after\n    sql: { query: \"CREATE TABLE after_slow (x INTEGER)\" }\n",
    );
    let out = p.run("long", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        p.target
            .query("SELECT count(*) FROM pg_class WHERE relname = 'after_slow'"),
        ["1"]
    );
}

/// The lock session ended by the server mid-step: the next step does not start, the run is
/// recorded as interrupted (nothing in flight), the exit is 4 (the lock), and a resume takes
/// the lock again and runs the rest once.
#[test]
fn a_run_whose_lock_session_ended_stops_before_its_next_step() {
    let p = Project::new(|_| Target::postgres("locklost"));
    let gate = p.path().join("gate");
    p.playbook(
        "lost",
        &format!(
            "name: lost\nsteps:\n  - id: hold\n    shell: {{ script: \"while [ ! -e {} ]; do sleep 0.05; done\" }}\n  - id: after\n    sql: {{ query: \"CREATE TABLE after_hold (x INTEGER)\" }}\n",
            gate.display()
        ),
    );
    let mut child = p.start("lost", &[]);
    let id = p.running_run("lost");
    let ended = p.target.query(
        &format!("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'runbook run={id} %') t"),
    );
    // The gate opens before anything is asserted: a failed assertion leaves no run waiting.
    std::fs::write(&gate, "").unwrap();
    assert_eq!(ended, ["1"], "one lock session to end");
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(p.path().join("runbook.log")).unwrap_or_default();
    assert_eq!(status.code(), Some(4), "{log}");
    assert!(log.contains("lost the run lock"), "{log}");
    assert_eq!(
        p.target
            .query("SELECT count(*) FROM pg_class WHERE relname = 'after_hold'"),
        ["0"],
        "a step ran without the lock"
    );
    assert_eq!(p.status_json(&id)["run"]["status"], "interrupted");
    let target = p.target.arg();
    let resumed = p.cmd(&["resume", &id, "--target", &target]);
    assert_eq!(resumed.code, 0, "{}", resumed.combined());
    assert_eq!(
        p.target
            .query("SELECT count(*) FROM pg_class WHERE relname = 'after_hold'"),
        ["1"]
    );
    assert_eq!(p.status_json(&id)["run"]["status"], "succeeded");
}
