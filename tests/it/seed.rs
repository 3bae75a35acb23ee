//! The `seed` action end to end, through the binary, on real PostgreSQL and real SQLite:
//! idempotent upserts by natural key, secrets hashed and never shown, one transaction per set.

use crate::support::{Output, Project, Runbook, Target, copy_dir, sqlite_exec};
use serde_json::Value as Json;
use std::path::Path;

const PASSWORD: &str = "Correct-Horse-Battery-42!";
const PLAYBOOK: &str = "name: seed-it\nsteps:\n  - id: seed\n    seed: { set: production }\n";

/// `runbook run seed-it` with `ADMIN_DEFAULT_PASSWORD` set to `password`.
fn run(p: &Project, password: &str) -> Output {
    let dir = p.path().display().to_string();
    let target = p.target.arg();
    Runbook::new(&["-C", &dir, "run", "seed-it", "--target", &target])
        .env("ADMIN_DEFAULT_PASSWORD", password)
        .run()
}

fn write_seed(p: &Project, text: &str) {
    std::fs::create_dir_all(p.path().join("seeds")).unwrap();
    std::fs::write(p.path().join("seeds/production.yaml"), text).unwrap();
}

/// The outputs of the newest run's `seed` step.
fn seed_outputs(p: &Project) -> Json {
    let (id, _) = p.last_run();
    let st = p.status_json(&id);
    st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "seed")
        .map(|s| s["outputs"].clone())
        .unwrap_or_else(|| panic!("no seed step in {st:#}"))
}

fn counts(o: &Json) -> (u64, u64, u64) {
    (
        o["inserted"].as_u64().unwrap(),
        o["updated"].as_u64().unwrap(),
        o["unchanged"].as_u64().unwrap(),
    )
}

/// Every file under the project (state store included) searched for the secret's bytes.
fn assert_secret_nowhere(p: &Project, outputs: &[&Output]) {
    for o in outputs {
        assert!(
            !o.stdout.contains(PASSWORD) && !o.stderr.contains(PASSWORD),
            "{}",
            o.combined()
        );
    }
    let (id, _) = p.last_run();
    let status = p.cmd(&["status", &id, "--format", "json"]);
    assert!(!status.stdout.contains(PASSWORD), "{}", status.stdout);
    fn walk(dir: &Path, needle: &[u8]) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, needle);
            } else if let Ok(bytes) = std::fs::read(&path) {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "the secret is stored in plain text in {}",
                    path.display()
                );
            }
        }
    }
    walk(p.path(), PASSWORD.as_bytes());
}

const PG_SCHEMA: &str = r#"
CREATE TYPE "Role" AS ENUM ('ADMIN', 'PROVIDER', 'PATIENT');
CREATE TYPE "BillingInterval" AS ENUM ('MONTHLY', 'ANNUAL');
CREATE TABLE "Plan" (
  "id" text PRIMARY KEY,
  "name" text NOT NULL UNIQUE,
  "price" numeric(10, 2) NOT NULL,
  "interval" "BillingInterval" NOT NULL,
  "features" text[] NOT NULL DEFAULT '{}',
  "limits" jsonb,
  "isActive" boolean NOT NULL DEFAULT true,
  "createdAt" timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "updatedAt" timestamp(3) NOT NULL
);
CREATE TABLE "HealthPackage" (
  "id" uuid PRIMARY KEY,
  "code" text NOT NULL UNIQUE,
  "name" text NOT NULL,
  "price" numeric(10, 2) NOT NULL,
  "testCodes" text[] NOT NULL,
  "metadata" json
);
CREATE TABLE "DiagnosticTest" (
  "code" text PRIMARY KEY,
  "name" text NOT NULL,
  "sampleType" text NOT NULL,
  "turnaroundHours" integer NOT NULL
);
CREATE TABLE "User" (
  "id" text PRIMARY KEY,
  "email" text NOT NULL UNIQUE,
  "password" text NOT NULL,
  "role" "Role" NOT NULL DEFAULT 'PATIENT',
  "firstName" text,
  "mfaEnabled" boolean NOT NULL DEFAULT false
);
"#;

/// The production baseline of the guide: 6 plans, 5 health packages, 5 diagnostic tests and
/// the admin user whose password comes from `ADMIN_DEFAULT_PASSWORD`.
const PG_SEED: &str = r#"# Production baseline (test copy)
- table: Plan
  key: [name]
  generated: { id: uuid, updatedAt: now }
  rows:
    - { name: Basic Monthly, price: 29.99, interval: MONTHLY, features: [Video visits, Lab results], limits: { visits: 2 } }
    - { name: Basic Annual, price: 299.99, interval: ANNUAL, features: [Video visits, Lab results], limits: { visits: 24 } }
    - { name: Professional Monthly, price: 79.99, interval: MONTHLY, features: [Video visits, Lab results, Care team], limits: { visits: 8 } }
    - { name: Professional Annual, price: 799.99, interval: ANNUAL, features: [Video visits, Lab results, Care team], limits: { visits: 96 } }
    - { name: Enterprise Monthly, price: 199.99, interval: MONTHLY, features: [Everything], limits: null }
    - { name: Enterprise Annual, price: 1999.99, interval: ANNUAL, features: [Everything], limits: null, isActive: true }
- table: DiagnosticTest
  key: [code]
  rows:
    - { code: CBC, name: Complete Blood Count (CBC), sampleType: blood, turnaroundHours: 24 }
    - { code: LIPID, name: Lipid Profile, sampleType: blood, turnaroundHours: 24 }
    - { code: HBA1C, name: HbA1c, sampleType: blood, turnaroundHours: 48 }
    - { code: TFT, name: Thyroid Function Test, sampleType: blood, turnaroundHours: 48 }
    - { code: LFT, name: Liver Function Test, sampleType: blood, turnaroundHours: 24 }
- table: HealthPackage
  key: [code]
  generated: { id: uuid }
  rows:
    - { code: GENERAL, name: General Health Checkup, price: 99, testCodes: [CBC, LIPID], metadata: { fasting: true } }
    - { code: CARDIAC, name: Cardiac Health Package, price: 199, testCodes: [LIPID], metadata: { fasting: true } }
    - { code: DIABETES, name: Diabetes Management, price: 149, testCodes: [HBA1C, LIPID], metadata: {} }
    - { code: WOMEN, name: "Women's Health", price: 179, testCodes: [CBC, TFT], metadata: { ages: [18, 65] } }
    - { code: EXECUTIVE, name: Executive Health Checkup, price: 499, testCodes: [CBC, LIPID, HBA1C, TFT, LFT], metadata: null }
- table: User
  key: [email]
  generated: { id: uuid }
  secrets:
    password: { env: ADMIN_DEFAULT_PASSWORD, hash: argon2id }
  rows:
    - { email: admin@thetheunifiedhealth.com, role: ADMIN, firstName: System, mfaEnabled: false }
"#;

#[test]
fn postgres_seed_is_idempotent_updates_what_changed_and_hashes_the_admin_password() {
    let p = Project::new(|_| Target::postgres("seed"));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    crate::support::pg::cluster().psql(&url, PG_SCHEMA);
    p.playbook("seed-it", PLAYBOOK);
    write_seed(&p, PG_SEED);

    let first = run(&p, PASSWORD);
    assert_eq!(first.code, 0, "{}", first.combined());
    let o = seed_outputs(&p);
    assert_eq!(counts(&o), (17, 0, 0), "{o:#}");
    assert_eq!(o["tables"]["Plan"]["inserted"], 6);
    assert_eq!(o["tables"]["HealthPackage"]["inserted"], 5);
    assert_eq!(o["tables"]["DiagnosticTest"]["inserted"], 5);
    assert_eq!(o["tables"]["User"]["inserted"], 1);

    let q = |sql: &str| p.target.query(sql);
    assert_eq!(q(r#"SELECT count(*) FROM "Plan""#), ["6"]);
    assert_eq!(
        q(
            r#"SELECT "price", "interval", array_length("features", 1), "limits"->>'visits' FROM "Plan" WHERE "name" = 'Professional Monthly'"#
        ),
        ["79.99|MONTHLY|3|8"]
    );
    assert_eq!(
        q(
            r#"SELECT "testCodes"[5], "metadata"->'ages'->>1 FROM "HealthPackage" WHERE "code" IN ('EXECUTIVE', 'WOMEN') ORDER BY "code""#
        ),
        ["LFT|", "|65"]
    );
    let stored = q(r#"SELECT "password", "role" FROM "User""#);
    let (hash, role) = stored[0].split_once('|').unwrap();
    assert_eq!(role, "ADMIN");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(runbook::db::seed::verify_secret(PASSWORD, hash));
    let plan_times = q(r#"SELECT "id", "updatedAt" FROM "Plan" ORDER BY "name""#);

    // A second run changes nothing and says so; not even `updatedAt` or the ids move.
    let second = run(&p, PASSWORD);
    assert_eq!(second.code, 0, "{}", second.combined());
    assert_eq!(counts(&seed_outputs(&p)), (0, 0, 17));
    assert!(
        second.stderr.contains("seed `production`: nothing changed"),
        "{}",
        second.stderr
    );
    assert_eq!(
        q(r#"SELECT "id", "updatedAt" FROM "Plan" ORDER BY "name""#),
        plan_times
    );
    assert_eq!(q(r#"SELECT "password" FROM "User""#), [hash]);

    // A changed row in the file, and a row changed by hand, are both brought back in line.
    write_seed(
        &p,
        &PG_SEED.replace(
            "{ name: Basic Monthly, price: 29.99,",
            "{ name: Basic Monthly, price: 24.99,",
        ),
    );
    p.target
        .query(r#"UPDATE "DiagnosticTest" SET "turnaroundHours" = 1 WHERE "code" = 'CBC'"#);
    let third = run(&p, PASSWORD);
    assert_eq!(third.code, 0, "{}", third.combined());
    let o = seed_outputs(&p);
    assert_eq!(counts(&o), (0, 2, 15), "{o:#}");
    assert_eq!(o["tables"]["Plan"]["updated"], 1);
    assert_eq!(o["tables"]["DiagnosticTest"]["updated"], 1);
    assert_eq!(
        q(r#"SELECT "price" FROM "Plan" WHERE "name" = 'Basic Monthly'"#),
        ["24.99"]
    );
    let after = q(r#"SELECT "id", "updatedAt" FROM "Plan" ORDER BY "name""#);
    let changed: Vec<_> = after
        .iter()
        .zip(&plan_times)
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "only Basic Monthly's updatedAt moves: {changed:?}"
    );

    // The admin changed their password after the first login: re-seeding keeps it.
    let other = "Another-Long-Password-99";
    let fourth = run(&p, other);
    assert_eq!(fourth.code, 0, "{}", fourth.combined());
    assert_eq!(counts(&seed_outputs(&p)), (0, 0, 17));
    assert_eq!(q(r#"SELECT "password" FROM "User""#), [hash]);
    assert!(!fourth.stderr.contains(other) && !fourth.stdout.contains(other));

    assert_secret_nowhere(&p, &[&first, &second, &third]);
}

#[test]
fn a_secret_with_update_true_is_rehashed_only_when_the_variable_changes() {
    let p = Project::new(Target::sqlite);
    sqlite_exec(
        &p.target,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, password TEXT NOT NULL)",
    );
    p.playbook("seed-it", PLAYBOOK);
    write_seed(
        &p,
        "- table: users\n  key: [email]\n  secrets:\n    password: { env: ADMIN_DEFAULT_PASSWORD, hash: argon2id, update: true }\n  rows:\n    - { email: admin@example.com }\n",
    );
    assert_eq!(run(&p, PASSWORD).code, 0);
    let first = p.target.query("SELECT password FROM users");
    let again = run(&p, PASSWORD);
    assert_eq!(again.code, 0, "{}", again.combined());
    assert_eq!(counts(&seed_outputs(&p)), (0, 0, 1));
    assert_eq!(p.target.query("SELECT password FROM users"), first);

    let rotated = "Rotated-Password-2024-xyz";
    let third = run(&p, rotated);
    assert_eq!(third.code, 0, "{}", third.combined());
    assert_eq!(counts(&seed_outputs(&p)), (0, 1, 0));
    let now = p.target.query("SELECT password FROM users");
    assert_ne!(now, first);
    assert!(runbook::db::seed::verify_secret(rotated, &now[0]));
    assert!(!third.stderr.contains(rotated) && !third.stdout.contains(rotated));
}

const SQLITE_SEED: &str = r#"- table: Plan
  key: [name]
  generated: { updatedAt: now }
  rows:
    - { name: Basic Monthly, price: 29.99, isActive: true, features: [Video visits, Lab results] }
    - { name: Basic Annual, price: 299, isActive: false, features: [] }
- table: User
  key: [email]
  secrets:
    passwordHash: { env: ADMIN_DEFAULT_PASSWORD }
  rows:
    - { email: admin@example.com, role: ADMIN }
"#;

fn sqlite_project() -> Project {
    let p = Project::new(Target::sqlite);
    sqlite_exec(
        &p.target,
        r#"CREATE TABLE "Plan" ("id" INTEGER PRIMARY KEY, "name" TEXT NOT NULL UNIQUE, "price" DECIMAL NOT NULL, "isActive" BOOLEAN NOT NULL, "features" TEXT NOT NULL, "updatedAt" DATETIME NOT NULL)"#,
    );
    sqlite_exec(
        &p.target,
        r#"CREATE TABLE "User" ("id" INTEGER PRIMARY KEY, "email" TEXT NOT NULL UNIQUE, "passwordHash" TEXT NOT NULL, "role" TEXT NOT NULL DEFAULT 'PATIENT')"#,
    );
    p.playbook("seed-it", PLAYBOOK);
    write_seed(&p, SQLITE_SEED);
    p
}

#[test]
fn sqlite_seed_is_idempotent_and_updates_a_changed_row() {
    let p = sqlite_project();
    let first = run(&p, PASSWORD);
    assert_eq!(first.code, 0, "{}", first.combined());
    assert_eq!(counts(&seed_outputs(&p)), (3, 0, 0));
    assert_eq!(
        p.target.query(
            r#"SELECT CAST("price" AS TEXT), "isActive", "features" FROM "Plan" ORDER BY "name""#
        ),
        ["299|0|[]", r#"29.99|1|["Video visits","Lab results"]"#]
    );
    let hash = p.target.query(r#"SELECT "passwordHash" FROM "User""#);
    assert!(runbook::db::seed::verify_secret(PASSWORD, &hash[0]));

    let second = run(&p, PASSWORD);
    assert_eq!(second.code, 0, "{}", second.combined());
    assert_eq!(counts(&seed_outputs(&p)), (0, 0, 3));
    assert!(
        second.stderr.contains("nothing changed"),
        "{}",
        second.stderr
    );

    write_seed(
        &p,
        &SQLITE_SEED.replace("isActive: false", "isActive: true"),
    );
    let third = run(&p, PASSWORD);
    assert_eq!(third.code, 0, "{}", third.combined());
    let o = seed_outputs(&p);
    assert_eq!(counts(&o), (0, 1, 2), "{o:#}");
    assert_eq!(o["tables"]["Plan"]["updated"], 1);
    assert_eq!(
        p.target
            .query(r#"SELECT "isActive" FROM "Plan" WHERE "name" = 'Basic Annual'"#),
        ["1"]
    );
    assert_secret_nowhere(&p, &[&first, &second, &third]);
}

#[test]
fn a_missing_or_short_secret_is_refused_before_anything_is_written() {
    let p = sqlite_project();
    let missing = run(&p, "");
    assert_eq!(missing.code, 1, "{}", missing.combined());
    assert!(
        missing
            .stderr
            .contains("`ADMIN_DEFAULT_PASSWORD` is not set; seed set `production` needs it for `User.passwordHash`"),
        "{}",
        missing.stderr
    );
    assert_eq!(p.target.query(r#"SELECT count(*) FROM "Plan""#), ["0"]);

    let short = "Short-Secret-15";
    assert_eq!(short.chars().count(), 15);
    let refused = run(&p, short);
    assert_eq!(refused.code, 1, "{}", refused.combined());
    assert!(
        refused
            .stderr
            .contains("`ADMIN_DEFAULT_PASSWORD` is shorter than 16 characters"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains(short) && !refused.stdout.contains(short),
        "{}",
        refused.combined()
    );
    let (id, status) = p.last_run();
    assert_eq!(status, "failed");
    let st = p.cmd(&["status", &id, "--format", "json"]);
    assert!(!st.stdout.contains(short), "{}", st.stdout);
    assert_eq!(p.target.query(r#"SELECT count(*) FROM "Plan""#), ["0"]);
}

#[test]
fn an_invalid_seed_file_is_reported_with_file_line_column_and_hint() {
    let p = sqlite_project();
    write_seed(
        &p,
        "- table: Plan\n  key: [name]\n  rwos:\n    - { name: Basic }\n- table: User\n  key: [email]\n  rows:\n    - { role: ADMIN }\n",
    );
    let out = run(&p, PASSWORD);
    assert_eq!(out.code, 1, "{}", out.combined());
    for want in [
        "the seed file is invalid (3 problems)",
        "error[seed-missing-key]: the table entry has no `rows`",
        "error[unknown-key]: unknown key `rwos`",
        "seeds/production.yaml:3:3",
        "hint: did you mean `rows`?",
        "error[seed-key-missing]: the row has no value for key column `email`",
        "seeds/production.yaml:8:7",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_failing_table_rolls_back_the_whole_set_with_a_hint() {
    let p = sqlite_project();
    // `role` is no unique index of `User`: the upsert cannot match rows by it.
    write_seed(&p, &SQLITE_SEED.replace("key: [email]", "key: [role]"));
    let out = run(&p, PASSWORD);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("seeds/production.yaml:12:7: `User`")
            && out
                .stderr
                .contains("must be exactly the columns of a primary key or unique index of `User`"),
        "{}",
        out.stderr
    );
    // The plans of the first entry were inside the same transaction.
    assert_eq!(p.target.query(r#"SELECT count(*) FROM "Plan""#), ["0"]);

    write_seed(&p, &SQLITE_SEED.replace("price: 299,", "prise: 299,"));
    let out = run(&p, PASSWORD);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("table `Plan` has no column `prise` (hint: did you mean `price`?)"),
        "{}",
        out.stderr
    );
}

/// The production baseline of the guide for the shipped Unified Health Platform schema.
const BASELINE: &str = r#"- table: Plan
  key: [name]
  rows:
    - { name: Basic Monthly, priceCents: 2999, interval: MONTH, features: [Video visits, Lab results] }
    - { name: Basic Annual, priceCents: 29999, interval: YEAR, features: [Video visits, Lab results] }
    - { name: Professional Monthly, priceCents: 7999, interval: MONTH, features: [Video visits, Lab results, Care team] }
    - { name: Professional Annual, priceCents: 79999, interval: YEAR, features: [Video visits, Lab results, Care team] }
    - { name: Enterprise Monthly, priceCents: 19999, interval: MONTH, features: [Everything] }
    - { name: Enterprise Annual, priceCents: 199999, interval: YEAR, features: [Everything] }
- table: DiagnosticTest
  key: [code]
  rows:
    - { code: CBC, name: Complete Blood Count (CBC), sampleType: blood, priceCents: 1500, turnaroundHours: 24 }
    - { code: LIPID, name: Lipid Profile, sampleType: blood, priceCents: 2500, turnaroundHours: 24 }
    - { code: HBA1C, name: HbA1c, sampleType: blood, priceCents: 2000, turnaroundHours: 48 }
    - { code: TFT, name: Thyroid Function Test, sampleType: blood, priceCents: 3000, turnaroundHours: 48 }
    - { code: LFT, name: Liver Function Test, sampleType: blood, priceCents: 2800, turnaroundHours: 24 }
- table: HealthPackage
  key: [name]
  rows:
    - { name: General Health Checkup, priceCents: 9900, testCodes: [CBC, LIPID] }
    - { name: Cardiac Health Package, priceCents: 19900, testCodes: [LIPID] }
    - { name: Diabetes Management, priceCents: 14900, testCodes: [HBA1C, LIPID] }
    - { name: "Women's Health", priceCents: 17900, testCodes: [CBC, TFT] }
    - { name: Executive Health Checkup, priceCents: 49900, testCodes: [CBC, LIPID, HBA1C, TFT, LFT] }
- table: User
  key: [email]
  generated: { updatedAt: now }
  secrets:
    passwordHash: { env: ADMIN_DEFAULT_PASSWORD, hash: argon2id }
  rows:
    - { email: admin@thetheunifiedhealth.com, role: ADMIN, firstName: System, lastName: Administrator }
"#;

#[test]
fn the_guide_baseline_seeds_the_shipped_schema_on_both_dialects() {
    for target in ["sqlite", "postgres"] {
        let p = if target == "sqlite" {
            Project::new(Target::sqlite)
        } else {
            Project::new(|_| Target::postgres("seed_baseline"))
        };
        copy_dir(
            &crate::support::repo().join("migrations"),
            &p.path().join("migrations"),
        );
        p.playbook(
            "deploy-it",
            "name: deploy-it\nsteps:\n  - id: migrate\n    migrate: { action: apply }\n  - id: seed\n    seed: { set: production }\n  - id: health\n    health: { checks: [migration_status, orphaned_rows, row_counts] }\n",
        );
        write_seed(&p, BASELINE);
        let dir = p.path().display().to_string();
        let t = p.target.arg();
        let deploy = || {
            Runbook::new(&["-C", &dir, "run", "deploy-it", "--target", &t])
                .env("ADMIN_DEFAULT_PASSWORD", PASSWORD)
                .run()
        };
        let first = deploy();
        assert_eq!(first.code, 0, "{target}: {}", first.combined());
        assert_eq!(counts(&seed_outputs(&p)), (17, 0, 0), "{target}");
        let second = deploy();
        assert_eq!(second.code, 0, "{target}: {}", second.combined());
        assert_eq!(counts(&seed_outputs(&p)), (0, 0, 17), "{target}");
        for (table, n) in [
            ("Plan", 6),
            ("HealthPackage", 5),
            ("DiagnosticTest", 5),
            ("User", 1),
        ] {
            assert_eq!(
                p.target
                    .query(&format!(r#"SELECT count(*) FROM "{table}""#)),
                [n.to_string()],
                "{target} {table}"
            );
        }
        let hash = p.target.query(r#"SELECT "passwordHash" FROM "User""#);
        assert!(
            runbook::db::seed::verify_secret(PASSWORD, &hash[0]),
            "{target}"
        );
        assert!(
            second.stderr.contains("pass  Migration Status: last migration: 20251218000000_appointment_reason (2 applied)"),
            "{target}: {}",
            second.stderr
        );
        assert_secret_nowhere(&p, &[&first, &second]);
    }
}
