//! Maintenance windows: read-only playbooks (the shipped health check and backup) run outside
//! them, a changing playbook runs outside them only as an approved emergency, a normal run is
//! not resumed outside them, and every refused attempt is an audit record. The windows are
//! built from the current UTC time so that they are closed whenever the test runs.

use crate::support::{Output, Runbook, Target, pg, repo};
use std::path::Path;

/// A weekday name `offset` days from today (UTC).
pub fn weekday(offset: i64) -> &'static str {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 86400;
    // 1970-01-01 was a Thursday.
    DAYS[((days + 3 + offset).rem_euclid(7)) as usize]
}

/// A window open all day two days from now: closed now, whatever the time.
fn closed_window() -> String {
    format!(
        "[{{ days: [{}], start: \"00:00\", end: \"23:59\", tz: UTC }}]",
        weekday(2)
    )
}

/// A project whose production environment has the shipped protections, a window closed now,
/// and `target` as its database (a SQLite file, or a URL in `PROD_URL`).
struct Windowed {
    dir: tempfile::TempDir,
    target: Target,
}

impl Windowed {
    fn new(target: impl FnOnce(&Path) -> Target, windows: &str) -> Windowed {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("playbooks")).unwrap();
        let target = target(dir.path());
        let t = match &target {
            Target::Sqlite(p) => format!("{{ sqlite: \"{}\" }}", p.display()),
            Target::Postgres(_) => "{ url_env: PROD_URL }".to_owned(),
        };
        let w = Windowed { dir, target };
        w.config(&t, windows);
        w
    }

    fn config(&self, target: &str, windows: &str) {
        std::fs::write(
            self.dir.path().join("runbook.yaml"),
            format!(
                "environments:\n  production:\n    target: {target}\n    vars: {{ backup_dir: backups, min_free_disk_percent: 0, disk_limit: 100GB }}\n    protections:\n      protected: true\n      approvals: 2\n      approval_expiry: 24h\n      confirm_destructive: true\n      windows: {windows}\nsecrets: [PROD_URL]\n"
            ),
        )
        .unwrap();
    }

    fn playbook(&self, name: &str, text: &str) {
        let path = self.dir.path().join(format!("playbooks/{name}.yaml"));
        std::fs::write(path, text).unwrap();
    }

    fn shipped(&self, name: &str) {
        let text = std::fs::read_to_string(repo().join(format!("playbooks/{name}.yaml"))).unwrap();
        self.playbook(name, &text);
    }

    fn as_user(&self, user: &str, args: &[&str]) -> Output {
        let mut all = vec!["-C".to_owned(), self.dir.path().display().to_string()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut cmd = Runbook::new(&refs).env("RUNBOOK_ACTOR", user);
        if let Target::Postgres(url) = &self.target {
            cmd = cmd.env("PROD_URL", url);
        }
        cmd.run()
    }

    fn run(&self, user: &str, name: &str, extra: &[&str]) -> Output {
        let mut args = vec!["run", name, "--env", "production"];
        args.extend(extra);
        self.as_user(user, &args)
    }

    fn last(&self) -> (String, String) {
        let out = self.as_user("x", &["runs", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        (
            v["runs"][0]["run_id"].as_str().unwrap().to_owned(),
            v["runs"][0]["status"].as_str().unwrap().to_owned(),
        )
    }

    fn status(&self, id: &str) -> serde_json::Value {
        let out = self.as_user("x", &["status", id, "--format", "json"]);
        serde_json::from_str(&out.stdout).unwrap()
    }

    fn log(&self) -> Vec<String> {
        self.target.query("SELECT what FROM log ORDER BY what")
    }

    fn has_log(&self) -> bool {
        let sql = match &self.target {
            Target::Sqlite(p) if !p.exists() => return false,
            Target::Sqlite(_) => "SELECT count(*) FROM sqlite_master WHERE name = 'log'",
            Target::Postgres(_) => "SELECT count(*) FROM pg_tables WHERE tablename = 'log'",
        };
        self.target.query(sql) == ["1"]
    }
}

/// The id of the refused attempt the message names.
fn refusal_id(out: &Output) -> String {
    let marker = "recorded in the audit log as ";
    let at = out
        .stderr
        .find(marker)
        .unwrap_or_else(|| panic!("no audit record named: {}", out.stderr));
    out.stderr[at + marker.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

const DEPLOY: &str = r#"
name: deploy
steps:
  - id: check
    health: { checks: [connection] }
  - id: create
    sql: { query: "CREATE TABLE log (what TEXT)" }
  - id: write
    sql: { query: "INSERT INTO log VALUES ('deployed')" }
"#;

/// On PostgreSQL, where free disk comes from the environment's `disk_limit` rather than from
/// this host's filesystem (whose fill level would decide the health check otherwise).
#[test]
fn the_shipped_health_check_and_backup_run_outside_productions_window() {
    let url = pg::cluster().create_db("windows_ro");
    pg::cluster().psql(&url, "CREATE TABLE t (id INT); INSERT INTO t VALUES (1);");
    let w = Windowed::new(|_| Target::Postgres(url.clone()), &closed_window());
    w.shipped("health-check");
    w.shipped("backup");
    for name in ["health-check", "backup"] {
        let out = w.run("alice", name, &[]);
        assert!(
            out.stderr
                .contains("`production` is outside its maintenance windows (the next opens")
                && out.stderr.contains(&format!(
                    "`{name}` changes nothing in the database, so it runs"
                )),
            "{}",
            out.combined()
        );
        assert_eq!(out.code, 0, "{}", out.combined());
        let (_, status) = w.last();
        assert_eq!(status, "succeeded", "{}", out.combined());
    }
    // The backup it took is there.
    let backups = std::fs::read_dir(w.dir.path().join("backups"))
        .unwrap()
        .count();
    assert!(backups > 0);
}

#[test]
fn a_changing_playbook_outside_the_window_is_refused_with_the_way_forward_and_an_audit_record() {
    let w = Windowed::new(Target::sqlite, &closed_window());
    w.playbook("deploy", DEPLOY);
    let out = w.run("alice", "deploy", &[]);
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(
        out.stderr.contains("`production` is outside its maintenance windows (the next opens")
            && out.stderr.contains("00:00 UTC")
            && out.stderr.contains("may change the database (step `create` (sql))")
            && out.stderr.contains(
                "`runbook run deploy --env production --emergency \"REASON\"` runs it now once 2 people approve it"
            ),
        "{}",
        out.stderr
    );
    assert!(!w.has_log());
    let id = refusal_id(&out);
    // The refusal is a record auditors can read and verify, with who, what and why.
    let shown = w.as_user("x", &["audit", "show", &id]);
    assert_eq!(shown.code, 0, "{}", shown.combined());
    assert!(
        shown.stdout.contains("refused before it started")
            && shown
                .stdout
                .contains("run refused before anything ran: `production` is outside")
            && shown.stdout.contains("alice@")
            && shown.stdout.contains("deploy"),
        "{}",
        shown.stdout
    );
    let exported = w.as_user("x", &["audit", "export", &id, "--format", "json"]);
    let records: serde_json::Value = serde_json::from_str(&exported.stdout).unwrap();
    let r = &records.as_array().unwrap()[0];
    assert_eq!(r["event"], "run_refused", "{r}");
    assert_eq!(r["env"], "production");
    assert_eq!(r["operator"], "alice");
    assert!(
        r["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("outside its maintenance windows")
    );
    assert!(
        r["outcome"]["hint"]
            .as_str()
            .unwrap()
            .contains("--emergency")
    );
    assert!(r["ts"].is_string(), "{r}");
    let verified = w.as_user("x", &["audit", "verify", "--all"]);
    assert_eq!(verified.code, 0, "{}", verified.combined());
    // An emergency needs a reason.
    let out = w.run("alice", "deploy", &["--emergency", "  "]);
    assert_eq!(out.code, 2, "{}", out.combined());
    assert!(
        out.stderr.contains("`--emergency` needs a reason"),
        "{}",
        out.stderr
    );
    assert!(!w.has_log());
}

/// An emergency run records its reason, waits before its first step for the environment's
/// approvals (not the operator's own), and then runs outside the window.
fn emergency_path(w: Windowed) {
    w.playbook("deploy", DEPLOY);
    let out = w.run(
        "alice",
        "deploy",
        &["--emergency", "payments down: {{ fix }} INC-42"],
    );
    assert_eq!(out.code, 3, "{}", out.combined());
    assert!(
        out.stderr.contains("is an EMERGENCY run")
            && out.stderr.contains("waiting at gate emergency"),
        "{}",
        out.stderr
    );
    assert!(!w.has_log(), "nothing may run before the emergency gate");
    let (id, status) = w.last();
    assert_eq!(status, "waiting_approval");
    let st = w.status(&id);
    let started = &st["events"][0];
    assert_eq!(started["kind"], "run_started");
    assert_eq!(
        started["data"]["emergency"]["reason"],
        "payments down: {{ fix }} INC-42"
    );
    assert_eq!(started["data"]["emergency"]["approvals"], 2);
    assert_eq!(started["data"]["protections"]["source"], "production");
    let text = w.as_user("x", &["status", &id]);
    assert!(
        text.stdout.contains("emergency EMERGENCY run")
            && text
                .stdout
                .contains("reason: payments down: {{ fix }} INC-42"),
        "{}",
        text.stdout
    );
    // The plan approved is an emergency's: another hash than a normal run of the playbook.
    let plan = w.as_user(
        "x",
        &[
            "plan",
            "deploy",
            "--env",
            "production",
            "--offline",
            "--format",
            "json",
        ],
    );
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_ne!(st["run"]["plan_hash"], plan["plan_hash"]);
    // The operator cannot approve their own emergency; two others can.
    let own = w.as_user("alice", &["approve", &id, "emergency"]);
    assert_ne!(own.code, 0, "{}", own.combined());
    assert_eq!(w.as_user("bob", &["approve", &id, "emergency"]).code, 0);
    let one = w.as_user("alice", &["resume", &id]);
    assert_eq!(one.code, 3, "{}", one.combined());
    assert!(one.stderr.contains("1 of 2 approvals"), "{}", one.stderr);
    assert!(!w.has_log());
    let second = w.as_user("carol", &["approve", &id, "emergency"]);
    assert_eq!(second.code, 0, "{}", second.combined());
    // Resumed outside the window: it was approved as an emergency.
    let done = w.as_user("alice", &["resume", &id]);
    assert_eq!(done.code, 0, "{}", done.combined());
    assert_eq!(w.log(), ["deployed"]);
    let shown = w.as_user("x", &["audit", "show", &id]);
    assert!(
        shown
            .stdout
            .contains("gate emergency: passed by bob, carol"),
        "{}",
        shown.stdout
    );
}

#[test]
fn an_emergency_run_waits_for_the_environments_approvals_on_sqlite() {
    emergency_path(Windowed::new(Target::sqlite, &closed_window()));
}

#[test]
fn an_emergency_run_waits_for_the_environments_approvals_on_postgres() {
    emergency_path(Windowed::new(
        |_| Target::Postgres(pg::cluster().create_db("emergency")),
        &closed_window(),
    ));
}

#[test]
fn a_normal_run_is_not_resumed_outside_the_window_and_emergency_inside_one_is_a_normal_run() {
    let w = Windowed::new(Target::sqlite, "[]");
    w.playbook(
        "ship",
        "name: ship\nsteps:\n  - id: create\n    sql: { query: \"CREATE TABLE log (what TEXT)\" }\n  - id: approve\n    gate: { approval: { message: ship } }\n  - id: write\n    sql: { query: \"INSERT INTO log VALUES ('shipped')\" }\n",
    );
    // No window is closed: `--emergency` is not needed, and says so.
    let out = w.run("alice", "ship", &["--emergency", "just in case"]);
    assert_eq!(out.code, 3, "{}", out.combined());
    assert!(
        out.stderr
            .contains("`--emergency` is not needed, and this is a normal run"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("waiting at gate approve"),
        "{}",
        out.stderr
    );
    let (id, _) = w.last();
    assert!(w.status(&id)["events"][0]["data"]["emergency"].is_null());
    assert_eq!(w.as_user("bob", &["approve", &id, "approve"]).code, 0);
    assert_eq!(w.as_user("carol", &["approve", &id, "approve"]).code, 0);
    // The window closes before the run is resumed.
    let t = format!(
        "{{ sqlite: \"{}\" }}",
        w.dir.path().join("target.db").display()
    );
    w.config(&t, &closed_window());
    let out = w.as_user("alice", &["resume", &id]);
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(
        out.stderr
            .contains(&format!("run {id} was not started as an emergency"))
            && out.stderr.contains("--emergency \"REASON\""),
        "{}",
        out.stderr
    );
    assert_eq!(w.log(), Vec::<String>::new());
    let refused = refusal_id(&out);
    let shown = w.as_user("x", &["audit", "show", &refused]);
    assert!(
        shown
            .stdout
            .contains(&format!("resume {id} refused before anything ran")),
        "{}",
        shown.stdout
    );
    assert_eq!(w.as_user("x", &["audit", "verify", "--all"]).code, 0);
}
