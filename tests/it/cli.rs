//! CLI behaviour checked end to end through the binary, with snapshots of what users see.

use crate::stable;
use crate::support::{Runbook, copy_dir, repo};

#[test]
fn validate_accepts_every_shipped_playbook() {
    let out = Runbook::new(&["validate"]).run();
    assert_eq!(out.code, 0, "{}", out.combined());
    insta::assert_snapshot!(out.combined());
}

#[test]
fn plan_renders_every_shipped_playbook_offline() {
    let names: Vec<String> = std::fs::read_dir(repo().join("playbooks"))
        .expect("playbooks")
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .collect();
    assert!(names.len() >= 8);
    for name in names {
        // `reset` runs on development databases only.
        let env = match name.as_str() {
            "reset" => "dev",
            // The restore test replaces staging's data with production's newest backup.
            "restore-test" => "staging",
            _ => "production",
        };
        let mut args = vec!["plan", name.as_str(), "--env", env, "--offline"];
        if name == "restore" {
            args.extend(["--var", "from=/backups/prod/pre.dump"]);
        }
        if name == "resolve" {
            args.extend([
                "--var",
                "version=20240102000000",
                "--var",
                "resolution=rolled_back",
            ]);
        }
        let out = Runbook::new(&args).run();
        assert_eq!(out.code, 0, "{name}: {}", out.combined());
        stable!({ insta::assert_snapshot!(format!("plan-{name}"), out.combined()) });
    }
}

#[test]
fn plan_json_is_machine_readable() {
    let out = Runbook::new(&[
        "plan",
        "deploy",
        "--env",
        "staging",
        "--offline",
        "--format",
        "json",
    ])
    .run();
    assert_eq!(out.code, 0, "{}", out.combined());
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).expect("plan is JSON");
    assert_eq!(plan["playbook"], "deploy");
    assert_eq!(plan["environment"], "staging");
    assert_eq!(
        plan["gates"],
        serde_json::json!(["staging_first", "approve"])
    );
    let ids: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "preflight",
            "pending",
            "lint",
            "staging_first",
            "approve",
            "notify_start",
            "backup",
            "migrate",
            "seed",
            "verify",
            "app_health",
            "analyze",
            "notify_done"
        ]
    );
    assert_eq!(
        plan["steps"][6]["args"]["dir"],
        "/var/backups/runbook/staging"
    );
    assert_eq!(plan["steps"][6]["rollback"][0]["action"], "restore");
    assert_eq!(
        plan["steps"][6]["rollback"][0]["deferred"],
        serde_json::json!(["from"])
    );
    stable!({ insta::assert_snapshot!(out.stdout) });
}

#[test]
fn plan_masks_secrets_and_expands_includes() {
    let out = Runbook::new(&[
        "-C",
        "tests/fixtures/cli",
        "plan",
        "release",
        "--env",
        "dev",
        "--var",
        "label=v2",
        "--var",
        "dry=true",
    ])
    .env("CLI_TEST_TOKEN", "tok-SECRET-123")
    .run();
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(!out.stdout.contains("tok-SECRET-123") && !out.stderr.contains("tok-SECRET-123"));
    assert!(out.stdout.contains("--token=***"));
    assert!(
        out.stdout.contains("tell.send"),
        "included steps are listed under the include"
    );
    stable!({ insta::assert_snapshot!(out.combined()) });
}

#[test]
fn plan_keeps_sql_text_unrendered_and_binds_values() {
    let out = Runbook::new(&[
        "-C",
        "tests/fixtures/cli",
        "plan",
        "release",
        "--env",
        "dev",
        "--var",
        "label=x'; DROP TABLE t; --",
        "--format",
        "json",
    ])
    .run();
    assert_eq!(out.code, 0, "{}", out.combined());
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let sizes = &plan["steps"][3];
    assert_eq!(
        sizes["args"]["query"],
        "SELECT count(*) FROM t WHERE label = $1"
    );
    assert_eq!(sizes["args"]["params"][0], "x'; DROP TABLE t; --");
}

#[test]
fn plan_touches_no_database_and_starts_no_process() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("tests/fixtures/cli"), dir.path());
    let before = listing(dir.path());
    let out = Runbook::new(&["plan", "release", "--env", "dev", "--var", "label=a"])
        .dir(dir.path())
        .run();
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(before, listing(dir.path()), "plan created or changed files");
    assert!(!dir.path().join("dev.db").exists());
}

#[test]
fn plan_errors_exit_2_with_a_hint() {
    let cases: &[&[&str]] = &[
        &["plan", "deploi", "--env", "dev"],
        &["plan", "deploy", "--env", "prod"],
        &["plan", "deploy", "--env", "dev", "--var", "seed_sett=x"],
        &[
            "plan",
            "deploy",
            "--env",
            "dev",
            "--var",
            "seed_set=staging",
        ],
        &[
            "-C",
            "tests/fixtures/cli",
            "plan",
            "release",
            "--env",
            "dev",
        ],
        &["plan", "deploy", "--env", "dev", "--var", "novalue"],
        &[
            "-C",
            "tests/fixtures/cli",
            "plan",
            "release",
            "--env",
            "dev",
            "--var",
            "label=a",
            "--var",
            "count=many",
        ],
    ];
    let mut all = String::new();
    for args in cases {
        let out = Runbook::new(args).run();
        assert_eq!(out.code, 2, "{args:?}: {}", out.combined());
        assert!(out.stderr.contains("error"), "{args:?}");
        all.push_str(&format!(
            "$ runbook {}\n{}\n",
            args.join(" "),
            out.combined()
        ));
    }
    insta::assert_snapshot!(all);
}

#[test]
fn list_names_and_describes_playbooks() {
    let out = Runbook::new(&["list"]).run();
    assert_eq!(out.code, 0);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn validate_reports_json_and_junit() {
    let bad = "bad.yaml";
    let json = Runbook::new(&[
        "-C",
        "tests/fixtures/cli",
        "validate",
        "--format",
        "json",
        "playbooks/release.yaml",
        bad,
    ])
    .run();
    assert_eq!(json.code, 2);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(report["valid"], false);
    insta::assert_snapshot!("validate-json", json.stdout);
    let junit = Runbook::new(&[
        "-C",
        "tests/fixtures/cli",
        "validate",
        "--format",
        "junit",
        "playbooks/release.yaml",
        bad,
    ])
    .run();
    assert_eq!(junit.code, 2);
    assert!(junit.stdout.starts_with("<?xml"));
    stable!({ insta::assert_snapshot!("validate-junit", junit.stdout) });
}

/// JUnit as CI dashboards read it (Jenkins' schema, GitLab, GitHub test reporters): each
/// failure is its own test case, and every test case names its file and how long it took.
#[test]
fn junit_has_one_failure_per_testcase_with_file_and_time() {
    let junit = Runbook::new(&[
        "-C",
        "tests/fixtures/cli",
        "validate",
        "--format",
        "junit",
        "playbooks/release.yaml",
        "bad.yaml",
    ])
    .run();
    assert_eq!(junit.code, 2, "{}", junit.combined());
    let xml = &junit.stdout;
    let cases: Vec<&str> = xml.split("<testcase ").skip(1).collect();
    assert_eq!(cases.len(), 4, "{xml}");
    let mut failures = 0;
    for case in &cases {
        let case = case.split("</testcase>").next().unwrap();
        let head = case.split('>').next().unwrap();
        assert!(head.contains(" file=\""), "no file: {head}");
        let time = head
            .split(" time=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap_or_else(|| panic!("no time: {head}"));
        assert!(time.parse::<f64>().is_ok_and(|t| t >= 0.0), "{head}");
        let n = case.matches("<failure ").count();
        assert!(n <= 1, "{n} failures in one testcase: {case}");
        failures += n;
    }
    assert_eq!(failures, 2, "{xml}");
    let suite_failures = format!("failures=\"{failures}\"");
    assert!(
        xml.contains(&format!("tests=\"4\" {suite_failures}")),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testsuite name="runbook validate" tests="4""#),
        "{xml}"
    );
    assert!(xml.contains(" time=\""), "{xml}");
}

#[test]
fn colour_follows_no_color_and_the_flag() {
    let bad = "tests/fixtures/cli/bad.yaml";
    let plain = Runbook::new(&["validate", bad]).run();
    assert!(!plain.stderr.contains('\x1b'));
    let coloured = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["--color", "always", "validate", bad])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&coloured.stderr).contains('\x1b'));
    // `auto` never colours a pipe, and NO_COLOR wins over nothing.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"));
    let out = cmd
        .args(["validate", bad])
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains('\x1b'));
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = Runbook::new(&["schema"]).run();
    assert_eq!(out.code, 0);
    let committed = std::fs::read_to_string(repo().join("schemas/playbook.schema.json")).unwrap();
    assert_eq!(out.stdout, committed);
}

#[test]
fn help_and_version_exit_0_and_usage_errors_exit_2() {
    assert_eq!(Runbook::new(&["--help"]).run().code, 0);
    assert_eq!(Runbook::new(&["--version"]).run().code, 0);
    assert_eq!(Runbook::new(&["frobnicate"]).run().code, 2);
    assert_eq!(Runbook::new(&["plan", "deploy"]).run().code, 2);
}

fn listing(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        let meta = std::fs::metadata(&entry).unwrap();
        out.push((entry.display().to_string(), meta.len()));
    }
    out.sort();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// A project with migrations and no playbooks yet is linted alone, not refused.
#[test]
fn validate_lints_the_migrations_of_a_project_without_playbooks() {
    let dir = tempfile::tempdir().unwrap();
    let mig = dir.path().join("migrations/postgres");
    std::fs::create_dir_all(&mig).unwrap();
    std::fs::write(
        mig.join("001_t.sql"),
        "CREATE TABLE t (id BIGINT PRIMARY KEY);\nCREATE INDEX t_i ON t (id);\n",
    )
    .unwrap();
    let validate = |args: &[&str]| {
        let root = dir.path().display().to_string();
        let mut all = vec!["-C", root.as_str(), "validate"];
        all.extend(args);
        Runbook::new(&all).run()
    };
    let ok = validate(&["--migrations"]);
    assert_eq!(ok.code, 0, "{}", ok.combined());
    assert!(ok.stderr.contains("ok: 1 migration valid"), "{}", ok.stderr);
    assert!(
        ok.stderr.contains("migrations/postgres/001_t.sql:2:1"),
        "{}",
        ok.stderr
    );
    // Without --migrations there is nothing to validate.
    let none = validate(&[]);
    assert_eq!(none.code, 2, "{}", none.combined());
    assert!(
        none.stderr.contains("no playbooks found"),
        "{}",
        none.stderr
    );
    std::fs::write(mig.join("002_bad.sql"), "UPDATE t SET id = 1, id = 2;\n").unwrap();
    let bad = validate(&["--migrations"]);
    assert_eq!(bad.code, 2, "{}", bad.combined());
}

/// CI lints migrations without a database: `runbook validate --migrations` gives each finding
/// at its file, line and column, in every format, and fails (exit 2) on an error only.
#[test]
fn validate_lints_the_migrations_for_ci() {
    let dir = tempfile::tempdir().unwrap();
    let mig = dir.path().join("migrations/postgres");
    std::fs::create_dir_all(&mig).unwrap();
    std::fs::create_dir_all(dir.path().join("playbooks")).unwrap();
    std::fs::write(
        dir.path().join("playbooks/m.yaml"),
        "name: m\nsteps:\n  - id: m\n    migrate: { action: apply }\n",
    )
    .unwrap();
    std::fs::write(
        mig.join("001_orders.sql"),
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, total BIGINT NOT NULL);\nCREATE INDEX orders_total ON orders (total);\n",
    )
    .unwrap();
    let validate = |args: &[&str]| {
        let mut all = vec![
            "-C".to_owned(),
            dir.path().display().to_string(),
            "validate".into(),
        ];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        Runbook::new(&refs).run()
    };
    // Warnings only: valid.
    let ok = validate(&["--migrations"]);
    assert_eq!(ok.code, 0, "{}", ok.combined());
    assert!(
        ok.combined()
            .contains("migrations/postgres/001_orders.sql:2:1"),
        "{}",
        ok.combined()
    );
    std::fs::write(
        mig.join("002_bad.sql"),
        "UPDATE orders SET total = 1, total = 2;\n",
    )
    .unwrap();
    // Without --migrations the files are not read.
    assert_eq!(validate(&[]).code, 0);
    let human = validate(&["--migrations"]);
    assert_eq!(human.code, 2, "{}", human.combined());
    assert!(
        human
            .combined()
            .contains("migrations/postgres/002_bad.sql:1:")
            && human
                .combined()
                .contains("ban-duplicate-column-assignments"),
        "{}",
        human.combined()
    );
    let github = validate(&["--migrations", "--format", "github"]);
    assert_eq!(github.code, 2);
    let line = github
        .stdout
        .lines()
        .find(|l| l.contains("002_bad.sql"))
        .unwrap_or_else(|| panic!("{}", github.stdout));
    assert!(
        line.starts_with("::error file=migrations/postgres/002_bad.sql,line=1,col=")
            && line.contains(",title=migration-lint::ban-duplicate-column-assignments: "),
        "{line}"
    );
    assert!(
        github
            .stdout
            .lines()
            .any(|l| l
                .starts_with("::warning file=migrations/postgres/001_orders.sql,line=2,col=1,")),
        "{}",
        github.stdout
    );
    let junit = validate(&["--migrations", "--format", "junit"]);
    assert!(
        junit.stdout.contains(
            r#"<testcase classname="runbook.migration" name="migrations/postgres/002_bad.sql:"#
        ) && junit
            .stdout
            .contains(r#"file="migrations/postgres/002_bad.sql" line="#),
        "{}",
        junit.stdout
    );
    let json = validate(&["--migrations", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let bad = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == "migrations/postgres/002_bad.sql")
        .unwrap();
    assert_eq!(bad["kind"], "migration");
    assert_eq!(bad["valid"], false);
    assert_eq!(bad["diagnostics"][0]["line"], 1);
}
