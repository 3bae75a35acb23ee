//! The executor end to end, through the binary, on real SQLite and real PostgreSQL.

use crate::support::{Project, Runbook, Target, pg, sqlite};
use std::path::Path;
use std::time::Duration;

fn both(test: impl Fn(Target, &Path)) {
    {
        let dir = tempfile::tempdir().unwrap();
        test(Target::sqlite(dir.path()), dir.path());
    }
    {
        let dir = tempfile::tempdir().unwrap();
        test(Target::postgres("exec"), dir.path());
    }
}

fn project(target: Target) -> Project {
    Project::new(|_| target)
}

const ROLLBACK: &str = r#"
name: rollback-order
steps:
  - id: setup
    sql: { query: "CREATE TABLE events (seq INTEGER, what TEXT)" }
  - id: a
    sql: { query: "INSERT INTO events VALUES (1, 'a')" }
    rollback:
      - sql: { query: "INSERT INTO events VALUES (10, 'undo a')" }
  - id: b
    sql: { query: "INSERT INTO events VALUES (2, 'b')" }
    rollback:
      - sql: { query: "INSERT INTO events VALUES (20, 'undo b')" }
  - id: c
    sql: { query: "INSERT INTO events VALUES (3, 'c')" }
    rollback:
      - sql: { query: "INSERT INTO events VALUES (30, 'undo c')" }
  - id: boom
    when: params.fail
    sql: { query: "INSERT INTO no_such_table VALUES (1)" }
    rollback:
      - sql: { query: "INSERT INTO events VALUES (40, 'undo boom: must not run')" }
  - id: after
    sql: { query: "INSERT INTO events VALUES (4, 'after')" }
on_failure:
  - id: alert
    sql: { query: "INSERT INTO events VALUES (50, 'on_failure')" }
finally:
  - id: cleanup
    sql: { query: "INSERT INTO events VALUES (60, 'finally')" }
params:
  fail: { type: boolean, default: false }
"#;

#[test]
fn rollback_runs_compensations_in_reverse_then_on_failure_then_finally() {
    both(|target, _| {
        let p = project(target);
        p.playbook("rollback-order", ROLLBACK);
        let out = p.run("rollback-order", &["--var", "fail=true"]);
        assert_eq!(out.code, 1, "{}", out.combined());
        assert!(
            out.stderr.contains("rolling back 3 completed steps"),
            "{}",
            out.stderr
        );
        // The insertion order is the order things ran (rowid / heap order of a fresh table).
        let events = p.target.query("SELECT what FROM events");
        assert_eq!(
            events,
            [
                "a",
                "b",
                "c",
                "undo c",
                "undo b",
                "undo a",
                "on_failure",
                "finally"
            ]
        );
        let (id, status) = p.last_run();
        assert_eq!(status, "failed");
        let st = p.status_json(&id);
        assert!(
            st["run"]["error"]
                .as_str()
                .unwrap()
                .contains("step boom failed")
        );
    });
}

#[test]
fn finally_runs_on_success_and_on_failure_does_not() {
    both(|target, _| {
        let p = project(target);
        p.playbook("rollback-order", ROLLBACK);
        let out = p.run("rollback-order", &[]);
        assert_eq!(out.code, 0, "{}", out.combined());
        let events = p.target.query("SELECT what FROM events");
        assert_eq!(events, ["a", "b", "c", "after", "finally"]);
        assert_eq!(p.last_run().1, "succeeded");
    });
}

#[test]
fn retry_tries_again_with_backoff_and_records_attempts() {
    both(|target, dir| {
        let p = project(target);
        let counter = dir.join("counter");
        p.playbook(
            "retry",
            &format!(
                r#"
name: retry
steps:
  - id: flaky
    retry: {{ attempts: 4, delay: 100ms, backoff: 2 }}
    shell:
      script: |
        n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}
        test $n -ge 3
  - id: record
    sql: {{ query: "CREATE TABLE done AS SELECT 1 AS ok" }}
"#,
                c = counter.display()
            ),
        );
        let out = p.run("retry", &[]);
        assert_eq!(out.code, 0, "{}", out.combined());
        assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3");
        let (id, _) = p.last_run();
        let st = p.status_json(&id);
        let flaky = st["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == "flaky")
            .unwrap()
            .clone();
        assert_eq!(flaky["attempts"], 3);
        assert_eq!(flaky["status"], "succeeded");
        assert!(
            out.stderr.contains("retrying in 0.1s") && out.stderr.contains("retrying in 0.2s"),
            "{}",
            out.stderr
        );
    });
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc != 0 {
        return false;
    }
    // A zombie (killed, not yet reaped by init) is gone for our purposes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split(") ").nth(1).unwrap_or("").starts_with('Z'))
        .unwrap_or(false)
}

#[test]
fn timeout_kills_the_whole_process_tree() {
    both(|target, dir| {
        let p = project(target);
        let pidfile = dir.join("grandchild.pid");
        p.playbook(
            "slow",
            &format!(
                r#"
name: slow
steps:
  - id: slow
    timeout: 1s
    shell:
      script: "sleep 60 & echo $! > {}; wait"
"#,
                pidfile.display()
            ),
        );
        let started = std::time::Instant::now();
        let out = p.run("slow", &[]);
        assert_eq!(out.code, 1, "{}", out.combined());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run waited for the sleep"
        );
        assert!(out.stderr.contains("timed out after"), "{}", out.stderr);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(!alive(pid), "the grandchild {pid} survived the timeout");
    });
}

#[test]
fn hostile_values_are_bound_and_stored_verbatim() {
    both(|target, _| {
        let p = project(target);
        p.playbook(
            "bind",
            r#"
name: bind
params:
  name: { type: string, required: true }
steps:
  - id: create
    sql: { query: "CREATE TABLE x (name TEXT)" }
  - id: insert
    sql: { query: "INSERT INTO x (name) VALUES ($1)", params: ["{{ params.name }}"] }
  - id: check
    sql: { query: "SELECT count(*) FROM x WHERE name = $1", params: ["{{ params.name }}"], expect: { scalar: 1 } }
"#,
        );
        let hostile = "'; DROP TABLE x; --";
        let out = p.run("bind", &["--var", &format!("name={hostile}")]);
        assert_eq!(out.code, 0, "{}", out.combined());
        assert_eq!(p.target.query("SELECT name FROM x"), [hostile]);
    });
}

#[test]
fn a_second_run_on_the_same_target_is_refused_and_the_lock_is_released_after_failure() {
    both(|target, dir| {
        let p = project(target);
        let gate = dir.join("go");
        p.playbook(
            "hold",
            &format!(
                r#"
name: hold
steps:
  - id: wait
    shell: {{ script: "while [ ! -e {} ]; do sleep 0.05; done" }}
"#,
                gate.display()
            ),
        );
        p.playbook(
            "fail",
            "name: fail\nsteps:\n  - id: no\n    shell: { argv: [\"false\"] }\n",
        );
        p.playbook(
            "ok",
            "name: ok\nsteps:\n  - id: yes\n    shell: { argv: [\"true\"] }\n",
        );
        let mut holder = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args([
                "-q",
                "-C",
                &p.path().display().to_string(),
                "run",
                "hold",
                "--target",
                &p.target.arg(),
            ])
            .spawn()
            .unwrap();
        // Wait until the holder's run is recorded as running.
        let mut holder_id = String::new();
        for _ in 0..200 {
            let out = p.cmd(&["runs", "--format", "json"]);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
                && v["runs"][0]["status"] == "running"
            {
                holder_id = v["runs"][0]["run_id"].as_str().unwrap().to_owned();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!holder_id.is_empty(), "the holding run never started");
        let refused = p.run("ok", &[]);
        assert_eq!(refused.code, 4, "{}", refused.combined());
        assert!(
            refused.stderr.contains(&holder_id),
            "the refusal names the holder: {}",
            refused.stderr
        );
        assert!(refused.stderr.contains("operator="), "{}", refused.stderr);
        std::fs::write(&gate, "").unwrap();
        assert!(holder.wait().unwrap().success());
        // A failed run releases the lock: the next run goes straight through.
        assert_eq!(p.run("fail", &[]).code, 1);
        let next = p.run("ok", &[]);
        assert_eq!(next.code, 0, "{}", next.combined());
    });
}

#[test]
fn resume_refuses_a_changed_playbook() {
    let dir = tempfile::tempdir().unwrap();
    let p = project(Target::sqlite(dir.path()));
    p.playbook("two", "name: two\nsteps:\n  - id: one\n    shell: { argv: [\"true\"] }\n  - id: two\n    shell: { argv: [\"true\"] }\n");
    let out = Runbook::new(&[
        "-C",
        &p.path().display().to_string(),
        "run",
        "two",
        "--target",
        &p.target.arg(),
    ])
    .env("RUNBOOK_FAILPOINT", "finished:one")
    .run();
    assert_eq!(out.code, -1, "killed by SIGKILL: {}", out.combined());
    let (id, status) = p.last_run();
    assert_eq!(status, "crashed");
    p.playbook("two", "name: two\nsteps:\n  - id: one\n    shell: { argv: [\"true\"] }\n  - id: two\n    shell: { argv: [\"false\"] }\n");
    let out = p.resume(&id, &[]);
    assert_eq!(out.code, 2, "{}", out.combined());
    assert!(out.stderr.contains("changed since run"), "{}", out.stderr);
}

#[test]
fn run_output_in_ci_is_plain_timestamped_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = project(Target::sqlite(dir.path()));
    p.playbook("rollback-order", ROLLBACK);
    let out = p.run("rollback-order", &["--var", "fail=true"]);
    assert_eq!(out.code, 1);
    assert!(
        !out.stderr.contains('\x1b'),
        "no escape codes without a terminal"
    );
    crate::stable!({ insta::assert_snapshot!(out.combined()) });
    let (id, _) = p.last_run();
    let status = p.cmd(&["status", &id]);
    crate::stable!({ insta::assert_snapshot!("status-after-rollback", status.stdout) });
}

#[test]
fn includes_outputs_tags_continue_on_error_and_wait_for() {
    let dir = tempfile::tempdir().unwrap();
    let p = project(Target::sqlite(dir.path()));
    // The condition holds on its third poll: a counter file, so no timing decides it.
    let counter = dir.path().join("polls");
    p.playbook(
        "child",
        r#"
name: child
params:
  label: { type: string, default: none }
  n: { type: integer, default: 1 }
steps:
  - id: write
    sql: { query: "INSERT INTO seen (what, n) VALUES ($1, $2)", params: ["child {{ params.label }}", "{{ params.n }}"] }
"#,
    );
    p.playbook(
        "main",
        &format!(
            r#"
name: main
steps:
  - id: setup
    sql: {{ query: "CREATE TABLE seen (what TEXT, n INTEGER)" }}
  - id: info
    shell: {{ argv: [echo, '{{"version": "15.4", "items": [{{"name": "first"}}]}}'] }}
    outputs:
      major: {{ json: version, regex: '^(\d+)' }}
      first: {{ json: items.0.name }}
  - id: sub
    include: {{ playbook: child, params: {{ label: "{{{{ steps.info.outputs.first }}}}", n: "{{{{ steps.info.outputs.major }}}}" }} }}
  - id: tagged
    tags: [slow]
    sql: {{ query: "INSERT INTO seen (what, n) VALUES ('tagged', 0)" }}
  - id: flaky
    continue_on_error: true
    shell: {{ argv: ["false"] }}
  - id: wait
    wait_for: {{ argv: [sh, -c, 'n=$(($(cat "{counter}" 2>/dev/null || echo 0) + 1)); echo $n > "{counter}"; [ $n -ge 3 ]'], until: "result == 0", interval: 100ms, deadline: 30s }}
  - id: last
    sql: {{ query: "INSERT INTO seen (what, n) VALUES ($1, $2)", params: ["after wait {{{{ steps.wait.outputs.attempts }}}}", 2] }}
"#,
            counter = counter.display()
        ),
    );
    let out = p.run("main", &["--skip-tags", "slow"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        p.target.query("SELECT what, n FROM seen"),
        ["child first|15", "after wait 3|2"]
    );
    let (id, _) = p.last_run();
    let st = p.status_json(&id);
    let by_id = |name: &str| {
        st["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id("sub.write")["status"], "succeeded");
    assert_eq!(by_id("tagged")["status"], "skipped");
    assert_eq!(by_id("flaky")["status"], "failed");
    assert_eq!(by_id("info")["outputs"]["major"], 15);

    // A wait whose condition never holds fails at its deadline.
    p.playbook(
        "never",
        "name: never\nsteps:\n  - id: wait\n    wait_for: { argv: [\"false\"], until: \"result == 0\", interval: 100ms, deadline: 500ms }\n",
    );
    let out = p.run("never", &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("did not hold within 500ms"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_included_playbooks_on_failure_and_finally_run_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = project(Target::sqlite(dir.path()));
    p.playbook(
        "maint",
        r#"
name: maint
params:
  fail: { type: boolean, default: false }
  fail_off: { type: boolean, default: false }
steps:
  - id: on
    sql: { query: "INSERT INTO log (what) VALUES ('maint on')" }
  - id: work
    shell: { argv: ["{{ 'false' if params.fail else 'true' }}"] }
on_failure:
  - id: alert
    sql: { query: "INSERT INTO log (what) VALUES ($1)", params: ["maint failed, fail={{ params.fail }}"] }
finally:
  - id: off
    sql: { query: "INSERT INTO log (what) VALUES ('maint off')" }
  - shell: { argv: ["{{ 'false' if params.fail_off else 'true' }}"] }
"#,
    );
    p.playbook(
        "main",
        r#"
name: main
params:
  fail: { type: boolean, default: false }
  fail_off: { type: boolean, default: false }
  with_maint: { type: boolean, default: true }
steps:
  - id: mk
    sql: { query: "CREATE TABLE IF NOT EXISTS log (n INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT)" }
  - id: clear
    sql: { query: "DELETE FROM log" }
  - id: sub
    when: params.with_maint
    tags: [maint]
    include: { playbook: maint, params: { fail: "{{ params.fail }}", fail_off: "{{ params.fail_off }}" } }
  - id: after
    sql: { query: "INSERT INTO log (what) VALUES ('after')" }
on_failure:
  - id: main_alert
    sql: { query: "INSERT INTO log (what) VALUES ('main failed')" }
finally:
  - id: main_done
    sql: { query: "INSERT INTO log (what) VALUES ('main done')" }
"#,
    );
    let log = || p.target.query("SELECT what FROM log ORDER BY n");

    // Success: the include's finally runs right after its last step, before the next step.
    let out = p.run("main", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(log(), ["maint on", "maint off", "after", "main done"]);
    let (id, _) = p.last_run();
    let st = p.status_json(&id);
    let step = |name: &str| {
        st["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no step {name} in {st:#}"))
    };
    assert_eq!(step("sub.off")["status"], "succeeded");
    assert_eq!(step("sub.finally-2")["status"], "succeeded");

    // A failure inside the include: its on_failure (seeing its own parameters), its finally,
    // then the including playbook's on_failure and finally.
    let out = p.run("main", &["--var", "fail=true"]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert_eq!(
        log(),
        [
            "maint on",
            "maint failed, fail=True",
            "maint off",
            "main failed",
            "main done"
        ]
    );

    // A failing finally step of the include fails the run there: `after` never runs.
    let out = p.run("main", &["--var", "fail_off=true"]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("step sub.finally-2 failed"),
        "{}",
        out.stderr
    );
    assert_eq!(log(), ["maint on", "maint off", "main failed", "main done"]);

    // The same, killed while the includer's on_failure runs: resume must not take the failed
    // finally step for done and go on to `after`.
    let out = Runbook::new(&[
        "-C",
        &p.path().display().to_string(),
        "run",
        "main",
        "--var",
        "fail_off=true",
        "--target",
        &p.target.arg(),
    ])
    .env("RUNBOOK_FAILPOINT", "started:main_alert")
    .run();
    assert_eq!(out.code, -1, "killed by SIGKILL: {}", out.combined());
    let (id, _) = p.last_run();
    let out = p.resume(&id, &["--retry-step", "main_alert"]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert_eq!(log(), ["maint on", "maint off", "main failed", "main done"]);

    // The include's own `when` and `tags` decide for its steps; when none of them runs, its
    // finally does not run either.
    let out = p.run("main", &["--var", "with_maint=false"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(log(), ["after", "main done"]);
    let (id, _) = p.last_run();
    let st = p.status_json(&id);
    let status_of = |name: &str| {
        st["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == name)
            .map(|s| s["status"].clone())
    };
    assert_eq!(status_of("sub.on"), Some("skipped".into()));
    assert_eq!(status_of("sub.off"), None);
    let out = p.run("main", &["--skip-tags", "maint"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(log(), ["after", "main done"]);

    // The plan shows them under the include, named as the run names them.
    let plan = p.cmd(&[
        "plan",
        "main",
        "--env",
        "dev",
        "--offline",
        "--target",
        &p.target.arg(),
    ]);
    assert_eq!(plan.code, 0, "{}", plan.combined());
    for want in [
        "on_failure of sub:",
        "sub.alert",
        "finally of sub:",
        "sub.off",
        "sub.finally-2",
    ] {
        assert!(plan.stdout.contains(want), "{want}: {}", plan.stdout);
    }
}

#[test]
fn a_shared_postgres_state_store_holds_the_runs() {
    let dir = tempfile::tempdir().unwrap();
    let p = project(Target::sqlite(dir.path()));
    p.playbook(
        "ok",
        "name: ok\nsteps:\n  - id: yes\n    shell: { argv: [\"true\"] }\n",
    );
    let state = pg::cluster().create_db("state");
    for _ in 0..2 {
        let out = p.run("ok", &["--state", &state]);
        assert_eq!(out.code, 0, "{}", out.combined());
    }
    // Another project folder (another machine, in effect) sees the same history.
    let other = tempfile::tempdir().unwrap();
    let out = Runbook::new(&[
        "-C",
        &other.path().display().to_string(),
        "runs",
        "--state",
        &state,
        "--format",
        "json",
    ])
    .run();
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
    assert!(
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "succeeded")
    );
    assert!(
        !dir.path().join(".runbook/state.db").exists(),
        "nothing went to the local store"
    );
    assert_eq!(
        pg::cluster().psql(&state, "SELECT count(*) FROM runbook_events"),
        "8"
    );
}

#[test]
fn concurrent_runs_share_the_sqlite_state_store() {
    // Several operators (or a fleet) on one machine write the same `.runbook/state.db`.
    let dir = tempfile::tempdir().unwrap();
    let p = project(Target::sqlite(dir.path()));
    // Enough steps that the writers are likely to meet at the write lock (each must wait its
    // turn, none fail).
    let steps: String = (0..25)
        .map(|i| format!("  - id: s{i}\n    shell: {{ argv: [\"true\"] }}\n"))
        .collect();
    p.playbook("quick", &format!("name: quick\nsteps:\n{steps}"));
    let children: Vec<std::process::Child> = (0..8)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
                .args(["-q", "-C", &p.path().display().to_string(), "run", "quick"])
                .arg("--target")
                .arg(format!(
                    "sqlite:{}",
                    dir.path().join(format!("t{i}.db")).display()
                ))
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let runs = p.cmd(&["runs", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "succeeded")
            .count(),
        8
    );
    // Every step of every run was recorded: started and finished, one row each.
    let state = p.path().join(".runbook/state.db");
    assert_eq!(
        sqlite::query(
            &state,
            "SELECT count(*) FROM runbook_events WHERE kind IN ('step_started', 'step_finished')"
        ),
        ["400"]
    );
    assert_eq!(
        sqlite::query(
            &state,
            "SELECT count(*) FROM runbook_steps WHERE status = 'succeeded'"
        ),
        ["200"]
    );
}
