//! Gates, approvals and environment protections, through the binary, on SQLite and PostgreSQL.

use crate::support::Target;
use crate::support::{Output, Runbook};
use std::path::Path;

/// A project with a config whose production environment needs two approvals.
struct Gated {
    dir: tempfile::TempDir,
    target: Target,
}

const CONFIG: &str = r#"
environments:
  dev:
    target: { sqlite: dev.db }
    allow_target_override: true
    protections: { self_approval: true }
  staging:
    target: { sqlite: staging.db }
    allow_target_override: true
    protections: { approvals: 1 }
  production:
    target: { sqlite: prod.db }
    allow_target_override: true
    protections: { protected: true, approvals: 2, approval_expiry: 1h }
"#;

impl Gated {
    fn new(target: impl FnOnce(&Path) -> Target) -> Gated {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("playbooks")).unwrap();
        std::fs::write(dir.path().join("runbook.yaml"), CONFIG).unwrap();
        let target = target(dir.path());
        Gated { dir, target }
    }

    fn playbook(&self, name: &str, text: &str) {
        std::fs::write(
            self.dir
                .path()
                .join("playbooks")
                .join(format!("{name}.yaml")),
            text,
        )
        .unwrap();
    }

    fn as_user(&self, user: &str, args: &[&str]) -> Output {
        let mut all = vec!["-C".to_owned(), self.dir.path().display().to_string()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        Runbook::new(&refs).env("RUNBOOK_ACTOR", user).run()
    }

    fn run(&self, user: &str, name: &str, env: &str, extra: &[&str]) -> Output {
        let t = self.target.arg();
        let mut args = vec!["run", name, "--env", env, "--target", &t];
        args.extend(extra);
        self.as_user(user, &args)
    }

    fn resume(&self, user: &str, id: &str, extra: &[&str]) -> Output {
        let t = self.target.arg();
        let mut args = vec!["resume", id, "--target", &t];
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

    fn events(&self, id: &str) -> Vec<serde_json::Value> {
        let out = self.as_user("x", &["status", id, "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["events"].as_array().unwrap().clone()
    }

    fn log(&self) -> Vec<String> {
        self.target.query("SELECT what FROM log")
    }
}

const SHIP: &str = r#"
name: ship
params:
  version: { type: string, default: "1.0" }
steps:
  - id: before
    sql: { query: "CREATE TABLE IF NOT EXISTS log (what TEXT)" }
  - id: mark
    sql: { query: "INSERT INTO log VALUES ('before')" }
    rollback:
      - sql: { query: "INSERT INTO log VALUES ('undone')" }
  - id: approve
    gate: { approval: { message: "Ship {{ params.version }} to {{ env.name }}" } }
  - id: after
    sql: { query: "INSERT INTO log VALUES ('after')" }
"#;

/// Runs a test once against SQLite and once against PostgreSQL.
fn both(test: impl Fn(Gated)) {
    test(Gated::new(Target::sqlite));
    test(Gated::new(|_| Target::postgres("gates")));
}

#[test]
fn without_a_terminal_or_approval_the_run_waits_and_nothing_past_the_gate_runs() {
    both(|g| {
        g.playbook("ship", SHIP);
        let out = g.run("alice", "ship", "production", &[]);
        assert_eq!(out.code, 3, "{}", out.combined());
        assert!(out.stderr.contains("runbook approve"), "{}", out.stderr);
        let (id, status) = g.last();
        assert_eq!(status, "waiting_approval");
        assert_eq!(g.log(), ["before"]);
        // Resuming without approvals waits again; it never continues by default.
        assert_eq!(g.resume("alice", &id, &[]).code, 3);
        assert_eq!(g.log(), ["before"]);
        let decisions: Vec<_> = g
            .events(&id)
            .into_iter()
            .filter(|e| e["kind"] == "gate_decision")
            .collect();
        assert_eq!(decisions.len(), 2);
        assert_eq!(decisions[0]["data"]["outcome"], "waiting");
        assert_eq!(
            decisions[0]["data"]["gate"]["approval"]["message"], "Ship 1.0 to production",
            "what was shown is recorded"
        );
    });
}

#[test]
fn two_approvals_by_other_people_let_resume_continue() {
    both(|g| {
        g.playbook("ship", SHIP);
        assert_eq!(g.run("alice", "ship", "production", &[]).code, 3);
        let (id, _) = g.last();
        // The operator may not approve their own run in production, in any letter case.
        let own = g.as_user("ALICE", &["approve", &id, "approve"]);
        assert_eq!(own.code, 7, "{}", own.combined());
        assert!(own.stderr.contains("cannot approve"), "{}", own.stderr);
        let bob = g.as_user(
            "bob",
            &["approve", &id, "approve", "--comment", "looks good"],
        );
        assert_eq!(bob.code, 0, "{}", bob.combined());
        assert!(
            bob.stderr.contains("Ship 1.0 to production"),
            "the approver sees what they approve: {}",
            bob.stderr
        );
        // Two required, one given: still waiting.
        assert_eq!(g.resume("alice", &id, &[]).code, 3);
        assert_eq!(g.log(), ["before"]);
        // The same person twice still counts once.
        assert_eq!(g.as_user("Bob", &["approve", &id, "approve"]).code, 0);
        assert_eq!(g.resume("alice", &id, &[]).code, 3);
        assert_eq!(g.as_user("carol", &["approve", &id, "approve"]).code, 0);
        let out = g.resume("alice", &id, &[]);
        assert_eq!(out.code, 0, "{}", out.combined());
        assert!(
            out.stderr.contains("approved by bob, carol"),
            "{}",
            out.stderr
        );
        assert_eq!(g.log(), ["before", "after"]);
        let approvals: Vec<_> = g
            .events(&id)
            .into_iter()
            .filter(|e| e["kind"] == "approval_recorded")
            .collect();
        // The refused self-approval is not recorded as an approval.
        assert_eq!(approvals.len(), 3);
        assert_eq!(approvals[0]["data"]["actor"], "bob");
        assert_eq!(approvals[0]["data"]["comment"], "looks good");
    });
}

#[test]
fn self_approval_on_the_command_line_only_where_the_environment_allows_it() {
    let g = Gated::new(Target::sqlite);
    g.playbook("ship", SHIP);
    let prod = g.run("alice", "ship", "production", &["--approve", "approve"]);
    assert_eq!(prod.code, 2, "{}", prod.combined());
    assert!(
        prod.stderr
            .contains("`--approve` is refused in environment `production`"),
        "{}",
        prod.stderr
    );
    let dev = g.run("alice", "ship", "dev", &["--approve", "approve"]);
    assert_eq!(dev.code, 0, "{}", dev.combined());
    assert_eq!(g.log(), ["before", "after"]);
}

/// Names are one person under Unicode case folding and normalisation, not only ASCII case:
/// `JÜRGEN` (or a decomposed `jü`) cannot approve a run of `jürgen`.
#[test]
fn the_operator_cannot_approve_under_another_unicode_spelling() {
    let g = Gated::new(Target::sqlite);
    g.playbook("ship", SHIP);
    assert_eq!(g.run("jürgen", "ship", "staging", &[]).code, 3);
    let (id, _) = g.last();
    for me in ["JÜRGEN", "ju\u{308}rgen", " Jürgen "] {
        let own = g.as_user(me, &["approve", &id, "approve"]);
        assert_eq!(own.code, 7, "{me}: {}", own.combined());
        assert!(own.stderr.contains("cannot approve"), "{}", own.stderr);
    }
    assert_eq!(g.resume("jürgen", &id, &[]).code, 3);
    assert_eq!(g.as_user("jurgen", &["approve", &id, "approve"]).code, 0);
    assert_eq!(g.resume("jürgen", &id, &[]).code, 0);
    assert_eq!(g.log(), ["before", "after"]);
}

#[test]
fn approvals_are_void_when_the_plan_changes() {
    let g = Gated::new(Target::sqlite);
    g.playbook("ship", SHIP);
    assert_eq!(g.run("alice", "ship", "staging", &[]).code, 3);
    let (id, _) = g.last();
    assert_eq!(g.as_user("bob", &["approve", &id, "approve"]).code, 0);
    // Different variables make a different plan: the approval does not count for it.
    let out = g.resume("alice", &id, &["--var", "version=2.0"]);
    assert_eq!(out.code, 3, "{}", out.combined());
    assert!(
        out.stderr.contains("given for another plan"),
        "{}",
        out.stderr
    );
    // A changed playbook: neither approving nor resuming is possible.
    g.playbook("ship", &SHIP.replace("'after'", "'changed'"));
    let approve = g.as_user("carol", &["approve", &id, "approve"]);
    assert_eq!(approve.code, 2, "{}", approve.combined());
    assert!(
        approve.stderr.contains("changed since run"),
        "{}",
        approve.stderr
    );
    assert_eq!(g.resume("alice", &id, &[]).code, 2);
    // Back to the approved playbook and variables: the approval counts again.
    g.playbook("ship", SHIP);
    assert_eq!(g.resume("alice", &id, &[]).code, 0);
    assert_eq!(g.log(), ["before", "after"]);
}

#[test]
fn a_rejection_ends_the_run_with_its_rollback() {
    both(|g| {
        g.playbook("ship", SHIP);
        assert_eq!(g.run("alice", "ship", "production", &[]).code, 3);
        let (id, _) = g.last();
        let t = g.target.arg();
        let out = g.as_user(
            "bob",
            &[
                "reject",
                &id,
                "approve",
                "--comment",
                "not today",
                "--target",
                &t,
            ],
        );
        assert_eq!(out.code, 7, "{}", out.combined());
        assert!(
            out.stderr.contains("rejected by bob: not today"),
            "{}",
            out.stderr
        );
        assert_eq!(g.log(), ["before", "undone"]);
        assert_eq!(g.last().1, "refused");
    });
}

/// Approvals are written through the run's journal like every other event: a secret in a
/// comment is masked in the state store and in the audit chain.
#[test]
fn a_secret_in_an_approval_comment_is_redacted() {
    const SECRET: &str = "gate-s3cr3t-token";
    let g = Gated::new(Target::sqlite);
    std::fs::write(
        g.dir.path().join("runbook.yaml"),
        format!("secrets: [GATE_TOKEN]\n{CONFIG}"),
    )
    .unwrap();
    g.playbook("ship", SHIP);
    assert_eq!(g.run("alice", "ship", "staging", &[]).code, 3);
    let (id, _) = g.last();
    let dir = g.dir.path().display().to_string();
    let comment = format!("the token is {SECRET}");
    let args = ["-C", &dir, "approve", &id, "approve", "--comment", &comment];
    let out = Runbook::new(&args)
        .env("RUNBOOK_ACTOR", "bob")
        .env("GATE_TOKEN", SECRET)
        .run();
    assert_eq!(out.code, 0, "{}", out.combined());
    let events = serde_json::to_string(&g.events(&id)).unwrap();
    assert!(!events.contains(SECRET), "{events}");
    assert!(events.contains("the token is ***"), "{events}");
    let audit = g.dir.path().join(".runbook").join("audit");
    for entry in std::fs::read_dir(&audit).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.contains(SECRET), "{}: {text}", path.display());
    }
}

fn weekday_name(offset: i64) -> &'static str {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let today = chrono_weekday();
    days[((today + offset).rem_euclid(7)) as usize]
}

/// Today's weekday (0 = Monday) in UTC.
fn chrono_weekday() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // 1970-01-01 was a Thursday (3).
    (secs / 86400 + 3).rem_euclid(7)
}

#[test]
fn a_closed_window_refuses_and_names_the_next_opening() {
    let g = Gated::new(Target::sqlite);
    // Two days ahead: a window a day ahead in Europe/Paris opens before midnight UTC in summer,
    // and a run just before midnight UTC would see "tomorrow" become today.
    let later = weekday_name(2);
    g.playbook(
        "windowed",
        &format!(
            "name: windowed\nsteps:\n  - id: setup\n    sql: {{ query: \"CREATE TABLE log (what TEXT)\" }}\n  - id: window\n    gate: {{ window: {{ days: [{later}], start: \"00:00\", end: \"23:59\", tz: UTC }} }}\n  - id: after\n    sql: {{ query: \"INSERT INTO log VALUES ('after')\" }}\n"
        ),
    );
    let out = g.run("alice", "windowed", "dev", &[]);
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(
        out.stderr
            .contains("outside the maintenance window; the next one opens"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("00:00 UTC"), "{}", out.stderr);
    assert!(g.log().is_empty());
    // An environment window refuses before anything runs.
    std::fs::write(
        g.dir.path().join("runbook.yaml"),
        format!("{CONFIG}    \n  maint:\n    target: {{ sqlite: m.db }}\n    allow_target_override: true\n    protections:\n      windows: [{{ days: [{later}], start: \"01:00\", end: \"02:00\", tz: Europe/Paris }}]\n"),
    )
    .unwrap();
    let out = g.run("alice", "windowed", "maint", &[]);
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(
        out.stderr
            .contains("`maint` is outside its maintenance windows (the next opens"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("01:00 Europe/Paris"), "{}", out.stderr);
}

#[test]
fn require_run_needs_a_recent_success_with_the_same_migrations() {
    let g = Gated::new(Target::sqlite);
    std::fs::create_dir_all(g.dir.path().join("migrations/sqlite")).unwrap();
    std::fs::write(
        g.dir.path().join("migrations/sqlite/001_init.sql"),
        "CREATE TABLE a (id INTEGER);\n",
    )
    .unwrap();
    g.playbook(
        "release",
        "name: release\nsteps:\n  - id: staged\n    gate: { require_run: { env: staging, within: 7d } }\n  - id: work\n    shell: { argv: [\"true\"] }\n",
    );
    g.playbook(
        "release-staging",
        "name: release-staging\nsteps:\n  - id: work\n    shell: { argv: [\"true\"] }\n",
    );
    let unmet = g.run("alice", "release", "production", &[]);
    assert_eq!(unmet.code, 7, "{}", unmet.combined());
    assert!(
        unmet
            .stderr
            .contains("no successful run of `release` on `staging` with these migrations"),
        "{}",
        unmet.stderr
    );
    // The staging run of the same playbook: a staging run has no require_run of its own here,
    // so run it with a playbook path under the same name.
    let staged = g.dir.path().join("staging-release.yaml");
    std::fs::write(
        &staged,
        "name: release\nsteps:\n  - id: work\n    shell: { argv: [\"true\"] }\n",
    )
    .unwrap();
    let out = g.run("alice", &staged.display().to_string(), "staging", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let met = g.run("alice", "release", "production", &[]);
    assert_eq!(met.code, 0, "{}", met.combined());
    // New migrations since the staging run: unmet again, and the message says why.
    std::fs::write(
        g.dir.path().join("migrations/sqlite/002_more.sql"),
        "CREATE TABLE b (id INTEGER);\n",
    )
    .unwrap();
    let changed = g.run("alice", "release", "production", &[]);
    assert_eq!(changed.code, 7);
    assert!(
        changed.stderr.contains("had other migrations"),
        "{}",
        changed.stderr
    );
}

#[test]
fn confirm_needs_the_database_name() {
    both(|g| {
        g.playbook(
            "wipe",
            "name: wipe\nsteps:\n  - id: setup\n    sql: { query: \"CREATE TABLE IF NOT EXISTS log (what TEXT)\" }\n  - id: confirm\n    gate: { confirm: { message: \"This wipes {{ env.name }}\" } }\n  - id: wipe\n    sql: { query: \"INSERT INTO log VALUES ('wiped')\" }\n",
        );
        let db = match &g.target {
            Target::Sqlite(p) => p.file_name().unwrap().to_string_lossy().into_owned(),
            Target::Postgres(url) => url.rsplit('/').next().unwrap().to_owned(),
        };
        let wrong = g.run("alice", "wipe", "production", &["--confirm", "prod"]);
        assert_eq!(wrong.code, 7, "{}", wrong.combined());
        assert!(
            wrong.stderr.contains(&format!("does not match `{db}`")),
            "{}",
            wrong.stderr
        );
        assert!(g.log().is_empty());
        // Without a terminal and without --confirm: wait, then resume with the name.
        let waiting = g.run("alice", "wipe", "production", &[]);
        assert_eq!(waiting.code, 3, "{}", waiting.combined());
        let (id, _) = g.last();
        let out = g.resume("alice", &id, &["--confirm", &db]);
        assert_eq!(out.code, 0, "{}", out.combined());
        assert_eq!(g.log(), ["wiped"]);
    });
}

#[test]
fn a_condition_gate_reads_an_earlier_output() {
    let g = Gated::new(Target::sqlite);
    g.playbook(
        "disk",
        r#"
name: disk
params:
  free: { type: integer, default: 50 }
steps:
  - id: df
    shell: { argv: [echo, "{{ params.free }}% free"] }
    outputs:
      free_percent: { regex: '(\d+)%' }
  - id: enough
    gate:
      condition:
        expr: steps.df.outputs.free_percent >= 30
        message: "less than 30% disk free ({{ steps.df.outputs.free_percent }}%)"
  - id: after
    shell: { argv: ["true"] }
"#,
    );
    assert_eq!(g.run("alice", "disk", "dev", &[]).code, 0);
    let out = g.run("alice", "disk", "dev", &["--var", "free=12"]);
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(
        out.stderr.contains("less than 30% disk free (12%)"),
        "{}",
        out.stderr
    );
    let (id, status) = g.last();
    assert_eq!(status, "refused");
    let st = g.as_user("x", &["status", &id, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert!(
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["step"] != "after"),
        "nothing past the gate ran"
    );
}

/// Approvals bind to the bytes of the migrations and seeds a run may apply. A file added or
/// rewritten after the approval voids it, and resume and approve name the file; past a gate
/// that passed, resume refuses rather than apply SQL nobody approved.
#[test]
fn approvals_bind_to_the_migration_files_and_a_change_is_named() {
    let g = Gated::new(Target::sqlite);
    let dir = g.dir.path().join("migrations/sqlite");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("001_plans.sql"),
        "CREATE TABLE plans (id INTEGER PRIMARY KEY);\n",
    )
    .unwrap();
    g.playbook(
        "ship",
        "name: ship\nsteps:\n  - id: approve\n    gate: { approval: { message: apply } }\n  - id: migrate\n    migrate: { action: apply }\n",
    );
    let out = g.run("olivia", "ship", "staging", &[]);
    assert_eq!(out.code, 3, "{}", out.combined());
    let (id, _) = g.last();
    let ok = g.as_user("alice", &["approve", &id, "approve"]);
    assert_eq!(ok.code, 0, "{}", ok.combined());

    // A migration added after the approval: the approval no longer counts, and resume says why.
    std::fs::write(dir.join("002_drop.sql"), "DROP TABLE plans;\n").unwrap();
    let out = g.resume("olivia", &id, &[]);
    assert_eq!(out.code, 3, "the gate asks again:\n{}", out.combined());
    assert!(
        out.stderr.contains(&format!(
            "since run {id} started, `migrations/sqlite/002_drop.sql` was added: approvals given before no longer count"
        )),
        "{}",
        out.stderr
    );
    assert!(
        g.target
            .query("SELECT name FROM sqlite_master WHERE name = 'plans'")
            .is_empty()
    );
    // Approving the changed run is refused, naming the file.
    let refused = g.as_user("bob", &["approve", &id, "approve"]);
    assert_eq!(refused.code, 2, "{}", refused.combined());
    assert!(
        refused
            .stderr
            .contains("`migrations/sqlite/002_drop.sql` was added; an approval now would approve something else"),
        "{}",
        refused.stderr
    );

    // With the files as they were, the first approval counts again and the run goes on.
    std::fs::remove_file(dir.join("002_drop.sql")).unwrap();
    let out = g.resume("olivia", &id, &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(g.target.query("SELECT count(*) FROM plans"), ["0"]);
}

/// A run that passed its approval gate and then stopped does not resume onto rewritten SQL.
#[test]
fn resume_past_an_approved_gate_refuses_rewritten_migrations() {
    let g = Gated::new(Target::sqlite);
    let dir = g.dir.path().join("migrations/sqlite");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("001_plans.sql"),
        "CREATE TABLE plans (id INTEGER PRIMARY KEY);\n",
    )
    .unwrap();
    g.playbook(
        "ship",
        "name: ship\nsteps:\n  - id: approve\n    gate: { approval: { message: apply } }\n  - id: stop\n    gate: { approval: { message: second look } }\n  - id: migrate\n    migrate: { action: apply }\n",
    );
    let out = g.run("olivia", "ship", "staging", &[]);
    assert_eq!(out.code, 3, "{}", out.combined());
    let (id, _) = g.last();
    assert_eq!(g.as_user("alice", &["approve", &id, "approve"]).code, 0);
    let out = g.resume("olivia", &id, &[]);
    assert_eq!(out.code, 3, "waits at the second gate:\n{}", out.combined());
    std::fs::write(dir.join("001_plans.sql"), "DROP TABLE IF EXISTS plans;\n").unwrap();
    let out = g.resume("olivia", &id, &[]);
    assert_eq!(
        out.code,
        7,
        "a gate's approval is refused:\n{}",
        out.combined()
    );
    assert!(
        out.stderr.contains("`migrations/sqlite/001_plans.sql` changed; its gate `approve` passed for the files as they were"),
        "{}",
        out.stderr
    );
}

/// A run is bound to the database it started on: resumed or approved with `--target` naming
/// another database it is refused; a path that resolves to the same file is the same database
/// (though an approval binds to the plan, which names the target as it was given).
#[test]
fn a_run_continues_only_on_the_sqlite_file_it_started_on() {
    let g = Gated::new(Target::sqlite);
    g.playbook(
        "ship",
        "name: ship\nsteps:\n  - id: approve\n    gate: { approval: { message: apply } }\n  - id: write\n    sql: { query: \"CREATE TABLE shipped (id INTEGER)\" }\n",
    );
    let out = g.run("olivia", "ship", "staging", &[]);
    assert_eq!(out.code, 3, "{}", out.combined());
    let (id, _) = g.last();
    let other = format!("sqlite:{}", g.dir.path().join("other.db").display());
    let refused = g.as_user("alice", &["approve", &id, "approve", "--target", &other]);
    assert_eq!(refused.code, 7, "{}", refused.combined());
    assert!(
        refused
            .stderr
            .contains(&format!("run {id} started on SQLite file "))
            && refused
                .stderr
                .contains("other.db: a run continues only on the database it started on"),
        "{}",
        refused.stderr
    );
    assert_eq!(g.as_user("alice", &["approve", &id, "approve"]).code, 0);
    let out = g.as_user("olivia", &["resume", &id, "--target", &other]);
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(
        !g.dir.path().join("other.db").exists() || {
            let t = Target::Sqlite(g.dir.path().join("other.db"));
            t.query("SELECT name FROM sqlite_master WHERE name = 'shipped'")
                .is_empty()
        }
    );
    // A symlink to the same file is the same database.
    let Target::Sqlite(real) = &g.target else {
        unreachable!()
    };
    let alias = g.dir.path().join("alias.db");
    std::os::unix::fs::symlink(real, &alias).unwrap();
    let alias = format!("sqlite:{}", alias.display());
    let out = g.as_user("olivia", &["resume", &id, "--target", &alias]);
    // Not refused for the database, and the approval still counts: the plan is bound to the
    // database, not to the name it was reached through.
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(!out.stderr.contains("continues only on"), "{}", out.stderr);
    assert_eq!(
        g.target
            .query("SELECT count(*) FROM sqlite_master WHERE name = 'shipped'"),
        ["1"]
    );
}

/// On PostgreSQL the environment's URL variable changed between the approval and the resume
/// (to another database of the same server): refused, as is an approval for that database. Another route to the same database
/// (`localhost` instead of `127.0.0.1`) is the same database.
#[test]
fn a_run_continues_only_on_the_postgres_database_it_started_on() {
    use crate::support::pg;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    std::fs::write(
        dir.path().join("runbook.yaml"),
        "environments:\n  staging:\n    target: { url_env: BIND_URL }\n    protections: { approvals: 1 }\nsecrets: [BIND_URL]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("playbooks/ship.yaml"),
        "name: ship\nsteps:\n  - id: approve\n    gate: { approval: { message: apply } }\n  - id: write\n    sql: { query: \"CREATE TABLE shipped (id INT)\" }\n",
    )
    .unwrap();
    let a = pg::cluster().create_db("bind_a");
    let b = pg::cluster().create_db("bind_b");
    let rb = |user: &str, url: &str, args: &[&str]| {
        let mut all = vec!["-C".to_owned(), dir.path().display().to_string()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        Runbook::new(&refs)
            .env("RUNBOOK_ACTOR", user)
            .env("BIND_URL", url)
            .run()
    };
    let out = rb("olivia", &a, &["run", "ship", "--env", "staging"]);
    assert_eq!(out.code, 3, "{}", out.combined());
    let runs = rb("x", &a, &["runs", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    let id = v["runs"][0]["run_id"].as_str().unwrap().to_owned();
    let refused = rb("alice", &b, &["approve", &id, "approve", "--target", &b]);
    assert_eq!(refused.code, 7, "{}", refused.combined());
    assert!(
        refused.stderr.contains("started on PostgreSQL cluster ")
            && refused.stderr.contains("database `bind_a_"),
        "{}",
        refused.stderr
    );
    assert_eq!(rb("alice", &a, &["approve", &id, "approve"]).code, 0);
    let moved = rb("olivia", &b, &["resume", &id]);
    assert_eq!(moved.code, 7, "{}", moved.combined());
    assert_eq!(
        pg::cluster().psql(
            &b,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'shipped'"
        ),
        "0"
    );
    let same = a.replace("127.0.0.1", "localhost");
    let out = rb("olivia", &same, &["resume", &id]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        pg::cluster().psql(
            &a,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'shipped'"
        ),
        "1"
    );
}

/// `runbook status` of a waiting run says at which gate it waits, each approval so far and
/// whether it counts, and who may still approve.
#[test]
fn status_of_a_waiting_run_shows_its_approvals_and_who_may_still_approve() {
    let g = Gated::new(Target::sqlite);
    g.playbook(
        "ship",
        "name: ship\nsteps:\n  - id: approve\n    gate: { approval: { message: ship it, approvers: [alice, bob, carol] } }\n",
    );
    let out = g.run("olivia", "ship", "production", &[]);
    assert_eq!(out.code, 3, "{}", out.combined());
    let (id, _) = g.last();
    assert_eq!(g.as_user("alice", &["approve", &id, "approve"]).code, 0);
    let status = g.as_user("x", &["status", &id]);
    assert_eq!(status.code, 0, "{}", status.combined());
    let text = &status.stdout;
    assert!(
        text.contains("waiting   at gate `approve`: ship it (0 of 2 approvals)"),
        "{text}"
    );
    assert!(text.contains("approval  alice approve at "), "{text}");
    assert!(text.contains("(counts)"), "{text}");
    assert!(text.contains("may still approve: bob, carol"), "{text}");
}

/// The identity a run records of its PostgreSQL target: the cluster's system identifier, or
/// where the server hides it (a managed server that revokes `pg_control_system()`, here for a
/// database owner that is not a superuser) the server's address, port and cluster name.
#[test]
fn a_run_names_its_postgres_database_with_or_without_the_system_identifier() {
    use crate::support::{Project, Target, pg};
    let identity = |url: String| {
        let p = Project::new(|_| Target::Postgres(url));
        p.playbook(
            "one",
            "name: one\nsteps:\n  - id: one\n    sql: { query: \"SELECT 1\" }\n",
        );
        let out = p.run("one", &[]);
        assert_eq!(out.code, 0, "{}", out.combined());
        let (id, _) = p.last_run();
        let chain =
            std::fs::read_to_string(p.path().join(format!(".runbook/audit/{id}.jsonl"))).unwrap();
        let first: serde_json::Value = serde_json::from_str(chain.lines().next().unwrap()).unwrap();
        first["outcome"]["target_identity"]
            .as_str()
            .unwrap_or_else(|| panic!("{first}"))
            .to_owned()
    };
    let open = pg::cluster().create_owned_db("ident_open");
    let seen = identity(open.clone());
    let name = open.rsplit('/').next().unwrap();
    assert!(
        seen.starts_with("PostgreSQL cluster ")
            && seen.contains(&format!(", database `{name}` (oid ")),
        "{seen}"
    );

    let hidden = pg::cluster().create_owned_db("ident_hidden");
    let name = hidden.rsplit('/').next().unwrap().to_owned();
    pg::cluster().psql(
        &name,
        "REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC",
    );
    let seen = identity(hidden);
    assert_eq!(
        seen.split(", database").next().unwrap(),
        format!(
            "PostgreSQL server 127.0.0.1 port {} (cluster name ``)",
            pg::cluster().port()
        ),
        "{seen}"
    );
    assert!(
        seen.contains(&format!(", database `{name}` (oid ")),
        "{seen}"
    );
}
