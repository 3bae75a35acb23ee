//! `backup` and `restore` end to end, through the binary, on real PostgreSQL and real SQLite:
//! manifests, verification, refusal of corrupt archives, pre-restore backups, retention,
//! modes and formats, client version checks, and that passwords stay out of argv.

use crate::support::pg;
use crate::support::{Output, Runbook};
use crate::support::{Project, Target};
use runbook::db::backup::{LibpqTarget, installed_bin_dir};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn backup_playbook(args: &str) -> String {
    format!("name: bk\nsteps:\n  - id: backup\n    backup: {{ dir: backups{args} }}\n")
}

const RESTORE: &str = r#"
name: rs
params:
  from: { type: string, required: true }
steps:
  - id: confirm
    gate: { confirm: { message: "Type the database name to restore {{ params.from }}" } }
  - id: restore
    restore: { from: "{{ params.from }}" }
"#;

const RESTORE_JOBS: &str = r#"
name: rsj
params:
  from: { type: string, required: true }
steps:
  - id: restore
    restore: { from: "{{ params.from }}", jobs: 2 }
"#;

/// The database name a `confirm` gate wants.
fn db_name(t: &Target) -> String {
    match t {
        Target::Sqlite(p) => p.file_name().unwrap().to_string_lossy().into_owned(),
        Target::Postgres(url) => url.rsplit('/').next().unwrap().to_owned(),
    }
}

fn ok(out: &Output) {
    assert_eq!(out.code, 0, "{}", out.combined());
}

/// The manifests in `dir`, parsed, oldest name first.
fn manifests(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

/// The outputs of step `id` in the newest run.
fn outputs(p: &Project, id: &str) -> Value {
    let (run, _) = p.last_run();
    let st = p.status_json(&run);
    st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {st}"))["outputs"]
        .clone()
}

fn pg_list(archive: &Path) -> String {
    let out = std::process::Command::new(pg::cluster().bin_dir().join("pg_restore"))
        .arg("--list")
        .arg(archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn count(t: &Target, table: &str) -> u64 {
    t.query(&format!("SELECT count(*) FROM {table}"))[0]
        .parse()
        .unwrap()
}

/// users (100), orders (250, referencing users), an empty table, a view, a table in a second
/// schema, and a runbook state table (the state store living in the target).
fn pg_app(prefix: &str) -> Project {
    let p = Project::new(|_| Target::postgres(prefix));
    pg::cluster().psql(
        &p.target.arg(),
        "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
         INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 100) g;
         CREATE TABLE orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users(id), total numeric(10,2));
         INSERT INTO orders (user_id, total) SELECT 1 + g % 100, g FROM generate_series(1, 250) g;
         CREATE TABLE empty_notes (id int);
         CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
         CREATE SCHEMA billing;
         CREATE TABLE billing.invoices (id int PRIMARY KEY, amount int);
         INSERT INTO billing.invoices SELECT g, g * 10 FROM generate_series(1, 30) g;
         CREATE TABLE runbook_runs (id text);
         INSERT INTO runbook_runs VALUES ('before the backup');",
    );
    p
}

fn expected_pg_counts() -> Value {
    serde_json::json!({
        "billing.invoices": 30,
        "public.empty_notes": 0,
        "public.orders": 250,
        "public.users": 100,
    })
}

#[test]
fn pg_backup_writes_a_manifest_with_a_correct_sha256() {
    let p = pg_app("bk_manifest");
    p.playbook("bk", &backup_playbook(""));
    let out = p.run("bk", &[]);
    ok(&out);
    let dir = p.path().join("backups");
    let found = manifests(&dir);
    assert_eq!(found.len(), 1, "{:?}", names(&dir));
    let (manifest_path, m) = &found[0];
    let archive = dir.join(m["archive"].as_str().unwrap());
    let name = m["archive"].as_str().unwrap();
    let (run, status) = p.last_run();
    assert_eq!(status, "succeeded");
    // Name: database, time, run, step.
    assert!(
        name.starts_with(&format!("{}_", db_name(&p.target))),
        "{name}"
    );
    assert!(
        name.contains(&run) && name.ends_with("_backup.dump"),
        "{name}"
    );
    assert_eq!(m["sha256"], sha256_file(&archive));
    assert_eq!(m["size"], std::fs::metadata(&archive).unwrap().len());
    assert!(
        m["server_version"].as_str().unwrap().starts_with("15."),
        "{m}"
    );
    assert!(
        m["pg_dump_version"].as_str().unwrap().starts_with("15."),
        "{m}"
    );
    assert_eq!(m["row_counts"], expected_pg_counts());
    assert_eq!(m["run_id"], run.as_str());
    assert_eq!(m["step_id"], "backup");
    assert_eq!(m["mode"], "full");
    assert_eq!(m["format"], "custom");
    assert_eq!(m["dialect"], "postgres");
    assert_eq!(m["purpose"], "backup");
    assert!(chrono::DateTime::parse_from_rfc3339(m["created_at"].as_str().unwrap()).is_ok());
    // The archive holds the application's data: owner only.
    assert_eq!(
        std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // runbook's own tables are not in the archive.
    let list = pg_list(&archive);
    assert!(list.contains("TABLE DATA public users"), "{list}");
    assert!(!list.contains("runbook_runs"), "{list}");
    // Outputs.
    let o = outputs(&p, "backup");
    assert_eq!(o["path"], archive.display().to_string());
    assert_eq!(o["manifest"], manifest_path.display().to_string());
    assert_eq!(o["sha256"], m["sha256"]);
    assert_eq!(o["size"], m["size"]);
    assert_eq!(o["format"], "custom");
    assert_eq!(o["server_version"], m["server_version"]);
    assert_eq!(o["row_counts"], expected_pg_counts());
    assert!(out.stderr.contains("verified in"), "{}", out.stderr);
    // No partial file is left behind.
    assert_eq!(names(&dir).len(), 2, "{:?}", names(&dir));
}

#[test]
fn pg_restore_refuses_a_corrupt_archive_before_touching_the_database() {
    let p = pg_app("bk_corrupt");
    p.playbook("bk", &backup_playbook(""))
        .playbook("rs", RESTORE);
    ok(&p.run("bk", &[]));
    let dir = p.path().join("backups");
    let (_, m) = manifests(&dir).remove(0);
    let archive = dir.join(m["archive"].as_str().unwrap());
    // Change the database, so a restore that went ahead would show.
    pg::cluster().psql(
        &p.target.arg(),
        "DELETE FROM orders WHERE id > 50; DROP TABLE billing.invoices; CREATE TABLE later (x int)",
    );
    // One byte, in the middle of the data.
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&archive, bytes).unwrap();

    let db = db_name(&p.target);
    let out = p.run(
        "rs",
        &[
            "--var",
            &format!("from={}", archive.display()),
            "--confirm",
            &db,
        ],
    );
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("refusing to restore") && out.stderr.contains("is corrupt"),
        "{}",
        out.stderr
    );
    assert_eq!(count(&p.target, "orders"), 50);
    assert_eq!(count(&p.target, "users"), 100);
    assert_eq!(count(&p.target, "later"), 0);
    assert_eq!(
        p.target
            .query("SELECT count(*) FROM pg_tables WHERE schemaname = 'billing'"),
        ["0"]
    );
    // Refused before the pre-restore backup, too.
    assert_eq!(manifests(&dir).len(), 1, "{:?}", names(&dir));
}

#[test]
fn pg_restore_brings_back_rows_and_dropped_tables_and_keeps_a_pre_restore_backup() {
    let p = pg_app("bk_restore");
    p.playbook("bk", &backup_playbook(""))
        .playbook("rs", RESTORE);
    ok(&p.run("bk", &[]));
    let dir = p.path().join("backups");
    let (manifest_path, m) = manifests(&dir).remove(0);
    pg::cluster().psql(
        &p.target.arg(),
        "DELETE FROM orders WHERE id > 50;
         DELETE FROM users WHERE id > 90 AND id NOT IN (SELECT user_id FROM orders);
         DROP VIEW big_orders;
         DROP TABLE billing.invoices;
         INSERT INTO runbook_runs VALUES ('after the backup');",
    );
    // Restoring from the manifest works like restoring from the archive.
    let db = db_name(&p.target);
    let out = p.run(
        "rs",
        &[
            "--var",
            &format!("from={}", manifest_path.display()),
            "--confirm",
            &db,
        ],
    );
    ok(&out);
    assert_eq!(count(&p.target, "orders"), 250);
    assert_eq!(count(&p.target, "users"), 100);
    assert_eq!(count(&p.target, "billing.invoices"), 30);
    assert_eq!(count(&p.target, "big_orders"), 150);
    // The state store's rows are not rewound.
    assert_eq!(
        p.target.query("SELECT id FROM runbook_runs ORDER BY id"),
        ["after the backup", "before the backup"]
    );
    let o = outputs(&p, "restore");
    let archive = dir.join(m["archive"].as_str().unwrap());
    assert_eq!(o["path"], archive.display().to_string());
    assert_eq!(o["row_counts"], expected_pg_counts());
    assert_eq!(o["tables"], 4);
    // The pre-restore backup holds the state just before the restore.
    let pre = PathBuf::from(o["pre_backup"].as_str().unwrap());
    assert!(pre.is_file(), "{}", pre.display());
    let pre_manifest = manifests(&dir)
        .into_iter()
        .find(|(_, m)| m["purpose"] == "pre_restore")
        .expect("a pre-restore manifest")
        .1;
    assert_eq!(
        pre_manifest["archive"],
        pre.file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(pre_manifest["row_counts"]["public.orders"], 50);
    assert!(pre_manifest["row_counts"].get("billing.invoices").is_none());
    assert_eq!(pre_manifest["sha256"], sha256_file(&pre));
}

#[test]
fn pg_restore_fails_naming_a_table_whose_count_differs() {
    let p = pg_app("bk_counts");
    p.playbook("bk", &backup_playbook(""))
        .playbook("rs", RESTORE);
    ok(&p.run("bk", &[]));
    let dir = p.path().join("backups");
    let (manifest_path, mut m) = manifests(&dir).remove(0);
    // A manifest that disagrees with its (intact) archive about one table: the restore runs
    // and the count comparison must catch it. The sha256 still matches the archive.
    m["row_counts"]["public.users"] = 99.into();
    std::fs::write(&manifest_path, serde_json::to_string(&m).unwrap()).unwrap();
    let db = db_name(&p.target);
    let out = p.run(
        "rs",
        &[
            "--var",
            &format!("from={}", manifest_path.display()),
            "--confirm",
            &db,
        ],
    );
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("`public.users` has 100 rows, the backup 99"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("pre-restore backup is"),
        "{}",
        out.stderr
    );
}

#[test]
fn schema_only_and_data_only_archives_list_what_their_mode_says() {
    let p = pg_app("bk_modes");
    p.playbook(
        "schema",
        &backup_playbook(", mode: schema_only").replace("name: bk", "name: schema"),
    )
    .playbook(
        "data",
        &backup_playbook(", mode: data_only").replace("name: bk", "name: data"),
    )
    .playbook("rs", RESTORE);
    ok(&p.run("schema", &[]));
    ok(&p.run("data", &[]));
    let dir = p.path().join("backups");
    let found = manifests(&dir);
    let by_mode = |mode: &str| {
        found
            .iter()
            .find(|(_, m)| m["mode"] == mode)
            .unwrap_or_else(|| panic!("no {mode} manifest"))
            .1
            .clone()
    };
    let schema = by_mode("schema_only");
    let data = by_mode("data_only");
    let schema_list = pg_list(&dir.join(schema["archive"].as_str().unwrap()));
    let data_list = pg_list(&dir.join(data["archive"].as_str().unwrap()));
    assert!(
        schema_list.contains(" TABLE public users "),
        "{schema_list}"
    );
    assert!(
        schema_list.contains(" VIEW public big_orders "),
        "{schema_list}"
    );
    assert!(!schema_list.contains("TABLE DATA"), "{schema_list}");
    assert!(
        data_list.contains(" TABLE DATA public users "),
        "{data_list}"
    );
    assert!(
        data_list.contains(" TABLE DATA billing invoices "),
        "{data_list}"
    );
    assert!(!data_list.contains(" TABLE public users "), "{data_list}");
    assert!(!data_list.contains(" VIEW "), "{data_list}");

    // A data-only restore empties the tables and refills them.
    pg::cluster().psql(&p.target.arg(), "DELETE FROM orders WHERE id > 10");
    let db = db_name(&p.target);
    let data_archive = dir.join(data["archive"].as_str().unwrap());
    ok(&p.run(
        "rs",
        &[
            "--var",
            &format!("from={}", data_archive.display()),
            "--confirm",
            &db,
        ],
    ));
    assert_eq!(count(&p.target, "orders"), 250);
    assert_eq!(count(&p.target, "users"), 100);

    // A schema-only restore recreates the tables empty, which is what it is checked against.
    let schema_archive = dir.join(schema["archive"].as_str().unwrap());
    ok(&p.run(
        "rs",
        &[
            "--var",
            &format!("from={}", schema_archive.display()),
            "--confirm",
            &db,
        ],
    ));
    assert_eq!(count(&p.target, "orders"), 0);
    assert_eq!(count(&p.target, "billing.invoices"), 0);
}

#[test]
fn directory_format_dumps_and_restores_with_parallel_jobs() {
    let p = pg_app("bk_dir");
    p.playbook("bk", &backup_playbook(", format: directory, jobs: 2"))
        .playbook("rsj", RESTORE_JOBS);
    ok(&p.run("bk", &[]));
    let dir = p.path().join("backups");
    let (_, m) = manifests(&dir).remove(0);
    assert_eq!(m["format"], "directory");
    let archive = dir.join(m["archive"].as_str().unwrap());
    assert!(archive.join("toc.dat").is_file(), "{}", archive.display());
    assert!(m["archive"].as_str().unwrap().ends_with(".dir"));
    // Each file's sum, and the archive's sum over the listing (as sha256sum prints it).
    let files = m["files"].as_object().unwrap();
    assert!(files.contains_key("toc.dat"));
    let mut listing = String::new();
    let mut size = 0;
    for (name, sum) in files {
        assert_eq!(sum["sha256"], sha256_file(&archive.join(name)), "{name}");
        listing.push_str(&format!("{}  {name}\n", sum["sha256"].as_str().unwrap()));
        size += sum["size"].as_u64().unwrap();
    }
    assert_eq!(files.len(), std::fs::read_dir(&archive).unwrap().count());
    assert_eq!(m["sha256"], hex::encode(Sha256::digest(listing.as_bytes())));
    assert_eq!(m["size"], size);
    assert_eq!(m["row_counts"], expected_pg_counts());

    pg::cluster().psql(
        &p.target.arg(),
        "DELETE FROM orders; DROP TABLE billing.invoices",
    );
    let out = p.run("rsj", &["--var", &format!("from={}", archive.display())]);
    ok(&out);
    assert!(out.stderr.contains("with 2 jobs"), "{}", out.stderr);
    assert_eq!(count(&p.target, "orders"), 250);
    assert_eq!(count(&p.target, "billing.invoices"), 30);
    // The pre-restore backup of a directory-format archive is a custom one next to it.
    let o = outputs(&p, "restore");
    assert!(
        o["pre_backup"]
            .as_str()
            .unwrap()
            .ends_with("_pre-restore.dump"),
        "{o}"
    );

    // A file missing from a directory archive is refused before anything changes.
    pg::cluster().psql(&p.target.arg(), "DELETE FROM orders WHERE id > 5");
    let data_file = files.keys().find(|n| n.ends_with(".dat.gz")).unwrap();
    std::fs::remove_file(archive.join(data_file)).unwrap();
    let out = p.run("rsj", &["--var", &format!("from={}", archive.display())]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(out.stderr.contains("is missing"), "{}", out.stderr);
    assert_eq!(count(&p.target, "orders"), 5);
}

/// A project on a new, empty SQLite database (an empty file is one).
fn sqlite_project() -> Project {
    Project::new(|dir| {
        let t = Target::sqlite(dir);
        if let Target::Sqlite(path) = &t {
            std::fs::File::create(path).unwrap();
        }
        t
    })
}

/// users (AUTOINCREMENT), orders with an index and a trigger writing to log, a view, a rowid
/// table with a gap, `user_version`.
fn sqlite_app() -> Project {
    let p = sqlite_project();
    for sql in [
        "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), total REAL)",
        "CREATE INDEX orders_user ON orders(user_id)",
        "CREATE TABLE log (what TEXT)",
        "CREATE TRIGGER orders_log AFTER INSERT ON orders BEGIN INSERT INTO log VALUES ('order'); END",
        "CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100",
        "CREATE TABLE tags (name TEXT)",
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100) INSERT INTO users (email) SELECT 'u' || n FROM g",
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 250) INSERT INTO orders (user_id, total) SELECT 1 + n % 100, n FROM g",
        // The AUTOINCREMENT counter runs ahead of max(id): 101 was used and deleted.
        "INSERT INTO users (email) VALUES ('gone')",
        "DELETE FROM users WHERE email = 'gone'",
        "INSERT INTO tags (name) VALUES ('a'), ('b'), ('c')",
        "DELETE FROM tags WHERE name = 'b'",
        "PRAGMA user_version = 7",
    ] {
        p.target.query(sql);
    }
    p
}

#[test]
fn sqlite_backup_and_restore_round_trip() {
    let p = sqlite_app();
    p.playbook("bk", &backup_playbook(""))
        .playbook("rs", RESTORE);
    let out = p.run("bk", &[]);
    ok(&out);
    let dir = p.path().join("backups");
    let (manifest_path, m) = manifests(&dir).remove(0);
    let archive = dir.join(m["archive"].as_str().unwrap());
    assert!(m["archive"].as_str().unwrap().starts_with("target_"), "{m}");
    assert_eq!(m["format"], "sqlite");
    assert_eq!(m["dialect"], "sqlite");
    assert_eq!(m["sha256"], sha256_file(&archive));
    assert_eq!(m["size"], std::fs::metadata(&archive).unwrap().len());
    assert!(
        m["server_version"].as_str().unwrap().starts_with("3."),
        "{m}"
    );
    assert_eq!(
        m["row_counts"],
        serde_json::json!({"log": 250, "orders": 250, "tags": 2, "users": 100})
    );
    assert_eq!(outputs(&p, "backup")["format"], "sqlite");

    let Target::Sqlite(db_path) = &p.target else {
        unreachable!()
    };
    let inode = std::fs::metadata(db_path).unwrap().ino();
    for sql in [
        "DELETE FROM orders WHERE id > 10",
        "DROP VIEW big_orders",
        "DROP TABLE tags",
        "CREATE TABLE newer (x)",
        "INSERT INTO users (email) VALUES ('late1'), ('late2')",
        "DELETE FROM users WHERE email LIKE 'late%'",
        "PRAGMA user_version = 8",
    ] {
        p.target.query(sql);
    }
    let db = db_name(&p.target);
    let out = p.run(
        "rs",
        &[
            "--var",
            &format!("from={}", manifest_path.display()),
            "--confirm",
            &db,
        ],
    );
    ok(&out);
    assert_eq!(count(&p.target, "orders"), 250);
    // The trigger came back after the rows: it did not fire for the copied orders.
    assert_eq!(count(&p.target, "log"), 250);
    assert_eq!(count(&p.target, "big_orders"), 150);
    // Rowids are kept, gaps included.
    assert_eq!(
        p.target.query("SELECT rowid, name FROM tags"),
        ["1|a", "3|c"]
    );
    // The restore replaced the schema: a table made after the backup is gone.
    assert!(
        p.target
            .query("SELECT name FROM sqlite_schema WHERE name = 'newer'")
            .is_empty()
    );
    assert_eq!(p.target.query("PRAGMA user_version"), ["7"]);
    assert_eq!(
        p.target
            .query("SELECT name FROM sqlite_schema WHERE type = 'index' AND name = 'orders_user'"),
        ["orders_user"]
    );
    // AUTOINCREMENT continues from the backup's counter (101 used), not from max(id) (100)
    // nor from the counter before the restore (103).
    p.target.query("INSERT INTO users (email) VALUES ('next')");
    assert_eq!(
        p.target.query("SELECT id FROM users WHERE email = 'next'"),
        ["102"]
    );
    // The same file, restored in place (its lock file and other connections see no swap).
    assert_eq!(std::fs::metadata(db_path).unwrap().ino(), inode);
    let o = outputs(&p, "restore");
    assert_eq!(o["tables"], 4);
    let pre = PathBuf::from(o["pre_backup"].as_str().unwrap());
    let pre_manifest = manifests(&dir)
        .into_iter()
        .find(|(_, m)| m["purpose"] == "pre_restore")
        .unwrap()
        .1;
    assert_eq!(pre_manifest["sha256"], sha256_file(&pre));
    assert_eq!(
        pre_manifest["row_counts"],
        serde_json::json!({"log": 250, "newer": 0, "orders": 10, "users": 100})
    );

    // A corrupt SQLite archive is refused, and the database stays as it is.
    p.target.query("DELETE FROM orders WHERE id > 20");
    let mut bytes = std::fs::read(&archive).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0x01;
    std::fs::write(&archive, bytes).unwrap();
    let out = p.run(
        "rs",
        &[
            "--var",
            &format!("from={}", archive.display()),
            "--confirm",
            &db,
        ],
    );
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(out.stderr.contains("is corrupt"), "{}", out.stderr);
    assert_eq!(count(&p.target, "orders"), 20);
}

/// A runbook manifest like `like`, for `archive` (written with `body`), made `days` ago.
fn fake_backup(dir: &Path, like: &Value, stem: &str, days: i64, database: &str) {
    let mut m = like.clone();
    let archive = format!("{stem}.sqlite");
    std::fs::write(dir.join(&archive), b"old backup").unwrap();
    m["archive"] = archive.into();
    m["database"] = database.into();
    m["created_at"] = (chrono::Utc::now() - chrono::Duration::days(days))
        .to_rfc3339()
        .into();
    std::fs::write(
        dir.join(format!("{stem}.manifest.json")),
        serde_json::to_string_pretty(&m).unwrap(),
    )
    .unwrap();
}

#[test]
fn retention_deletes_only_old_runbook_backups() {
    let p = sqlite_project();
    p.target.query("CREATE TABLE t (x)");
    p.playbook("bk", &backup_playbook(""))
        .playbook(
            "bk30",
            &backup_playbook(", retention_days: 30").replace("name: bk", "name: bk30"),
        )
        .playbook(
            "keep3",
            &backup_playbook(", keep: 3").replace("name: bk", "name: keep3"),
        );
    ok(&p.run("bk", &[]));
    let dir = p.path().join("backups");
    let (_, first) = manifests(&dir).remove(0);
    fake_backup(
        &dir,
        &first,
        "target_20200101T000000Z_old_backup",
        400,
        "target",
    );
    fake_backup(
        &dir,
        &first,
        "target_20240101T000000Z_old2_backup",
        31,
        "target",
    );
    fake_backup(&dir, &first, "target_recent_backup", 5, "target");
    fake_backup(
        &dir,
        &first,
        "other_20200101T000000Z_old_backup",
        400,
        "other",
    );
    // Files without a runbook manifest, and a manifest that is not runbook's.
    std::fs::write(dir.join("notes.txt"), "keep me").unwrap();
    std::fs::write(dir.join("target_20200101T000000Z_manual.sqlite"), "keep me").unwrap();
    std::fs::write(
        dir.join("foreign.manifest.json"),
        r#"{"archive": "notes.txt"}"#,
    )
    .unwrap();

    let out = p.run("bk30", &[]);
    ok(&out);
    assert!(
        out.stderr.contains("retention deleted 2 older backups"),
        "{}",
        out.stderr
    );
    let left = names(&dir);
    for gone in [
        "target_20200101T000000Z_old_backup",
        "target_20240101T000000Z_old2_backup",
    ] {
        assert!(
            !left.iter().any(|n| n.starts_with(gone)),
            "{gone} in {left:?}"
        );
    }
    for kept in [
        "target_recent_backup.sqlite",
        "target_recent_backup.manifest.json",
        "other_20200101T000000Z_old_backup.sqlite",
        "other_20200101T000000Z_old_backup.manifest.json",
        "notes.txt",
        "target_20200101T000000Z_manual.sqlite",
        "foreign.manifest.json",
    ] {
        assert!(left.iter().any(|n| n == kept), "{kept} not in {left:?}");
    }
    // Two real backups of this database now, and the recent fake.
    let ours = |dir: &Path| {
        manifests(dir)
            .into_iter()
            .filter(|(_, m)| m["database"] == "target" && m.get("runbook_backup").is_some())
            .count()
    };
    assert_eq!(ours(&dir), 3);

    // At most three: the new one and the two newest others; the five-day-old fake goes.
    let out = p.run("keep3", &[]);
    ok(&out);
    assert_eq!(ours(&dir), 3);
    let left = names(&dir);
    assert!(
        !left.iter().any(|n| n.starts_with("target_recent_backup")),
        "{left:?}"
    );
    assert!(left.iter().any(|n| n == "notes.txt"), "{left:?}");
    assert!(
        left.iter()
            .any(|n| n == "other_20200101T000000Z_old_backup.sqlite"),
        "{left:?}"
    );
}

/// A pg_dump older than the server is refused naming both versions. Its version is read while
/// it dumps (the dump does not wait for `pg_dump --version`): the refusal stops a dump still
/// running (this one would take 60 s), and nothing of it is kept.
#[test]
fn an_older_pg_dump_is_refused_naming_both_versions() {
    let p = pg_app("bk_old_client");
    p.playbook("bk", &backup_playbook(""));
    let bin = tempfile::tempdir().unwrap();
    for tool in ["pg_dump", "pg_restore", "psql"] {
        let path = bin.path().join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n[ \"$1\" = --version ] || exec sleep 60\necho '{tool} (PostgreSQL) 11.22'\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let dir = p.path().display().to_string();
    let target = p.target.arg();
    let started = std::time::Instant::now();
    let out = Runbook::new(&["-C", &dir, "run", "bk", "--target", &target])
        .env("RUNBOOK_PG_BIN", &bin.path().display().to_string())
        .run();
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("is version 11.22, older than the server (PostgreSQL 15."),
        "{}",
        out.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the dump was not stopped: {:?}",
        started.elapsed()
    );
    let backups = p.path().join("backups");
    assert!(!backups.exists() || names(&backups).is_empty());
}

/// pg_dump starts dumping without waiting for `pg_dump --version` (a client program's start,
/// a few ms, once on the backup's path): here the version takes 2 s to answer, and the dump
/// starts meanwhile. The backup is whole and verified.
#[test]
fn the_dump_does_not_wait_for_the_clients_version() {
    let p = pg_app("bk_version_late");
    p.playbook("bk", &backup_playbook(""));
    let real = pg::cluster().bin_dir().to_path_buf();
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("log");
    for tool in ["pg_dump", "pg_restore", "psql"] {
        let path = bin.path().join(tool);
        let script = if tool == "pg_dump" {
            format!(
                "#!/bin/sh\nif [ \"$1\" = --version ]; then echo version-asked >> '{log}'; sleep 2; echo version-told >> '{log}'; else echo dump-started >> '{log}'; fi\nexec '{real}/{tool}' \"$@\"\n",
                log = log.display(),
                real = real.display()
            )
        } else {
            format!("#!/bin/sh\nexec '{}/{tool}' \"$@\"\n", real.display())
        };
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let dir = p.path().display().to_string();
    let target = p.target.arg();
    let out = Runbook::new(&["-C", &dir, "run", "bk", "--target", &target])
        .env("RUNBOOK_PG_BIN", &bin.path().display().to_string())
        .run();
    assert_eq!(out.code, 0, "{}", out.combined());
    let order = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = order.lines().collect();
    let at = |what: &str| lines.iter().position(|l| *l == what);
    assert!(
        at("dump-started").is_some() && at("dump-started") < at("version-told"),
        "{order}"
    );
    assert!(out.stderr.contains("verified"), "{}", out.stderr);
}

#[test]
fn the_password_reaches_pg_dump_by_environment_never_by_argv() {
    let p = pg_app("bk_secret");
    p.playbook("bk", &backup_playbook(""));
    // Trust authentication accepts any password; the point is where it travels.
    let secret = "s3cret-Pass";
    let url = p
        .target
        .arg()
        .replacen("postgres@", &format!("postgres:{secret}@"), 1);
    let real = pg::cluster().bin_dir().to_path_buf();
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("log");
    std::fs::create_dir(&log).unwrap();
    for tool in ["pg_dump", "pg_restore", "psql"] {
        let path = bin.path().join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{log}/{tool}.argv'\nprintf '%s\\n' \"$PGPASSWORD\" >> '{log}/{tool}.env'\nexec '{real}/{tool}' \"$@\"\n",
                log = log.display(),
                real = real.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let dir = p.path().display().to_string();
    let out = Runbook::new(&["-C", &dir, "run", "bk", "--target", &url])
        .env("RUNBOOK_PG_BIN", &bin.path().display().to_string())
        .run();
    ok(&out);
    let argv = std::fs::read_to_string(log.join("pg_dump.argv")).unwrap();
    assert!(
        argv.contains("--dbname=postgres://postgres@127.0.0.1:"),
        "{argv}"
    );
    assert!(!argv.contains(secret), "{argv}");
    let env = std::fs::read_to_string(log.join("pg_dump.env")).unwrap();
    assert!(env.lines().any(|l| l == secret), "{env}");
    // pg_restore --list was run (verification) and saw no password either.
    let restore_argv = std::fs::read_to_string(log.join("pg_restore.argv")).unwrap();
    assert!(restore_argv.contains("--list"), "{restore_argv}");
    assert!(!restore_argv.contains(secret));
    assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
    let (run, _) = p.last_run();
    assert!(!p.status_json(&run).to_string().contains(secret));
}

#[test]
fn libpq_urls_lose_the_password_and_sqlx_only_parameters() {
    let t = LibpqTarget::parse("postgres://app:p%40ss%3Aw0rd@db.example:5432/prod?sslmode=require");
    assert_eq!(t.password.as_deref(), Some("p@ss:w0rd"));
    assert_eq!(
        t.url,
        "postgres://app@db.example:5432/prod?sslmode=require&application_name=runbook"
    );
    let t = LibpqTarget::parse(
        "postgresql://app@h/db?password=x%2By&statement-cache-capacity=10&ssl-mode=verify-full&options[search_path]=app&application_name=deploy",
    );
    assert_eq!(t.password.as_deref(), Some("x+y"));
    assert_eq!(
        t.url,
        "postgresql://app@h/db?sslmode=verify-full&application_name=deploy&options=-c%20search_path%3Dapp"
    );
    assert_eq!(t.env().get("PGPASSWORD").map(String::as_str), Some("x+y"));
    let t = LibpqTarget::parse("postgres://app@h/db");
    assert_eq!(t.password, None);
    assert!(t.env().is_empty());
}

#[test]
fn the_installed_client_of_the_server_major_is_preferred() {
    let root = tempfile::tempdir().unwrap();
    for v in ["13", "15", "16"] {
        let bin = root.path().join(v).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for tool in ["pg_dump", "pg_restore", "psql"] {
            std::fs::write(bin.join(tool), "").unwrap();
        }
    }
    // A version folder without the client programs does not count.
    std::fs::create_dir_all(root.path().join("17").join("bin")).unwrap();
    let pick = |major| installed_bin_dir(root.path(), major).unwrap();
    assert_eq!(pick(15), root.path().join("15").join("bin"));
    assert_eq!(pick(13), root.path().join("13").join("bin"));
    // No exact match: the newest, which can dump older servers.
    assert_eq!(pick(14), root.path().join("16").join("bin"));
    assert_eq!(pick(17), root.path().join("16").join("bin"));
    assert!(installed_bin_dir(&root.path().join("none"), 15).is_none());
}

#[test]
fn a_backup_past_its_timeout_stops_and_leaves_no_files() {
    let p = pg_app("bk_timeout");
    p.playbook(
        "slow",
        "name: slow\nsteps:\n  - id: backup\n    timeout: 50ms\n    backup: { dir: backups }\n",
    );
    // Enough rows that counting and dumping them outlasts 50ms.
    pg::cluster().psql(
        &p.target.arg(),
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 300000) g",
    );
    let out = p.run("slow", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("timed out after 50ms"),
        "{}",
        out.stderr
    );
    let backups = p.path().join("backups");
    assert!(
        !backups.exists() || names(&backups).is_empty(),
        "{:?}",
        names(&backups)
    );
}

/// A backup that crashed leaves its `.partial` archive behind; the next backup of the same
/// database removes those whose writer is gone (nobody holds their lock), however recent, and
/// leaves the one a live writer holds locked and those of other databases.
#[test]
fn the_next_backup_removes_partial_archives_whose_writer_is_gone() {
    let p = sqlite_app();
    p.playbook("bk", &backup_playbook(""));
    let dir = p.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let partial = |name: &str, modified: std::time::SystemTime| {
        let path = dir.join(name);
        let f = std::fs::File::create(&path).unwrap();
        f.set_modified(modified).unwrap();
        path
    };
    let old = partial(
        ".target_20200101T000000Z_crashed_backup.sqlite.partial",
        hour_ago,
    );
    // Written a moment ago by a run that was killed: no idle time tells it from a live one.
    let fresh = partial(
        ".target_20200101T000001Z_killed_backup.sqlite.partial",
        std::time::SystemTime::now(),
    );
    let dead_dir = dir.join(".target_20200101T000000Z_crashed_dump.dir.partial");
    std::fs::create_dir(&dead_dir).unwrap();
    std::fs::File::create(dead_dir.join("toc.dat")).unwrap();
    let manifest_tmp = partial(
        ".target_20200101T000000Z_crashed_backup.manifest.json.partial",
        std::time::SystemTime::now(),
    );
    // A live writer holds its partial locked, as a backup in progress does.
    let live = partial(
        ".target_20200101T000002Z_writing_backup.sqlite.partial",
        hour_ago,
    );
    let writer = std::fs::File::open(&live).unwrap();
    writer.lock().unwrap();
    let other = partial(
        ".other_20200101T000000Z_crashed_backup.sqlite.partial",
        hour_ago,
    );

    let out = p.run("bk", &[]);
    ok(&out);
    for gone in [&old, &fresh, &dead_dir, &manifest_tmp] {
        assert!(
            !gone.exists(),
            "{} stays: {}",
            gone.display(),
            out.combined()
        );
    }
    assert!(
        live.exists(),
        "a partial archive still being written was removed"
    );
    assert!(
        other.exists(),
        "another database's partial archive was removed"
    );
    assert!(
        out.stderr
            .contains("a partial backup left by a run that stopped while writing it"),
        "{}",
        out.combined()
    );
    drop(writer);
    let out = p.run("bk", &[]);
    ok(&out);
    assert!(!live.exists(), "a partial whose writer let go stays");
    let hidden: Vec<String> = names(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".partial") && !n.starts_with(".other_"))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

/// Rows of `schema.table` in a custom archive: the lines of its COPY block.
fn archive_rows(archive: &Path, schema: &str, table: &str) -> u64 {
    let out = std::process::Command::new(pg::cluster().bin_dir().join("pg_restore"))
        .args([
            "--data-only",
            "--file=-",
            "--schema",
            schema,
            "--table",
            table,
        ])
        .arg(archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().skip_while(|l| !l.starts_with("COPY "));
    assert!(
        lines.next().is_some(),
        "no COPY of {schema}.{table}: {text}"
    );
    lines.take_while(|l| *l != "\\.").count() as u64
}

/// The row counts in the manifest are the archive's, exactly, while the application writes
/// during the whole backup (counting runs alongside pg_dump, in the snapshot pg_dump dumps);
/// the manifest's sha256 and size are the file's (hashed while it is written).
#[test]
fn counts_are_the_archives_while_the_application_writes_during_the_backup() {
    let p = pg_app("bk_busy");
    p.playbook("bk", &backup_playbook(""));
    // Enough rows that dumping takes a while, for the writer to write during it.
    pg::cluster().psql(
        &p.target.arg(),
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 300000) g",
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = p.target.arg();
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds < 3 {
                pg::cluster().psql(
                    &url,
                    "INSERT INTO orders (user_id, total) SELECT 1, 1 FROM generate_series(1, 20);
                     INSERT INTO big SELECT g, 'later' FROM generate_series(1, 1000) g;
                     DELETE FROM billing.invoices WHERE id = (SELECT min(id) FROM billing.invoices);",
                );
                rounds += 1;
            }
            rounds
        })
    };
    let out = p.run("bk", &[]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    ok(&out);
    let dir = p.path().join("backups");
    let (_, m) = manifests(&dir).remove(0);
    let archive = dir.join(m["archive"].as_str().unwrap());
    assert_eq!(m["sha256"], sha256_file(&archive));
    assert_eq!(m["size"], std::fs::metadata(&archive).unwrap().len());
    let counts = m["row_counts"].as_object().unwrap();
    assert_eq!(counts.len(), 5, "{m}");
    for (key, n) in counts {
        let (schema, table) = key.split_once('.').unwrap();
        assert_eq!(
            n.as_u64().unwrap(),
            archive_rows(&archive, schema, table),
            "{key} after {rounds} rounds of writes"
        );
    }
    // The writer wrote after the snapshot: counts taken outside it would differ.
    assert!(count(&p.target, "orders") > m["row_counts"]["public.orders"].as_u64().unwrap());
    assert!(count(&p.target, "big") > m["row_counts"]["public.big"].as_u64().unwrap());
}

/// A backup whose counting waits behind another session's lock ends at the step's timeout:
/// pg_dump is stopped, and the snapshot's counting statement is ended by the server at the
/// deadline (`statement_timeout`), so the transaction's rollback does not wait for the lock
/// (it waited as long as the lock was held, here 60 s).
#[test]
fn a_backup_blocked_by_a_lock_ends_at_its_timeout() {
    let p = pg_app("bk_blocked");
    p.playbook(
        "bk",
        "name: bk\nsteps:\n  - id: backup\n    backup: { dir: backups }\n    timeout: 2s\n",
    );
    // Held until the test ends, or 60 s at most (the server then ends the idle transaction).
    let holder = pg::cluster().hold(
        &p.target.arg(),
        "BEGIN; SET LOCAL idle_in_transaction_session_timeout = '60s'; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE;",
    );
    let started = std::time::Instant::now();
    let out = p.run("bk", &[]);
    let took = started.elapsed();
    holder.release();
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert!(
        took < Duration::from_secs(20),
        "took {took:?}: {}",
        out.combined()
    );
}
