//! The audit log: tamper detection over a real run's log, torn writes, signatures, the central
//! sink, the auditor's commands, and the HTML report in a real browser.

use crate::support::{Output, Runbook};
use crate::support::{Project, Target};
use runbook::audit::{self, Head, Problem};
use std::path::{Path, PathBuf};

const PLAYBOOK: &str = r#"
name: audited
params:
  fail: { type: boolean, default: false }
steps:
  - id: setup
    sql: { query: "CREATE TABLE IF NOT EXISTS t (v TEXT)" }
  - id: insert
    sql: { query: "INSERT INTO t VALUES ('x')" }
    rollback:
      - sql: { query: "DELETE FROM t" }
  - id: approve
    gate: { approval: { message: "go on" } }
  - id: echo
    shell: { argv: [echo, hello auditors] }
  - id: boom
    when: params.fail
    shell: { argv: [sh, -c, "echo broken >&2; exit 3"] }
finally:
  - id: bye
    log: { message: done }
"#;

const CONFIG: &str = "environments:\n  dev:\n    target: { sqlite: dev.db }\n    allow_target_override: true\n    protections: { self_approval: true }\n";

fn project() -> Project {
    let p = Project::new(Target::sqlite);
    std::fs::write(p.path().join("runbook.yaml"), CONFIG).unwrap();
    p.playbook("audited", PLAYBOOK);
    p
}

/// A project whose `staging` environment asks for one approval, with the audited playbook.
fn staging() -> Project {
    let p = Project::new(Target::sqlite);
    std::fs::write(
        p.path().join("runbook.yaml"),
        "environments:\n  staging:\n    target: { sqlite: staging.db }\n    protections: { approvals: 1 }\n",
    )
    .unwrap();
    p.playbook("audited", PLAYBOOK);
    p
}

fn chain(p: &Project, id: &str) -> PathBuf {
    p.path().join(".runbook/audit").join(format!("{id}.jsonl"))
}

fn verify_cli(p: &Project, args: &[&str]) -> Output {
    let mut all = vec!["audit", "verify"];
    all.extend(args);
    p.cmd(&all)
}

/// A real run's log (approval gate, a failure, rollback, finally) and its head.
fn real_log() -> (Vec<u8>, Head) {
    let p = project();
    let out = p.run("audited", &["--approve", "approve", "--var", "fail=true"]);
    assert_eq!(out.code, 1, "{}", out.combined());
    let (id, _) = p.last_run();
    let bytes = std::fs::read(chain(&p, &id)).unwrap();
    let report = audit::verify_bytes(&bytes, None);
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert!(
        report.records >= 20,
        "a real run has many records: {}",
        report.records
    );
    (
        bytes,
        Head {
            seq: report.records as i64,
            hash: report.head.unwrap(),
        },
    )
}

fn detected(bytes: &[u8], head: &Head) -> bool {
    audit::verify_bytes(bytes, Some(head))
        .problem
        .is_some_and(|p| p.is_tampering())
}

fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn an_untouched_log_verifies() {
    let (bytes, head) = real_log();
    let r = audit::verify_bytes(&bytes, Some(&head));
    assert_eq!(r.problem, None);
}

#[test]
fn every_single_byte_change_is_detected() {
    let (bytes, head) = real_log();
    // Every position, with a flipped low bit; and every 31st position with three other edits
    // (a digit, a quote, a space), which covers changes that keep the JSON well-formed.
    let mut checked = 0;
    for i in 0..bytes.len() {
        let mut variants = vec![bytes[i] ^ 0x01];
        if i % 31 == 0 {
            variants.extend([b'7', b'"', b' ']);
        }
        for v in variants {
            if v == bytes[i] {
                continue;
            }
            let mut changed = bytes.clone();
            changed[i] = v;
            assert!(
                detected(&changed, &head),
                "changing byte {i} ({:?} -> {:?}) went unnoticed",
                bytes[i] as char,
                v as char
            );
            checked += 1;
        }
    }
    assert!(checked > bytes.len());
}

#[test]
fn deleted_inserted_swapped_and_truncated_records_are_detected_and_named() {
    let (bytes, head) = real_log();
    let ls = lines(&bytes);
    for i in 0..ls.len() {
        let mut without = ls.clone();
        without.remove(i);
        let joined = without.concat();
        let r = audit::verify_bytes(&joined, Some(&head));
        let p = r.problem.expect("a deleted record is detected");
        assert!(p.is_tampering(), "deleting line {i}: {p:?}");
        assert_eq!(p.seq(), i as i64 + 1, "the first bad record is named");
        // A record copied in again (replayed) is detected too.
        let mut dup = ls.clone();
        dup.insert(i, ls[i].clone());
        assert!(detected(&dup.concat(), &head), "repeating line {i}");
    }
    for i in 0..ls.len() - 1 {
        for j in i + 1..ls.len() {
            let mut swapped = ls.clone();
            swapped.swap(i, j);
            let r = audit::verify_bytes(&swapped.concat(), Some(&head));
            let p = r.problem.expect("a reordering is detected");
            assert!(p.is_tampering(), "swapping {i} and {j}");
            assert_eq!(p.seq(), i as i64 + 1);
        }
    }
    // Truncation at every line boundary and inside lines.
    let boundaries: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    for cut in (0..bytes.len())
        .step_by(13)
        .chain(boundaries.into_iter().filter(|&c| c < bytes.len()))
    {
        assert!(
            detected(&bytes[..cut], &head),
            "truncating at byte {cut} went unnoticed"
        );
    }
}

#[test]
fn a_torn_last_line_is_a_crash_not_tampering_and_is_repaired() {
    let p = project();
    // A run waiting at its gate: its chain is still open for appends.
    assert_eq!(p.run("audited", &[]).code, 3);
    let (id, _) = p.last_run();
    let path = chain(&p, &id);
    let good = std::fs::read(&path).unwrap();
    // A record beyond the recorded head, cut short: what a crash mid-write leaves.
    let mut torn = good.clone();
    torn.extend_from_slice(br#"{"event":"step_started","hash":"ab"#);
    std::fs::write(&path, &torn).unwrap();
    let out = verify_cli(&p, &[&id]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stdout.contains("torn write") && out.stdout.contains("not tampering"),
        "{}",
        out.stdout
    );
    // The next writer cuts the torn tail and says so in the chain.
    let mut log = audit::AuditLog::open(&p.path().join(".runbook/audit"), &id).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(log.append(serde_json::Map::new())).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("torn_tail_repaired"));
    assert!(audit::verify_bytes(text.as_bytes(), None).problem.is_none());
}

#[test]
fn verify_names_the_first_bad_record_and_exits_6() {
    let p = project();
    assert_eq!(p.run("audited", &["--approve", "approve"]).code, 0);
    assert_eq!(p.run("audited", &["--approve", "approve"]).code, 0);
    let ok = verify_cli(&p, &["--all"]);
    assert_eq!(ok.code, 0, "{}", ok.combined());
    let (id, _) = p.last_run();
    let path = chain(&p, &id);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut ls: Vec<&str> = text.lines().collect();
    ls.remove(3);
    std::fs::write(&path, ls.join("\n") + "\n").unwrap();
    let out = verify_cli(&p, &["--all"]);
    assert_eq!(out.code, 6, "{}", out.combined());
    assert!(
        out.stdout.contains(&format!("{id}  FAILED at record 4")),
        "{}",
        out.stdout
    );
    // Deleting the whole file of a run the state store knows is detected too.
    std::fs::remove_file(&path).unwrap();
    let out = verify_cli(&p, &[&id, "--format", "json"]);
    assert_eq!(out.code, 6);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["runs"][0]["verified"], false);
    assert_eq!(v["runs"][0]["first_bad_seq"], 1);
}

#[test]
fn signed_runs_verify_with_the_public_key_only() {
    let p = project();
    let keys = tempfile::tempdir().unwrap();
    let out = p.cmd(&[
        "audit",
        "keygen",
        "--out",
        &keys.path().display().to_string(),
    ]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let secret = std::fs::read_to_string(keys.path().join("runbook-audit.key")).unwrap();
    let public = keys.path().join("runbook-audit.pub").display().to_string();
    std::fs::write(
        p.path().join("runbook.yaml"),
        format!("{CONFIG}audit:\n  signing_key_env: AUDIT_TEST_KEY\n"),
    )
    .unwrap();
    let target = p.target.arg();
    let run = Runbook::new(&[
        "-C",
        &p.path().display().to_string(),
        "run",
        "audited",
        "--target",
        &target,
        "--approve",
        "approve",
    ])
    .env("AUDIT_TEST_KEY", secret.trim())
    .run();
    assert_eq!(run.code, 0, "{}", run.combined());
    assert!(!run.stderr.contains(secret.trim()));
    let (id, _) = p.last_run();
    assert_eq!(verify_cli(&p, &[&id, "--key", &public]).code, 0);
    // Another key does not verify it.
    let other = tempfile::tempdir().unwrap();
    p.cmd(&[
        "audit",
        "keygen",
        "--out",
        &other.path().display().to_string(),
    ]);
    let wrong = verify_cli(
        &p,
        &[
            &id,
            "--key",
            &other.path().join("runbook-audit.pub").display().to_string(),
        ],
    );
    assert_eq!(wrong.code, 6, "{}", wrong.combined());
    assert!(wrong.stdout.contains("signature INVALID"));
    // A record appended after signing, even a well-formed one, is detected: the finished run's
    // chain is sealed by its final record. (runbook itself refuses to write one: it is forged
    // here, hashed and linked as a record is.)
    let chain = p.path().join(format!(".runbook/audit/{id}.jsonl"));
    let text = std::fs::read_to_string(&chain).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let mut forged = serde_json::Map::new();
    forged.insert("event".into(), "approval".into());
    forged.insert("seq".into(), (last["seq"].as_i64().unwrap() + 1).into());
    forged.insert("prev".into(), last["hash"].clone());
    forged.insert("run_id".into(), id.clone().into());
    forged.insert("ts".into(), last["ts"].clone());
    let hash = audit::record_hash(&forged);
    forged.insert("hash".into(), hash.into());
    let line = audit::canonical(&serde_json::Value::Object(forged));
    std::fs::write(&chain, format!("{text}{line}\n")).unwrap();
    let after = verify_cli(&p, &[&id, "--key", &public]);
    assert_eq!(after.code, 6, "{}", after.combined());
    assert!(
        after.stdout.contains("a finished run's chain is sealed"),
        "{}",
        after.stdout
    );
}

// The PostgreSQL sink (set up by its owner, written by a role that cannot unprotect it) is
// tested in `audit_trust.rs`.

#[test]
fn show_list_and_export_give_the_auditor_the_story() {
    let p = project();
    assert_eq!(
        p.run("audited", &["--approve", "approve", "--var", "fail=true"])
            .code,
        1
    );
    let (id, _) = p.last_run();
    let show = p.cmd(&["audit", "show", &id]);
    assert_eq!(show.code, 0, "{}", show.combined());
    for needle in [
        "approve",
        "rollback started after step boom failed",
        "insert.rollback-1",
        "`sh` exited with code 3: broken",
        "run finished: failed",
    ] {
        assert!(
            show.stdout.contains(needle),
            "`{needle}` missing from:\n{}",
            show.stdout
        );
    }
    let list = p.cmd(&["audit", "list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(v["runs"][0]["run_id"], id.as_str());
    assert_eq!(v["runs"][0]["verified"], true);
    let csv = p.cmd(&["audit", "export", &id, "--format", "csv"]);
    assert!(csv.stdout.starts_with("run_id,seq,ts,event,step"));
    assert!(csv.stdout.lines().count() > 20);
    let json = p.cmd(&["audit", "export", "--all"]);
    let records: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let failed = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["event"] == "step_failed")
        .unwrap();
    assert_eq!(failed["outcome"]["exit_code"], 3);
    assert_eq!(failed["step"], "boom");
    // No result rows in the audit log: query outputs are counted and hashed, never copied.
    assert!(
        records
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("output").is_none_or(|o| o.get("rows").is_none()))
    );
}

/// The browser the HTML report tests render in (also `audit_changes`).
pub(crate) fn chromium() -> PathBuf {
    for p in [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "Chromium is not installed (apt-get install chromium); .ci/run installs it. The HTML report test needs a real browser."
    );
}

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let p = project();
    assert_eq!(
        p.run("audited", &["--approve", "approve", "--var", "fail=true"])
            .code,
        1
    );
    let (id, _) = p.last_run();
    let html = p.path().join("report.html");
    let out = p.cmd(&[
        "audit",
        "report",
        &id,
        "--output",
        &html.display().to_string(),
    ]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        !text.contains("http://") || text.contains("http://www.w3.org/2000/svg"),
        "no external assets"
    );
    assert!(
        !text.contains("<script src") && !text.contains("<link"),
        "self-contained"
    );
    let browser = chromium();
    let profile = tempfile::tempdir().unwrap();
    let shot = p.path().join("report.png");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let status = std::process::Command::new(&browser)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,1400")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "the screenshot looks blank ({} bytes)",
        png.len()
    );
    // The rendered DOM (after layout, as the browser sees it) shows the run id.
    let dom = std::process::Command::new(&browser)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains(&format!(r#"<code id="run-id">{id}</code>"#)),
        "the rendered page shows the run id"
    );
    assert!(
        dom.contains("<svg id=\"timeline\""),
        "the timeline chart is in the page"
    );
    // A time axis under the bars, durations per step, and the database's state in words.
    assert!(
        dom.contains("<g id=\"time-axis\">"),
        "the chart has a time axis"
    );
    assert!(
        dom.contains("<th>duration</th>"),
        "the steps table has durations"
    );
    assert!(
        dom.contains("these changes were not undone (they have no compensation): `setup`"),
        "the page says what state the database is in: `insert` was compensated, `setup` not"
    );
    std::fs::copy(
        &shot,
        std::env::temp_dir().join("runbook-report-screenshot.png"),
    )
    .unwrap();
}

#[test]
fn problem_descriptions_name_the_record() {
    let p = Problem::Truncated {
        have: 3,
        expected: 7,
    };
    assert!(p.describe().contains("records 4 to 7 were removed"));
    assert_eq!(p.seq(), 4);
}

/// The CSV an auditor opens in a spreadsheet: who approved, what they decided and their
/// comment are columns, and a comment written as a formula stays text.
#[test]
fn the_csv_export_names_approvers_and_neutralises_formulas() {
    let p = staging();
    let out = p.as_user("alice", &["run", "audited", "--env", "staging"]);
    assert_eq!(out.code, 3, "{}", out.combined());
    let (id, _) = p.last_run();
    let formula = "=HYPERLINK(\"https://evil.example\",\"fine\")";
    let out = p.as_user("bob", &["approve", &id, "approve", "--comment", formula]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(p.as_user("alice", &["resume", &id]).code, 0);
    let csv = p.cmd(&["audit", "export", &id, "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv.stdout.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let approval = rows
        .iter()
        .find(|r| &r[col("event")] == "approval_recorded")
        .expect("an approval row");
    assert_eq!(&approval[col("approver")], "bob");
    assert_eq!(&approval[col("decision")], "approve");
    assert_eq!(&approval[col("comment")], format!("'{formula}"));
    let passed = rows
        .iter()
        .find(|r| &r[col("event")] == "gate_decision" && &r[col("status")] == "passed")
        .expect("the gate's decision");
    assert_eq!(&passed[col("approver")], "bob");
    // No cell anywhere starts like a formula.
    for r in &rows {
        for cell in r {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "`{cell}` would be evaluated by a spreadsheet"
            );
        }
    }
}

/// A rollback whose compensation fails leaves the database half-way: the report says so in
/// plain words, names the change that is still there and the compensation that failed.
#[test]
fn a_failed_rollback_page_says_what_state_the_database_is_in() {
    let p = Project::new(Target::sqlite);
    std::fs::write(p.path().join("runbook.yaml"), CONFIG).unwrap();
    p.playbook(
        "halfway",
        r#"
name: halfway
steps:
  - id: setup
    sql: { query: "CREATE TABLE IF NOT EXISTS t (v TEXT)" }
    rollback:
      - sql: { query: "DROP TABLE t" }
  - id: insert
    sql: { query: "INSERT INTO t VALUES ('x')" }
    rollback:
      - sql: { query: "DELETE FROM no_such_table" }
  - id: boom
    shell: { argv: [sh, -c, "exit 3"] }
"#,
    );
    let out = p.run("halfway", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    let (id, status) = p.last_run();
    assert_eq!(status, "rollback_failed");
    let html = p.path().join("report.html");
    let out = p.cmd(&[
        "audit",
        "report",
        &id,
        "--output",
        &html.display().to_string(),
    ]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let text = std::fs::read_to_string(&html).unwrap();
    let state = &text[text
        .find("<h2>State of the database</h2>")
        .expect("the section")..];
    let state = &state[..state.find("<h2>Timeline").unwrap_or(state.len())];
    for needle in [
        "The rollback failed: the database is in neither the state before the run",
        "Steps that changed the database: `setup`",
        "`insert`",
        "Compensations that failed: `insert.rollback-1`",
        "no_such_table",
        "Next: restore the backup",
    ] {
        assert!(state.contains(needle), "`{needle}` missing from:\n{state}");
    }
}

/// A forged approval appended after a finished run's final record, hashed and linked as runbook
/// would: `audit verify` (no key, no state store head needed) calls it tampering, and
/// `audit show` does not present it as a decision.
#[test]
fn records_appended_after_the_final_record_are_tampering() {
    let p = project();
    let out = p.run("audited", &["--approve", "approve"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let (id, _) = p.last_run();
    let path = chain(&p, &id);
    let bytes = std::fs::read(&path).unwrap();
    let report = audit::verify_bytes(&bytes, None);
    assert!(report.problem.is_none(), "{:?}", report.problem);
    let last = report.entries.last().unwrap().clone();
    assert_eq!(last["event"], "run_finished");
    let mut forged = last.clone();
    forged.insert("seq".into(), serde_json::json!(report.records as i64 + 1));
    forged.insert(
        "prev".into(),
        serde_json::json!(report.head.clone().unwrap()),
    );
    forged.insert("event".into(), serde_json::json!("approval_recorded"));
    forged.insert("step".into(), serde_json::json!("approve"));
    forged.remove("outcome");
    forged.insert(
        "approvals".into(),
        serde_json::json!([{"actor": "mallory", "decision": "approve", "comment": null, "plan_hash": "x"}]),
    );
    forged.remove("hash");
    let hash = audit::record_hash(&forged);
    forged.insert("hash".into(), serde_json::json!(hash));
    let mut tampered = bytes.clone();
    tampered.extend(audit::canonical(&serde_json::Value::Object(forged)).as_bytes());
    tampered.push(b'\n');
    std::fs::write(&path, &tampered).unwrap();
    let r = audit::verify_bytes(&tampered, None);
    let problem = r.problem.expect("an appended record is detected");
    assert!(problem.is_tampering(), "{problem:?}");
    assert_eq!(problem.seq(), report.records as i64 + 1);
    let out = verify_cli(&p, &[&id]);
    assert_eq!(out.code, 6, "{}", out.combined());
    assert!(out.combined().contains("sealed"), "{}", out.combined());
    let show = p.cmd(&["audit", "show", &id]);
    assert!(
        !show.stdout.contains("mallory approved"),
        "a forged approval is shown as a decision:\n{}",
        show.stdout
    );
}

/// A chain cut short is not appended to: `approve`, `reject` and `resume` compare it with the
/// head the state store recorded first and refuse (exit 6), so a cut chain never becomes a
/// whole-looking one.
#[test]
fn approve_and_resume_refuse_a_chain_cut_short() {
    let p = staging();
    assert_eq!(
        p.as_user("alice", &["run", "audited", "--env", "staging"])
            .code,
        3
    );
    let (id, _) = p.last_run();
    let path = chain(&p, &id);
    let text = std::fs::read_to_string(&path).unwrap();
    let ls: Vec<&str> = text.lines().collect();
    let cut = ls[..ls.len() - 2].join("\n") + "\n";
    std::fs::write(&path, &cut).unwrap();
    for (user, args) in [
        ("bob", vec!["approve", &id, "approve"]),
        ("bob", vec!["reject", &id, "approve"]),
        ("alice", vec!["resume", &id]),
    ] {
        let out = p.as_user(user, &args);
        assert_eq!(out.code, 6, "{args:?}: {}", out.combined());
        assert!(
            out.combined().contains("were removed"),
            "{args:?}: {}",
            out.combined()
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            cut,
            "{args:?} appended to a cut chain"
        );
    }
    let verify = verify_cli(&p, &[&id]);
    assert_eq!(verify.code, 6, "{}", verify.combined());
}

/// A run that stops at a gate fsyncs its chain through its `run_waiting` record before the
/// store commits it, and that commit notes it: a power cut right after it
/// (`lost:run_waiting:run`) takes nothing from the chain, so the approval that follows has
/// nothing to write back, and a chain cut afterwards is refused as cut.
#[test]
fn a_run_stopped_at_a_gate_has_its_chain_fsynced_through_its_last_record() {
    let p = staging();
    let out = p
        .base(&["run", "audited", "--env", "staging"])
        .env("RUNBOOK_ACTOR", "alice")
        .env("RUNBOOK_FAILPOINT", "lost:run_waiting:run")
        .run();
    assert_eq!(out.code, -1, "{}", out.combined());
    let (id, _) = p.last_run();
    let text = std::fs::read_to_string(chain(&p, &id)).unwrap();
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.contains("\"event\":\"run_waiting\"")),
        "{text}"
    );
    assert_eq!(p.audit_synced(&id), text.lines().count() as i64);
    let approve = p.as_user("bob", &["approve", &id, "approve"]);
    assert_eq!(approve.code, 0, "{}", approve.combined());
    assert!(
        !approve.combined().contains("written back"),
        "{}",
        approve.combined()
    );
}
