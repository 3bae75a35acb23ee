//! The guides' day-2 operations as shipped: the schedules of `runbook.yaml` (hourly health
//! check, daily and weekly backups at the guides' times, a daily backup check, a weekly
//! ANALYZE), and the shipped `backup-check`, `analyze` and `health-check` playbooks run on a
//! real PostgreSQL database.

use crate::health::{Background, wait_until};
use crate::support::{Output, Runbook, copy_dir, pg, repo};
use serde_json::Value as Json;
use std::path::Path;

fn shipped_schedules(args: &[&str]) -> Output {
    let root = repo();
    let mut all = vec!["-C", root.to_str().unwrap(), "schedule"];
    all.extend(args);
    Runbook::new(&all).run()
}

/// The next times of one shipped schedule, from a fixed Friday.
fn next_of(name: &str) -> Vec<String> {
    let out = shipped_schedules(&[
        "list",
        "--format",
        "json",
        "--from",
        "2026-12-04T00:30:00Z",
        "--count",
        "3",
    ]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let list: Json = serde_json::from_str(&out.stdout).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no schedule {name} in {list:#}"));
    assert_eq!(row["environment"], "production", "{row:#}");
    row["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_shipped_schedules_run_at_the_guides_times() {
    // "Health check every hour", "Daily backup at 2 AM", "Weekly full backup (Sunday 3 AM)".
    assert_eq!(
        next_of("hourly-health"),
        [
            "2026-12-04T01:00:00+00:00",
            "2026-12-04T02:00:00+00:00",
            "2026-12-04T03:00:00+00:00"
        ]
    );
    assert_eq!(
        next_of("daily-backup"),
        [
            "2026-12-04T02:00:00+00:00",
            "2026-12-05T02:00:00+00:00",
            "2026-12-06T02:00:00+00:00"
        ]
    );
    // 2026-12-06 is a Sunday.
    assert_eq!(
        next_of("weekly-backup"),
        [
            "2026-12-06T03:00:00+00:00",
            "2026-12-13T03:00:00+00:00",
            "2026-12-20T03:00:00+00:00"
        ]
    );
    assert_eq!(next_of("daily-backup-check")[0], "2026-12-04T03:30:00+00:00");
    // Inside production's window (Saturday and Sunday, 02:00 to 06:00 UTC): ANALYZE writes.
    assert_eq!(next_of("weekly-analyze")[0], "2026-12-06T04:00:00+00:00");

    // The crontab lines are the guide's own.
    let out = shipped_schedules(&["export", "--to", "cron"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    for (cron, playbook) in [
        ("0 * * * *", "health-check"),
        ("0 2 * * *", "backup"),
        ("0 3 * * 0", "backup"),
        ("30 3 * * *", "backup-check"),
        ("0 4 * * 0", "analyze"),
    ] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(cron)
                && l.contains(&format!("'run' '{playbook}' '--env' 'production'"))),
            "{cron} {playbook}:\n{}",
            out.stdout
        );
    }
}

/// The shipped playbooks in a project whose `production` is a real PostgreSQL database without
/// a maintenance window, backups in `backups/`.
struct Shipped {
    dir: tempfile::TempDir,
    url: String,
}

impl Shipped {
    fn new(prefix: &str) -> Shipped {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["playbooks", "migrations", "seeds"] {
            copy_dir(&repo().join(sub), &dir.path().join(sub));
        }
        std::fs::write(
            dir.path().join("runbook.yaml"),
            "environments:\n  production:\n    target: { url_env: DAY2_DATABASE_URL }\n    vars: { backup_dir: backups, min_free_disk_percent: 1, disk_limit: 100GB }\n",
        )
        .unwrap();
        let url = pg::cluster().create_db(prefix);
        pg::cluster().psql(
            &url,
            "CREATE TABLE \"User\" (id serial PRIMARY KEY, email text UNIQUE);\
             INSERT INTO \"User\" (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 50) g;",
        );
        Shipped { dir, url }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, playbook: &str) -> Output {
        Runbook::new(&[
            "-C",
            self.path().to_str().unwrap(),
            "run",
            playbook,
            "--env",
            "production",
        ])
        .env("DAY2_DATABASE_URL", &self.url)
        .run()
    }

    /// The outputs of step `step` of the newest run.
    fn outputs(&self, step: &str) -> Json {
        let dir = self.path().to_str().unwrap();
        let out = Runbook::new(&["-C", dir, "runs", "--format", "json"]).run();
        let runs: Json = serde_json::from_str(&out.stdout).unwrap();
        let id = runs["runs"][0]["run_id"].as_str().unwrap().to_owned();
        let out = Runbook::new(&["-C", dir, "status", &id, "--format", "json"]).run();
        let st: Json = serde_json::from_str(&out.stdout).unwrap();
        st["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == step)
            .unwrap_or_else(|| panic!("{st:#}"))["outputs"]
            .clone()
    }
}

#[test]
fn the_shipped_backup_check_fails_without_a_fresh_verified_backup_and_passes_after_one() {
    let s = Shipped::new("day2_backup_check");
    let out = s.run("backup-check");
    assert_eq!(out.code, 1, "no backup yet\n{}", out.combined());
    assert!(out.stderr.contains("no verified backup"), "{}", out.stderr);

    let out = s.run("backup");
    assert_eq!(out.code, 0, "{}", out.combined());
    let out = s.run("backup-check");
    assert_eq!(out.code, 0, "{}", out.combined());
    let age = &s.outputs("backup")["checks"]["backup_age"];
    assert_eq!(age["status"], "pass", "{age:#}");
    assert!(age["age_hours"].as_f64().unwrap() < 1.0, "{age:#}");

    // A backup two days old is no daily backup: the check fails, naming the threshold.
    let manifest = std::fs::read_dir(s.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .unwrap();
    let mut m: Json = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["created_at"] = (chrono::Utc::now() - chrono::Duration::hours(49))
        .to_rfc3339()
        .into();
    std::fs::write(&manifest, serde_json::to_string(&m).unwrap()).unwrap();
    let out = s.run("backup-check");
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(out.stderr.contains("fail at 48 h or more"), "{}", out.stderr);
}

#[test]
fn the_shipped_analyze_updates_the_statistics_of_every_table() {
    let s = Shipped::new("day2_analyze");
    let before = pg::cluster().psql(
        &s.url,
        "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'User' AND last_analyze IS NOT NULL",
    );
    assert_eq!(before, "0");
    let out = s.run("analyze");
    assert_eq!(out.code, 0, "{}", out.combined());
    wait_until(
        &s.url,
        "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'User' AND last_analyze IS NOT NULL",
    );
}

#[test]
fn the_shipped_health_check_warns_at_the_guides_five_second_query() {
    let s = Shipped::new("day2_slow_query");
    let _sleeper = Background::start(&s.url, "SELECT pg_sleep(60)");
    wait_until(
        &s.url,
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' \
         AND state = 'active' AND now() - query_start > interval '5.5 seconds'",
    );
    let out = s.run("health-check");
    // A warning does not fail the hourly check; the alert reads the status.
    assert_eq!(out.code, 0, "{}", out.combined());
    let slow = &s.outputs("health")["checks"]["long_running_queries"];
    assert_eq!(slow["status"], "warn", "{slow:#}");
    assert!(
        out.stderr
            .contains("Long Running Queries: 1 query running longer than 5s"),
        "{}",
        out.stderr
    );
    // The other alert thresholds of the checklist are the defaults the step grades with.
    let checks = &s.outputs("health")["checks"];
    assert_eq!(checks["connections"]["thresholds"]["warn"], 80.0, "{checks:#}");
    assert_eq!(checks["disk_space"]["thresholds"]["warn"], 20.0, "{checks:#}");
}
