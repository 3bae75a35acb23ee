//! Protections follow the database: `--target` is refused on an environment with its own
//! database unless it allows an override, and a run on a protected environment's database
//! (by identity: a symlinked SQLite file, another URL of the same PostgreSQL database) gets that
//! environment's protections whatever `--env` says, recorded at its start and kept on resume.

use crate::support::{Output, Runbook, Target, pg, sqlite_exec};
use std::path::Path;

/// A project with a dev environment (self-approval; `dev_extra` added to it) and a production
/// environment (two approvals, no self-approval) whose database is `prod`.
struct Envs {
    dir: tempfile::TempDir,
    /// Production's database: a SQLite file, or a URL given to runs as `PROD_URL`.
    prod: Target,
}

impl Envs {
    fn new(prod: impl FnOnce(&Path) -> Target, dev_extra: &str) -> Envs {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("playbooks")).unwrap();
        let prod = prod(dir.path());
        let target = match &prod {
            Target::Sqlite(p) => format!("{{ sqlite: \"{}\" }}", p.display()),
            Target::Postgres(_) => "{ url_env: PROD_URL }".to_owned(),
        };
        std::fs::write(
            dir.path().join("runbook.yaml"),
            format!(
                "environments:\n  dev:\n    target: {{ sqlite: dev.db }}\n{dev_extra}    protections: {{ self_approval: true }}\n  production:\n    target: {target}\n    protections: {{ protected: true, approvals: 2, confirm_destructive: true }}\nsecrets: [PROD_URL]\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("playbooks/ship.yaml"), SHIP).unwrap();
        Envs { dir, prod }
    }

    fn as_user(&self, user: &str, args: &[&str]) -> Output {
        let mut all = vec!["-C".to_owned(), self.dir.path().display().to_string()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut cmd = Runbook::new(&refs).env("RUNBOOK_ACTOR", user);
        if let Target::Postgres(url) = &self.prod {
            cmd = cmd.env("PROD_URL", url);
        }
        cmd.run()
    }

    fn last(&self) -> (String, String) {
        let out = self.as_user("x", &["runs", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        (
            v["runs"][0]["run_id"].as_str().unwrap().to_owned(),
            v["runs"][0]["status"].as_str().unwrap().to_owned(),
        )
    }

    fn shipped(&self) -> bool {
        let sql = match self.prod {
            Target::Sqlite(_) => "SELECT count(*) FROM sqlite_master WHERE name = 'shipped'",
            Target::Postgres(_) => "SELECT count(*) FROM pg_tables WHERE tablename = 'shipped'",
        };
        self.prod.query(sql) == ["1"]
    }
}

const SHIP: &str = r#"
name: ship
steps:
  - id: approve
    gate: { approval: { message: "ship to {{ env.name }}" } }
  - id: write
    sql: { query: "CREATE TABLE shipped (id INT)" }
"#;

#[test]
fn target_is_refused_on_an_environment_with_its_own_database_unless_it_allows_an_override() {
    let e = Envs::new(|d| Target::Sqlite(d.join("prod.db")), "");
    let other = format!("sqlite:{}", e.dir.path().join("other.db").display());
    let out = e.as_user(
        "alice",
        &[
            "run",
            "ship",
            "--env",
            "dev",
            "--approve",
            "approve",
            "--target",
            &other,
        ],
    );
    assert_eq!(out.code, 2, "{}", out.combined());
    assert!(
        out.stderr.contains(
            "environment `dev` has its own database (sqlite:dev.db); `--target` is refused there"
        ) && out.stderr.contains("allow_target_override: true"),
        "{}",
        out.stderr
    );
    assert!(!e.dir.path().join("other.db").exists());
    assert!(
        out.stderr.contains("recorded in the audit log as"),
        "{}",
        out.stderr
    );
    // Without --target, dev's own database.
    let out = e.as_user(
        "alice",
        &["run", "ship", "--env", "dev", "--approve", "approve"],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    // Allowed by the environment, --target picks the database.
    let e = Envs::new(
        |d| Target::Sqlite(d.join("prod.db")),
        "    allow_target_override: true\n",
    );
    let out = e.as_user(
        "alice",
        &[
            "run",
            "ship",
            "--env",
            "dev",
            "--approve",
            "approve",
            "--target",
            &other,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(!out.stderr.contains("protections apply"), "{}", out.stderr);
    assert_eq!(e.as_user("x", &["audit", "verify", "--all"]).code, 0);
}

/// A dev run whose `--target` is production's database, spelled another way: production's
/// protections apply (no self-approval, two approvals), are recorded, and hold on resume.
fn dev_run_on_production(e: Envs, spelled: &str) {
    let out = e.as_user(
        "alice",
        &[
            "run",
            "ship",
            "--env",
            "dev",
            "--approve",
            "approve",
            "--target",
            spelled,
        ],
    );
    assert_eq!(out.code, 2, "{}", out.combined());
    assert!(
        out.stderr.contains(
            "the target is `production`'s database: `production`'s protections apply (not `dev`'s)"
        ) && out
            .stderr
            .contains("`--approve` is refused in environment `production`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("recorded in the audit log as"),
        "{}",
        out.stderr
    );
    assert!(!e.shipped());
    let out = e.as_user(
        "alice",
        &["run", "ship", "--env", "dev", "--target", spelled],
    );
    assert_eq!(out.code, 3, "{}", out.combined());
    let (id, _) = e.last();
    let st = e.as_user("x", &["status", &id, "--format", "json"]);
    let st: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    let p = &st["events"][0]["data"]["protections"];
    assert_eq!(p["source"], "production", "{p}");
    assert_eq!(p["borrowed"], true);
    assert_eq!(p["rules"]["approvals"], 2);
    let text = e.as_user("x", &["status", &id]);
    assert!(
        text.stdout
            .contains("`production`'s protections: the target is `production`'s database"),
        "{}",
        text.stdout
    );
    // The operator's own approval does not count; one other person is not enough.
    let own = e.as_user("alice", &["approve", &id, "approve"]);
    assert_ne!(own.code, 0, "{}", own.combined());
    assert_eq!(e.as_user("bob", &["approve", &id, "approve"]).code, 0);
    let resume = e.as_user("alice", &["resume", &id, "--target", spelled]);
    assert_eq!(resume.code, 3, "{}", resume.combined());
    assert!(
        resume.stderr.contains("1 of 2 approvals"),
        "{}",
        resume.stderr
    );
    assert!(!e.shipped());
    assert_eq!(e.as_user("carol", &["approve", &id, "approve"]).code, 0);
    let resume = e.as_user("alice", &["resume", &id, "--target", spelled]);
    assert_eq!(resume.code, 0, "{}", resume.combined());
    assert!(e.shipped());
}

#[test]
fn a_dev_run_on_productions_sqlite_file_through_a_symlink_gets_productions_protections() {
    let e = Envs::new(
        |d| Target::Sqlite(d.join("prod.db")),
        "    allow_target_override: true\n",
    );
    sqlite_exec(&e.prod, "CREATE TABLE t (id INT)");
    let alias = e.dir.path().join("alias.db");
    std::os::unix::fs::symlink(e.dir.path().join("prod.db"), &alias).unwrap();
    dev_run_on_production(e, &format!("sqlite:{}", alias.display()));
}

#[test]
fn a_dev_run_on_productions_postgres_database_by_another_url_gets_productions_protections() {
    let url = pg::cluster().create_db("prot_prod");
    let e = Envs::new(
        |_| Target::Postgres(url.clone()),
        "    allow_target_override: true\n",
    );
    let other = url.replace("127.0.0.1", "localhost");
    assert_ne!(other, url);
    dev_run_on_production(e, &other);
}

#[test]
fn another_database_on_the_same_server_keeps_the_runs_own_protections() {
    let url = pg::cluster().create_db("prot_prod");
    let e = Envs::new(
        |_| Target::Postgres(url.clone()),
        "    allow_target_override: true\n",
    );
    let mine = pg::cluster().create_db("prot_mine");
    let out = e.as_user(
        "alice",
        &[
            "run",
            "ship",
            "--env",
            "dev",
            "--approve",
            "approve",
            "--target",
            &mine,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(!out.stderr.contains("protections apply"), "{}", out.stderr);
    // Production's database not resolvable (its variable unset): skipped, the run's own rules.
    let out = Runbook::new(&[
        "-C",
        &e.dir.path().display().to_string(),
        "run",
        "ship",
        "--env",
        "dev",
        "--approve",
        "approve",
        "--target",
        &url,
    ])
    .env("RUNBOOK_ACTOR", "alice")
    .run();
    assert_eq!(out.code, 0, "{}", out.combined());
}

#[test]
fn a_destructive_step_on_a_borrowed_protected_database_needs_a_gate() {
    let e = Envs::new(
        |d| Target::Sqlite(d.join("prod.db")),
        "    allow_target_override: true\n",
    );
    sqlite_exec(&e.prod, "CREATE TABLE doomed (id INT)");
    std::fs::write(
        e.dir.path().join("playbooks/wipe.yaml"),
        "name: wipe\nenvironments: [dev]\nsteps:\n  - id: drop\n    sql: { query: \"DROP TABLE doomed\" }\n",
    )
    .unwrap();
    let prod = format!("sqlite:{}", e.dir.path().join("prod.db").display());
    let out = e.as_user("alice", &["run", "wipe", "--env", "dev", "--target", &prod]);
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(
        out.stderr.contains("step `drop` of `wipe` is destructive and no approval or confirm gate comes before it; `production`'s database needs one"),
        "{}",
        out.stderr
    );
    assert_eq!(
        e.prod
            .query("SELECT count(*) FROM sqlite_master WHERE name = 'doomed'"),
        ["1"]
    );
}

#[test]
fn a_dev_run_on_productions_database_is_held_to_productions_window() {
    let e = Envs::new(
        |d| Target::Sqlite(d.join("prod.db")),
        "    allow_target_override: true\n",
    );
    sqlite_exec(&e.prod, "CREATE TABLE t (id INT)");
    // Production gets a window that is closed now (open all day, two days from now).
    let config = std::fs::read_to_string(e.dir.path().join("runbook.yaml")).unwrap();
    let later = crate::windows::weekday(2);
    let config = config.replace(
        "confirm_destructive: true }",
        &format!("confirm_destructive: true, windows: [{{ days: [{later}], start: \"00:00\", end: \"23:59\", tz: UTC }}] }}"),
    );
    std::fs::write(e.dir.path().join("runbook.yaml"), config).unwrap();
    let prod = format!("sqlite:{}", e.dir.path().join("prod.db").display());
    let out = e.as_user("alice", &["run", "ship", "--env", "dev", "--target", &prod]);
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(
        out.stderr
            .contains("`production` is outside its maintenance windows (the next opens")
            && out.stderr.contains("--env dev --emergency"),
        "{}",
        out.stderr
    );
    assert!(!e.shipped());
    // Dev's own database has no window.
    let out = e.as_user(
        "alice",
        &["run", "ship", "--env", "dev", "--approve", "approve"],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
}
