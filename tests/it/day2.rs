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
    let env = if name == "weekly-restore-test" {
        "staging"
    } else {
        "production"
    };
    assert_eq!(row["environment"], env, "{row:#}");
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
    assert_eq!(
        next_of("daily-backup-check")[0],
        "2026-12-04T03:30:00+00:00"
    );
    // Inside production's window (Saturday and Sunday, 02:00 to 06:00 UTC): ANALYZE writes.
    assert_eq!(next_of("weekly-analyze")[0], "2026-12-06T04:00:00+00:00");
    // "Backup restore test (staging)", weekly.
    assert_eq!(
        next_of("weekly-restore-test")[0],
        "2026-12-06T05:00:00+00:00"
    );

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
    assert!(
        out.stderr.contains("fail at 48 h or more"),
        "{}",
        out.stderr
    );
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
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND query LIKE 'SELECT pg_sleep(60)%' \
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
    assert_eq!(
        checks["connections"]["thresholds"]["warn"], 80.0,
        "{checks:#}"
    );
    assert_eq!(
        checks["disk_space"]["thresholds"]["warn"], 20.0,
        "{checks:#}"
    );
}

/// The `mode` of every backup manifest in `backups/`.
fn manifest_modes(dir: &Path) -> Vec<String> {
    let mut modes: Vec<String> = std::fs::read_dir(dir.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .map(|p| {
            let m: Json = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            m["mode"].as_str().unwrap().to_owned()
        })
        .collect();
    modes.sort();
    modes
}

#[test]
fn the_shipped_backup_takes_the_guides_full_schema_only_and_data_only_backups() {
    let s = Shipped::new("day2_backup_modes");
    for mode in ["schema_only", "data_only"] {
        let out = Runbook::new(&[
            "-C",
            s.path().to_str().unwrap(),
            "run",
            "backup",
            "--env",
            "production",
            "--var",
            &format!("mode={mode}"),
        ])
        .env("DAY2_DATABASE_URL", &s.url)
        .run();
        assert_eq!(out.code, 0, "{}", out.combined());
    }
    assert_eq!(manifest_modes(s.path()), ["data_only", "schema_only"]);
    let out = s.run("backup");
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        manifest_modes(s.path()),
        ["data_only", "full", "schema_only"]
    );
}

#[test]
fn the_shipped_pre_migration_fails_on_orphaned_rows_and_exports_the_schema() {
    let s = Shipped::new("day2_pre_migration");
    pg::cluster().psql(&s.url, "DROP TABLE \"User\"");
    std::fs::write(
        s.path().join("playbooks/schema-it.yaml"),
        "name: schema-it\nsteps:\n  - id: migrate\n    migrate: { action: apply }\n",
    )
    .unwrap();
    let out = s.run("schema-it");
    assert_eq!(out.code, 0, "{}", out.combined());

    let out = s.run("pre-migration");
    assert_eq!(out.code, 0, "{}", out.combined());
    // The schema exported beside the full backup, and the table sizes in the snapshot.
    assert_eq!(manifest_modes(s.path()), ["full", "schema_only"]);
    let stats = s.outputs("stats");
    assert_eq!(
        stats["checks"]["table_sizes"]["status"], "pass",
        "{stats:#}"
    );

    // A patient whose user is gone, behind a foreign key that was turned off and back on
    // without validation: the checklist stops before the backup.
    pg::cluster().psql(
        &s.url,
        "ALTER TABLE \"Patient\" DROP CONSTRAINT \"Patient_userId_fkey\";\
         INSERT INTO \"Patient\" (\"userId\", \"medicalRecordNumber\") VALUES ('gone', 'MRN-1');\
         ALTER TABLE \"Patient\" ADD CONSTRAINT \"Patient_userId_fkey\" FOREIGN KEY (\"userId\") REFERENCES \"User\" (\"id\") NOT VALID;",
    );
    let out = s.run("pre-migration");
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("Orphaned") || out.stderr.contains("orphaned"),
        "{}",
        out.stderr
    );
    // Nothing more was backed up.
    assert_eq!(manifest_modes(s.path()), ["full", "schema_only"]);
}

#[test]
fn the_shipped_seed_production_verifies_every_part_of_the_baseline() {
    let s = Shipped::new("day2_seed");
    pg::cluster().psql(&s.url, "DROP TABLE \"User\"");
    std::fs::write(
        s.path().join("playbooks/schema-it.yaml"),
        "name: schema-it\nsteps:\n  - id: migrate\n    migrate: { action: apply }\n",
    )
    .unwrap();
    assert_eq!(s.run("schema-it").code, 0);
    let seed = |s: &Shipped| {
        Runbook::new(&[
            "-C",
            s.path().to_str().unwrap(),
            "run",
            "seed-production",
            "--env",
            "production",
        ])
        .env("DAY2_DATABASE_URL", &s.url)
        .env(
            "ADMIN_DEFAULT_PASSWORD",
            "a-long-enough-production-password",
        )
        .run()
    };
    let out = seed(&s);
    assert_eq!(out.code, 0, "{}", out.combined());
    for step in ["plans", "packages", "tests", "admin"] {
        assert!(out.stderr.contains(step), "{step}: {}", out.stderr);
    }
    // A baseline that lost a diagnostic test is caught by the verification, not by the seed.
    let file = s.path().join("seeds/production.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("code: LFT"))
        .unwrap()
        .to_owned();
    std::fs::write(&file, text.replace(&format!("{line}\n"), "")).unwrap();
    pg::cluster().psql(&s.url, "DELETE FROM \"DiagnosticTest\" WHERE code = 'LFT'");
    let out = seed(&s);
    assert_eq!(out.code, 1, "{}", out.combined());
    let (_, status) = {
        let dir = s.path().to_str().unwrap();
        let o = Runbook::new(&["-C", dir, "runs", "--format", "json"]).run();
        let runs: Json = serde_json::from_str(&o.stdout).unwrap();
        let id = runs["runs"][0]["run_id"].as_str().unwrap().to_owned();
        let o = Runbook::new(&["-C", dir, "status", &id, "--format", "json"]).run();
        let st: Json = serde_json::from_str(&o.stdout).unwrap();
        let failed: Vec<String> = st["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["status"] == "failed")
            .map(|x| x["step"].as_str().unwrap().to_owned())
            .collect();
        (id, failed)
    };
    assert_eq!(status, ["tests"]);
}

/// A project whose staging and production are PostgreSQL databases, without protections in
/// the way (free disk from `disk_limit`, so this host's filesystem does not decide).
fn staging_and_production() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["playbooks", "migrations", "seeds"] {
        copy_dir(&repo().join(sub), &dir.path().join(sub));
    }
    let env = |name: &str, var: &str| {
        format!(
            "  {name}:\n    target: {{ url_env: {var} }}\n    vars: {{ backup_dir: backups/{name}, min_free_disk_percent: 1, seed_set: production, disk_limit: 100GB{} }}\n    protections: {{ self_approval: true }}\n",
            if name == "production" {
                ", staging_first: staging"
            } else {
                ""
            }
        )
    };
    std::fs::write(
        dir.path().join("runbook.yaml"),
        format!(
            "environments:\n{}{}secrets: [ADMIN_DEFAULT_PASSWORD]\n",
            env("staging", "DAY2_STAGING_URL"),
            env("production", "DAY2_PRODUCTION_URL")
        ),
    )
    .unwrap();
    let staging = pg::cluster().create_db("day2_staging");
    let production = pg::cluster().create_db("day2_production");
    (dir, staging, production)
}

fn deploy(project: &(tempfile::TempDir, String, String), env: &str) -> Output {
    Runbook::new(&[
        "-C",
        project.0.path().to_str().unwrap(),
        "run",
        "deploy",
        "--env",
        env,
        "--approve",
        "approve",
    ])
    .env(
        "ADMIN_DEFAULT_PASSWORD",
        "a-long-enough-production-password",
    )
    .env("DAY2_STAGING_URL", &project.1)
    .env("DAY2_PRODUCTION_URL", &project.2)
    .run()
}

#[test]
fn the_shipped_deploy_reaches_production_only_after_staging_ran_the_same_migrations() {
    let p = staging_and_production();
    let dir = p.0.path().to_owned();
    let out = deploy(&p, "production");
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(out.stderr.contains("staging"), "{}", out.stderr);
    // Nothing ran past the gate: no backup was taken, no table created.
    assert!(!dir.join("backups/production").exists());
    assert_eq!(
        pg::cluster().psql(
            &p.2,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );

    let out = deploy(&p, "staging");
    assert_eq!(out.code, 0, "{}", out.combined());
    let out = deploy(&p, "production");
    assert_eq!(out.code, 0, "{}", out.combined());

    // A new migration file since staging's run: production waits for staging again.
    std::fs::write(
        dir.join("migrations/postgres/20260101000000_note.sql"),
        "CREATE TABLE \"Note\" (id INTEGER PRIMARY KEY);\n",
    )
    .unwrap();
    let out = deploy(&p, "production");
    assert_eq!(out.code, 7, "{}", out.combined());
}

/// The shipped project with `dev` a SQLite file whose application answers at `app_url`.
fn dev_project(app_url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["playbooks", "migrations", "seeds"] {
        copy_dir(&repo().join(sub), &dir.path().join(sub));
    }
    std::fs::write(
        dir.path().join("runbook.yaml"),
        format!(
            "environments:\n  dev:\n    target: {{ sqlite: dev.db }}\n    vars: {{ backup_dir: backups, seed_set: development, app_health_url: \"{app_url}\" }}\n    protections: {{ self_approval: true }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("playbooks/schema-it.yaml"),
        "name: schema-it\nsteps:\n  - id: migrate\n    migrate: { action: apply }\n  - id: backup\n    backup: { dir: backups }\n",
    )
    .unwrap();
    dir
}

fn dev(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["-C", dir.to_str().unwrap(), "run"];
    all.extend(args);
    all.extend(["--env", "dev"]);
    Runbook::new(&all)
        .env("ADMIN_DEFAULT_PASSWORD", "a-long-enough-dev-password-1")
        .run()
}

#[test]
fn the_shipped_rollback_and_restore_check_the_application_after_the_restore() {
    let server = crate::http::Server::start(vec![(200, crate::http::HEALTHY)]);
    let dir = dev_project(&format!("{}/health", server.url));
    let out = dev(dir.path(), &["schema-it"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    for playbook in ["rollback", "restore"] {
        let before = server.seen().len();
        let out = dev(dir.path(), &[playbook, "--confirm", "dev.db"]);
        assert_eq!(out.code, 0, "{playbook}: {}", out.combined());
        let seen = server.seen();
        assert_eq!(seen.len(), before + 1, "{playbook}: {}", out.stderr);
        assert_eq!(
            (seen[before].method.as_str(), seen[before].path.as_str()),
            ("GET", "/health")
        );
    }
}

#[test]
fn the_shipped_reset_reverts_reapplies_and_reseeds_a_development_database() {
    let dir = dev_project("");
    assert_eq!(dev(dir.path(), &["schema-it"]).code, 0);
    let db = dir.path().join("dev.db");
    crate::support::sqlite_exec(
        &crate::support::Target::Sqlite(db.clone()),
        "INSERT INTO \"Plan\" (id, name, \"priceCents\", interval) VALUES ('x', 'Left over', 1, 'MONTH')",
    );
    // Without the typed confirmation it waits and changes nothing.
    let out = dev(dir.path(), &["reset"]);
    assert_eq!(out.code, 3, "{}", out.combined());
    assert_eq!(
        crate::support::sqlite::query(
            &db,
            "SELECT count(*) FROM \"Plan\" WHERE name = 'Left over'"
        ),
        ["1"]
    );
    let out = dev(dir.path(), &["reset", "--confirm", "dev.db"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        crate::support::sqlite::query(
            &db,
            "SELECT count(*) FROM \"Plan\" WHERE name = 'Left over'"
        ),
        ["0"]
    );
    // The development set is there, and the migrations are all applied again.
    assert_ne!(
        crate::support::sqlite::query(&db, "SELECT count(*) FROM \"Plan\""),
        ["0"]
    );
    assert!(
        out.stderr
            .contains("pass  Migration Status: last migration: 20251218000000"),
        "{}",
        out.stderr
    );
    // Not on production.
    let out = Runbook::new(&[
        "-C",
        repo().to_str().unwrap(),
        "plan",
        "reset",
        "--env",
        "production",
        "--offline",
    ])
    .run();
    assert_eq!(out.code, 2, "{}", out.combined());
}

#[test]
fn the_shipped_deploy_tells_the_teams_webhook_when_it_starts_and_how_it_ended() {
    let hook = crate::http::Server::start(vec![(200, "{}")]);
    let dir = tempfile::tempdir().unwrap();
    for sub in ["playbooks", "migrations", "seeds"] {
        copy_dir(&repo().join(sub), &dir.path().join(sub));
    }
    std::fs::write(
        dir.path().join("runbook.yaml"),
        format!(
            "environments:\n  staging:\n    target: {{ url_env: DAY2_STAGING_URL }}\n    vars: {{ backup_dir: backups, min_free_disk_percent: 1, seed_set: production, disk_limit: 100GB, notify_url: \"{}/hook\" }}\n    protections: {{ self_approval: true }}\n",
            hook.url
        ),
    )
    .unwrap();
    let url = pg::cluster().create_db("day2_notify");
    let deploy = || {
        Runbook::new(&[
            "-C",
            dir.path().to_str().unwrap(),
            "run",
            "deploy",
            "--env",
            "staging",
            "--approve",
            "approve",
        ])
        .env(
            "ADMIN_DEFAULT_PASSWORD",
            "a-long-enough-production-password",
        )
        .env("DAY2_STAGING_URL", &url)
        .run()
    };
    let bodies = || -> Vec<String> {
        hook.seen()
            .iter()
            .map(|s| {
                assert_eq!((s.method.as_str(), s.path.as_str()), ("POST", "/hook"));
                let j: Json = serde_json::from_str(&s.body).unwrap();
                j["text"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let out = deploy();
    assert_eq!(out.code, 0, "{}", out.combined());
    let said = bodies();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(
        said[0].starts_with("runbook: deploy of 2 migrations to staging starts (run "),
        "{said:?}"
    );
    assert!(
        said[1].starts_with("runbook: deploy to staging succeeded (run "),
        "{said:?}"
    );

    // A migration that fails: the team hears of the failure.
    std::fs::write(
        dir.path()
            .join("migrations/postgres/20260101000000_broken.sql"),
        "SELECT 1 / 0;\n",
    )
    .unwrap();
    let out = deploy();
    assert_eq!(out.code, 1, "{}", out.combined());
    let said = bodies();
    assert_eq!(said.len(), 4, "{said:?}");
    assert!(
        said[2].starts_with("runbook: deploy of 1 migrations to staging starts"),
        "{said:?}"
    );
    assert!(
        said[3].starts_with("runbook: deploy to staging FAILED (run "),
        "{said:?}"
    );
}

#[test]
fn the_shipped_restore_test_restores_productions_newest_backup_into_staging() {
    let (dir, staging, production) = staging_and_production();
    let backups = dir.path().join("backups/production");
    let config = std::fs::read_to_string(dir.path().join("runbook.yaml")).unwrap();
    let config = config.replacen(
        "vars: { backup_dir: backups/staging,",
        &format!(
            "vars: {{ restore_test_dir: \"{}\", backup_dir: backups/staging,",
            backups.display()
        ),
        1,
    );
    std::fs::write(dir.path().join("runbook.yaml"), config).unwrap();
    let run = |playbook: &str, env: &str, extra: &[&str]| {
        let mut args = vec![
            "-C",
            dir.path().to_str().unwrap(),
            "run",
            playbook,
            "--env",
            env,
        ];
        args.extend(extra);
        Runbook::new(&args)
            .env("DAY2_STAGING_URL", &staging)
            .env("DAY2_PRODUCTION_URL", &production)
            .run()
    };
    pg::cluster().psql(
        &production,
        "CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders SELECT g, 'o' || g FROM generate_series(1, 40) g;",
    );
    pg::cluster().psql(&staging, "CREATE TABLE leftover (id int);");
    // No backup yet: the test fails before it changes anything.
    let out = run("restore-test", "staging", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(out.stderr.contains("no full backup in"), "{}", out.stderr);

    // A full backup, then a newer schema-only one: the full one is restored.
    assert_eq!(run("backup", "production", &[]).code, 0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = run("backup", "production", &["--var", "mode=schema_only"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let out = run("restore-test", "staging", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(out.stderr.contains("restore test passed"), "{}", out.stderr);
    assert_eq!(
        pg::cluster().psql(&staging, "SELECT count(*) FROM orders"),
        "40"
    );
    assert_eq!(
        pg::cluster().psql(
            &staging,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'leftover'"
        ),
        "0"
    );
    // Production is untouched.
    assert_eq!(
        pg::cluster().psql(&production, "SELECT count(*) FROM orders"),
        "40"
    );
    // Never on production.
    let out = run("restore-test", "production", &[]);
    assert_eq!(out.code, 2, "{}", out.combined());
}
