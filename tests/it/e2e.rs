//! The shipped playbooks, migrations and seed data end to end: what a team adopting runbook
//! gets on day one, on a real PostgreSQL, and the README's first command in a fresh clone.

use crate::support::pg;
use crate::support::{Output, Runbook, repo};
use std::path::{Path, PathBuf};

/// A project made of the repository's playbooks, migrations and seeds, with a config whose
/// `e2e` environment is a PostgreSQL database.
struct Shipped {
    dir: tempfile::TempDir,
    url: String,
}

const ADMIN_PASSWORD: &str = "e2e-Admin-Password-2026";

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

impl Shipped {
    /// A project deployed once, with some life in the database since: a user and a patient.
    fn deployed_with_a_patient() -> Shipped {
        let s = Shipped::new();
        let out = s.runbook(&["run", "deploy", "--env", "e2e", "--approve", "approve"]);
        assert_eq!(out.code, 0, "{}", out.combined());
        s.psql(
            r#"INSERT INTO "User" (id, email, "passwordHash", role) VALUES ('u1', 'pat@example.test', 'x', 'PATIENT');
               INSERT INTO "Patient" (id, "userId", "medicalRecordNumber") VALUES ('p1', 'u1', 'MRN-1')"#,
        );
        s
    }

    fn new() -> Shipped {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["playbooks", "migrations", "seeds"] {
            copy_tree(&repo().join(sub), &dir.path().join(sub));
        }
        let url = pg::cluster().create_db("e2e");
        let backups = dir.path().join("backups");
        std::fs::write(
            dir.path().join("runbook.yaml"),
            format!(
                "environments:\n  e2e:\n    target: {{ url_env: E2E_DATABASE_URL }}\n    vars: {{ backup_dir: \"{}\", min_free_disk_percent: 1, seed_set: production }}\n    protections: {{ protected: true, approvals: 1, self_approval: true }}\nsecrets: [E2E_DATABASE_URL, ADMIN_DEFAULT_PASSWORD]\n",
                backups.display()
            ),
        )
        .unwrap();
        Shipped { dir, url }
    }

    fn runbook(&self, args: &[&str]) -> Output {
        let mut all = vec!["-C".to_owned(), self.dir.path().display().to_string()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        Runbook::new(&refs)
            .env("E2E_DATABASE_URL", &self.url)
            .env("ADMIN_DEFAULT_PASSWORD", ADMIN_PASSWORD)
            .run()
    }

    fn psql(&self, sql: &str) -> String {
        pg::cluster().psql(&self.url, sql)
    }

    fn counts(&self) -> String {
        self.psql(
            r#"SELECT string_agg(t || '=' || n, ' ' ORDER BY t) FROM (
                 SELECT 'User' t, count(*) n FROM "User" UNION ALL SELECT 'Plan', count(*) FROM "Plan"
                 UNION ALL SELECT 'HealthPackage', count(*) FROM "HealthPackage"
                 UNION ALL SELECT 'DiagnosticTest', count(*) FROM "DiagnosticTest"
                 UNION ALL SELECT 'Patient', count(*) FROM "Patient") x"#,
        )
    }
}

/// Every index the production guide's "Index Strategy" lists, by the names the schema gives.
const INDEXES: &[&str] = &[
    "User_email_key",
    "User_role_idx",
    "User_status_idx",
    "User_role_status_idx",
    "User_createdAt_idx",
    "RefreshToken_token_key",
    "RefreshToken_userId_idx",
    "RefreshToken_expiresAt_idx",
    "RefreshToken_userId_expiresAt_idx",
    "Patient_userId_key",
    "Patient_medicalRecordNumber_key",
    "Provider_userId_key",
    "Provider_licenseNumber_key",
    "Provider_specialty_idx",
    "Provider_available_idx",
    "Appointment_patientId_idx",
    "Appointment_providerId_idx",
    "Appointment_scheduledAt_idx",
    "Appointment_status_idx",
    "Appointment_patientId_scheduledAt_idx",
    "Appointment_providerId_scheduledAt_idx",
    "Plan_active_idx",
    "Plan_interval_idx",
    "Plan_active_interval_idx",
    "Subscription_userId_idx",
    "Subscription_status_idx",
    "Subscription_currentPeriodEnd_idx",
    "Subscription_planId_idx",
    "Subscription_status_currentPeriodEnd_idx",
];

#[test]
fn deploy_on_an_empty_database_creates_the_schema_indexes_and_baseline() {
    let s = Shipped::new();
    let out = s.runbook(&["run", "deploy", "--env", "e2e", "--approve", "approve"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let present =
        s.psql("SELECT string_agg(indexname, ' ') FROM pg_indexes WHERE schemaname = 'public'");
    for idx in INDEXES {
        assert!(
            present.split(' ').any(|p| p == *idx),
            "index `{idx}` is missing: {present}"
        );
    }
    let gin =
        s.psql(r#"SELECT indexdef FROM pg_indexes WHERE indexname = 'Provider_specialty_idx'"#);
    assert!(
        gin.contains("USING gin"),
        "the specialty index is an array (GIN) index: {gin}"
    );
    assert_eq!(
        s.counts(),
        "DiagnosticTest=5 HealthPackage=5 Patient=0 Plan=6 User=1"
    );
    let hash = s
        .psql(r#"SELECT "passwordHash" FROM "User" WHERE email = 'admin@thetheunifiedhealth.com'"#);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!out.combined().contains(ADMIN_PASSWORD));
    // A second deploy has nothing to migrate and nothing to seed.
    let again = s.runbook(&["run", "deploy", "--env", "e2e", "--approve", "approve"]);
    assert_eq!(again.code, 0, "{}", again.combined());
    assert!(again.stderr.contains("0 pending"), "{}", again.stderr);
    assert!(
        again.stderr.contains("0 inserted, 0 updated"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_migration_that_loses_rows_fails_deploy_and_the_backup_is_restored() {
    let s = Shipped::deployed_with_a_patient();
    let before = s.counts();
    // A migration that succeeds and deletes what it should not have.
    std::fs::write(
        s.dir
            .path()
            .join("migrations/postgres/20251220000000_dedupe.sql"),
        "DELETE FROM \"Patient\";\n",
    )
    .unwrap();
    let out = s.runbook(&["run", "deploy", "--env", "e2e", "--approve", "approve"]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("1 table has fewer rows than the baseline: Patient 1 -> 0"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("backup.rollback-1 (restore)"),
        "the backup is restored: {}",
        out.stderr
    );
    assert_eq!(s.counts(), before);
    // Deleting on purpose is said so.
    let out = s.runbook(&[
        "run",
        "deploy",
        "--env",
        "e2e",
        "--approve",
        "approve",
        "--var",
        "allow_fewer_rows=true",
    ]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(s.psql(r#"SELECT count(*) FROM "Patient""#), "0");
}

#[test]
fn a_seed_that_fails_after_a_migration_committed_restores_the_backup() {
    let s = Shipped::deployed_with_a_patient();
    let before = s.counts();
    std::fs::write(
        s.dir
            .path()
            .join("migrations/postgres/20251220000000_tier.sql"),
        "ALTER TABLE \"Plan\" ADD COLUMN \"tier\" TEXT;\n",
    )
    .unwrap();
    // A seed row with a role the enum does not have: the seed's transaction rolls back.
    let seeds = s.dir.path().join("seeds/production.yaml");
    let mut text = std::fs::read_to_string(&seeds).unwrap();
    text.push_str("\n- table: User\n  key: [email]\n  rows:\n    - { email: broken@example.test, passwordHash: x, role: NOT_A_ROLE }\n");
    std::fs::write(&seeds, text).unwrap();
    let out = s.runbook(&["run", "deploy", "--env", "e2e", "--approve", "approve"]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(out.stderr.contains("step seed failed"), "{}", out.stderr);
    assert!(
        out.stderr.contains("backup.rollback-1 (restore)"),
        "the migration committed, so the backup is restored: {}",
        out.stderr
    );
    assert_eq!(s.counts(), before);
    assert_eq!(s.psql(r#"SELECT count(*) FROM information_schema.columns WHERE table_name = 'Plan' AND column_name = 'tier'"#), "0");
}

#[test]
fn a_broken_migration_fails_deploy_without_restoring_and_the_backup_can_be() {
    let s = Shipped::deployed_with_a_patient();
    let before = s.counts();
    // A migration that changes the schema and then fails half-way, inside its transaction.
    std::fs::write(
        s.dir.path().join("migrations/postgres/20251220000000_broken.sql"),
        "ALTER TABLE \"Plan\" ADD COLUMN \"tier\" TEXT;\nUPDATE \"Plan\" SET \"tier\" = 'x';\nSELECT 1 / 0;\n",
    )
    .unwrap();
    let out = s.runbook(&["run", "deploy", "--env", "e2e", "--approve", "approve"]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(out.stderr.contains("division by zero"), "{}", out.stderr);
    // It committed nothing, so the restore (which would lose every write since the backup)
    // is skipped, saying why.
    assert!(
        out.stderr.contains("rollback of `backup` skipped: nothing after it changed the database (`migrate` failed and committed nothing)"),
        "{}",
        out.stderr
    );
    let restored = std::fs::read_dir(s.dir.path().join("backups"))
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains("pre-restore"));
    assert!(!restored, "no restore ran (it takes a pre-restore backup)");
    assert_eq!(s.counts(), before, "the row counts are as before");
    assert_eq!(s.psql(r#"SELECT count(*) FROM information_schema.columns WHERE table_name = 'Plan' AND column_name = 'tier'"#), "0");
    assert_eq!(
        s.psql("SELECT count(*) FROM runbook_migrations WHERE version = '20251220000000'"),
        "0"
    );

    // The rollback playbook, by restore, brings back the newest pre-migration backup too.
    let manifest = newest_manifest(&s.dir.path().join("backups"));
    let db = s.url.rsplit('/').next().unwrap().to_owned();
    let rb = s.runbook(&[
        "run",
        "rollback",
        "--env",
        "e2e",
        "--var",
        &format!("from={}", manifest.display()),
        "--confirm",
        &db,
    ]);
    assert_eq!(rb.code, 0, "{}", rb.combined());
    assert_eq!(s.counts(), before);

    // verify reports the counts before (from the backup manifest) and after.
    std::fs::remove_file(
        s.dir
            .path()
            .join("migrations/postgres/20251220000000_broken.sql"),
    )
    .unwrap();
    let v = s.runbook(&[
        "run",
        "verify",
        "--env",
        "e2e",
        "--var",
        &format!("baseline={}", manifest.display()),
    ]);
    assert_eq!(v.code, 0, "{}", v.combined());
    assert!(v.stderr.contains("row counts before"), "{}", v.stderr);
    assert!(v.stderr.contains("Plan: 6 -> 6"), "{}", v.stderr);
    assert!(v.stderr.contains("Patient: 1 -> 1"), "{}", v.stderr);
    assert!(
        v.stderr
            .contains("no table has fewer rows than the baseline ("),
        "{}",
        v.stderr
    );

    // A table that lost rows fails verify, naming it with both counts, unless the operator
    // says rows were deleted on purpose.
    pg::cluster().psql(
        &s.url,
        "DELETE FROM \"DiagnosticTest\" WHERE ctid = (SELECT min(ctid) FROM \"DiagnosticTest\")",
    );
    let baseline = format!("baseline={}", manifest.display());
    let lost = s.runbook(&["run", "verify", "--env", "e2e", "--var", &baseline]);
    assert_eq!(lost.code, 1, "{}", lost.combined());
    assert!(
        lost.stderr
            .contains("1 table has fewer rows than the baseline: DiagnosticTest 5 -> 4"),
        "{}",
        lost.stderr
    );
    let allowed = s.runbook(&[
        "run",
        "verify",
        "--env",
        "e2e",
        "--var",
        &baseline,
        "--var",
        "allow_fewer_rows=true",
    ]);
    assert_eq!(allowed.code, 0, "{}", allowed.combined());
}

fn newest_manifest(dir: &Path) -> PathBuf {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.to_string_lossy().ends_with(".manifest.json")
                && !p.to_string_lossy().contains("pre_restore")
        })
        .collect();
    all.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    all.pop().expect("a backup manifest")
}

/// The first command of the README's first `sh` block, with `cargo run --release --` standing
/// for the built binary.
fn readme_first_command() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .expect("a sh block")
        .split("```")
        .next()
        .unwrap();
    let line = block
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap();
    let rest = line
        .trim()
        .strip_prefix("cargo run --release --")
        .expect("the first command runs the binary through cargo");
    rest.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_readmes_first_command_works_in_a_fresh_clone() {
    let clone = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("git")
        .args([
            "clone",
            "--quiet",
            &repo().display().to_string(),
            &clone.path().join("runbook").display().to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let dir = clone.path().join("runbook");
    let args = readme_first_command();
    assert_eq!(
        args[..2],
        ["run".to_owned(), "deploy".to_owned()],
        "the first command runs deploy: {args:?}"
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = Runbook::new(&refs).dir(&dir).run();
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(out.stderr.contains("health check PASSED"), "{}", out.stderr);
    assert!(
        out.stderr.contains("succeeded"),
        "it ends with the summary: {}",
        out.stderr
    );
    assert!(dir.join(".runbook/dev.db").exists());
    // Run twice, as a new user would: nothing left to do.
    let again = Runbook::new(&refs).dir(&dir).run();
    assert_eq!(again.code, 0, "{}", again.combined());
    assert!(again.stderr.contains("nothing changed"), "{}", again.stderr);
}

#[test]
fn init_scaffolds_a_project_that_validates_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("new-project");
    let out = Runbook::new(&["init", &p.display().to_string()]).run();
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        Runbook::new(&["-C", &p.display().to_string(), "validate"])
            .run()
            .code,
        0
    );
    let run = Runbook::new(&[
        "-C",
        &p.display().to_string(),
        "run",
        "example",
        "--approve",
        "approve",
    ])
    .run();
    assert_eq!(run.code, 0, "{}", run.combined());
    assert_eq!(
        Runbook::new(&["init", &p.display().to_string()]).run().code,
        2,
        "init never overwrites"
    );
}
