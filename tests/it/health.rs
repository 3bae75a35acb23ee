//! The `health` action end to end, through the binary, on real PostgreSQL and real SQLite:
//! a healthy database passes, a long-running query warns, orphaned rows are found, and the
//! SQLite subset runs.

use crate::support::sqlite_exec;
use crate::support::{Project, Target};
use serde_json::Value as Json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The outputs of the newest run's `health` step (absent when the step failed).
pub(crate) fn health_outputs(p: &Project) -> Json {
    let (id, _) = p.last_run();
    let st = p.status_json(&id);
    st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "health")
        .map(|s| s["outputs"].clone())
        .unwrap_or_else(|| panic!("no health step in {st:#}"))
}

/// `runbook run NAME` in `p` logging at debug level, which passes: its output.
pub(crate) fn run_logged(p: &Project, name: &str) -> String {
    let target = p.target.arg();
    let out = p
        .base(&["run", name, "--target", &target])
        .env("RUST_LOG", "runbook=debug")
        .run();
    assert_eq!(out.code, 0, "{}", out.combined());
    out.combined()
}

fn health_playbook(body: &str) -> String {
    format!("name: health-it\nsteps:\n  - id: health\n    health:\n{body}")
}

/// Applies the project's migrations (up to `version`) with the `migrate` action, so the
/// history table is the one that action keeps.
fn migrate(p: &Project, version: Option<&str>) {
    let version = version.map_or(String::new(), |v| format!(", version: \"{v}\""));
    p.playbook(
        "migrate-it",
        &format!(
            "name: migrate-it\nsteps:\n  - id: migrate\n    migrate: {{ action: apply{version} }}\n"
        ),
    );
    let out = p.run("migrate-it", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
}

fn psql_program() -> std::path::PathBuf {
    let own = crate::support::pg::cluster().bin_dir().join("psql");
    if own.is_file() { own } else { "psql".into() }
}

/// A psql session running `sql` in the background, killed when dropped.
pub(crate) struct Background(Child);

impl Background {
    pub(crate) fn start(url: &str, sql: &str) -> Background {
        let child = Command::new(psql_program())
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql starts");
        Background(child)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `sql` (a count) returns at least 1.
pub(crate) fn wait_until(url: &str, sql: &str) {
    let began = Instant::now();
    while crate::support::pg::cluster().psql(url, sql) == "0" {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "timed out waiting for: {sql}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const PG_APP: &str = r#"
CREATE TABLE "User" ("id" serial PRIMARY KEY, "email" text NOT NULL UNIQUE);
CREATE TABLE "Appointment" ("id" serial PRIMARY KEY,
  "userId" integer NOT NULL REFERENCES "User" ("id"), "at" timestamptz NOT NULL);
CREATE INDEX "Appointment_userId_idx" ON "Appointment" ("userId");
INSERT INTO "User" ("email") VALUES ('a@example.com'), ('b@example.com');
INSERT INTO "Appointment" ("userId", "at") VALUES (1, now()), (2, now()), (2, now());
"#;

fn pg_project(prefix: &str) -> (Project, String) {
    let p = Project::new(|_| Target::postgres(prefix));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    crate::support::pg::cluster().psql(&url, PG_APP);
    let dir = p.path().join("migrations/postgres");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("001_init.sql"), "SELECT 1;").unwrap();
    migrate(&p, None);
    (p, url)
}

fn check<'a>(o: &'a Json, name: &str) -> &'a Json {
    &o["checks"][name]
}

#[test]
fn a_healthy_postgres_database_passes_every_check() {
    let (p, url) = pg_project("health");
    // Free disk depends on the machine and the cache hit ratio on how warm a fresh server is:
    // their thresholds are set low so the verdict is about this database; both are still
    // measured (asserted below).
    p.playbook(
        "health-it",
        &format!(
            "{}  - id: disk\n    log: {{ message: \"free disk {{{{ steps.health.outputs.checks.disk_space.free_percent }}}}%\" }}\n",
            health_playbook(
                "      checks: all\n      thresholds:\n        disk_space: { warn: 0.01, fail: 0.001 }\n        cache_hit_ratio: { warn: 1, fail: 0.5 }\n        tls: { warn: 1000 }\n        superuser: { warn: 2 }\n        unused_indexes: { warn: 1000 }\n        tablespaces: { warn: 0.01, fail: 0.001 }\n        settings: { warn: 1000 }\n"
            )
        ),
    );
    let out = p.run("health-it", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let o = health_outputs(&p);
    // The server runs on this machine; when its pid file is readable here (the tests run as
    // root or as the server's user) the free space is measured, never made up; otherwise it is
    // unknown, a warning.
    let data_dir = crate::support::pg::cluster().psql(&url, "SHOW data_directory");
    let measured = std::fs::read(std::path::Path::new(&data_dir).join("postmaster.pid")).is_ok();
    assert_eq!(o["status"], if measured { "pass" } else { "warn" }, "{o:#}");
    assert_eq!(o["warnings"], u64::from(!measured), "{o:#}");
    assert_eq!(o["failed"], 0, "{o:#}");
    let checks = o["checks"].as_object().unwrap();
    // Every check but backup_age (no backup folder given) and failed_queries (no sample
    // window); replication_lag is skipped (no replicas).
    assert_eq!(checks.len(), 23, "{o:#}");
    assert_eq!(check(&o, "replication_lag")["status"], "skip", "{o:#}");
    assert!(
        check(&o, "settings")["value"].as_u64().unwrap() > 0,
        "{o:#}"
    );
    let passed = checks.values().filter(|c| c["status"] == "pass").count();
    assert_eq!(o["passed"], passed as u64);

    assert_eq!(check(&o, "connection")["status"], "pass");
    assert!(
        check(&o, "version")["value"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL 15."),
        "{o:#}"
    );
    assert_eq!(check(&o, "version")["major"], 15);
    assert!(check(&o, "database_size")["bytes"].as_i64().unwrap() > 1_000_000);
    let rows = check(&o, "row_counts");
    assert_eq!(rows["tables"]["User"], 2);
    assert_eq!(rows["tables"]["Appointment"], 3);
    assert_eq!(rows["tables"]["runbook_migrations"], 1);
    // Two primary keys, a unique constraint, the explicit index, the migrations' key.
    assert_eq!(check(&o, "indexes")["value"], 5);
    assert_eq!(check(&o, "foreign_keys")["value"], 1);
    assert_eq!(check(&o, "orphaned_rows")["value"], 0);
    assert_eq!(check(&o, "orphaned_rows")["status"], "pass");
    let conns = check(&o, "connections");
    assert_eq!(conns["status"], "pass");
    assert_eq!(conns["max_connections"], 100);
    assert!(conns["total"].as_i64().unwrap() >= 1);
    assert_eq!(check(&o, "long_running_queries")["status"], "pass");
    assert_eq!(check(&o, "blocking_locks")["status"], "pass");
    let mig = check(&o, "migration_status");
    assert_eq!(mig["status"], "pass", "{mig:#}");
    assert_eq!(mig["value"], "001_init");
    assert_eq!(mig["pending"], serde_json::json!([]));
    let cache = check(&o, "cache_hit_ratio");
    assert!(
        cache["status"] == "pass" || cache["status"] == "skip",
        "{cache:#}"
    );
    assert!(cache["blocks_hit"].as_i64().unwrap() > 0, "{cache:#}");

    let disk = check(&o, "disk_space");
    if measured {
        assert_eq!(disk["source"], "filesystem", "{disk:#}");
        let free = disk["free_percent"]
            .as_f64()
            .unwrap_or_else(|| panic!("{disk:#}"));
        assert!((0.0..=100.0).contains(&free), "{disk:#}");
        assert_eq!(disk["status"], "pass");
        // The template renders the same number the check measured (minijinja writes a whole
        // float as `21.0`, Rust as `21`, so compare numbers, not text).
        let shown: f64 = out
            .stderr
            .split("free disk ")
            .nth(1)
            .and_then(|rest| rest.split('%').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `free disk N%` line in\n{}", out.stderr));
        assert_eq!(shown, free, "{}", out.stderr);
    } else {
        // Unknown, with the reason and how to provide the figure: a warning, never a number.
        assert_eq!(disk["status"], "warn", "{disk:#}");
        assert!(disk["free_percent"].is_null());
        assert!(
            disk["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("free disk unknown: ") && m.contains("disk_limit")),
            "{disk:#}"
        );
    }

    // The guide's output: one line per check and the summary.
    for want in [
        "pass  Database Connection: connected to",
        "pass  Data Integrity: no orphaned records found (1 foreign key checked)",
        "pass  Migration Status: last migration: 001_init (1 applied)",
        "health check PASSED",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_long_running_query_warns_and_fails_the_step_with_fail_on_warn() {
    let (p, url) = pg_project("health_slow");
    let _sleeper = Background::start(&url, "SELECT pg_sleep(60)");
    wait_until(
        &url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND query LIKE 'SELECT pg_sleep(60)%' \
         AND state = 'active' AND now() - query_start > interval '1.2 seconds'",
    );
    p.playbook(
        "health-it",
        &health_playbook(
            "      checks: [long_running_queries, connections]\n      thresholds:\n        long_running_queries: { warn: 1, fail: 120 }\n",
        ),
    );
    let out = p.run("health-it", &[]);
    assert_eq!(
        out.code,
        0,
        "a warning does not fail the step\n{}",
        out.combined()
    );
    let o = health_outputs(&p);
    assert_eq!(o["status"], "warn", "{o:#}");
    assert_eq!(o["warnings"], 1);
    let slow = check(&o, "long_running_queries");
    assert_eq!(slow["status"], "warn");
    assert_eq!(slow["value"], 1, "{slow:#}");
    let q = &slow["queries"][0];
    assert_eq!(q["query"], "SELECT pg_sleep(60)");
    assert_eq!(q["state"], "active");
    assert!(q["seconds"].as_f64().unwrap() >= 1.0, "{q:#}");
    assert!(
        out.stderr
            .contains("warn  Long Running Queries: 1 query running longer than 1s"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("health check PASSED with warnings"),
        "{}",
        out.stderr
    );

    p.playbook(
        "health-it",
        &health_playbook(
            "      checks: [long_running_queries]\n      thresholds:\n        long_running_queries: { warn: 1 }\n      fail_on: warn\n",
        ),
    );
    let out = p.run("health-it", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("long_running_queries warn: 1 query running longer than 1s"),
        "{}",
        out.stderr
    );
}

#[test]
fn orphaned_rows_behind_a_not_valid_foreign_key_are_found() {
    let p = Project::new(|_| Target::postgres("health_orphans"));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    crate::support::pg::cluster().psql(
        &url,
        r#"CREATE TABLE "Patient" ("id" integer PRIMARY KEY);
           CREATE TABLE "VitalSign" ("id" serial PRIMARY KEY, "patientId" integer, "value" real);
           INSERT INTO "Patient" VALUES (1);
           INSERT INTO "VitalSign" ("patientId", "value") VALUES (1, 1), (2, 2), (3, 3), (NULL, 4);
           ALTER TABLE "VitalSign" ADD CONSTRAINT "VitalSign_patientId_fkey"
             FOREIGN KEY ("patientId") REFERENCES "Patient" ("id") NOT VALID;"#,
    );
    p.playbook(
        "health-it",
        &health_playbook("      checks: [foreign_keys, orphaned_rows]\n"),
    );
    let out = p.run("health-it", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let o = health_outputs(&p);
    assert_eq!(o["status"], "warn", "{o:#}");
    let orphans = check(&o, "orphaned_rows");
    assert_eq!(orphans["status"], "warn");
    // The row with a null reference points nowhere on purpose and is not an orphan.
    assert_eq!(orphans["value"], 2, "{orphans:#}");
    assert_eq!(orphans["orphans"][0]["table"], "VitalSign");
    assert_eq!(orphans["orphans"][0]["references"], "Patient");
    assert_eq!(
        orphans["orphans"][0]["constraint"],
        "VitalSign_patientId_fkey"
    );
    let fks = check(&o, "foreign_keys");
    assert_eq!(fks["status"], "warn", "{fks:#}");
    assert_eq!(
        fks["not_validated"],
        serde_json::json!(["VitalSign.VitalSign_patientId_fkey"])
    );
    assert!(
        out.stderr.contains(
            "warn  Data Integrity: 2 orphaned rows: 2 in VitalSign(patientId) without a Patient"
        ),
        "{}",
        out.stderr
    );

    // Made strict, the same finding fails the step and the run.
    p.playbook(
        "health-it",
        &health_playbook("      checks: [orphaned_rows]\n      thresholds:\n        orphaned_rows: { fail: 1 }\n"),
    );
    let out = p.run("health-it", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("health check FAILED: 1 check, 0 passed, 0 warnings, 1 failed"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_session_waiting_on_a_lock_is_reported_with_its_blocker() {
    let (p, url) = pg_project("health_locks");
    let _holder = Background::start(
        &url,
        r#"BEGIN; LOCK TABLE "User" IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);"#,
    );
    wait_until(
        &url,
        r#"SELECT count(*) FROM pg_locks WHERE relation = '"User"'::regclass AND granted"#,
    );
    let _waiter = Background::start(&url, r#"SELECT count(*) FROM "User""#);
    wait_until(
        &url,
        "SELECT count(*) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0",
    );
    p.playbook(
        "health-it",
        &health_playbook("      checks: [blocking_locks, row_counts]\n      thresholds:\n        blocking_locks: { warn: 0 }\n"),
    );
    let out = p.run("health-it", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let o = health_outputs(&p);
    let locks = check(&o, "blocking_locks");
    assert_eq!(locks["status"], "warn", "{locks:#}");
    assert_eq!(locks["value"], 1);
    assert_eq!(
        locks["blocked"][0]["query"],
        r#"SELECT count(*) FROM "User""#
    );
    assert_eq!(
        locks["blocked"][0]["blocked_by"].as_array().unwrap().len(),
        1
    );
    // Counting a locked table gives up after the lock timeout instead of queueing behind it.
    let rows = check(&o, "row_counts");
    assert_eq!(rows["status"], "warn", "{rows:#}");
    assert!(
        rows["errors"]["User"]
            .as_str()
            .unwrap()
            .contains("lock timeout"),
        "{rows:#}"
    );
    assert_eq!(rows["tables"]["Appointment"], 3);
}

#[test]
fn the_sqlite_subset_runs_and_finds_orphans_and_pending_migrations() {
    let p = Project::new(Target::sqlite);
    sqlite_exec(
        &p.target,
        r#"CREATE TABLE "Patient" ("id" INTEGER PRIMARY KEY, "name" TEXT);
           CREATE TABLE "VitalSign" ("id" INTEGER PRIMARY KEY,
             "patientId" INTEGER REFERENCES "Patient" ("id"), "value" REAL);
           CREATE INDEX "VitalSign_patientId_idx" ON "VitalSign" ("patientId");
           INSERT INTO "Patient" VALUES (1, 'a');
           INSERT INTO "VitalSign" ("patientId", "value") VALUES (1, 1.0), (7, 2.0), (8, 3.0);"#,
    );
    let dir = p.path().join("migrations/sqlite");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("001_init.sql"), "SELECT 1;").unwrap();
    std::fs::write(dir.join("002_vitals.sql"), "SELECT 1;").unwrap();
    migrate(&p, Some("001"));
    p.playbook(
        "health-it",
        &health_playbook("      checks: all\n      thresholds:\n        disk_space: { warn: 0.01, fail: 0.001 }\n"),
    );
    let out = p.run("health-it", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let o = health_outputs(&p);
    let names: Vec<&str> = o["checks"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "connection",
            "database_size",
            "disk_space",
            "foreign_keys",
            "indexes",
            "migration_status",
            "orphaned_rows",
            "row_counts",
            "version"
        ],
        "`all` on SQLite leaves out the server checks"
    );
    assert_eq!(o["status"], "warn", "{o:#}");
    assert_eq!(o["warnings"], 2, "{o:#}");
    assert!(
        check(&o, "version")["value"]
            .as_str()
            .unwrap()
            .starts_with("SQLite 3.")
    );
    let size = std::fs::metadata(p.path().join("target.db")).unwrap().len();
    assert_eq!(check(&o, "database_size")["bytes"], size);
    assert_eq!(check(&o, "row_counts")["tables"]["VitalSign"], 3);
    assert_eq!(check(&o, "indexes")["value"], 2, "{o:#}");
    assert_eq!(check(&o, "foreign_keys")["value"], 1);
    let orphans = check(&o, "orphaned_rows");
    assert_eq!(orphans["value"], 2, "{orphans:#}");
    assert_eq!(orphans["orphans"][0]["table"], "VitalSign");
    assert_eq!(orphans["orphans"][0]["references"], "Patient");
    let mig = check(&o, "migration_status");
    assert_eq!(mig["status"], "warn");
    assert_eq!(mig["pending"], serde_json::json!(["002_vitals"]));
    assert_eq!(mig["value"], "001_init");
    let free = check(&o, "disk_space")["free_percent"].as_f64().unwrap();
    assert!(free > 0.0 && free <= 100.0);

    // Named explicitly, a server check shows as skipped with its reason.
    p.playbook(
        "health-it",
        &health_playbook("      checks: [connection, cache_hit_ratio]\n"),
    );
    let out = p.run("health-it", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let o = health_outputs(&p);
    assert_eq!(o["status"], "pass");
    assert_eq!(check(&o, "cache_hit_ratio")["status"], "skip");
    assert!(
        out.stderr.contains(
            "skip  Cache Hit Ratio: not applicable to SQLite: it has no server, sessions or shared buffers"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn without_a_migrations_table_health_says_none_were_applied() {
    let p = Project::new(Target::sqlite);
    sqlite_exec(&p.target, "CREATE TABLE t (id INTEGER PRIMARY KEY)");
    p.playbook(
        "health-it",
        &health_playbook("      checks: [migration_status]\n"),
    );
    let out = p.run("health-it", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let mig = check(&health_outputs(&p), "migration_status").clone();
    assert_eq!(mig["status"], "pass", "{mig:#}");
    assert_eq!(mig["table_exists"], false);
    assert_eq!(
        mig["message"],
        "no migrations applied (no `runbook_migrations` table)"
    );
}

#[test]
fn large_tables_are_estimated_rather_than_counted() {
    let p = Project::new(|_| Target::postgres("health_big"));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    // Statistics say five million rows: counting them exactly would read the whole table.
    crate::support::pg::cluster().psql(
        &url,
        r#"CREATE TABLE "Big" ("id" integer); INSERT INTO "Big" VALUES (1), (2), (3);
           CREATE TABLE "Small" ("id" integer); INSERT INTO "Small" VALUES (1);
           UPDATE pg_class SET reltuples = 5000000 WHERE oid = '"Big"'::regclass;"#,
    );
    p.playbook(
        "health-it",
        &health_playbook("      checks: [row_counts]\n"),
    );
    let out = p.run("health-it", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let rows = check(&health_outputs(&p), "row_counts").clone();
    assert_eq!(rows["tables"]["Big"], 5_000_000, "{rows:#}");
    assert_eq!(rows["tables"]["Small"], 1);
    assert_eq!(rows["estimated"], serde_json::json!(["Big"]));
    assert_eq!(
        rows["message"],
        "counted 2 tables (5000001 rows); 1 large table estimated from statistics"
    );

    // Against a baseline (a backup manifest's names, partitions listed on their own), a large
    // table is counted exactly, and a partition that lost rows is named.
    crate::support::pg::cluster().psql(
        &url,
        r#"CREATE TABLE "Log" ("at" date NOT NULL) PARTITION BY RANGE ("at");
           CREATE TABLE "Log_2025" PARTITION OF "Log" FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
           CREATE TABLE "Log_2026" PARTITION OF "Log" FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
           INSERT INTO "Log" VALUES ('2025-06-01'), ('2026-06-01');"#,
    );
    p.playbook(
        "health-it",
        &health_playbook(
            "      checks: [row_counts]
      baseline: { public.Big: 3, public.Small: 1, public.Log_2025: 1, public.Log_2026: 2 }
",
        ),
    );
    let out = p.run("health-it", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    // Big counted exactly (3, not 5 million), Log with both partitions, Log_2026 on its own.
    assert!(
        out.stderr.contains(
            "fail  Table Row Counts: counted 3 tables (6 rows); \
             1 table has fewer rows than the baseline: Log_2026 2 -> 1\n"
        ),
        "{}",
        out.stderr
    );
}

/// Row counts and orphans over more tables and keys than one set-based batch holds: every
/// table's exact count, partitions with their parent, every key's orphans, as counted one by
/// one with psql.
#[test]
fn counts_and_orphans_over_many_tables_are_exact() {
    let p = Project::new(|_| Target::postgres("health_many"));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    // 600 tables of i % 7 rows; 300 children with a NOT VALID key, i % 3 of their rows orphaned;
    // a partitioned table of 5 rows in two partitions.
    crate::support::pg::cluster().psql(
        &url,
        r#"CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent VALUES (1);
           DO $$ BEGIN
             FOR i IN 0..599 LOOP
               EXECUTE format('CREATE TABLE "T%s" (id int)', i);
               EXECUTE format('INSERT INTO "T%s" SELECT g FROM generate_series(1, %s) g', i, i % 7);
             END LOOP;
             FOR i IN 0..299 LOOP
               EXECUTE format('CREATE TABLE "C%s" (id serial, pid int)', i);
               EXECUTE format('INSERT INTO "C%s" (pid) SELECT 1 FROM generate_series(1, 2)', i);
               EXECUTE format('INSERT INTO "C%s" (pid) SELECT 100 + g FROM generate_series(1, %s) g', i, i % 3);
               EXECUTE format('INSERT INTO "C%s" (pid) VALUES (NULL)', i);
               EXECUTE format('ALTER TABLE "C%s" ADD CONSTRAINT "C%s_fk" FOREIGN KEY (pid) REFERENCES parent (id) NOT VALID', i, i);
             END LOOP;
           END $$;
           CREATE TABLE part (id int, k int) PARTITION BY RANGE (k);
           CREATE TABLE part_a PARTITION OF part FOR VALUES FROM (0) TO (10);
           CREATE TABLE part_b PARTITION OF part FOR VALUES FROM (10) TO (20);
           INSERT INTO part SELECT g, g * 3 FROM generate_series(1, 5) g;"#,
    );
    p.playbook(
        "health-it",
        &health_playbook("      checks: [row_counts, foreign_keys, orphaned_rows]\n"),
    );
    let out = p.run("health-it", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let o = health_outputs(&p);
    // The messages name ten keys and say how many more; the outputs list them all.
    let keys = check(&o, "foreign_keys");
    assert_eq!(keys["not_validated"].as_array().unwrap().len(), 300);
    let message = keys["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "found 300 foreign key constraints, 300 not validated (C0.C0_fk, C1.C1_fk, C10.C10_fk, "
        ) && message.contains(" and 290 more): "),
        "{message}"
    );
    let message = check(&o, "orphaned_rows")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    let (named, more) = message.split_once("; and ").expect(&message);
    assert_eq!(named.matches(" without a parent").count(), 10, "{message}");
    assert_eq!(more, "190 more (warn at 1 or more)", "{message}");
    let printed = out.combined();
    assert!(
        !printed.contains("C99_fk") && printed.contains("and 190 more"),
        "{printed}"
    );
    let rows = check(&o, "row_counts");
    let tables = rows["tables"].as_object().unwrap();
    assert_eq!(tables.len(), 600 + 300 + 2, "{rows:#}");
    let mut total = 0;
    for i in 0..600 {
        assert_eq!(tables[&format!("T{i}")], i % 7, "T{i}");
        total += i % 7;
    }
    for i in 0..300 {
        assert_eq!(tables[&format!("C{i}")], 3 + i % 3, "C{i}");
        total += 3 + i % 3;
    }
    assert_eq!(tables["parent"], 1);
    assert_eq!(tables["part"], 5);
    assert_eq!(rows["total"], total + 1 + 5);
    assert!(rows["errors"].as_object().unwrap().is_empty(), "{rows:#}");
    let orphans = check(&o, "orphaned_rows");
    let list = orphans["orphans"].as_array().unwrap();
    assert_eq!(list.len(), 200, "{orphans:#}");
    for o in list {
        let name = o["constraint"].as_str().unwrap();
        let i: i64 = name[1..name.len() - 3].parse().unwrap();
        assert_eq!(o["rows"], i % 3, "{name}");
    }
    assert_eq!(orphans["total"], (0..300).map(|i| i % 3).sum::<i64>());
    assert!(orphans["errors"].as_array().unwrap().is_empty());
}

/// Counts over more tables and keys than one message holds, as a role that is no superuser and
/// may not read one table: every other table's count exactly as written (mixed-case names with
/// spaces, a schema with a space), the orphans of every message, and the unreadable table's
/// error alone, in both checks.
#[test]
fn set_based_counts_match_the_rows_written_and_a_failure_stays_alone() {
    let cluster = crate::support::pg::cluster();
    let url = cluster.create_owned_db("health_sets");
    let name = url.rsplit('/').next().unwrap().to_owned();
    let role = format!("{name}_owner");
    // 300 tables of i % 7 rows; 280 children of i % 4 orphans, one row with a parent and one
    // with a null reference; the role may read everything but Child123.
    cluster.psql(
        &name,
        &format!(
            r#"CREATE SCHEMA "Other Schema";
               CREATE TABLE "Other Schema"."Parent" (id int PRIMARY KEY);
               INSERT INTO "Other Schema"."Parent" SELECT generate_series(1, 3);
               DO $$ BEGIN
                 FOR i IN 0..299 LOOP
                   EXECUTE format('CREATE TABLE "Mixed Case%s" (id int)', i);
                   EXECUTE format('INSERT INTO "Mixed Case%s" SELECT generate_series(1, %s)', i, i % 7);
                 END LOOP;
                 FOR i IN 0..279 LOOP
                   EXECUTE format('CREATE TABLE "Other Schema"."Child%s" (id serial, "parentId" int)', i);
                   EXECUTE format('INSERT INTO "Other Schema"."Child%s" ("parentId") SELECT 100 + generate_series(1, %s)', i, i % 4);
                   EXECUTE format('INSERT INTO "Other Schema"."Child%s" ("parentId") VALUES (1), (NULL)', i);
                   EXECUTE format('ALTER TABLE "Other Schema"."Child%s" ADD CONSTRAINT "Child%s_fkey" FOREIGN KEY ("parentId") REFERENCES "Other Schema"."Parent" (id) NOT VALID', i, i);
                 END LOOP;
               END $$;
               GRANT USAGE ON SCHEMA "Other Schema" TO {role};
               GRANT SELECT ON ALL TABLES IN SCHEMA public, "Other Schema" TO {role};
               REVOKE SELECT ON "Other Schema"."Child123" FROM {role};"#
        ),
    );
    let p = Project::new(|_| Target::Postgres(url.clone()));
    // The orphan counts shared from both ends of the list on the row counts' path, then (with a
    // size check for the helper to measure first) after the helper has measured it.
    for (checks, shared) in [
        ("[row_counts, indexes, foreign_keys, orphaned_rows]", false),
        (
            "[database_size, row_counts, indexes, foreign_keys, orphaned_rows]",
            true,
        ),
    ] {
        p.playbook(
            "health-it",
            &health_playbook(&format!("      checks: {checks}\n")),
        );
        let printed = run_logged(&p, "health-it");
        assert_eq!(
            printed.contains("the orphan counts shared with the helper"),
            shared,
            "{printed}"
        );
        exact_despite_one_denied(&health_outputs(&p));
    }
}

/// `set_based_counts_match_the_rows_written_and_a_failure_stays_alone`'s counts in `o`.
fn exact_despite_one_denied(o: &Json) {
    let rows = check(o, "row_counts");
    let tables = rows["tables"].as_object().unwrap();
    assert_eq!(tables.len(), 300 + 279 + 1, "{rows:#}");
    let mut total = 3;
    assert_eq!(tables["Other Schema.Parent"], 3, "{rows:#}");
    for i in 0..300 {
        assert_eq!(tables[&format!("Mixed Case{i}")], i % 7, "Mixed Case{i}");
        total += i % 7;
    }
    for i in (0..280).filter(|i| *i != 123) {
        assert_eq!(
            tables[&format!("Other Schema.Child{i}")],
            i % 4 + 2,
            "Child{i}"
        );
        total += i % 4 + 2;
    }
    assert_eq!(rows["total"], total, "{rows:#}");
    let errors = rows["errors"].as_object().unwrap();
    assert_eq!(errors.len(), 1, "{rows:#}");
    let denied = errors["Other Schema.Child123"].as_str().unwrap();
    assert!(denied.contains("permission denied"), "{denied}");

    let orphans = check(o, "orphaned_rows");
    let list = orphans["orphans"].as_array().unwrap();
    let expected: Vec<i64> = (0..280).filter(|i| i % 4 > 0 && *i != 123).collect();
    assert_eq!(list.len(), expected.len(), "{orphans:#}");
    for o in list {
        let name = o["constraint"].as_str().unwrap();
        let i: i64 = name["Child".len()..name.len() - "_fkey".len()]
            .parse()
            .unwrap();
        assert_eq!(o["rows"], i % 4, "{name}");
        assert_eq!(o["table"], format!("Other Schema.Child{i}"), "{o:#}");
    }
    assert_eq!(
        orphans["total"],
        expected.iter().map(|i| i % 4).sum::<i64>()
    );
    let errors = orphans["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{orphans:#}");
    assert_eq!(errors[0]["constraint"], "Child123_fkey", "{orphans:#}");
    assert_eq!(errors[0]["table"], "Other Schema.Child123", "{orphans:#}");
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{orphans:#}"
    );
    assert_eq!(
        check(o, "foreign_keys")["not_validated"]
            .as_array()
            .unwrap()
            .len(),
        280
    );
    assert_eq!(check(o, "indexes")["count"], 1, "{o:#}");
}
