//! The `backup_age` health check on real SQLite and PostgreSQL backups: a fresh verified backup
//! passes, an old one warns then fails by the thresholds, a newer backup that fails
//! verification is passed over (so a broken nightly backup shows as an old one), none fails,
//! and without a backup folder the check is left out of `all` and skipped when named.

use crate::support::sqlite_exec;
use crate::support::{Project, Target};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

const BACKUP: &str = "name: bk\nsteps:\n  - id: backup\n    backup: { dir: backups }\n";

fn health(extra: &str) -> String {
    format!(
        "name: fresh\nsteps:\n  - id: health\n    health:\n      checks: [connection, backup_age]\n      backup_dir: backups\n{extra}"
    )
}

/// The outputs of the newest run's health step, or its error.
fn outcome(p: &Project) -> (String, Json) {
    let (id, status) = p.last_run();
    let st = p.status_json(&id);
    let step = st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "health")
        .cloned()
        .unwrap_or_else(|| panic!("{st:#}"));
    (status, step)
}

/// The manifests in `backups/`, oldest first by name.
fn manifests(p: &Project) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(p.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    all.sort();
    all
}

/// Moves a backup's recorded time `hours` into the past (what an old backup looks like).
fn age(manifest: &Path, hours: i64) {
    let mut m: Json = serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    let t = chrono::Utc::now() - chrono::Duration::hours(hours);
    m["created_at"] = t.to_rfc3339().into();
    std::fs::write(manifest, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}

fn archive_of(manifest: &Path) -> PathBuf {
    let m: Json = serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    manifest.with_file_name(m["archive"].as_str().unwrap())
}

fn freshness_on(p: &Project) {
    p.playbook("bk", BACKUP);
    // No backup yet: the check fails, saying so.
    p.playbook("fresh", &health(""));
    let out = p.run("fresh", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("backup_age fail: no verified backup of database"),
        "{}",
        out.stderr
    );

    let out = p.run("bk", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let out = p.run("fresh", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let (_, step) = outcome(p);
    let c = &step["outputs"]["checks"]["backup_age"];
    assert_eq!(c["status"], "pass", "{c:#}");
    assert!(c["age_hours"].as_f64().unwrap() < 0.1, "{c:#}");
    assert_eq!(c["thresholds"]["warn"], 26.0);
    assert_eq!(c["thresholds"]["fail"], 48.0);

    // 30 hours old: a warning (the step passes); 50 hours: a failure.
    let first = manifests(p).pop().unwrap();
    age(&first, 30);
    let out = p.run("fresh", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        outcome(p).1["outputs"]["checks"]["backup_age"]["status"],
        "warn"
    );
    age(&first, 50);
    let out = p.run("fresh", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("backup_age fail: newest verified backup"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("(fail at 48 h or more)"),
        "{}",
        out.stderr
    );
    // The playbook's thresholds replace the defaults.
    p.playbook(
        "fresh",
        &health("      thresholds:\n        backup_age: { warn: 100, fail: 200 }\n"),
    );
    let out = p.run("fresh", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());

    // A newer backup whose archive is damaged does not count: the old one is graded.
    p.playbook("fresh", &health(""));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = p.run("bk", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let newest = manifests(p).into_iter().find(|m| *m != first).unwrap();
    let archive = archive_of(&newest);
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let out = p.run("fresh", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(out.stderr.contains("skipped"), "{}", out.stderr);
    assert!(out.stderr.contains("backup_age fail"), "{}", out.stderr);
}

#[test]
fn backup_age_grades_the_newest_verified_sqlite_backup() {
    let p = Project::new(Target::sqlite);
    sqlite_exec(
        &p.target,
        "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);",
    );
    freshness_on(&p);
}

#[test]
fn backup_age_grades_the_newest_verified_postgres_backup() {
    let p = Project::new(|_| Target::postgres("fresh"));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    crate::support::pg::cluster().psql(
        &url,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
    );
    freshness_on(&p);
}

#[test]
fn without_a_backup_folder_the_check_is_left_out_or_skipped() {
    let p = Project::new(Target::sqlite);
    sqlite_exec(&p.target, "CREATE TABLE t (id INTEGER PRIMARY KEY);");
    p.playbook(
        "all",
        "name: all\nsteps:\n  - id: health\n    health: { checks: all }\n",
    );
    let out = p.run("all", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let (_, step) = outcome(&p);
    assert!(
        step["outputs"]["checks"].get("backup_age").is_none(),
        "{step:#}"
    );
    p.playbook(
        "named",
        "name: named\nsteps:\n  - id: health\n    health: { checks: [backup_age] }\n",
    );
    let out = p.run("named", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let (_, step) = outcome(&p);
    let c = &step["outputs"]["checks"]["backup_age"];
    assert_eq!(c["status"], "skip", "{c:#}");
    assert!(
        c["message"].as_str().unwrap().contains("give `backup_dir`"),
        "{c:#}"
    );
}
