//! The audit chain names what a run changed and what it ran under: each migration applied or
//! reverted with the checksum runbook stores, the backup with the sha256 and size of the file
//! on disk, a seed's counts per table, a copy's tables; the config's sha256, the protections
//! and windows in force, the migration set's hash, the git commit and whether the tree was
//! dirty; step excerpts from what a step printed. `audit show` and the HTML report list them.

use crate::support::{Project, Target, repo};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::path::Path;

const DEPLOY: &str = r#"
name: deploy
steps:
  - id: backup
    backup: { dir: backups }
  - id: migrate
    migrate: { action: apply }
  - id: seed
    seed: { set: development }
  - id: count
    sql: { query: "SELECT 1 AS one" }
"#;

const REVERT: &str = r#"
name: revert
steps:
  - id: revert
    migrate: { action: revert, count: 1 }
"#;

const SEED: &str = r#"
name: reseed
steps:
  - id: seed
    seed: { set: development }
"#;

/// No disk check (the host's free disk is not the test's business); a window open all day.
const CONFIG: &str = r#"environments:
  dev:
    target: { sqlite: app.db }
    allow_target_override: true
    protections:
      self_approval: true
      windows: [{ start: "00:00", end: "00:00", tz: UTC }]
"#;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A project with the shipped migrations of the target's dialect and the shipped seeds.
fn project(target: impl FnOnce(&Path) -> Target) -> Project {
    let p = Project::new(target);
    let dialect = match p.target {
        Target::Sqlite(_) => "sqlite",
        Target::Postgres(_) => "postgres",
    };
    for sub in [format!("migrations/{dialect}"), "seeds".to_owned()] {
        std::fs::create_dir_all(p.path().join(&sub)).unwrap();
        for e in std::fs::read_dir(repo().join(&sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), p.path().join(&sub).join(e.file_name())).unwrap();
        }
    }
    std::fs::write(p.path().join("runbook.yaml"), CONFIG).unwrap();
    p.playbook("deploy", DEPLOY)
        .playbook("revert", REVERT)
        .playbook("reseed", SEED);
    p
}

/// The records of the newest run.
fn records(p: &Project) -> Vec<Json> {
    let (id, _) = p.last_run();
    let text =
        std::fs::read_to_string(p.path().join(format!(".runbook/audit/{id}.jsonl"))).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `step_finished` record of a step.
fn finished<'a>(records: &'a [Json], step: &str) -> &'a Json {
    records
        .iter()
        .find(|r| r["event"] == "step_finished" && r["step"] == step)
        .unwrap_or_else(|| panic!("no step_finished record of `{step}`"))
}

/// The up files of the project's migrations: (version, name, sha256 of the text with LF line
/// endings, as runbook's checksum is defined), in version order.
fn migration_files(p: &Project) -> Vec<(String, String, String)> {
    let dialect = match p.target {
        Target::Sqlite(_) => "sqlite",
        Target::Postgres(_) => "postgres",
    };
    let mut out: Vec<(String, String, String)> =
        std::fs::read_dir(p.path().join("migrations").join(dialect))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|f| !f.to_string_lossy().ends_with(".down.sql"))
            .map(|f| {
                let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
                let (version, name) = stem.split_once('_').unwrap();
                let text = std::fs::read_to_string(&f).unwrap().replace("\r\n", "\n");
                (
                    version.to_owned(),
                    name.to_owned(),
                    sha256_hex(text.as_bytes()),
                )
            })
            .collect();
    out.sort();
    out
}

/// A deploy's records name each migration with its checksum (the file's and the one
/// `runbook_migrations` stores), the backup with the sha256 and size of its file, and the
/// seed's counts per table as the database has them; `audit show` lists them.
fn a_deploy_names_what_it_changed(p: &Project) {
    let out = p.run("deploy", &["--env", "dev"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let records = records(p);

    let migrate = finished(&records, "migrate");
    let named = migrate["changed"]["migrations"].as_array().unwrap();
    let files = migration_files(p);
    assert_eq!(named.len(), files.len(), "{migrate}");
    let stored = p
        .target
        .query("SELECT version, checksum FROM runbook_migrations ORDER BY version");
    for ((m, (version, name, sha)), row) in named.iter().zip(&files).zip(&stored) {
        assert_eq!(m["version"], version.as_str());
        assert_eq!(m["name"], name.as_str());
        assert_eq!(m["direction"], "apply");
        assert_eq!(m["checksum"], sha.as_str(), "the file's sha256");
        assert_eq!(row, &format!("{version}|{sha}"), "what the database stores");
        assert!(m["duration_ms"].is_u64(), "{m}");
    }
    // The excerpt is what the step printed (it was empty for every database action).
    let excerpt = migrate["output"]["excerpt"].as_str().unwrap();
    assert!(excerpt.contains("applied `migrations/"), "{excerpt}");

    let backup = &finished(&records, "backup")["changed"]["backup"];
    let path = backup["path"].as_str().unwrap();
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(backup["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(backup["size"], bytes.len() as u64);
    assert!(
        finished(&records, "backup")["output"]["excerpt"]
            .as_str()
            .unwrap()
            .contains("sha256"),
    );

    let seed = &finished(&records, "seed")["changed"]["seed"];
    assert_eq!(seed["set"], "development");
    let tables = seed["tables"].as_object().unwrap();
    assert!(!tables.is_empty());
    for (table, c) in tables {
        let rows: u64 = p.target.query(&format!("SELECT count(*) FROM \"{table}\""))[0]
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            c["inserted"], rows,
            "{table}: a first seed inserts every row"
        );
        assert_eq!(c["updated"], 0);
        assert_eq!(c["unchanged"], 0);
    }
    assert_eq!(
        finished(&records, "count")["output"]["excerpt"],
        "1 row returned"
    );

    // Every record names the server it ran on: PostgreSQL's version as the server says it
    // (read with the target's identity), SQLite's library version.
    let version = records[0]["target"]["server_version"]
        .as_str()
        .unwrap_or_default();
    let expected = if matches!(p.target, Target::Postgres(_)) {
        p.target.query("SHOW server_version")[0].trim().to_owned()
    } else {
        format!(
            "SQLite {}",
            p.target.query("SELECT sqlite_version()")[0].trim()
        )
    };
    assert_eq!(version, expected);
    assert!(
        records
            .iter()
            .all(|r| r["target"]["server_version"] == version)
    );

    let (id, _) = p.last_run();
    let show = p.cmd(&["audit", "show", &id]);
    assert_eq!(show.code, 0, "{}", show.combined());
    for (version, name, sha) in &files {
        let line = format!("migrate: migration apply {version} {name} (sha256 {sha},");
        assert!(show.stdout.contains(&line), "`{line}` in:\n{}", show.stdout);
    }
    let line = format!(
        "backup: backup {path} (sha256 {},",
        backup["sha256"].as_str().unwrap()
    );
    assert!(show.stdout.contains(&line), "`{line}` in:\n{}", show.stdout);

    // Seeding again changes nothing, and the record says so table by table.
    let out = p.run("reseed", &["--env", "dev"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let records = self::records(p);
    for (table, c) in finished(&records, "seed")["changed"]["seed"]["tables"]
        .as_object()
        .unwrap()
    {
        assert_eq!(c["inserted"], 0, "{table}");
        assert_eq!(c["unchanged"], tables[table]["inserted"], "{table}");
    }

    // A revert names the direction and the migration it took back.
    let out = p.run("revert", &["--env", "dev"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let records = self::records(p);
    let reverted = &finished(&records, "revert")["changed"]["migrations"];
    let (version, name, sha) = files.last().unwrap();
    assert_eq!(reverted.as_array().unwrap().len(), 1, "{reverted}");
    assert_eq!(reverted[0]["direction"], "revert");
    assert_eq!(reverted[0]["version"], version.as_str());
    assert_eq!(reverted[0]["name"], name.as_str());
    assert_eq!(reverted[0]["checksum"], sha.as_str());
}

#[test]
fn a_deploy_on_sqlite_names_its_migrations_backup_and_seed() {
    a_deploy_names_what_it_changed(&project(Target::sqlite));
}

#[test]
fn a_deploy_on_postgres_names_its_migrations_backup_and_seed() {
    a_deploy_names_what_it_changed(&project(|_| Target::postgres("audit_changes")));
}

/// The first record carries the config's sha256, the protections and windows in force and the
/// migration set's hash, and `audit show` prints them.
#[test]
fn the_first_record_names_the_config_protections_and_migration_set() {
    let p = project(Target::sqlite);
    let out = p.run("deploy", &["--env", "dev"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let records = records(&p);
    let first = &records[0];
    assert_eq!(first["event"], "run_started");
    let config = std::fs::read(p.path().join("runbook.yaml")).unwrap();
    assert_eq!(first["config"]["sha256"], sha256_hex(&config).as_str());
    assert_eq!(first["config"]["file"], "runbook.yaml");
    let rules = &first["protections"]["rules"];
    assert_eq!(rules["self_approval"], true);
    assert_eq!(rules["windows"][0]["start"], "00:00");
    assert_eq!(first["protections"]["source"], "dev");
    let project = runbook::project::Project::open(p.path()).unwrap();
    assert_eq!(
        first["migrations"]["sha256"],
        project.migrations_hash().as_str()
    );
    // Not in a git repository: no commit and no dirty flag to give.
    assert!(first["git"].is_null(), "{}", first["git"]);
    let (id, _) = p.last_run();
    let show = p.cmd(&["audit", "show", &id]);
    for needle in [
        format!("config       runbook.yaml (sha256 {})", sha256_hex(&config)),
        "protections  dev's: self approval, windows every day 00:00-00:00 UTC".to_owned(),
        format!("migrations   sha256 {}", project.migrations_hash()),
        "git          not in a git repository".to_owned(),
    ] {
        assert!(
            show.stdout.contains(&needle),
            "`{needle}` in:\n{}",
            show.stdout
        );
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn git_of_last_run(p: &Project) -> Json {
    records(p)[0]["git"].clone()
}

/// A committed tree is clean; an uncommitted edit of the playbook, or a playbook git does not
/// know, is dirty; files a run leaves (the database, backups, `.runbook/`) are not.
#[test]
fn a_dirty_working_tree_is_recorded() {
    let p = project(Target::sqlite);
    git(p.path(), &["init", "-q"]);
    git(p.path(), &["add", "-A"]);
    git(p.path(), &["commit", "-qm", "project"]);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(p.path())
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();

    assert_eq!(p.run("deploy", &["--env", "dev"]).code, 0);
    assert_eq!(
        git_of_last_run(&p),
        serde_json::json!({"commit": head, "dirty": false})
    );
    // The run left a database, backups and `.runbook/`: still clean.
    assert_eq!(p.run("reseed", &["--env", "dev"]).code, 0);
    assert_eq!(git_of_last_run(&p)["dirty"], false);

    // An uncommitted edit of the playbook that runs.
    let file = p.path().join("playbooks/reseed.yaml");
    std::fs::write(&file, format!("{SEED}# edited\n")).unwrap();
    assert_eq!(p.run("reseed", &["--env", "dev"]).code, 0);
    assert_eq!(
        git_of_last_run(&p),
        serde_json::json!({"commit": head, "dirty": true})
    );
    let (id, _) = p.last_run();
    let show = p.cmd(&["audit", "show", &id]);
    assert!(show.stdout.contains("DIRTY"), "{}", show.stdout);
    git(p.path(), &["commit", "-qam", "edit"]);

    // A playbook git does not know, in a tree otherwise clean.
    p.playbook("fresh", &SEED.replace("reseed", "fresh"));
    assert_eq!(p.run("fresh", &["--env", "dev"]).code, 0);
    assert_eq!(git_of_last_run(&p)["dirty"], true);
}

/// The HTML report of a deploy lists each migration with its checksum and the backup with its
/// sha256, as a browser renders the page.
#[test]
fn the_html_report_lists_the_changes_in_headless_chromium() {
    let p = project(Target::sqlite);
    assert_eq!(p.run("deploy", &["--env", "dev"]).code, 0);
    let records = records(&p);
    let backup_sha = finished(&records, "backup")["changed"]["backup"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let (id, _) = p.last_run();
    let html = p.path().join("report.html");
    let out = p.cmd(&[
        "audit",
        "report",
        &id,
        "--output",
        &html.display().to_string(),
    ]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let profile = tempfile::tempdir().unwrap();
    let dom = std::process::Command::new(crate::audit::chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    let changes = dom
        .split("<div id=\"changes\">")
        .nth(1)
        .and_then(|rest| rest.split("</div>").next())
        .unwrap_or_else(|| panic!("no Changes section in the rendered page:\n{dom}"));
    for (version, name, sha) in migration_files(&p) {
        let item = format!("migrate: migration apply {version} {name} (sha256 {sha},");
        assert!(changes.contains(&item), "`{item}` in:\n{changes}");
    }
    assert!(
        changes.contains(&format!("(sha256 {backup_sha},")),
        "the backup's sha256 in:\n{changes}"
    );
}

/// A copy's record names each table it loaded with its rows (as PostgreSQL counts them) and
/// checksum (as its report gives it).
#[test]
fn a_copy_names_its_tables_rows_and_checksums() {
    let p = Project::new(|_| Target::postgres("audit_copy"));
    crate::support::sqlite_exec(
        &Target::Sqlite(p.path().join("source.db")),
        "CREATE TABLE alpha (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO alpha (v) VALUES ('a'), ('b'), ('c')",
    );
    p.playbook(
        "load",
        "name: load\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:source.db\", report: out/report.json }\n",
    );
    let out = p.run("load", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let records = records(&p);
    let copy = &finished(&records, "copy")["changed"]["copy"];
    let alpha = &copy["tables"]["alpha"];
    let rows = p.target.query("SELECT count(*) FROM alpha");
    assert_eq!(alpha["rows"].to_string(), rows[0].trim(), "{copy}");
    assert_eq!(copy["rows"], 3);
    let report: Json =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("out/report.json")).unwrap())
            .unwrap();
    let reported = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "alpha")
        .unwrap();
    assert!(reported["checksum"].is_string(), "{reported}");
    assert_eq!(alpha["checksum"], reported["checksum"]);
}

/// What a record names passes the run's redactor like every other field: a secret in a
/// backup's path is masked in `changed` and in the excerpt of what the step printed.
#[test]
fn named_changes_and_excerpts_are_redacted() {
    let p = project(Target::sqlite);
    p.playbook(
        "secret",
        r#"
name: secret
params:
  token: { type: string, secret: true }
steps:
  - id: backup
    backup: { dir: "backups/{{ params.token }}" }
"#,
    );
    let secret = "Zq7wV3kP9sLm";
    let out = p.run(
        "secret",
        &["--env", "dev", "--var", &format!("token={secret}")],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    let (id, _) = p.last_run();
    let chain =
        std::fs::read_to_string(p.path().join(format!(".runbook/audit/{id}.jsonl"))).unwrap();
    assert!(!chain.contains(secret), "the secret is in the chain");
    let records = records(&p);
    let backup = finished(&records, "backup");
    assert!(
        backup["changed"]["backup"]["path"]
            .as_str()
            .unwrap()
            .contains("***"),
        "{backup}"
    );
    assert!(
        backup["output"]["excerpt"]
            .as_str()
            .unwrap()
            .contains("***"),
        "{backup}"
    );
}

/// A migration step that fails after applying some files says which in its record's excerpt.
#[test]
fn a_failed_apply_names_what_it_applied_before_failing() {
    let p = Project::new(Target::sqlite);
    let dir = p.path().join("migrations/sqlite");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("001_first.sql"), "CREATE TABLE a (x INTEGER);\n").unwrap();
    std::fs::write(dir.join("002_second.sql"), "CREATE TABLE a (x INTEGER);\n").unwrap();
    p.playbook(
        "apply",
        "name: apply\nsteps:\n  - id: migrate\n    migrate: { action: apply }\n",
    );
    let out = p.run("apply", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    let records = records(&p);
    let failed = records
        .iter()
        .find(|r| r["event"] == "step_failed" && r["step"] == "migrate")
        .unwrap();
    let excerpt = failed["output"]["excerpt"].as_str().unwrap_or_default();
    assert!(excerpt.contains("001_first.sql"), "{failed}");
}
