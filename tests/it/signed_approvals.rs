//! Signed approvals: approvers listed by SSH key in runbook.yaml, approvals signed with a key
//! file or ssh-agent in the SSHSIG format, counted only from the run's audit chain and only
//! when the signature holds over this run, gate, plan and database. Keys are made by the real
//! `ssh-keygen` and one test signs through a real `ssh-agent`; each stored signature is checked
//! with `ssh-keygen -Y verify`. These tests fail, never skip, when OpenSSH's client tools are
//! missing (`.ci/run` installs them).

use crate::support::{Output, Runbook, Target, sqlite_exec};
use serde_json::{Map, Value as Json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SHIP: &str = r#"
name: ship
params:
  version: { type: string, default: "1.0" }
steps:
  - id: before
    sql: { query: "CREATE TABLE IF NOT EXISTS log (what TEXT)" }
  - id: mark
    sql: { query: "INSERT INTO log VALUES ('before')" }
  - id: approve
    gate: { approval: { message: "Ship {{ params.version }} to {{ env.name }}" } }
  - id: after
    sql: { query: "INSERT INTO log VALUES ('after')" }
"#;

const CONFIG: &str = r#"
environments:
  dev:
    target: { sqlite: dev.db }
    protections: { self_approval: true }
  prod:
    target: { sqlite: prod.db }
    protections: { approvals: 2, approval_expiry: 1h, signed_approvals: true }
  solo:
    target: { sqlite: solo.db }
    protections: { self_approval: true, signed_approvals: true }
approvers:
  allowed_signers: approvers.allowed_signers
"#;

/// A project whose `prod` needs two signed approvals, with keys for alice (Ed25519), bob (RSA
/// 3072), olga the operator (Ed25519, listed) and mallory (Ed25519, not listed).
struct Signed {
    dir: tempfile::TempDir,
    keys: PathBuf,
    /// A PostgreSQL state store (`state: { url_env: SIGNED_STATE_URL }`), when the test uses one.
    state_url: Option<String>,
}

impl Signed {
    fn new() -> Signed {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::create_dir_all(dir.path().join("playbooks")).unwrap();
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(dir.path().join("runbook.yaml"), CONFIG).unwrap();
        std::fs::write(dir.path().join("playbooks/ship.yaml"), SHIP).unwrap();
        keygen(&keys, "alice", &["-t", "ed25519"]);
        keygen(&keys, "bob", &["-t", "rsa", "-b", "3072"]);
        keygen(&keys, "olga", &["-t", "ed25519"]);
        keygen(&keys, "mallory", &["-t", "ed25519"]);
        let listed: String = ["alice", "bob", "olga"]
            .iter()
            .map(|n| format!("{n} {}", read(&keys.join(format!("{n}.pub")))))
            .collect();
        std::fs::write(
            dir.path().join("approvers.allowed_signers"),
            format!("# the approvers\n{listed}"),
        )
        .unwrap();
        Signed {
            dir,
            keys,
            state_url: None,
        }
    }

    /// The same project with its state store in a PostgreSQL database.
    fn with_postgres_state() -> Signed {
        let mut g = Signed::new();
        let config = read(&g.dir.path().join("runbook.yaml"));
        std::fs::write(
            g.dir.path().join("runbook.yaml"),
            format!("state: {{ url_env: SIGNED_STATE_URL }}\n{config}"),
        )
        .unwrap();
        g.state_url = Some(crate::support::pg::cluster().create_db("signed_state"));
        g
    }

    fn key(&self, name: &str) -> String {
        self.keys.join(name).display().to_string()
    }

    /// runbook as `user` (RUNBOOK_ACTOR), with no ssh-agent unless `agent` names its socket.
    fn cmd(&self, user: &str, agent: Option<&Path>, args: &[&str]) -> Output {
        let dir = self.dir.path().display().to_string();
        let mut all = vec!["-C", dir.as_str()];
        all.extend(args);
        let sock = agent.map(|p| p.display().to_string()).unwrap_or_default();
        Runbook::new(&all)
            .env("RUNBOOK_ACTOR", user)
            .env("SSH_AUTH_SOCK", &sock)
            .env(
                "SIGNED_STATE_URL",
                self.state_url.as_deref().unwrap_or_default(),
            )
            .run()
    }

    /// `runbook run ship --env ENV` by the OS user `ops`, who holds olga's key (so the run's
    /// operator is known by it): waits at the gate, gives the run id.
    fn start(&self, env: &str) -> String {
        let key = self.key("olga");
        let out = self.cmd("ops", None, &["run", "ship", "--env", env, "--key", &key]);
        assert_eq!(out.code, 3, "{}", out.combined());
        self.last()
    }

    fn last(&self) -> String {
        let out = self.cmd("x", None, &["runs", "--format", "json"]);
        let v: Json = serde_json::from_str(&out.stdout).unwrap();
        v["runs"][0]["run_id"].as_str().unwrap().to_owned()
    }

    fn approve(&self, user: &str, run: &str, extra: &[&str]) -> Output {
        let mut args = vec!["approve", run, "approve"];
        args.extend(extra);
        self.cmd(user, None, &args)
    }

    fn resume(&self, run: &str) -> Output {
        self.cmd("olga", None, &["resume", run])
    }

    fn status(&self, run: &str) -> String {
        self.cmd("x", None, &["status", run]).stdout
    }

    fn log(&self, db: &str) -> Vec<String> {
        crate::support::sqlite::query(&self.dir.path().join(db), "SELECT what FROM log")
    }

    fn state(&self) -> Target {
        Target::Sqlite(self.dir.path().join(".runbook/state.db"))
    }

    fn plan_hash(&self, run: &str) -> String {
        if let Some(url) = &self.state_url {
            let sql = format!("SELECT plan_hash FROM runbook_runs WHERE id = '{run}'");
            return crate::support::pg::cluster().psql(url, &sql);
        }
        let rows = crate::support::sqlite::query(
            &self.dir.path().join(".runbook/state.db"),
            &format!("SELECT plan_hash FROM runbook_runs WHERE id = '{run}'"),
        );
        rows[0].clone()
    }

    /// The approval records of a run's audit chain.
    fn chain_approvals(&self, run: &str) -> Vec<Json> {
        let text = read(&self.dir.path().join(format!(".runbook/audit/{run}.jsonl")));
        text.lines()
            .map(|l| serde_json::from_str::<Json>(l).unwrap())
            .filter(|r| r["event"] == "approval_recorded")
            .map(|r| r["approvals"][0].clone())
            .collect()
    }

    /// Appends an approval to a run's audit chain as a correct record (hashes and links), the
    /// way someone who can write the audit folder would, and the same row to the state store.
    fn forge(&self, run: &str, approval: &runbook::run::Approval) {
        let body = runbook::audit::body_from_event(&Map::new(), &approval.event());
        let dir = self.dir.path().join(".runbook/audit");
        let mut log = runbook::audit::AuditLog::open(&dir, run).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(log.append(body)).unwrap();
        self.insert_row(run, approval);
    }

    /// An approval of the run's gate signed with `who`'s key file over a correct statement (the
    /// run's plan and database), made with the library as `runbook approve` would.
    fn signed_by(&self, who: &str, run: &str, expires_in_ms: i64) -> runbook::run::Approval {
        let text = read(&self.dir.path().join(format!(".runbook/audit/{run}.jsonl")));
        let started: Json = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let target = started["outcome"]["target_identity"].as_str().unwrap();
        let listed = read(&self.dir.path().join("approvers.allowed_signers"));
        let signers = runbook::signers::Signers {
            list: runbook::signers::parse(&listed).0,
        };
        let key_file = self.keys.join(who);
        let key = runbook::approval::signing_key(&signers, Some(&key_file), None)
            .unwrap_or_else(|e| panic!("{}", e.message));
        let now = chrono::Utc::now().timestamp_millis();
        let statement = runbook::approval::Statement {
            run: run.to_owned(),
            gate: "approve".to_owned(),
            decision: "approve".to_owned(),
            plan: self.plan_hash(run),
            target: target.to_owned(),
            signed: now,
            expires: Some(now + expires_in_ms),
            comment: None,
        }
        .text();
        runbook::run::Approval {
            gate: "approve".to_owned(),
            actor: who.to_owned(),
            decision: "approve".to_owned(),
            comment: None,
            plan_hash: self.plan_hash(run),
            at: now,
            signed: Some(runbook::run::Signed {
                signature: key.sign(&statement).unwrap(),
                statement,
                fingerprint: key.signer.fingerprint.clone(),
            }),
        }
    }

    /// A row in the state store's approvals table only, as `sqlite3` would insert it.
    fn insert_row(&self, run: &str, a: &runbook::run::Approval) {
        let signed = a.signed.as_ref().map_or("NULL".to_owned(), |s| {
            sql_text(&serde_json::json!(s).to_string())
        });
        sqlite_exec(
            &self.state(),
            &format!(
                "INSERT INTO runbook_approvals (run_id, gate, actor, decision, comment, plan_hash, at, signed) VALUES ('{run}', '{}', '{}', '{}', NULL, '{}', {}, {signed})",
                a.gate, a.actor, a.decision, a.plan_hash, a.at
            ),
        );
    }
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A key pair made by `ssh-keygen`, named `name` (its comment too).
fn keygen(dir: &Path, name: &str, kind: &[&str]) {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .args(kind)
        .status()
        .expect("ssh-keygen runs (apt-get install openssh-client)");
    assert!(status.success(), "ssh-keygen {kind:?} failed");
}

/// A real `ssh-agent` in the foreground on its own socket, holding `keys`; killed when dropped.
struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Agent {
    fn start(dir: &Path, keys: &[&str]) -> Agent {
        let sock = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent runs (apt-get install openssh-client)");
        let agent = Agent { child, sock };
        for _ in 0..200 {
            if agent.sock.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        for key in keys {
            let out = Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &agent.sock)
                .output()
                .expect("ssh-add runs");
            assert!(out.status.success(), "ssh-add {key}: {out:?}");
        }
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ssh-keygen -Y verify` of a stored approval, from files: the listed keys, the statement and
/// the signature; the principal is the approver it was recorded under.
fn ssh_keygen_verifies(g: &Signed, approval: &Json) -> bool {
    let dir = g.dir.path();
    let statement = dir.join("statement.txt");
    let sig = dir.join("statement.sig");
    std::fs::write(
        &statement,
        approval["signed"]["statement"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(&sig, approval["signed"]["signature"].as_str().unwrap()).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "runbook-approval", "-f"])
        .arg(dir.join("approvers.allowed_signers"))
        .arg("-I")
        .arg(approval["actor"].as_str().unwrap())
        .arg("-s")
        .arg(&sig)
        .stdin(std::fs::File::open(&statement).unwrap())
        .output()
        .expect("ssh-keygen runs");
    out.status.success()
}

#[test]
fn two_listed_approvers_one_by_key_file_one_through_ssh_agent_open_the_gate() {
    let g = Signed::new();
    let run = g.start("prod");
    assert_eq!(g.log("prod.db"), ["before"]);
    // alice signs with her Ed25519 key file; her RUNBOOK_ACTOR name does not matter.
    let alice = g.approve("someone", &run, &["--key", &g.key("alice")]);
    assert_eq!(alice.code, 0, "{}", alice.combined());
    assert!(alice.stderr.contains("as alice"), "{}", alice.stderr);
    let one = g.resume(&run);
    assert_eq!(one.code, 3, "{}", one.combined());
    assert!(one.stderr.contains("(1 of 2 approvals)"), "{}", one.stderr);
    // bob signs with his RSA key through a real ssh-agent.
    let agent = Agent::start(g.dir.path(), &[&g.key("bob")]);
    let bob = g.cmd("bob", Some(&agent.sock), &["approve", &run, "approve"]);
    assert_eq!(bob.code, 0, "{}", bob.combined());
    assert!(bob.stderr.contains("as bob"), "{}", bob.stderr);
    drop(agent);
    let status = g.status(&run);
    assert!(status.contains("approval  alice approve"), "{status}");
    assert!(status.contains("signed by SHA256:"), "{status}");
    let done = g.resume(&run);
    assert_eq!(done.code, 0, "{}", done.combined());
    assert_eq!(g.log("prod.db"), ["before", "after"]);
    // Each stored signature verifies with ssh-keygen, over the statement runbook counted.
    let approvals = g.chain_approvals(&run);
    assert_eq!(approvals.len(), 2);
    for a in &approvals {
        assert!(ssh_keygen_verifies(&g, a), "{a}");
        let text = a["signed"]["statement"].as_str().unwrap();
        assert!(text.contains(&format!("run: {run}\n")), "{text}");
        assert!(
            text.contains("gate: approve\ndecision: approve\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!("plan: {}\n", g.plan_hash(&run))),
            "{text}"
        );
        assert!(text.contains("target: SQLite file /"), "{text}");
    }
    let shown = g.cmd("x", None, &["audit", "show", &run]).stdout;
    assert!(
        shown.contains("alice approved gate approve (signed by SHA256:"),
        "{shown}"
    );
    // And a statement changed by one byte does not.
    let mut forged = approvals[0].clone();
    let text = forged["signed"]["statement"]
        .as_str()
        .unwrap()
        .replace("approve\n", "reject\n");
    forged["signed"]["statement"] = Json::from(text);
    assert!(!ssh_keygen_verifies(&g, &forged));
}

#[test]
fn the_operator_approving_as_others_does_not_count() {
    let g = Signed::new();
    let run = g.start("prod");
    let olga = g.key("olga");
    // --actor naming someone else: the key says who approves.
    let as_bob = g.approve("ops", &run, &["--actor", "bob", "--key", &olga]);
    assert_eq!(as_bob.code, 7, "{}", as_bob.combined());
    assert!(
        as_bob.stderr.contains("`--actor bob` is refused")
            && as_bob.stderr.contains("listed for olga"),
        "{}",
        as_bob.stderr
    );
    // RUNBOOK_ACTOR naming someone else: ignored; the key says olga, whose key started the
    // run (its operator's OS name is `ops`: known by the key, not by the name).
    let env_bob = g.approve("bob", &run, &["--key", &olga]);
    assert_eq!(env_bob.code, 7, "{}", env_bob.combined());
    assert!(
        env_bob.stderr.contains("RUNBOOK_ACTOR=bob is ignored")
            && env_bob.stderr.contains("olga started run")
            && env_bob.stderr.contains("cannot approve"),
        "{}",
        env_bob.stderr
    );
    // Rows inserted into the state store by hand, with the right plan hash: not in the audit
    // chain, so they never count.
    for who in ["alice", "bob"] {
        let a = runbook::run::Approval {
            gate: "approve".to_owned(),
            actor: who.to_owned(),
            decision: "approve".to_owned(),
            comment: None,
            plan_hash: g.plan_hash(&run),
            at: chrono::Utc::now().timestamp_millis(),
            signed: None,
        };
        g.insert_row(&run, &a);
    }
    let out = g.resume(&run);
    assert_eq!(out.code, 3, "{}", out.combined());
    assert!(
        out.stderr.contains("(0 of 2 approvals; 2 do not count")
            && out
                .stderr
                .contains("alice (approve): not in the run's audit chain"),
        "{}",
        out.stderr
    );
    assert!(
        g.status(&run).contains("bob approve at")
            && g.status(&run)
                .contains("does not count: not in the run's audit chain"),
        "{}",
        g.status(&run)
    );
    assert_eq!(g.log("prod.db"), ["before"]);
}

#[test]
fn unlisted_keys_and_unsigned_approvals_do_not_count() {
    let g = Signed::new();
    let run = g.start("prod");
    let mallory = g.approve("mallory", &run, &["--key", &g.key("mallory")]);
    assert_eq!(mallory.code, 7, "{}", mallory.combined());
    assert!(
        mallory.stderr.contains("is not listed among the approvers"),
        "{}",
        mallory.stderr
    );
    // No key at all: says how to get one.
    let none = g.approve("alice", &run, &[]);
    assert_eq!(none.code, 7, "{}", none.combined());
    assert!(
        none.stderr.contains("ssh-add") && none.stderr.contains("--key"),
        "{}",
        none.stderr
    );
    // An unsigned approval in the chain, and one by an unlisted key: neither counts.
    let unsigned = runbook::run::Approval {
        gate: "approve".to_owned(),
        actor: "alice".to_owned(),
        decision: "approve".to_owned(),
        comment: None,
        plan_hash: g.plan_hash(&run),
        at: chrono::Utc::now().timestamp_millis(),
        signed: None,
    };
    g.forge(&run, &unsigned);
    // The operator's own key, signing a statement over exactly this run: self-approval.
    let own = g.signed_by("olga", &run, 3_600_000);
    g.forge(&run, &own);
    // bob's key, over a statement that expired a millisecond after it was signed.
    let expired = g.signed_by("bob", &run, 1);
    g.forge(&run, &expired);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = g.resume(&run);
    assert_eq!(out.code, 3, "{}", out.combined());
    assert!(
        out.stderr.contains("alice (approve): unsigned")
            && out.stderr.contains("olga (approve): self-approval")
            && out.stderr.contains("bob (approve): expired at"),
        "{}",
        out.stderr
    );
    assert_eq!(g.log("prod.db"), ["before"]);
}

#[test]
fn a_signature_over_another_run_or_a_changed_statement_does_not_count() {
    let g = Signed::new();
    let first = g.start("prod");
    let second = g.start("prod");
    assert_ne!(first, second);
    for who in ["alice", "bob"] {
        let out = g.approve(who, &first, &["--key", &g.key(who)]);
        assert_eq!(out.code, 0, "{}", out.combined());
    }
    // The first run's two valid signatures, copied into the second run's chain and store.
    for a in g.chain_approvals(&first) {
        let mut copied: runbook::run::Approval = approval_from(&a);
        copied.plan_hash = g.plan_hash(&second);
        g.forge(&second, &copied);
    }
    let out = g.resume(&second);
    assert_eq!(out.code, 3, "{}", out.combined());
    assert!(
        out.stderr.contains(&format!(
            "alice (approve): signed over another run ({first})"
        )),
        "{}",
        out.stderr
    );
    // A signature whose statement was edited (another gate named) does not verify.
    let mut edited = approval_from(&g.chain_approvals(&first)[0]);
    let signed = edited.signed.as_mut().unwrap();
    signed.statement = signed.statement.replace(&first, &second);
    g.forge(&second, &edited);
    let status = g.status(&second);
    assert!(
        status.contains("does not match the signed statement"),
        "{status}"
    );
    // The first run's own approvals count for its plan...
    let done = g.resume(&first);
    assert_eq!(done.code, 0, "{}", done.combined());
}

/// With a shared PostgreSQL state store the signed approvals are kept there too (statement,
/// signature and key in the `signed` column) and the gate opens as with SQLite.
#[test]
fn signed_approvals_with_a_postgres_state_store() {
    let g = Signed::with_postgres_state();
    let run = g.start("prod");
    for who in ["alice", "bob"] {
        let out = g.approve(who, &run, &["--key", &g.key(who)]);
        assert_eq!(out.code, 0, "{}", out.combined());
    }
    let done = g.resume(&run);
    assert_eq!(done.code, 0, "{}", done.combined());
    assert_eq!(g.log("prod.db"), ["before", "after"]);
    let url = g.state_url.as_deref().unwrap();
    let sql = "SELECT actor || ' ' || (signed::json->>'fingerprint' LIKE 'SHA256:%') FROM runbook_approvals ORDER BY at";
    assert_eq!(
        crate::support::pg::cluster().psql(url, sql),
        "alice true\nbob true"
    );
}

/// Where self-approval is allowed but approvals must be signed, `run --approve` signs with the
/// operator's listed key, and is refused without one.
#[test]
fn run_approve_signs_where_signatures_are_required() {
    let g = Signed::new();
    let without = g.cmd(
        "ops",
        None,
        &["run", "ship", "--env", "solo", "--approve", "approve"],
    );
    assert_eq!(without.code, 7, "{}", without.combined());
    assert!(without.stderr.contains("ssh-add"), "{}", without.stderr);
    let runs: Json =
        serde_json::from_str(&g.cmd("x", None, &["runs", "--format", "json"]).stdout).unwrap();
    assert_eq!(runs["runs"], serde_json::json!([]), "no run was recorded");
    let key = g.key("alice");
    let args = [
        "run",
        "ship",
        "--env",
        "solo",
        "--approve",
        "approve",
        "--key",
        &key,
    ];
    let with = g.cmd("ops", None, &args);
    assert_eq!(with.code, 0, "{}", with.combined());
    assert_eq!(g.log("solo.db"), ["before", "after"]);
    let approvals = g.chain_approvals(&g.last());
    assert_eq!(approvals[0]["actor"], "alice");
    assert!(ssh_keygen_verifies(&g, &approvals[0]), "{}", approvals[0]);
}

/// A signed rejection by a listed approver ends the run, and its signature verifies.
#[test]
fn a_signed_rejection_ends_the_run() {
    let g = Signed::new();
    let run = g.start("prod");
    let mut args = vec!["reject", run.as_str(), "approve", "--comment", "not today"];
    let key = g.key("bob");
    args.extend(["--key", key.as_str()]);
    let out = g.cmd("bob", None, &args);
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(
        out.stderr.contains("rejected by bob: not today"),
        "{}",
        out.stderr
    );
    assert_eq!(g.log("prod.db"), ["before"]);
    let rejection = &g.chain_approvals(&run)[0];
    assert_eq!(rejection["decision"], "reject");
    assert!(ssh_keygen_verifies(&g, rejection), "{rejection}");
}

#[test]
fn a_changed_plan_voids_signed_approvals() {
    let g = Signed::new();
    let run = g.start("prod");
    for who in ["alice", "bob"] {
        assert_eq!(g.approve(who, &run, &["--key", &g.key(who)]).code, 0);
    }
    let other = g.cmd("olga", None, &["resume", &run, "--var", "version=2.0"]);
    assert_eq!(other.code, 3, "{}", other.combined());
    assert!(
        other.stderr.contains("given for another plan"),
        "{}",
        other.stderr
    );
    assert_eq!(g.log("prod.db"), ["before"]);
}

#[test]
fn without_listed_approvers_a_signed_environment_waits_and_says_why_while_dev_runs() {
    let g = Signed::new();
    std::fs::write(
        g.dir.path().join("approvers.allowed_signers"),
        "# nobody yet\n",
    )
    .unwrap();
    // Dev needs no signatures: self-approval with --approve works as before.
    let dev = g.cmd(
        "olga",
        None,
        &["run", "ship", "--env", "dev", "--approve", "approve"],
    );
    assert_eq!(dev.code, 0, "{}", dev.combined());
    assert_eq!(g.log("dev.db"), ["before", "after"]);
    let run = g.start("prod");
    let status = g.status(&run);
    assert!(status.contains("lists no approver keys"), "{status}");
    let out = g.approve("alice", &run, &["--key", &g.key("alice")]);
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(
        out.stderr
            .contains("requires signed approvals, and runbook.yaml lists no approver keys")
            && out.stderr.contains("allowed_signers"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_allowed_signers_line_is_a_diagnostic_at_its_line_and_column() {
    let g = Signed::new();
    let path = g.dir.path().join("approvers.allowed_signers");
    let text = read(&path);
    std::fs::write(&path, format!("{text}carol ssh-ed25519 not-a-key\n")).unwrap();
    let out = g.cmd("x", None, &["validate"]);
    assert_eq!(out.code, 2, "{}", out.combined());
    assert!(
        out.stderr.contains("approvers.allowed_signers:5:7")
            && out.stderr.contains("the key cannot be read"),
        "{}",
        out.stderr
    );
}

/// An approval record of the audit chain as the library's type.
fn approval_from(a: &Json) -> runbook::run::Approval {
    runbook::run::Approval {
        gate: "approve".to_owned(),
        actor: a["actor"].as_str().unwrap().to_owned(),
        decision: a["decision"].as_str().unwrap().to_owned(),
        comment: a["comment"].as_str().map(str::to_owned),
        plan_hash: a["plan_hash"].as_str().unwrap().to_owned(),
        at: a["at"].as_i64().unwrap(),
        signed: serde_json::from_value(a["signed"].clone()).unwrap(),
    }
}

/// A state store of layout 5 (approvals without signatures) gains the `signed` column, and the
/// layout version moves to 6.
#[test]
fn a_state_store_from_before_gains_the_column_signed_approvals_are_kept_in() {
    let g = Signed::new();
    std::fs::create_dir_all(g.dir.path().join(".runbook")).unwrap();
    sqlite_exec(
        &g.state(),
        "CREATE TABLE runbook_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO runbook_meta VALUES ('state_version', '5');
         CREATE TABLE runbook_approvals (run_id TEXT NOT NULL, gate TEXT NOT NULL,
           actor TEXT NOT NULL, decision TEXT NOT NULL, comment TEXT, plan_hash TEXT NOT NULL,
           at BIGINT NOT NULL);",
    );
    let run = g.start("prod");
    let out = g.approve("alice", &run, &["--key", &g.key("alice")]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let db = g.dir.path().join(".runbook/state.db");
    let q = |sql: &str| crate::support::sqlite::query(&db, sql);
    assert_eq!(
        q("SELECT value FROM runbook_meta WHERE key = 'state_version'"),
        ["9"]
    );
    assert_eq!(
        q(
            "SELECT actor, json_extract(signed, '$.fingerprint') LIKE 'SHA256:%' FROM runbook_approvals"
        ),
        ["alice|1"]
    );
}
