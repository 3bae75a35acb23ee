//! The JSON documents runbook prints: one name per concept, a `schema_version`, and real
//! outputs valid against the schemas committed under `schemas/`.

use crate::support::{Project, Target, repo};
use runbook::views::Doc;

#[test]
fn committed_output_schemas_are_current() {
    for doc in Doc::ALL {
        let path = repo().join("schemas").join(doc.file_name());
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == doc.schema_text(),
            "{} is stale; regenerate it with `cargo run -- schema --output {} > schemas/{}`",
            path.display(),
            doc.name(),
            doc.file_name()
        );
        assert!(jsonschema::draft202012::new(&doc.schema()).is_ok());
    }
}

/// `doc` parsed from `text` and checked against the committed schema of `kind`.
pub(crate) fn valid(kind: Doc, text: &str) -> serde_json::Value {
    let doc: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let path = repo().join("schemas").join(kind.file_name());
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{}:\n{}\n{text}",
        kind.name(),
        errors.join("\n")
    );
    assert_eq!(doc["schema_version"], 1, "{text}");
    doc
}

fn is_time(v: &serde_json::Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.' && s.as_bytes()[10] == b'T'
}

#[test]
fn runs_status_and_plan_json_match_their_schemas() {
    let p = Project::new(Target::sqlite);
    p.playbook(
        "two",
        "name: two\nparams:\n  n: { type: integer, default: 1 }\nsteps:\n  - id: make\n    sql: { query: \"CREATE TABLE t (a INTEGER)\" }\n    rollback:\n      - sql: { query: \"DROP TABLE t\" }\n  - id: say\n    log: { message: \"n is {{ params.n }}\" }\n",
    );
    let out = p.run("two", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());

    let runs = p.cmd(&["runs", "--format", "json"]);
    let runs = valid(Doc::Runs, &runs.stdout);
    let run = &runs["runs"][0];
    let id = run["run_id"].as_str().unwrap().to_owned();
    assert_eq!(run["environment"], "dev");
    assert!(run.get("id").is_none() && run.get("env").is_none(), "{run}");
    assert!(
        is_time(&run["started_at"]) && is_time(&run["finished_at"]),
        "{run}"
    );

    let status = p.cmd(&["status", &id, "--format", "json"]);
    let status = valid(Doc::Status, &status.stdout);
    assert_eq!(status["run"], *run, "the same run, the same shape");
    assert!(
        status["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| is_time(&s["started_at"]))
    );
    assert!(
        status["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| is_time(&e["at"]))
    );

    let target = p.target.arg();
    let offline = p.cmd(&[
        "plan",
        "two",
        "--env",
        "dev",
        "--offline",
        "--format",
        "json",
    ]);
    assert_eq!(offline.code, 0, "{}", offline.combined());
    let connected = p.cmd(&[
        "plan", "two", "--env", "dev", "--target", &target, "--format", "json",
    ]);
    assert_eq!(connected.code, 0, "{}", connected.combined());
    let (off, on) = (
        valid(Doc::Plan, &offline.stdout),
        valid(Doc::Plan, &connected.stdout),
    );
    assert_eq!(off["environment"], "dev");
    assert!(off["live"].is_null() && on["live"].is_object(), "{on}");
    // One key order offline and connected (the connected plan adds its target's identity).
    let keys = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("  \""))
            .filter_map(|l| l.split('"').next())
            .filter(|k| *k != "target_identity")
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(keys(&offline.stdout), keys(&connected.stdout));
    assert_eq!(keys(&offline.stdout)[0], "schema_version");

    // The audit chains: the same names and time format as `runs`.
    let audit = p.cmd(&["audit", "list", "--format", "json"]);
    let audit = valid(Doc::AuditList, &audit.stdout);
    let chain = &audit["runs"][0];
    assert_eq!(chain["run_id"], run["run_id"]);
    assert_eq!(chain["environment"], run["environment"]);
    assert_eq!(chain["operator"], run["operator"]);
    assert_eq!(chain["status"], "succeeded");
    assert_eq!(chain["verified"], true);
    assert!(is_time(&chain["started_at"]), "{chain}");

    let verify = p.cmd(&["audit", "verify", "--all", "--format", "json"]);
    assert_eq!(verify.code, 0, "{}", verify.combined());
    let verify = valid(Doc::AuditVerify, &verify.stdout);
    assert_eq!(verify["runs"][0]["run_id"], run["run_id"]);
    assert_eq!(verify["runs"][0]["verified"], true);

    let list = p.cmd(&["list", "--format", "json"]);
    let list = valid(Doc::List, &list.stdout);
    assert_eq!(list["playbooks"][0]["name"], "two");
    assert_eq!(list["playbooks"][0]["steps"], 2);

    // The validation report, valid and not.
    let ok = p.cmd(&["validate", "--format", "json"]);
    assert_eq!(valid(Doc::Validation, &ok.stdout)["valid"], true);
    p.playbook(
        "bad",
        "name: bad\nsteps:\n  - id: one\n    shel: { argv: [true] }\n",
    );
    let bad = p.cmd(&["validate", "--format", "json"]);
    let bad = valid(Doc::Validation, &bad.stdout);
    assert_eq!(bad["valid"], false);
    assert_eq!(bad["errors"], 1);
    let list = p.cmd(&["list", "--format", "json"]);
    assert_eq!(list.code, 2, "{}", list.combined());
    let list = valid(Doc::List, &list.stdout);
    assert_eq!(list["playbooks"][0]["valid"], false, "{list}");
}
