//! What a person reads while a run goes on: the run output of every database action (health,
//! migrate status/lint/apply/revert, backup, restore, find_backup, seed, copy), of gates, of the audit
//! commands and of a fleet, as snapshots. Volatile parts (times, ids, sizes of the machine's
//! disk, temp paths) pass through the one filter table in `support::filters`.

use crate::support::{Output, Runbook, pg, repo};
use std::path::Path;

/// Filters for what only this module's outputs hold: paths of backups, the machine's disk,
/// version strings and the OS user.
const MORE: &[(&str, &str)] = &[
    (r"\d{8}T\d{6}Z", "[stamp]"),
    (r"\d{8}-\d{6}-[0-9a-f]{6}", "[run]"),
    (r", \d+s\]", ", [elapsed]]"),
    (r"\b\d+ rows/s", "[n] rows/s"),
    (r"\d+(\.\d+)? ms\b", "[ms]"),
    (r"SQLite \d+\.\d+\.\d+", "SQLite [version]"),
    (r"PostgreSQL \d+\.\d+[^\n]*", "PostgreSQL [version]"),
    (r"approved by [\w:.@-]+", "approved by [who]"),
    (r"head [0-9a-f]{12}", "head [hash]"),
    (r"(?m)^(operator\s+\w+)@\S+", "$1@[host]"),
    (r"(?m)^target( +)\S+ ", "target$1[host] "),
    (r"Database Size: [^\n]*", "Database Size: [size]"),
    (r"/\S*/backups/", "[dir]/backups/"),
    (
        r"\(\d+ bytes, sha256 [0-9a-f]{64}\)",
        "([bytes], sha256 [hash])",
    ),
    (r"\d+(\.\d+)? (KiB|MiB|bytes), sha256", "[size], sha256"),
    (r"\(\d+ bytes\)", "([bytes])"),
    (r"\b[0-9a-f]{64}\b", "[hash]"),
    (r"\((just now|\d+ (minute|hour|day)s? ago)\)", "([age])"),
];

fn snapshot(name: &str, text: &str) {
    let mut settings = crate::support::filters::settings();
    for (pattern, replacement) in MORE {
        settings.add_filter(pattern, *replacement);
    }
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// A project with the shipped migrations and seeds, a tour playbook, and a SQLite target.
struct Tour {
    dir: tempfile::TempDir,
}

const TOUR: &str = r#"
name: tour
steps:
  - id: before
    health: { checks: [connection, migration_status] }
  - id: pending
    migrate: { action: status }
  - id: backup
    backup: { dir: backups, verify: true }
  - id: migrate
    migrate: { action: apply }
  - id: seed
    seed: { set: development }
  - id: verify
    health: { checks: [connection, row_counts, indexes, foreign_keys, orphaned_rows, migration_status] }
  - id: revert
    migrate: { action: revert, count: 1 }
  - id: restore
    restore: { from: "{{ steps.backup.outputs.path }}" }
  - id: after
    migrate: { action: status }
"#;

const SETUP: &str = r#"
name: setup
steps:
  - id: migrate
    migrate: { action: apply }
  - id: seed
    seed: { set: development }
"#;

const GATED: &str = r#"
name: gated
steps:
  - id: approve
    gate:
      approval:
        message: "Create the table on {{ env.name }}"
  - id: create
    sql: { query: "CREATE TABLE gated (id INTEGER)" }
"#;

impl Tour {
    fn new(config: &str) -> Tour {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["migrations/sqlite", "seeds"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            for e in std::fs::read_dir(repo().join(sub)).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), dir.path().join(sub).join(e.file_name())).unwrap();
            }
        }
        std::fs::create_dir_all(dir.path().join("playbooks")).unwrap();
        std::fs::write(dir.path().join("playbooks/tour.yaml"), TOUR).unwrap();
        std::fs::write(dir.path().join("playbooks/gated.yaml"), GATED).unwrap();
        std::fs::write(dir.path().join("playbooks/setup.yaml"), SETUP).unwrap();
        std::fs::write(dir.path().join("runbook.yaml"), config).unwrap();
        Tour { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn as_user(&self, user: &str, args: &[&str]) -> Output {
        let mut all = vec!["-C".to_owned(), self.path().display().to_string()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        Runbook::new(&refs).env("RUNBOOK_ACTOR", user).run()
    }

    fn last_run(&self) -> String {
        let out = self.as_user("alice", &["runs", "--format", "json"]);
        let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        runs["runs"][0]["run_id"].as_str().unwrap().to_owned()
    }
}

const SQLITE_CONFIG: &str = "environments:\n  dev:\n    target: { sqlite: app.db }\n    allow_target_override: true\n  staging:\n    target: { sqlite: staging.db }\n    protections: { approvals: 1 }\n";

#[test]
fn every_database_action_on_sqlite() {
    let t = Tour::new(SQLITE_CONFIG);
    let out = t.as_user("alice", &["run", "tour", "--env", "dev"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    snapshot("tour-sqlite", &out.combined());
}

/// A deploy whose backup is restored only when something after it changed the database.
const CAREFUL: &str = r#"
name: careful
steps:
  - id: backup
    backup: { dir: backups, verify: true }
    rollback:
      - restore: { from: "{{ steps.backup.outputs.path }}" }
    rollback_when: changed
  - id: migrate
    migrate: { action: apply }
"#;

#[test]
fn a_migration_that_fails_in_its_transaction_skips_the_restore_saying_why() {
    let t = Tour::new(SQLITE_CONFIG);
    let setup = t.as_user("alice", &["run", "setup", "--env", "dev"]);
    assert_eq!(setup.code, 0, "{}", setup.combined());
    std::fs::write(t.path().join("playbooks/careful.yaml"), CAREFUL).unwrap();
    std::fs::write(
        t.path().join("migrations/sqlite/20251219000000_broken.sql"),
        "ALTER TABLE \"Plan\" ADD COLUMN \"tier\" TEXT;\nSELECT * FROM \"NoSuchTable\";\n",
    )
    .unwrap();
    let out = t.as_user("alice", &["run", "careful", "--env", "dev"]);
    assert_eq!(out.code, 1, "{}", out.combined());
    snapshot("careful-skips-restore", &out.combined());
}

#[test]
fn a_gate_waits_then_an_approval_and_resume_finish_the_run() {
    let t = Tour::new(SQLITE_CONFIG);
    let waiting = t.as_user("alice", &["run", "gated", "--env", "staging"]);
    assert_eq!(waiting.code, 3, "{}", waiting.combined());
    let id = t.last_run();
    let own = t.as_user("alice", &["approve", &id, "approve"]);
    let approve = t.as_user(
        "bob",
        &["approve", &id, "approve", "--comment", "looks right"],
    );
    let resume = t.as_user("alice", &["resume", &id]);
    assert_eq!(resume.code, 0, "{}", resume.combined());
    let all = [
        ("run", &waiting),
        ("self-approval", &own),
        ("approve", &approve),
        ("resume", &resume),
    ]
    .iter()
    .map(|(what, o)| format!("=== {what}\n{}", o.combined()))
    .collect::<Vec<_>>()
    .join("\n");
    snapshot("gate-approve-resume", &all);

    let verify = t.as_user("carol", &["audit", "verify", &id]);
    let show = t.as_user("carol", &["audit", "show", &id]);
    let all = format!(
        "=== verify\n{}\n=== show\n{}",
        verify.combined(),
        show.combined()
    );
    snapshot("audit-verify-show", &all);
}

#[test]
fn a_fleet_of_sqlite_targets() {
    let config = "environments:\n  tenants:\n    targets:\n      - { name: t1, sqlite: t1.db, labels: { region: eu } }\n      - { name: t2, sqlite: t2.db, labels: { region: us } }\n      - { name: t3, sqlite: t3.db, labels: { region: eu } }\n";
    let t = Tour::new(config);
    std::fs::write(
        t.path().join("playbooks/tenant.yaml"),
        "name: tenant\nsteps:\n  - id: create\n    sql: { query: \"CREATE TABLE IF NOT EXISTS t (id INTEGER)\" }\n",
    )
    .unwrap();
    let out = t.as_user(
        "alice",
        &[
            "run",
            "tenant",
            "--env",
            "tenants",
            "--targets",
            "region=eu",
            "--concurrency",
            "1",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    snapshot("fleet-sqlite", &out.combined());
}

#[test]
fn a_copy_from_sqlite_to_postgres() {
    let t = Tour::new(SQLITE_CONFIG);
    let deploy = t.as_user("alice", &["run", "setup", "--env", "dev"]);
    assert_eq!(deploy.code, 0, "{}", deploy.combined());
    std::fs::write(
        t.path().join("playbooks/move.yaml"),
        "name: move\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:app.db\" }\n",
    )
    .unwrap();
    let url = pg::cluster().create_db("output_copy");
    let out = t.as_user("alice", &["run", "move", "--target", &url]);
    assert_eq!(out.code, 0, "{}", out.combined());
    snapshot("copy-sqlite-to-postgres", &tables_sorted(&out.combined()));
}

/// The output with the per-table lines of a copy in name order: tables are copied
/// concurrently, so they finish in any order.
fn tables_sorted(text: &str) -> String {
    let is_table = |l: &&str| l.contains("(copy): `");
    let mut tables: Vec<&str> = text.lines().filter(is_table).collect();
    tables.sort_by_key(|l| l.split('`').nth(1).unwrap_or("").to_owned());
    let mut tables = tables.into_iter();
    text.lines()
        .map(|l| {
            if is_table(&l) {
                tables.next().unwrap_or(l)
            } else {
                l
            }
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The shipped rollback playbook without `from`: the backup it chose (a corrupt newer one
/// skipped) shown before the confirmation it waits for, the restore on resume, and the refusal
/// when there is no backup.
#[test]
fn a_rollback_shows_the_backup_it_takes_before_the_confirmation() {
    let config = "environments:\n  dev:\n    target: { sqlite: app.db }\n    vars: { backup_dir: backups }\n    protections: { confirm_destructive: true }\n";
    let t = Tour::new(config);
    std::fs::copy(
        repo().join("playbooks/rollback.yaml"),
        t.path().join("playbooks/rollback.yaml"),
    )
    .unwrap();
    std::fs::write(
        t.path().join("playbooks/bk.yaml"),
        "name: bk\nsteps:\n  - id: backup\n    backup: { dir: \"{{ vars.backup_dir }}\" }\n",
    )
    .unwrap();
    let none = t.as_user("alice", &["run", "rollback", "--env", "dev"]);
    assert_eq!(none.code, 1, "{}", none.combined());
    for playbook in ["setup", "bk", "bk"] {
        let out = t.as_user("alice", &["run", playbook, "--env", "dev"]);
        assert_eq!(out.code, 0, "{}", out.combined());
    }
    // The newest by the manifests' time, as find_backup orders them: two backups taken in the
    // same second have names whose order is the run ids' random part.
    let dir = t.path().join("backups");
    let newest = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .map(|p| {
            let m: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (
                m["created_at"].as_str().unwrap().to_owned(),
                dir.join(m["archive"].as_str().unwrap()),
            )
        })
        .max()
        .unwrap()
        .1;
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&newest, bytes).unwrap();
    let waiting = t.as_user("alice", &["run", "rollback", "--env", "dev"]);
    assert_eq!(waiting.code, 3, "{}", waiting.combined());
    let id = t.last_run();
    let resume = t.as_user("alice", &["resume", &id, "--confirm", "app.db"]);
    assert_eq!(resume.code, 0, "{}", resume.combined());
    let all = [("no backup", &none), ("run", &waiting), ("resume", &resume)]
        .iter()
        .map(|(what, o)| format!("=== {what}\n{}", o.combined()))
        .collect::<Vec<_>>()
        .join("\n");
    snapshot("rollback-newest-backup", &all);
}
