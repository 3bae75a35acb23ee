//! Small pieces with many cases: durations, URL redaction, destructive SQL, YAML 1.2 scalars.

use crate::support::Runbook;
use runbook::dburl::redact as redact_url;
use runbook::playbook::{parse_duration, sql_is_destructive};
use std::time::Duration;

#[test]
fn durations_parse_and_reject() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
    for bad in ["", "5", "m", "5 m", "5x", "-1s", "99999999999999999999d"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn urls_are_redacted() {
    assert_eq!(
        redact_url("postgres://app:s3cret@db:5432/prod"),
        "postgres://app:***@db:5432/prod"
    );
    assert_eq!(
        redact_url("postgres://app@db/prod"),
        "postgres://app@db/prod"
    );
    assert_eq!(
        redact_url("postgres://db/prod?user=app&password=s3cret&sslmode=require"),
        "postgres://db/prod?user=app&password=***&sslmode=require"
    );
    assert_eq!(redact_url("host=db password=s3cret"), "***");
    assert_eq!(
        redact_url("sqlite:.runbook/dev.db"),
        "sqlite:.runbook/dev.db"
    );
    assert_eq!(
        redact_url("postgres://a:p@ss@db/x"),
        "postgres://a:***@db/x"
    );
}

#[test]
fn destructive_sql_is_recognised() {
    assert!(sql_is_destructive("DROP TABLE users"));
    assert!(sql_is_destructive("truncate table import_rows"));
    assert!(sql_is_destructive("ALTER TABLE t DROP COLUMN c"));
    assert!(!sql_is_destructive("SELECT 'drop table' AS note"));
    assert!(!sql_is_destructive("SELECT 1 -- drop table later"));
    assert!(!sql_is_destructive("SELECT dropped_at FROM t"));
}

#[test]
fn yaml_1_1_booleans_stay_strings() {
    let out = Runbook::new(&[
        "-C",
        "tests/fixtures/cli",
        "plan",
        "strings",
        "--env",
        "dev",
        "--format",
        "json",
    ])
    .run();
    assert_eq!(out.code, 0, "{}", out.combined());
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["steps"][0]["args"]["message"], "no");
    assert_eq!(
        plan["steps"][1]["args"]["argv"],
        serde_json::json!(["echo", "yes", "on", "off", "y", "n"])
    );
}

#[test]
fn an_invalid_config_is_reported_and_blocks_plans() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    std::fs::write(
        dir.path().join("playbooks/x.yaml"),
        "name: x\nsteps:\n  - id: a\n    log: { message: hi }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("runbook.yaml"),
        "environments:\n  prod:\n    target: { url_env: \"postgres://app:hunter2@db/prod\" }\n  dev:\n    target: {}\n    protections: { aprovals: 2 }\n",
    )
    .unwrap();
    let out = Runbook::new(&["validate"]).dir(dir.path()).run();
    assert_eq!(out.code, 2, "{}", out.combined());
    assert!(
        out.stderr.contains("unknown key `aprovals`"),
        "{}",
        out.stderr
    );
    let plan = Runbook::new(&["plan", "x", "--env", "dev"])
        .dir(dir.path())
        .run();
    assert_eq!(plan.code, 2);
    assert!(plan.stderr.contains("runbook.yaml is invalid"));
    // Fix the unknown key: the literal URL is the remaining problem, named without the password.
    std::fs::write(
        dir.path().join("runbook.yaml"),
        "environments:\n  prod:\n    target: { url_env: \"postgres://app:hunter2@db/prod\" }\n",
    )
    .unwrap();
    let out = Runbook::new(&["validate"]).dir(dir.path()).run();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("looks like a URL"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("hunter2"),
        "the password was printed:\n{}",
        out.stderr
    );
    insta::assert_snapshot!(out.combined());
}
