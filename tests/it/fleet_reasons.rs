//! A fleet says why a target failed: `runbook status FLEET` lists each target with its run,
//! exit code and reason (also for a target whose child never started a run), and a fleet that
//! cannot start is not left `running` with every target pending.

use crate::stable;
use crate::support::{Project, Target, sqlite};
use std::net::TcpListener;

const PLAYBOOK: &str = "name: p\nsteps:\n  - id: q\n    sql: { query: SELECT 1 }\n";

fn refused_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    format!("postgres://app@127.0.0.1:{port}/app")
}

fn fleet_project(targets: &str) -> Project {
    let p = Project::new(Target::sqlite);
    std::fs::write(
        p.path().join("runbook.yaml"),
        format!("environments:\n  tenants:\n    targets:\n{targets}"),
    )
    .unwrap();
    p.playbook("p", PLAYBOOK);
    p
}

fn fleet_id(stderr: &str) -> String {
    stderr
        .split("fleet ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .expect("the fleet id is printed")
        .to_owned()
}

#[test]
fn status_of_a_fleet_names_each_targets_run_exit_code_and_reason() {
    let url = refused_url();
    let p = fleet_project(&format!(
        "      - {{ name: good, sqlite: good.db }}\n      - {{ name: down, url: \"{url}\" }}\n"
    ));
    let out = p.cmd(&["run", "p", "--env", "tenants", "--targets", "all"]);
    assert_eq!(out.code, 1, "{}", out.combined());
    let fleet = fleet_id(&out.stderr);

    let status = p.cmd(&["status", &fleet]);
    assert_eq!(status.code, 0, "{}", status.combined());
    assert!(
        status.stdout.contains("the server refused the connection"),
        "{}",
        status.combined()
    );
    stable!({ insta::assert_snapshot!(status.combined()) });

    let json = p.cmd(&["status", &fleet, "--format", "json"]);
    let v = crate::json_outputs::valid(runbook::views::Doc::Fleet, &json.stdout);
    assert_eq!(v["fleet"]["fleet_id"], fleet.as_str(), "{v}");
    let targets = v["targets"].as_array().expect("targets");
    let down = targets.iter().find(|t| t["target"] == "down").unwrap();
    assert_eq!(down["status"], "failed", "{v}");
    assert_eq!(down["exit_code"], 8, "{v}");
    assert!(down["run_id"].is_null(), "{v}");
    assert!(
        down["reason"]
            .as_str()
            .is_some_and(|r| r.contains("refused the connection")),
        "{v}"
    );
    let good = targets.iter().find(|t| t["target"] == "good").unwrap();
    assert_eq!(good["status"], "succeeded", "{v}");
    assert!(good["run_id"].is_string(), "{v}");
    assert_eq!(v["fleet"]["status"], "failed", "{v}");
}

/// A target whose run started and failed gives its run's error as the reason.
#[test]
fn a_target_whose_run_failed_gives_the_runs_error() {
    let p = fleet_project("      - { name: broken, sqlite: broken.db }\n");
    p.playbook(
        "p",
        "name: p\nsteps:\n  - id: q\n    sql: { query: SELECT * FROM missing_table }\n",
    );
    let out = p.cmd(&["run", "p", "--env", "tenants", "--targets", "all"]);
    assert_eq!(out.code, 1, "{}", out.combined());
    let status = p.cmd(&["status", &fleet_id(&out.stderr), "--format", "json"]);
    let v = crate::json_outputs::valid(runbook::views::Doc::Fleet, &status.stdout);
    let t = &v["targets"][0];
    assert_eq!(t["exit_code"], 1, "{v}");
    assert!(t["run_id"].is_string(), "{v}");
    assert!(
        t["reason"]
            .as_str()
            .is_some_and(|r| r.contains("missing_table")),
        "{v}"
    );
}

#[test]
fn a_fleet_that_cannot_start_is_not_left_running() {
    let p = fleet_project(
        "      - { name: good, sqlite: good.db }\n      - { name: unset, url_env: RUNBOOK_TEST_NEVER_SET }\n",
    );
    let out = p.cmd(&["run", "p", "--env", "tenants", "--targets", "all"]);
    assert_eq!(out.code, 2, "{}", out.combined());
    assert!(
        out.stderr.contains("RUNBOOK_TEST_NEVER_SET"),
        "{}",
        out.combined()
    );
    let state = p.path().join(".runbook/state.db");
    let running = sqlite::query(
        &state,
        "SELECT count(*) FROM runbook_fleets WHERE status = 'running'",
    );
    assert_eq!(running, ["0"], "{}", out.combined());
    let pending = sqlite::query(
        &state,
        "SELECT count(*) FROM runbook_fleet_targets WHERE status = 'pending'",
    );
    assert_eq!(pending, ["0"]);
    assert!(!p.path().join("good.db").exists(), "no target ran");
}
