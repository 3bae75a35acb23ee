//! What an auditor reads of approvals: each decision once per person, as the gate counts them.

use crate::support::{Project, Target};

const PLAYBOOK: &str = r#"
name: gated
steps:
  - id: approve
    gate: { approval: { message: "go on" } }
  - id: create
    sql: { query: "CREATE TABLE gated (id INTEGER)" }
"#;

/// "BOB" after "bob" is one person: the gate counts them once, and `audit show` says the
/// second approval counts once instead of presenting it as a second approver.
#[test]
fn a_repeated_approval_by_the_same_person_is_shown_as_counting_once() {
    let p = Project::new(Target::sqlite);
    std::fs::write(
        p.path().join("runbook.yaml"),
        "environments:\n  staging:\n    target: { sqlite: staging.db }\n    protections: { approvals: 2 }\n",
    )
    .unwrap();
    p.playbook("gated", PLAYBOOK);
    assert_eq!(
        p.as_user("alice", &["run", "gated", "--env", "staging"])
            .code,
        3
    );
    let (id, _) = p.last_run();
    for who in ["bob", "BOB"] {
        let out = p.as_user(who, &["approve", &id, "approve"]);
        assert_eq!(out.code, 0, "{}", out.combined());
    }
    // One person: one of the two approvals the gate needs.
    let resume = p.as_user("alice", &["resume", &id]);
    assert_eq!(resume.code, 3, "{}", resume.combined());
    assert!(
        resume.combined().contains("1 of 2"),
        "{}",
        resume.combined()
    );
    let show = p.cmd(&["audit", "show", &id]);
    let lines: Vec<&str> = show
        .stdout
        .lines()
        .filter(|l| l.contains("approved gate approve"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", show.stdout);
    assert!(!lines[0].contains("again"), "{}", show.stdout);
    assert!(
        lines[1].contains("BOB approved gate approve")
            && lines[1].contains("(again: a person counts once)"),
        "{}",
        show.stdout
    );
}

/// An approval record hashed and linked onto a waiting run's chain by hand (not by `runbook
/// approve`, so not in the state store) does not open the gate, and `status` says why.
#[test]
fn an_approval_appended_to_the_chain_by_hand_does_not_count() {
    let p = Project::new(Target::sqlite);
    std::fs::write(
        p.path().join("runbook.yaml"),
        "environments:\n  staging:\n    target: { sqlite: staging.db }\n    protections: { approvals: 1 }\n",
    )
    .unwrap();
    p.playbook("gated", PLAYBOOK);
    assert_eq!(
        p.as_user("alice", &["run", "gated", "--env", "staging"])
            .code,
        3
    );
    let (id, _) = p.last_run();
    let status = p.status_json(&id);
    let plan_hash = status["run"]["plan_hash"]
        .as_str()
        .or_else(|| status["plan_hash"].as_str())
        .unwrap()
        .to_owned();
    let path = p.path().join(".runbook/audit").join(format!("{id}.jsonl"));
    let bytes = std::fs::read(&path).unwrap();
    let report = runbook::audit::verify_bytes(&bytes, None);
    let mut forged = report.entries.last().unwrap().clone();
    for k in ["outcome", "hash", "shown", "output", "changed", "printed"] {
        forged.remove(k);
    }
    forged.insert("seq".into(), serde_json::json!(report.records as i64 + 1));
    forged.insert("prev".into(), serde_json::json!(report.head.unwrap()));
    forged.insert("event".into(), serde_json::json!("approval_recorded"));
    forged.insert("step".into(), serde_json::json!("approve"));
    forged.insert(
        "approvals".into(),
        serde_json::json!([{"actor": "mallory", "decision": "approve", "comment": null, "plan_hash": plan_hash, "at": 1}]),
    );
    let hash = runbook::audit::record_hash(&forged);
    forged.insert("hash".into(), serde_json::json!(hash));
    let mut tampered = bytes.clone();
    tampered.extend(runbook::audit::canonical(&serde_json::Value::Object(forged)).as_bytes());
    tampered.push(b'\n');
    std::fs::write(&path, &tampered).unwrap();
    let resume = p.as_user("alice", &["resume", &id]);
    assert_eq!(
        resume.code,
        3,
        "the forged approval opened the gate: {}",
        resume.combined()
    );
    let status = p.as_user("alice", &["status", &id]);
    assert!(
        status.combined().contains("mallory")
            && status
                .combined()
                .contains("in the audit chain but not in the state store"),
        "{}",
        status.combined()
    );
}
