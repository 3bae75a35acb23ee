//! What `audit verify` can be trusted for: signatures checked by default with the project's
//! committed public key (missing, re-signed, over another head, unfinished runs), a state store
//! lost, unreadable, unreachable or not knowing the run ("head unknown", `--chain-only`), and a
//! PostgreSQL sink whose writer cannot turn its protection off.

use crate::support::pg;
use crate::support::{Output, Project, Runbook, Target};
use runbook::audit::{self, Head};
use std::path::{Path, PathBuf};

const PLAYBOOK: &str = r#"
name: audited
steps:
  - id: setup
    sql: { query: "CREATE TABLE IF NOT EXISTS t (v TEXT)" }
  - id: approve
    gate: { approval: { message: "go on" } }
  - id: echo
    shell: { argv: [echo, hello auditors] }
"#;

const CONFIG: &str = "environments:\n  dev:\n    target: { sqlite: dev.db }\n    allow_target_override: true\n    protections: { self_approval: true }\n";

const KEY_VAR: &str = "AUDIT_TRUST_KEY";

/// A key pair from `runbook audit keygen`: (secret hex, public key file).
fn keygen(dir: &Path) -> (String, PathBuf) {
    let out = Runbook::new(&["audit", "keygen", "--out", &dir.display().to_string()]).run();
    assert_eq!(out.code, 0, "{}", out.combined());
    let secret = std::fs::read_to_string(dir.join("runbook-audit.key")).unwrap();
    (secret.trim().to_owned(), dir.join("runbook-audit.pub"))
}

/// A project whose config ends with `audit` (a YAML block), and its signing secret.
fn project(audit: &str) -> (Project, String) {
    let p = Project::new(Target::sqlite);
    let (secret, public) = keygen(p.path());
    std::fs::copy(&public, p.path().join("audit.pub")).unwrap();
    std::fs::write(p.path().join("runbook.yaml"), format!("{CONFIG}{audit}")).unwrap();
    p.playbook("audited", PLAYBOOK);
    (p, secret)
}

const SIGNS: &str = "audit:\n  signing_key_env: AUDIT_TRUST_KEY\n  public_key: audit.pub\n";

/// `runbook ARGS` in the project with the signing key set.
fn signed(p: &Project, secret: &str, args: &[&str]) -> Output {
    let root = p.path().display().to_string();
    let mut all = vec!["-C", root.as_str()];
    all.extend(args);
    Runbook::new(&all).env(KEY_VAR, secret).run()
}

/// Runs the playbook to its end (approved at the start), signed; returns the run id.
fn finished_run(p: &Project, secret: &str) -> String {
    let target = p.target.arg();
    let out = signed(
        p,
        secret,
        &[
            "run",
            "audited",
            "--target",
            &target,
            "--approve",
            "approve",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    p.last_run().0
}

fn audit_dir(p: &Project) -> PathBuf {
    p.path().join(".runbook/audit")
}

fn verify(p: &Project, args: &[&str]) -> Output {
    let mut all = vec!["audit", "verify"];
    all.extend(args);
    p.cmd(&all)
}

/// The chain's records, as verified from its bytes alone.
fn records(p: &Project, id: &str) -> audit::Report {
    let bytes = std::fs::read(audit_dir(p).join(format!("{id}.jsonl"))).unwrap();
    audit::verify_bytes(&bytes, None)
}

#[test]
fn a_signing_project_checks_signatures_without_a_key_flag() {
    let (p, secret) = project(SIGNS);
    let id = finished_run(&p, &secret);
    let ok = verify(&p, &[&id]);
    assert_eq!(ok.code, 0, "{}", ok.combined());
    assert!(ok.stdout.contains("signature valid"), "{}", ok.stdout);
    let show = p.cmd(&["audit", "show", &id]);
    assert!(show.stdout.contains("signature valid"), "{}", show.stdout);
    let html = p.path().join("report.html");
    let report = p.cmd(&[
        "audit",
        "report",
        &id,
        "--output",
        &html.display().to_string(),
    ]);
    assert_eq!(report.code, 0, "{}", report.combined());
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .contains(r#"data-status="valid""#)
    );

    // Re-signed with another key: the chain is intact, the signature is not the project's.
    let sig = audit_dir(&p).join(format!("{id}.sig"));
    let good_sig = std::fs::read(&sig).unwrap();
    let r = records(&p, &id);
    let head = Head {
        seq: r.records as i64,
        hash: r.head.clone().unwrap(),
    };
    let other = tempfile::tempdir().unwrap();
    let (other_secret, _) = keygen(other.path());
    audit::sign(&audit_dir(&p), &id, &head, &other_secret).unwrap();
    let wrong = verify(&p, &[&id]);
    assert_eq!(wrong.code, 6, "{}", wrong.combined());
    assert!(
        wrong.stdout.contains("signature INVALID"),
        "{}",
        wrong.stdout
    );
    let report = p.cmd(&[
        "audit",
        "report",
        &id,
        "--output",
        &html.display().to_string(),
    ]);
    assert_eq!(report.code, 0, "{}", report.combined());
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .contains(r#"data-status="invalid""#)
    );

    // Signed with the right key over an earlier record of a finished run: records were added.
    let earlier = Head {
        seq: head.seq - 1,
        hash: r.entries[r.records - 2]["hash"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    audit::sign(&audit_dir(&p), &id, &earlier, &secret).unwrap();
    let early = verify(&p, &[&id]);
    assert_eq!(early.code, 6, "{}", early.combined());
    assert!(
        early.stdout.contains("records were added after signing"),
        "{}",
        early.stdout
    );

    // Signed over a head the chain does not hold.
    let forged = Head {
        seq: head.seq,
        hash: "ab".repeat(32),
    };
    audit::sign(&audit_dir(&p), &id, &forged, &secret).unwrap();
    let other_head = verify(&p, &[&id]);
    assert_eq!(other_head.code, 6, "{}", other_head.combined());
    assert!(
        other_head.stdout.contains("rewritten after signing"),
        "{}",
        other_head.stdout
    );

    // The signature file removed: a finished run without a signature fails.
    std::fs::remove_file(&sig).unwrap();
    let missing = verify(&p, &[&id]);
    assert_eq!(missing.code, 6, "{}", missing.combined());
    assert!(
        missing.stdout.contains("signature MISSING"),
        "{}",
        missing.stdout
    );
    let show = p.cmd(&["audit", "show", &id]);
    assert_eq!(show.code, 6, "{}", show.combined());
    assert!(show.stdout.contains("signature MISSING"), "{}", show.stdout);

    std::fs::write(&sig, good_sig).unwrap();
    assert_eq!(verify(&p, &[&id]).code, 0);
}

#[test]
fn a_signing_project_without_a_public_key_says_it_cannot_check() {
    let (p, secret) = project("audit:\n  signing_key_env: AUDIT_TRUST_KEY\n");
    let id = finished_run(&p, &secret);
    let out = verify(&p, &[&id]);
    assert_eq!(out.code, 6, "{}", out.combined());
    assert!(
        out.stdout.contains("signature NOT CHECKED"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("audit.public_key"), "{}", out.stderr);
    let skipped = verify(&p, &[&id, "--skip-signatures"]);
    assert_eq!(skipped.code, 0, "{}", skipped.combined());
    assert!(
        skipped
            .stderr
            .contains("not checked: signatures (no public key)"),
        "{}",
        skipped.stderr
    );
    let public = p.path().join("audit.pub").display().to_string();
    let with_key = verify(&p, &[&id, "--key", &public]);
    assert_eq!(with_key.code, 0, "{}", with_key.combined());
    assert!(
        with_key.stdout.contains("signature valid"),
        "{}",
        with_key.stdout
    );
    let typo = verify(&p, &[&id, "--key", "audit.pbu"]);
    assert_eq!(typo.code, 2, "{}", typo.combined());
    assert!(
        typo.stderr
            .contains("`audit.pbu` is neither a file nor a public key"),
        "{}",
        typo.stderr
    );
}

#[test]
fn a_run_without_its_signing_key_is_told_and_fails_verification() {
    let (p, _) = project(SIGNS);
    let out = p.run("audited", &["--approve", "approve"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr
            .contains("`AUDIT_TRUST_KEY` (`audit.signing_key_env`) is not set"),
        "{}",
        out.stderr
    );
    let (id, _) = p.last_run();
    let v = verify(&p, &[&id]);
    assert_eq!(v.code, 6, "{}", v.combined());
    assert!(v.stdout.contains("signature MISSING"), "{}", v.stdout);
}

#[test]
fn an_unsigned_project_is_unaffected() {
    let p = Project::new(Target::sqlite);
    std::fs::write(p.path().join("runbook.yaml"), CONFIG).unwrap();
    p.playbook("audited", PLAYBOOK);
    assert_eq!(p.run("audited", &["--approve", "approve"]).code, 0);
    let out = verify(&p, &["--all"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(!out.stdout.contains("signature"), "{}", out.stdout);
    assert!(!out.stderr.contains("not checked"), "{}", out.stderr);
}

#[test]
fn a_waiting_run_is_signed_at_each_stop_and_not_failed_for_what_came_after() {
    let (p, secret) = project(SIGNS);
    let target = p.target.arg();
    let waiting = signed(&p, &secret, &["run", "audited", "--target", &target]);
    assert_eq!(waiting.code, 3, "{}", waiting.combined());
    let (id, _) = p.last_run();
    let at_stop = verify(&p, &[&id]);
    assert_eq!(at_stop.code, 0, "{}", at_stop.combined());
    assert!(
        at_stop.stdout.contains("signature valid"),
        "{}",
        at_stop.stdout
    );
    // An approval is appended unsigned: the signature still holds over the record it covers.
    let approve = p.cmd(&["approve", &id, "approve", "--actor", "bob", "--yes"]);
    assert_eq!(approve.code, 0, "{}", approve.combined());
    let approved = verify(&p, &[&id]);
    assert_eq!(approved.code, 0, "{}", approved.combined());
    assert!(
        approved.stdout.contains("signature valid up to record"),
        "{}",
        approved.stdout
    );
    // Unsigned while unfinished (a crash stops before signing): not signed yet, not a failure.
    let sig = audit_dir(&p).join(format!("{id}.sig"));
    let kept = std::fs::read(&sig).unwrap();
    std::fs::remove_file(&sig).unwrap();
    let unsigned = verify(&p, &[&id]);
    assert_eq!(unsigned.code, 0, "{}", unsigned.combined());
    assert!(
        unsigned.stdout.contains("not signed yet"),
        "{}",
        unsigned.stdout
    );
    std::fs::write(&sig, kept).unwrap();
    // The resumed run signs its finished chain.
    let resumed = signed(&p, &secret, &["resume", &id, "--target", &target]);
    assert_eq!(resumed.code, 0, "{}", resumed.combined());
    let done = verify(&p, &[&id]);
    assert_eq!(done.code, 0, "{}", done.combined());
    assert!(done.stdout.contains("; signature valid"), "{}", done.stdout);
}

#[test]
fn a_bad_public_key_is_a_diagnostic_at_its_position() {
    let p = Project::new(Target::sqlite);
    p.playbook("audited", PLAYBOOK);
    let config = format!("{CONFIG}audit:\n  public_key: audit.pub\n");
    let line = config.lines().count();
    std::fs::write(p.path().join("runbook.yaml"), &config).unwrap();
    let missing = verify(&p, &["--all"]);
    assert_eq!(missing.code, 2, "{}", missing.combined());
    assert!(
        missing.stderr.contains(&format!("runbook.yaml:{line}:15")),
        "{}",
        missing.stderr
    );
    assert!(missing.stderr.contains("cannot read"), "{}", missing.stderr);
    std::fs::write(p.path().join("audit.pub"), "not a key\n").unwrap();
    let junk = verify(&p, &["--all"]);
    assert_eq!(junk.code, 2, "{}", junk.combined());
    assert!(
        junk.stderr.contains("expected 64 hex digits"),
        "{}",
        junk.stderr
    );
    assert!(
        junk.stderr.contains(&format!("runbook.yaml:{line}:15")),
        "{}",
        junk.stderr
    );
}

/// A finished run whose chain was then cut by its last three records.
fn truncated_run() -> (Project, String) {
    let p = Project::new(Target::sqlite);
    std::fs::write(p.path().join("runbook.yaml"), CONFIG).unwrap();
    p.playbook("audited", PLAYBOOK);
    assert_eq!(p.run("audited", &["--approve", "approve"]).code, 0);
    let (id, _) = p.last_run();
    let path = audit_dir(&p).join(format!("{id}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let kept = lines[..lines.len() - 3].join("\n") + "\n";
    std::fs::write(&path, kept).unwrap();
    let with_store = verify(&p, &[&id]);
    assert_eq!(with_store.code, 6, "{}", with_store.combined());
    (p, id)
}

fn remove_state(p: &Project) {
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(p.path().join(".runbook").join(f));
    }
}

#[test]
fn a_lost_state_store_leaves_heads_unknown_unless_chain_only_is_accepted() {
    let (p, id) = truncated_run();
    remove_state(&p);
    let lost = verify(&p, &["--all"]);
    assert_eq!(lost.code, 6, "{}", lost.combined());
    assert!(
        lost.stdout.contains(&format!("{id}  HEAD UNKNOWN")),
        "{}",
        lost.stdout
    );
    assert!(
        lost.stdout.contains("`.runbook/state.db` is missing"),
        "{}",
        lost.stdout
    );
    assert!(lost.stderr.contains("--chain-only"), "{}", lost.stderr);
    assert!(
        !p.path().join(".runbook/state.db").exists(),
        "verify must not create a state store"
    );
    let chain_only = verify(&p, &["--all", "--chain-only"]);
    assert_eq!(chain_only.code, 0, "{}", chain_only.combined());
    assert!(
        chain_only.stdout.contains("truncation not checked"),
        "{}",
        chain_only.stdout
    );
    assert!(
        chain_only
            .stderr
            .contains("checked: hashes, links, sequence, sealing; not checked: truncation"),
        "{}",
        chain_only.stderr
    );
    // `show` says the same and fails.
    let show = p.cmd(&["audit", "show", &id]);
    assert_eq!(show.code, 6, "{}", show.combined());
    assert!(show.stdout.contains("HEAD UNKNOWN"), "{}", show.stdout);

    // A folder in place of the file.
    std::fs::create_dir(p.path().join(".runbook/state.db")).unwrap();
    let folder = verify(&p, &["--all"]);
    assert_eq!(folder.code, 6, "{}", folder.combined());
    assert!(
        folder.stdout.contains("`.runbook/state.db` is not a file"),
        "{}",
        folder.stdout
    );
    std::fs::remove_dir(p.path().join(".runbook/state.db")).unwrap();

    // A damaged file.
    std::fs::write(p.path().join(".runbook/state.db"), vec![b'x'; 8192]).unwrap();
    let damaged = verify(&p, &["--all"]);
    assert_eq!(damaged.code, 6, "{}", damaged.combined());
    assert!(
        damaged
            .stdout
            .contains("`.runbook/state.db` cannot be read"),
        "{}",
        damaged.stdout
    );
}

#[test]
fn a_state_store_that_does_not_know_the_run_or_cannot_be_reached_leaves_heads_unknown() {
    let (p, id) = truncated_run();
    // A fresh, empty store (replaced): it does not know the run.
    let empty = p.path().join("empty.db").display().to_string();
    let fresh = p.cmd(&["runs", "--state", &format!("sqlite:{empty}")]);
    assert_eq!(fresh.code, 0, "{}", fresh.combined());
    let unknown = verify(&p, &[&id, "--state", &format!("sqlite:{empty}")]);
    assert_eq!(unknown.code, 6, "{}", unknown.combined());
    assert!(
        unknown
            .stdout
            .contains("the state store does not know this run (it holds no runs at all"),
        "{}",
        unknown.stdout
    );
    // A PostgreSQL store that cannot be reached (nothing listens on port 1).
    let down = "postgres://nobody@127.0.0.1:1/state";
    let unreachable = verify(&p, &["--all", "--state", down]);
    assert_eq!(unreachable.code, 6, "{}", unreachable.combined());
    assert!(
        unreachable.stdout.contains("HEAD UNKNOWN"),
        "{}",
        unreachable.stdout
    );
    assert!(
        unreachable.stdout.contains("the PostgreSQL state store"),
        "{}",
        unreachable.stdout
    );
    assert!(
        unreachable.stdout.contains("cannot be reached"),
        "{}",
        unreachable.stdout
    );
    let accepted = verify(&p, &["--all", "--state", down, "--chain-only"]);
    assert_eq!(accepted.code, 0, "{}", accepted.combined());
}

/// A sink database owned by an owner role, set up with `runbook audit sink-setup`, and a
/// writer role: (owner URL, writer URL).
fn sink() -> (String, String) {
    let cluster = pg::cluster();
    let owner = cluster.create_owned_db("sink");
    let name = owner.rsplit('/').next().unwrap().to_owned();
    let writer = format!("{name}_writer");
    cluster.psql("postgres", &format!("CREATE ROLE {writer} LOGIN"));
    let setup = Runbook::new(&["audit", "sink-setup", "--writer", &writer]).run();
    assert_eq!(setup.code, 0, "{}", setup.combined());
    cluster.psql(&owner, &setup.stdout);
    let writer_url = format!("postgres://{writer}@127.0.0.1:{}/{name}", cluster.port());
    (owner, writer_url)
}

fn run_with_sink(p: &Project, url: &str) -> Output {
    let root = p.path().display().to_string();
    let target = p.target.arg();
    Runbook::new(&[
        "-C",
        &root,
        "run",
        "audited",
        "--target",
        &target,
        "--approve",
        "approve",
    ])
    .env("AUDIT_TRUST_SINK", url)
    .run()
}

fn sink_project() -> Project {
    let p = Project::new(Target::sqlite);
    std::fs::write(
        p.path().join("runbook.yaml"),
        format!("{CONFIG}audit:\n  sink_url_env: AUDIT_TRUST_SINK\n"),
    )
    .unwrap();
    p.playbook("audited", PLAYBOOK);
    p
}

#[test]
fn the_sink_writer_cannot_turn_its_protection_off() {
    let (_owner, writer) = sink();
    let p = sink_project();
    let out = run_with_sink(&p, &writer);
    assert_eq!(out.code, 0, "{}", out.combined());
    let (id, _) = p.last_run();
    let local = records(&p, &id).records;
    let count = |url: &str| -> usize {
        pg::cluster()
            .psql(
                url,
                &format!("SELECT count(*) FROM runbook_audit_log WHERE run_id = '{id}'"),
            )
            .parse()
            .unwrap()
    };
    assert_eq!(count(&writer), local);
    for stmt in [
        "ALTER TABLE runbook_audit_log DISABLE TRIGGER runbook_audit_no_change",
        "ALTER TABLE runbook_audit_log DISABLE TRIGGER ALL",
        "DROP TRIGGER runbook_audit_no_change ON runbook_audit_log",
        "DROP TRIGGER runbook_audit_no_truncate ON runbook_audit_log",
        "CREATE OR REPLACE FUNCTION runbook_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
        "UPDATE runbook_audit_log SET hash = 'x'",
        "DELETE FROM runbook_audit_log",
        "TRUNCATE runbook_audit_log",
        "DROP TABLE runbook_audit_log",
        "ALTER TABLE runbook_audit_log RENAME TO gone",
        "SET session_replication_role = replica",
    ] {
        let result = std::panic::catch_unwind(|| pg::cluster().psql(&writer, stmt));
        assert!(result.is_err(), "the writer's `{stmt}` must be refused");
    }
    assert_eq!(count(&writer), local);
}

#[test]
fn runbook_refuses_a_sink_its_role_could_unprotect() {
    let (owner, _writer) = sink();
    let p = sink_project();
    let as_owner = run_with_sink(&p, &owner);
    assert_ne!(as_owner.code, 0, "{}", as_owner.combined());
    assert!(
        as_owner.stderr.contains("refusing the audit sink"),
        "{}",
        as_owner.stderr
    );
    assert!(
        as_owner.stderr.contains("owns `runbook_audit_log`"),
        "{}",
        as_owner.stderr
    );
    assert!(
        as_owner.stderr.contains("audit sink-setup"),
        "{}",
        as_owner.stderr
    );
    let name = owner.rsplit('/').next().unwrap();
    let as_superuser = run_with_sink(&p, &pg::cluster().url(name));
    assert_ne!(as_superuser.code, 0, "{}", as_superuser.combined());
    assert!(
        as_superuser.stderr.contains("is a superuser"),
        "{}",
        as_superuser.stderr
    );
    // A sink without the table: runbook no longer creates it (its role would own it).
    let bare = pg::cluster().create_owned_db("bare_sink");
    let no_table = run_with_sink(&p, &bare);
    assert_ne!(no_table.code, 0, "{}", no_table.combined());
    assert!(
        no_table.stderr.contains("has no table `runbook_audit_log`"),
        "{}",
        no_table.stderr
    );
    // A writer that was granted more than INSERT and SELECT.
    let (owner2, writer2) = sink();
    let w2 = writer2
        .split("//")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap();
    pg::cluster().psql(
        &owner2,
        &format!("GRANT DELETE ON runbook_audit_log TO {w2}"),
    );
    let too_much = run_with_sink(&p, &writer2);
    assert_ne!(too_much.code, 0, "{}", too_much.combined());
    assert!(
        too_much.stderr.contains("may UPDATE, DELETE or TRUNCATE"),
        "{}",
        too_much.stderr
    );
    // A disabled trigger (by its owner) is refused too.
    pg::cluster().psql(&owner2, &format!("REVOKE DELETE ON runbook_audit_log FROM {w2}; ALTER TABLE runbook_audit_log DISABLE TRIGGER runbook_audit_no_truncate"));
    let disabled = run_with_sink(&p, &writer2);
    assert_ne!(disabled.code, 0, "{}", disabled.combined());
    assert!(
        disabled.stderr.contains("missing or disabled"),
        "{}",
        disabled.stderr
    );
}

#[test]
fn a_refusal_is_signed_and_verifies_without_a_state_store_head() {
    let p = Project::new(Target::sqlite);
    let (secret, public) = keygen(p.path());
    std::fs::copy(&public, p.path().join("audit.pub")).unwrap();
    let config = format!("environments:\n  prod:\n    target: {{ sqlite: prod.db }}\n{SIGNS}");
    std::fs::write(p.path().join("runbook.yaml"), config).unwrap();
    p.playbook("audited", PLAYBOOK);
    let other = format!("sqlite:{}", p.path().join("other.db").display());
    let refused = signed(
        &p,
        &secret,
        &["run", "audited", "--env", "prod", "--target", &other],
    );
    assert_eq!(refused.code, 2, "{}", refused.combined());
    assert!(
        refused.stderr.contains("recorded in the audit log as"),
        "{}",
        refused.stderr
    );
    let out = verify(&p, &["--all"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(out.stdout.contains("ok: 1 record, head"), "{}", out.stdout);
    assert!(out.stdout.contains("signature valid"), "{}", out.stdout);
    // Its signature removed: a refusal is finished, so it must be signed.
    for entry in std::fs::read_dir(audit_dir(&p)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sig") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let unsigned = verify(&p, &["--all"]);
    assert_eq!(unsigned.code, 6, "{}", unsigned.combined());
    assert!(
        unsigned.stdout.contains("signature MISSING"),
        "{}",
        unsigned.stdout
    );
}

#[test]
fn without_the_state_store_a_signature_still_tells_a_chain_cut_after_signing() {
    let (p, secret) = project(SIGNS);
    let id = finished_run(&p, &secret);
    let path = audit_dir(&p).join(format!("{id}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&path, lines[..lines.len() - 2].join("\n") + "\n").unwrap();
    remove_state(&p);
    let out = verify(&p, &["--all", "--chain-only"]);
    assert_eq!(out.code, 6, "{}", out.combined());
    assert!(
        out.stdout.contains("truncation not checked"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("it was cut short after signing"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains(
            "checked: hashes, links, sequence, sealing, signatures; not checked: truncation"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_dropped_postgres_state_store_leaves_heads_unknown() {
    let p = Project::new(Target::sqlite);
    std::fs::write(p.path().join("runbook.yaml"), CONFIG).unwrap();
    p.playbook("audited", PLAYBOOK);
    let state = pg::cluster().create_db("trust_state");
    let out = p.run("audited", &["--approve", "approve", "--state", &state]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let ok = verify(&p, &["--all", "--state", &state]);
    assert_eq!(ok.code, 0, "{}", ok.combined());
    let id = ok.stdout.split_whitespace().next().unwrap().to_owned();
    let n = records(&p, &id).records;
    assert!(
        ok.stdout.contains(&format!("{id}  ok: {n} records")),
        "{}",
        ok.stdout
    );
    pg::cluster().psql(&state, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    let dropped = verify(&p, &["--all", "--state", &state]);
    assert_eq!(dropped.code, 6, "{}", dropped.combined());
    assert!(
        dropped
            .stdout
            .contains(&format!("{id}  HEAD UNKNOWN: {n} records verified")),
        "{}",
        dropped.stdout
    );
    assert!(
        dropped.stdout.contains("it holds no runs at all"),
        "{}",
        dropped.stdout
    );
}
