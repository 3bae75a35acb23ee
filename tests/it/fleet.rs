//! Fleets: one playbook across 20 databases on one PostgreSQL server, with a concurrency
//! limit, a canary, a stop threshold and resume, sharing a PostgreSQL state store.

use crate::support::pg;
use crate::support::{Output, Runbook};
use std::path::Path;

struct Fleet {
    dir: tempfile::TempDir,
    urls: Vec<String>,
    state: String,
}

const PLAYBOOK: &str = r#"
name: tenant-upgrade
steps:
  - id: work
    shell:
      script: |
        echo "start $RUNBOOK_STEP $(date +%s.%N)" >> "{{ vars.events }}/$(basename "$PWD")-$$"
        sleep 0.4
        echo "end $(date +%s.%N)" >> "{{ vars.events }}/$(basename "$PWD")-$$"
  - id: check
    sql: { query: "SELECT count(*) FROM ready", expect: { rows: 1 } }
  - id: mark
    sql: { query: "INSERT INTO upgraded VALUES (1)" }
"#;

impl Fleet {
    fn new(n: usize) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("playbooks")).unwrap();
        std::fs::create_dir_all(dir.path().join("events")).unwrap();
        std::fs::write(dir.path().join("playbooks/tenant-upgrade.yaml"), PLAYBOOK).unwrap();
        let urls: Vec<String> = (0..n).map(|_| pg::cluster().create_db("tenant")).collect();
        for u in &urls {
            pg::cluster().psql(
                u,
                "CREATE TABLE ready (ok INT); CREATE TABLE upgraded (n INT)",
            );
        }
        let mut targets = String::new();
        for (i, u) in urls.iter().enumerate() {
            let region = if i % 2 == 0 { "eu" } else { "us" };
            targets.push_str(&format!(
                "      - {{ name: t{:02}, url: \"{u}\", labels: {{ region: {region} }} }}\n",
                i + 1
            ));
        }
        std::fs::write(
            dir.path().join("runbook.yaml"),
            format!(
                "environments:\n  tenants:\n    vars: {{ events: \"{}\" }}\n    targets:\n{targets}",
                dir.path().join("events").display()
            ),
        )
        .unwrap();
        let state = pg::cluster().create_db("fleetstate");
        Fleet { dir, urls, state }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let mut all = vec!["-C".to_owned(), self.dir.path().display().to_string()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        Runbook::new(&refs).run()
    }

    fn run(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "run",
            "tenant-upgrade",
            "--env",
            "tenants",
            "--state",
            &self.state,
        ];
        args.extend(extra);
        self.cmd(&args)
    }

    /// Whether target i was upgraded, and how many runs it had.
    fn upgraded(&self, i: usize) -> bool {
        pg::cluster().psql(&self.urls[i], "SELECT count(*) FROM upgraded") == "1"
    }

    fn break_target(&self, i: usize) {
        pg::cluster().psql(&self.urls[i], "DROP TABLE ready");
    }

    fn fix_target(&self, i: usize) {
        pg::cluster().psql(&self.urls[i], "CREATE TABLE ready (ok INT)");
    }

    fn fleet_id(out: &Output) -> String {
        out.stderr
            .split("fleet ")
            .nth(1)
            .and_then(|s| s.split(':').next())
            .expect("the fleet id is printed")
            .to_owned()
    }

    fn runs_of(&self, i: usize) -> usize {
        let name = format!("t{:02}", i + 1);
        pg::cluster()
            .psql(&self.state, &format!("SELECT count(*) FROM runbook_runs r JOIN runbook_fleet_targets f ON f.run_id = r.id WHERE f.target = '{name}'"))
            .parse()
            .unwrap()
    }
}

/// The most runs in flight at once, from each run's start and end times.
fn max_overlap(events: &Path) -> usize {
    let mut spans = Vec::new();
    for e in std::fs::read_dir(events).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let start: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("start "))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        let end: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("end "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        spans.push((start, end));
    }
    spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(a, b)| a <= s && s < b).count())
        .max()
        .unwrap_or(0)
}

#[test]
fn twenty_databases_with_a_concurrency_limit() {
    let f = Fleet::new(20);
    let out = f.run(&["--targets", "all", "--concurrency", "3"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!((0..20).all(|i| f.upgraded(i)));
    let overlap = max_overlap(&f.dir.path().join("events"));
    assert!(
        overlap <= 3,
        "at most 3 targets at once, measured {overlap}"
    );
    assert!(overlap >= 2, "targets ran in parallel (measured {overlap})");
    assert!(
        out.stderr.contains("20 succeeded, 0 failed"),
        "{}",
        out.stderr
    );
    // Selecting by label and by name.
    let eu = f.run(&["--targets", "region=eu", "--concurrency", "5"]);
    assert!(eu.stderr.contains("on 10 targets"), "{}", eu.stderr);
    let some = f.run(&["--targets", "t0*", "--concurrency", "5"]);
    assert!(some.stderr.contains("on 9 targets"), "{}", some.stderr);
}

#[test]
fn a_failed_canary_stops_the_fleet_before_the_rest_start() {
    let f = Fleet::new(6);
    f.break_target(0);
    let out = f.run(&["--targets", "all", "--canary", "1", "--concurrency", "4"]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("canary `t01` did not succeed"),
        "{}",
        out.stderr
    );
    assert_eq!(f.runs_of(0), 1);
    for i in 1..6 {
        assert_eq!(f.runs_of(i), 0, "target {i} must not have started");
        assert!(!f.upgraded(i));
    }
    assert!(out.stderr.contains("5 not started"), "{}", out.stderr);
}

#[test]
fn the_stop_threshold_is_honoured_and_resume_runs_only_unfinished_targets() {
    let f = Fleet::new(8);
    f.break_target(1);
    f.break_target(3);
    let out = f.run(&[
        "--targets",
        "all",
        "--concurrency",
        "1",
        "--stop-after",
        "2",
    ]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("stop threshold is reached"),
        "{}",
        out.stderr
    );
    // One at a time: t01 ok, t02 failed, t03 ok, t04 failed -> stop; t05..t08 never start.
    assert!(f.upgraded(0) && f.upgraded(2));
    for i in 4..8 {
        assert_eq!(f.runs_of(i), 0, "target {i} started after the threshold");
    }
    let fleet = Fleet::fleet_id(&out);
    // Resumed while still broken: the fleet's own concurrency (1) and threshold (2) hold again.
    let still = f.cmd(&["resume", &fleet, "--state", &f.state]);
    assert_eq!(still.code, 1, "{}", still.combined());
    assert!(
        still.stderr.contains("stop threshold is reached"),
        "{}",
        still.stderr
    );
    for i in 4..8 {
        assert_eq!(f.runs_of(i), 0, "target {i} started after the threshold");
    }
    // A canary given to resume: the first unfinished target (t02, still broken) must succeed
    // before any other starts.
    let canary = f.cmd(&[
        "resume",
        &fleet,
        "--state",
        &f.state,
        "--canary",
        "1",
        "--stop-after",
        "100%",
    ]);
    assert_eq!(canary.code, 1, "{}", canary.combined());
    assert!(
        canary.stderr.contains("canary `t02` did not succeed"),
        "{}",
        canary.stderr
    );
    for i in 4..8 {
        assert_eq!(f.runs_of(i), 0, "target {i} started after a failed canary");
    }
    f.fix_target(1);
    f.fix_target(3);
    let resumed = f.cmd(&["resume", &fleet, "--state", &f.state, "--concurrency", "4"]);
    assert_eq!(resumed.code, 0, "{}", resumed.combined());
    assert!(
        resumed.stderr.contains("resuming 6 unfinished targets"),
        "{}",
        resumed.stderr
    );
    assert!((0..8).all(|i| f.upgraded(i)));
    assert_eq!(f.runs_of(0), 1, "a finished target is not run again");
    assert_eq!(f.runs_of(2), 1);
    // Nothing left: a second resume does nothing.
    let again = f.cmd(&["resume", &fleet, "--state", &f.state]);
    assert_eq!(again.code, 0);
    assert!(
        again.stderr.contains("every target already succeeded"),
        "{}",
        again.stderr
    );
}

#[test]
fn two_processes_sharing_the_postgres_state_store_cannot_run_the_same_target_at_once() {
    let f = Fleet::new(2);
    let gate = f.dir.path().join("go");
    std::fs::write(
        f.dir.path().join("playbooks/hold.yaml"),
        format!("name: hold\nsteps:\n  - id: wait\n    shell: {{ script: \"while [ ! -e {} ]; do sleep 0.05; done\" }}\n", gate.display()),
    )
    .unwrap();
    // Create the state store's tables, so polling them below cannot race their creation.
    assert_eq!(f.cmd(&["runs", "--state", &f.state]).code, 0);
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "-q",
            "-C",
            &f.dir.path().display().to_string(),
            "run",
            "hold",
            "--env",
            "tenants",
            "--state",
            &f.state,
            "--targets",
            "t01",
        ])
        .spawn()
        .unwrap();
    // Wait until the first process's run holds the target.
    let mut holder = String::new();
    for _ in 0..200 {
        holder = pg::cluster().psql(
            &f.state,
            "SELECT coalesce(max(id), '') FROM runbook_runs WHERE status = 'running'",
        );
        if !holder.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!holder.is_empty());
    let second = Runbook::new(&[
        "-C",
        &f.dir.path().display().to_string(),
        "run",
        "hold",
        "--env",
        "tenants",
        "--state",
        &f.state,
        "--target",
        &f.urls[0],
    ])
    .run();
    assert_eq!(second.code, 4, "{}", second.combined());
    assert!(
        second.stderr.contains(&holder),
        "the refusal names the holding run: {}",
        second.stderr
    );
    std::fs::write(&gate, "").unwrap();
    assert!(first.wait().unwrap().success());
}
