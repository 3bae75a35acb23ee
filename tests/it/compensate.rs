//! `rollback_when: changed` end to end, on real SQLite and real PostgreSQL: a deploy whose
//! backup is restored only when a step after it changed the database. While each deploy runs,
//! "the application" writes an order after the backup was taken: a restore would throw that
//! write away, so whether it survives tells a skipped restore from one that ran. Also: a
//! resumed run decides the same way, and a state store from before gains the column the
//! verdicts are kept in.

use crate::support::{Output, Project, Target, pg, sqlite};
use serde_json::Value as Json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The shipped deploy's shape: a backup restored only when something after it changed the
/// database; between backup and migrate the run waits for the application's write.
const DEPLOY: &str = r#"
name: deploy
steps:
  - id: backup
    backup: { dir: backups, verify: true }
    rollback:
      - restore: { from: "{{ steps.backup.outputs.path }}" }
    rollback_when: changed
  - id: live
    wait_for:
      sql: "SELECT count(*) FROM orders"
      until: "(result | int) >= 2"
      interval: 100ms
      deadline: 60s
  - id: migrate
    migrate: { action: apply }
  - id: seed
    seed: { set: base }
"#;

/// A seed that writes a plan and then breaks a CHECK constraint: its transaction rolls back.
const BAD_SEED: &str = "- table: plans\n  key: [name]\n  rows:\n    - { name: basic, price: 10 }\n    - { name: broken, price: -1 }\n";

/// A seed that succeeds.
const GOOD_SEED: &str =
    "- table: plans\n  key: [name]\n  rows:\n    - { name: basic, price: 10 }\n";

/// The seed's table, made before the deploy (so the backup has it).
const PLANS: &str =
    "CREATE TABLE plans (name TEXT PRIMARY KEY, price INTEGER NOT NULL CHECK (price >= 0));\n";

/// A migration that commits: it changes a table the backup holds.
const ADDS_NOTE: &str = "ALTER TABLE orders ADD COLUMN note TEXT;\n";

/// A migration that writes and then fails on its last statement, inside its transaction.
const FAILS_INSIDE: &str = "CREATE TABLE coupons (code TEXT);\nINSERT INTO orders (id, item) VALUES (99, 'from the migration');\nSELECT * FROM no_such_table;\n";

fn both(test: impl Fn(Project)) {
    test(Project::new(Target::sqlite));
    test(Project::new(|_| Target::postgres("compensate")));
}

fn dialect(p: &Project) -> &'static str {
    match p.target {
        Target::Sqlite(_) => "sqlite",
        Target::Postgres(_) => "postgres",
    }
}

fn exec(p: &Project, sql: &str) {
    match &p.target {
        Target::Sqlite(_) => sqlite::sqlite_exec(&p.target, sql),
        Target::Postgres(url) => {
            pg::cluster().psql(url, sql);
        }
    }
}

/// A project with the deploy playbook, migrations `files` and seed `seed`, and a target
/// holding one order and the seed's (empty) table.
fn project(p: &Project, files: &[(&str, &str)], seed: &str) {
    p.playbook("deploy", DEPLOY);
    let dir = p.path().join("migrations").join(dialect(p));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::create_dir_all(p.path().join("seeds")).unwrap();
    std::fs::write(p.path().join("seeds/base.yaml"), seed).unwrap();
    exec(
        p,
        &format!(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL);\nINSERT INTO orders (id, item) VALUES (1, 'before the deploy');\n{PLANS}"
        ),
    );
}

/// The backup archives in the project's backups folder (a restore adds a pre-restore one).
fn manifests(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut all: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".manifest.json"))
        .collect();
    all.sort();
    all
}

/// Runs the deploy; once its backup is written, the application writes order 2.
fn deploy(p: &Project, failpoint: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbook"));
    cmd.args(["--color", "never", "-C"])
        .arg(p.path())
        .args(["run", "deploy", "--target", &p.target.arg()])
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .env_remove("RUNBOOK_FAILPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(f) = failpoint {
        cmd.env("RUNBOOK_FAILPOINT", f);
    }
    let mut child = cmd.spawn().expect("runbook starts");
    let backups = p.path().join("backups");
    let began = Instant::now();
    while manifests(&backups).is_empty() {
        let ended = child.try_wait().unwrap().is_some();
        if ended || began.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the deploy wrote no backup:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    exec(
        p,
        "INSERT INTO orders (id, item) VALUES (2, 'written during the deploy')",
    );
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn orders(p: &Project) -> Vec<String> {
    p.target.query("SELECT id, item FROM orders ORDER BY id")
}

/// Whether a table exists on the target.
fn has_table(p: &Project, table: &str) -> bool {
    let sql = match p.target {
        Target::Sqlite(_) => {
            format!("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'")
        }
        Target::Postgres(_) => format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = '{table}'"
        ),
    };
    p.target.query(&sql) == ["1"]
}

/// Whether `orders` has the column the migration `ADDS_NOTE` adds.
fn has_note(p: &Project) -> bool {
    let sql = match p.target {
        Target::Sqlite(_) => "SELECT count(*) FROM pragma_table_info('orders') WHERE name = 'note'",
        Target::Postgres(_) => {
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'"
        }
    };
    p.target.query(sql) == ["1"]
}

/// The newest run's record of step `id`.
fn step(p: &Project, id: &str) -> Json {
    let (run, _) = p.last_run();
    let status = p.status_json(&run);
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == id)
        .cloned()
        .unwrap_or(Json::Null)
}

const SKIPPED_AFTER_MIGRATE: &str = "rollback of `backup` skipped: nothing after it changed the database (`migrate` failed and committed nothing)";

#[test]
fn a_migration_that_fails_inside_its_transaction_ends_failed_without_restoring() {
    both(|p| {
        project(&p, &[("001_coupons.sql", FAILS_INSIDE)], GOOD_SEED);
        let out = deploy(&p, None);
        assert_eq!(out.code, 1, "{}", out.combined());
        assert_eq!(p.last_run().1, "failed");
        assert!(out.stderr.contains(SKIPPED_AFTER_MIGRATE), "{}", out.stderr);
        assert!(
            !out.stderr.contains("rolling back"),
            "nothing is rolled back: {}",
            out.stderr
        );
        // The application's write survives, and nothing of the migration is there.
        assert_eq!(
            orders(&p),
            ["1|before the deploy", "2|written during the deploy"]
        );
        assert!(!has_table(&p, "coupons"));
        // No restore ran: it would have taken a pre-restore backup.
        assert_eq!(manifests(&p.path().join("backups")).len(), 1);
        let comp = step(&p, "backup.rollback-1");
        assert_eq!(comp["status"], "skipped", "{comp}");
        let migrate = step(&p, "migrate");
        assert_eq!(migrate["status"], "failed");
        assert_eq!(migrate["change"]["changed"], false, "{migrate}");
    });
}

#[test]
fn a_seed_that_fails_after_a_migration_committed_restores_the_backup() {
    both(|p| {
        project(&p, &[("001_note.sql", ADDS_NOTE)], BAD_SEED);
        let out = deploy(&p, None);
        assert_eq!(out.code, 1, "{}", out.combined());
        assert!(
            out.stderr.contains("backup.rollback-1 (restore)"),
            "the backup is restored: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("skipped: nothing after"),
            "{}",
            out.stderr
        );
        assert_eq!(p.last_run().1, "failed");
        // The database is the backup again: the migration and the later write are gone.
        assert!(!has_note(&p), "the migration is undone");
        assert_eq!(orders(&p), ["1|before the deploy"]);
        assert_eq!(step(&p, "backup.rollback-1")["status"], "succeeded");
        assert_eq!(
            manifests(&p.path().join("backups")).len(),
            2,
            "and a pre-restore backup"
        );
        assert_eq!(step(&p, "migrate")["change"]["changed"], true);
        assert_eq!(step(&p, "seed")["change"]["changed"], false);
    });
}

#[test]
fn a_second_migration_failing_after_the_first_committed_restores_the_backup() {
    both(|p| {
        project(
            &p,
            &[
                ("001_note.sql", ADDS_NOTE),
                ("002_coupons.sql", FAILS_INSIDE),
            ],
            GOOD_SEED,
        );
        let out = deploy(&p, None);
        assert_eq!(out.code, 1, "{}", out.combined());
        assert!(
            out.stderr.contains("backup.rollback-1 (restore)"),
            "the backup is restored: {}",
            out.stderr
        );
        assert!(!has_note(&p), "the first migration is undone");
        assert_eq!(orders(&p), ["1|before the deploy"]);
        let migrate = step(&p, "migrate");
        assert_eq!(migrate["change"]["changed"], true, "{migrate}");
    });
}

#[test]
fn a_seed_whose_transaction_rolled_back_with_nothing_to_migrate_skips_the_restore() {
    both(|p| {
        project(&p, &[], BAD_SEED);
        let out = deploy(&p, None);
        assert_eq!(out.code, 1, "{}", out.combined());
        assert!(
            out.stderr.contains("rollback of `backup` skipped: nothing after it changed the database (`seed` failed and committed nothing)"),
            "{}",
            out.stderr
        );
        assert_eq!(p.target.query("SELECT count(*) FROM plans"), ["0"]);
        assert_eq!(
            orders(&p),
            ["1|before the deploy", "2|written during the deploy"]
        );
        assert_eq!(step(&p, "migrate")["change"]["changed"], false);
    });
}

#[test]
fn a_resumed_run_makes_the_same_decision() {
    both(|p| {
        project(&p, &[("001_coupons.sql", FAILS_INSIDE)], GOOD_SEED);
        // The run dies right after the failed migration is recorded, before the rollback.
        let out = deploy(&p, Some("failed:migrate"));
        assert_eq!(out.code, -1, "the failpoint kills it: {}", out.combined());
        let (id, status) = p.last_run();
        assert_eq!(status, "crashed");
        let out = p.resume(&id, &[]);
        assert_eq!(out.code, 1, "{}", out.combined());
        assert!(out.stderr.contains(SKIPPED_AFTER_MIGRATE), "{}", out.stderr);
        assert_eq!(p.last_run().1, "failed");
        assert_eq!(
            orders(&p),
            ["1|before the deploy", "2|written during the deploy"]
        );
        assert_eq!(manifests(&p.path().join("backups")).len(), 1);
    });
}

#[test]
fn a_migration_outside_a_transaction_counts_as_a_change_and_restores() {
    both(|p| {
        // It fails on its first statement, but outside a transaction runbook cannot vouch
        // for what it left (its history row is written as failed first).
        let outside = "-- runbook:no-transaction\nSELECT * FROM no_such_table;\n";
        project(&p, &[("001_outside.sql", outside)], GOOD_SEED);
        let out = deploy(&p, None);
        assert_eq!(out.code, 1, "{}", out.combined());
        assert!(
            out.stderr.contains("backup.rollback-1 (restore)"),
            "the backup is restored: {}",
            out.stderr
        );
        assert_eq!(orders(&p), ["1|before the deploy"]);
        let migrate = step(&p, "migrate");
        assert_eq!(migrate["change"]["changed"], true, "{migrate}");
    });
}

#[test]
fn a_state_store_from_before_gains_the_column_steps_record_what_they_changed_in() {
    let p = Project::new(Target::sqlite);
    let path = p.path().join(".runbook/state.db");
    let store = Target::Sqlite(path.clone());
    std::fs::create_dir_all(p.path().join(".runbook")).unwrap();
    // The steps table as runbook made it before steps recorded what they changed.
    sqlite::sqlite_exec(
        &store,
        "CREATE TABLE runbook_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO runbook_meta VALUES ('state_version', '1');
         CREATE TABLE runbook_steps (run_id TEXT NOT NULL, step TEXT NOT NULL, phase TEXT NOT NULL,
           ord BIGINT NOT NULL, status TEXT NOT NULL, attempts BIGINT NOT NULL, started_at BIGINT,
           finished_at BIGINT, outputs TEXT NOT NULL, error TEXT, PRIMARY KEY (run_id, step, phase));",
    );
    p.playbook(
        "hello",
        "name: hello\nsteps:\n  - id: hello\n    log: { message: hello }\n",
    );
    let out = p.run("hello", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let hello = step(&p, "hello");
    assert_eq!(hello["change"]["changed"], false, "{hello}");
    assert_eq!(
        sqlite::query(
            &path,
            "SELECT value FROM runbook_meta WHERE key = 'state_version'"
        ),
        ["9"]
    );
}
