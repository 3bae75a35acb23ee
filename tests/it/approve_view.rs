//! What an approver is shown before a decision is recorded, and what the plan hash that
//! approvals bind to covers: the protections in force and the database (by identity, not by
//! the name it was reached through).

use crate::support::cli::repo;
use crate::support::{Output, Runbook, copy_dir};
use sha2::{Digest, Sha256};
use std::path::Path;

const CONFIG: &str = "environments:\n  staging:\n    target: { sqlite: staging.db }\n    protections: { approvals: 1, approval_expiry: 24h }\n";

/// A deploy as the shipped one does it: status, lint, an approval whose message reads the
/// pending migrations, then apply.
const SHIP: &str = r#"
name: ship
steps:
  - id: pending
    migrate: { action: status }
  - id: lint
    migrate: { action: lint }
  - id: approve
    gate:
      approval:
        message: "Apply {{ steps.pending.outputs.pending | length }} migrations to {{ env.name }}"
  - id: migrate
    migrate: { action: apply }
"#;

struct Ship {
    dir: tempfile::TempDir,
}

impl Ship {
    fn new() -> Ship {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["migrations/sqlite", "migrations/postgres"] {
            copy_dir(&repo().join(sub), &dir.path().join(sub));
        }
        std::fs::create_dir_all(dir.path().join("playbooks")).unwrap();
        std::fs::write(dir.path().join("playbooks/ship.yaml"), SHIP).unwrap();
        std::fs::write(dir.path().join("runbook.yaml"), CONFIG).unwrap();
        Ship { dir }
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

    /// Starts the deploy; it stops at the approval gate. Gives the run id and its plan hash.
    fn start(&self) -> (String, String) {
        let out = self.as_user("alice", &["run", "ship", "--env", "staging"]);
        assert_eq!(out.code, 3, "{}", out.combined());
        let runs = self.as_user("x", &["runs", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
        let id = v["runs"][0]["run_id"].as_str().unwrap().to_owned();
        let status = self.as_user("x", &["status", &id, "--format", "json"]);
        let s: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        let hash = s["run"]["plan_hash"]
            .as_str()
            .or_else(|| s["plan_hash"].as_str())
            .unwrap_or_else(|| panic!("no plan hash in {}", status.stdout))
            .to_owned();
        (id, hash)
    }
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn approve_shows_the_rendered_message_target_pending_migrations_lint_and_plan_hash_first() {
    let s = Ship::new();
    let (id, hash) = s.start();
    let out = s.as_user("bob", &["approve", &id, "approve"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let text = out.combined();
    // The message as the run rendered it, never the template.
    let pending: Vec<_> = std::fs::read_dir(s.path().join("migrations/sqlite"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql") && !n.ends_with(".down.sql"))
        .collect();
    assert!(
        text.contains(&format!("Apply {} migrations to staging", pending.len())),
        "{text}"
    );
    assert!(!text.contains("{{"), "a raw template was shown: {text}");
    // The database by identity: the SQLite file's real path.
    let real = std::fs::canonicalize(s.path().join("staging.db")).unwrap();
    assert!(
        text.contains(&format!("SQLite file {}", real.display())),
        "{text}"
    );
    // Every pending migration with the sha256 of its file.
    for name in &pending {
        let file = format!("migrations/sqlite/{name}");
        let sha = sha256_of(&s.path().join(&file));
        assert!(
            text.contains(&format!("{file}  sha256 {sha}")),
            "{file} with its sha256 is not shown: {text}"
        );
    }
    assert!(text.contains("lint:"), "{text}");
    assert!(text.contains(&format!("plan hash: {hash}")), "{text}");
    // Shown before the decision is recorded.
    let shown = text.find("plan hash:").unwrap();
    let recorded = text.find("approved gate `approve`").unwrap();
    assert!(shown < recorded, "{text}");
}

#[test]
fn lint_findings_the_run_recorded_are_shown_to_the_approver() {
    let s = Ship::new();
    // The shipped PostgreSQL migrations set no lock_timeout themselves: squawk warns.
    let (id, _) = s.start();
    let out = s.as_user("bob", &["reject", &id, "approve", "--comment", "no"]);
    let text = out.combined();
    assert!(
        text.contains(
            "migrations/postgres/20251217000000_init.sql:17:1 warning require-lock-timeout"
        ),
        "the lint finding is not shown: {text}"
    );
    assert!(text.contains("Rejecting gate `approve`"), "{text}");
}

#[test]
fn the_plan_hash_covers_the_protections_in_force() {
    let s = Ship::new();
    let plan = |s: &Ship| {
        let out = s.as_user(
            "alice",
            &[
                "plan",
                "ship",
                "--env",
                "staging",
                "--offline",
                "--format",
                "json",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["protections"]["approval_expiry"], "24h", "{}", out.stdout);
        v["plan_hash"].as_str().unwrap().to_owned()
    };
    let before = plan(&s);
    let (id, _) = s.start();
    let out = s.as_user("bob", &["approve", &id, "approve"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    // Other rules make another plan.
    std::fs::write(
        s.path().join("runbook.yaml"),
        CONFIG.replace("approval_expiry: 24h", "approval_expiry: 48h"),
    )
    .unwrap();
    let other = s.as_user(
        "alice",
        &[
            "plan",
            "ship",
            "--env",
            "staging",
            "--offline",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&other.stdout).unwrap();
    assert_ne!(v["plan_hash"].as_str(), Some(before.as_str()));
    // The run is held to the rules recorded at its start, which its approval was given under:
    // editing the config does not change them, so the approval still counts.
    let resume = s.as_user("alice", &["resume", &id]);
    assert_eq!(resume.code, 0, "{}", resume.combined());
}

#[test]
fn the_same_database_through_another_name_keeps_its_approvals() {
    let s = Ship::new();
    let (id, _) = s.start();
    let out = s.as_user("bob", &["approve", &id, "approve"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    // The same file through a symlink: the same database, so the same plan.
    std::os::unix::fs::symlink(s.path().join("staging.db"), s.path().join("alias.db")).unwrap();
    let alias = format!("sqlite:{}", s.path().join("alias.db").display());
    let resume = s.as_user("alice", &["resume", &id, "--target", &alias]);
    assert_eq!(resume.code, 0, "{}", resume.combined());
}

#[test]
fn a_connected_plan_shows_the_hash_a_run_on_that_database_records() {
    let s = Ship::new();
    // The database must exist for the plan to know which one it is.
    let setup = s.as_user("alice", &["run", "ship", "--env", "staging"]);
    assert_eq!(setup.code, 3, "{}", setup.combined());
    let plan = s.as_user(
        "alice",
        &["plan", "ship", "--env", "staging", "--format", "json"],
    );
    assert_eq!(plan.code, 0, "{}", plan.combined());
    let p: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let (_, hash) = s.start();
    assert_eq!(
        p["plan_hash"].as_str(),
        Some(hash.as_str()),
        "{}",
        plan.stdout
    );
    assert!(
        p["target_identity"]
            .as_str()
            .unwrap()
            .starts_with("SQLite file ")
    );
    // Offline, the database is not known: another hash.
    let offline = s.as_user(
        "alice",
        &[
            "plan",
            "ship",
            "--env",
            "staging",
            "--offline",
            "--format",
            "json",
        ],
    );
    let o: serde_json::Value = serde_json::from_str(&offline.stdout).unwrap();
    assert_ne!(o["plan_hash"].as_str(), Some(hash.as_str()));
    assert!(o.get("target_identity").is_none());
}
