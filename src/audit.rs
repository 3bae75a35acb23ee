//! The tamper-evident audit log. Each run has its own chain, `<run id>.jsonl` under the audit
//! folder (default `.runbook/audit/`): one JSON record per line, each hashed (sha256) over its
//! canonical bytes and linked to the previous record's hash, with a gapless sequence number.
//! `index.jsonl` lists the runs. The state store keeps each run's head (sequence and hash), so
//! a log cut short is told apart from one that was never longer.
//!
//! Records are fsynced before the action they announce (write-ahead). A crash in the middle of
//! a write leaves a torn last line: a prefix of a record without its newline. `verify` reports
//! that as a torn write, not as tampering, and the next append repairs it (and says so in the
//! chain).

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The previous hash of a chain's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest output excerpt kept in a record, in characters.
const EXCERPT: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("audit log `{0}` is damaged: {1}")]
    Damaged(String, String),
    #[error("audit sink: {0}")]
    Sink(String),
    #[error("audit signing key: {0}")]
    Key(String),
}

/// JSON with object keys sorted and no whitespace: the bytes a record's hash is taken over.
pub fn canonical(v: &Json) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Json, out: &mut String) {
    match v {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write_canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The hash of a record: sha256 of its canonical form without the `hash` field.
pub fn record_hash(record: &Map<String, Json>) -> String {
    let mut keys: Vec<&String> = record.keys().filter(|k| *k != "hash").collect();
    keys.sort();
    let mut out = String::from("{");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        write_canonical(&record[k.as_str()], &mut out);
    }
    out.push('}');
    hex::encode(Sha256::digest(out.as_bytes()))
}

/// The head of a chain: the last record's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// An open chain of one run, appended to by the executor.
pub struct AuditLog {
    path: PathBuf,
    file: std::fs::File,
    run_id: String,
    head: Head,
    sink: Option<Sink>,
    /// A torn tail found and cut when the chain was opened; recorded with the next append.
    repaired: Option<usize>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl AuditLog {
    /// Opens (or creates) the chain of `run_id` in `dir`, positioned after its last complete
    /// record. A torn last line is cut off and noted in the next record.
    pub fn open(dir: &Path, run_id: &str) -> Result<AuditLog, AuditError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(format!("{run_id}.jsonl"));
        let existing = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&path)(e)),
        };
        let report = verify_bytes(&existing, None);
        let mut repaired = None;
        let keep = match &report.problem {
            None => existing.len(),
            Some(Problem::Torn { line, .. }) => {
                repaired = Some(*line);
                existing
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1)
            }
            Some(p) => {
                return Err(AuditError::Damaged(
                    path.display().to_string(),
                    p.describe(),
                ));
            }
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io(&path))?;
        if keep < existing.len() {
            file.set_len(keep as u64).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        if existing.is_empty() {
            // A new chain: the folder entry must be durable too.
            sync_dir(dir);
        }
        Ok(AuditLog {
            path,
            file,
            run_id: run_id.to_owned(),
            head: Head {
                seq: report.records as i64,
                hash: report.head.unwrap_or_else(|| GENESIS.to_owned()),
            },
            sink: None,
            repaired,
        })
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends every record to a central append-only table as well.
    pub fn set_sink(&mut self, sink: Sink) {
        self.sink = Some(sink);
    }

    /// Appends one record (the body gets `seq`, `prev`, `hash`, `ts`, `run_id`), fsyncs it, and
    /// returns the new head.
    pub async fn append(&mut self, mut body: Map<String, Json>) -> Result<Head, AuditError> {
        if let Some(line) = self.repaired.take() {
            let mut note = Map::new();
            note.insert("event".into(), Json::from("torn_tail_repaired"));
            note.insert(
                "detail".into(),
                Json::from(format!(
                    "line {line} was cut short by a crash while being written and was removed"
                )),
            );
            Box::pin(self.append(note)).await?;
        }
        let seq = self.head.seq + 1;
        body.insert("seq".into(), Json::from(seq));
        body.insert("prev".into(), Json::from(self.head.hash.clone()));
        body.insert("run_id".into(), Json::from(self.run_id.clone()));
        body.entry("ts").or_insert_with(|| {
            Json::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        });
        let hash = record_hash(&body);
        body.insert("hash".into(), Json::from(hash.clone()));
        let mut line = canonical(&Json::Object(body.clone()));
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(io(&self.path))?;
        self.file.sync_data().map_err(io(&self.path))?;
        self.head = Head { seq, hash };
        if let Some(sink) = &mut self.sink {
            sink.insert(&self.run_id, seq, &self.head.hash, &Json::Object(body))
                .await?;
        }
        Ok(self.head.clone())
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Adds a run to the audit folder's index.
pub fn index(dir: &Path, entry: &Json) -> Result<(), AuditError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join("index.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    let mut line = canonical(entry);
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(io(&path))?;
    f.sync_data().map_err(io(&path))
}

/// The runs the index lists, oldest first.
pub fn read_index(dir: &Path) -> Vec<Json> {
    std::fs::read_to_string(dir.join("index.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// What is wrong with a chain.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// The last line is cut short without its newline: a crash while writing.
    Torn { line: usize, seq: i64 },
    /// A line is not a record, or a record's hash, link, sequence or run id is wrong.
    Tampered {
        line: usize,
        seq: i64,
        reason: String,
    },
    /// The chain ends before the head the state store recorded.
    Truncated { have: i64, expected: i64 },
    /// The head the state store recorded is not the hash found at that sequence.
    HeadMismatch { seq: i64 },
}

impl Problem {
    pub fn is_tampering(&self) -> bool {
        !matches!(self, Problem::Torn { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            Problem::Torn { line, seq } => {
                format!("record {seq} (line {line}) was cut short by a crash while being written")
            }
            Problem::Tampered { seq, reason, line } => {
                format!("record {seq} (line {line}) {reason}")
            }
            Problem::Truncated { have, expected } => format!(
                "the log ends at record {have} but the state store recorded {expected} records: records {} to {expected} were removed",
                have + 1
            ),
            Problem::HeadMismatch { seq } => {
                format!("record {seq} is not the record the state store recorded as the head")
            }
        }
    }

    /// The first bad sequence number.
    pub fn seq(&self) -> i64 {
        match self {
            Problem::Torn { seq, .. }
            | Problem::Tampered { seq, .. }
            | Problem::HeadMismatch { seq } => *seq,
            Problem::Truncated { have, .. } => have + 1,
        }
    }
}

/// The result of verifying one chain.
#[derive(Debug, Clone)]
pub struct Report {
    /// Complete records that verified.
    pub records: usize,
    /// The hash of the last verified record.
    pub head: Option<String>,
    pub problem: Option<Problem>,
    /// Records read, for tools that show them.
    pub entries: Vec<Map<String, Json>>,
}

/// Verifies a chain's bytes: every line a record, hashes recomputed, links, gapless sequence,
/// one run id; then, with `expected` (the head from the state store), that nothing is missing.
pub fn verify_bytes(bytes: &[u8], expected: Option<&Head>) -> Report {
    let mut report = Report {
        records: 0,
        head: None,
        problem: None,
        entries: Vec::new(),
    };
    let mut prev = GENESIS.to_owned();
    let mut run_id: Option<String> = None;
    let mut start = 0;
    let mut line_no = 0;
    while start < bytes.len() {
        line_no += 1;
        let seq = report.records as i64 + 1;
        let (line, complete) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(i) => (&bytes[start..start + i], true),
            None => (&bytes[start..], false),
        };
        start += line.len() + usize::from(complete);
        let tampered = |reason: &str| Problem::Tampered {
            line: line_no,
            seq,
            reason: reason.to_owned(),
        };
        let parsed = std::str::from_utf8(line)
            .ok()
            .and_then(|t| serde_json::from_str::<Json>(t).ok());
        // A crash cuts the record being written short, anywhere up to its newline; a complete
        // line that is not a record was put there.
        if !complete {
            report.problem = Some(Problem::Torn { line: line_no, seq });
            break;
        }
        let Some(Json::Object(rec)) = parsed else {
            report.problem = Some(tampered("is not a valid record"));
            break;
        };
        let got_seq = rec.get("seq").and_then(Json::as_i64);
        if got_seq != Some(seq) {
            report.problem = Some(tampered(&match got_seq {
                Some(s) if s > seq => format!(
                    "has sequence {s} where {seq} was expected: records are missing or out of order"
                ),
                Some(s) => format!(
                    "has sequence {s} where {seq} was expected: records are repeated or out of order"
                ),
                None => "has no sequence number".to_owned(),
            }));
            break;
        }
        if rec.get("prev").and_then(Json::as_str) != Some(prev.as_str()) {
            report.problem = Some(tampered("does not link to the record before it"));
            break;
        }
        let hash = rec
            .get("hash")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        if record_hash(&rec) != hash {
            report.problem = Some(tampered(
                "was changed after it was written (its hash does not match its contents)",
            ));
            break;
        }
        if canonical(&Json::Object(rec.clone())).as_bytes() != line {
            report.problem = Some(tampered(
                "is not in canonical form (bytes were changed without changing its meaning)",
            ));
            break;
        }
        let rid = rec.get("run_id").and_then(Json::as_str).map(str::to_owned);
        match (&run_id, rid) {
            (None, Some(r)) => run_id = Some(r),
            (Some(a), Some(b)) if *a == b => {}
            _ => {
                report.problem = Some(tampered("belongs to another run"));
                break;
            }
        }
        prev = hash.clone();
        report.records += 1;
        report.head = Some(hash);
        report.entries.push(rec);
    }
    if let Some(head) = expected {
        let have = report.records as i64;
        match &report.problem {
            Some(p) if p.is_tampering() => {}
            // A torn record at or below the recorded head was complete once: cut since.
            Some(Problem::Torn { seq, .. }) if *seq <= head.seq => {
                report.problem = Some(Problem::Truncated {
                    have,
                    expected: head.seq,
                })
            }
            _ if have < head.seq => {
                report.problem = Some(Problem::Truncated {
                    have,
                    expected: head.seq,
                })
            }
            _ => {
                let at = report.entries.get((head.seq - 1).max(0) as usize);
                if head.seq > 0
                    && at.and_then(|r| r.get("hash")).and_then(Json::as_str)
                        != Some(head.hash.as_str())
                {
                    report.problem = Some(Problem::HeadMismatch { seq: head.seq });
                }
            }
        }
    }
    report
}

/// The text a run's signature is made over.
fn signed_message(run_id: &str, head: &Head) -> String {
    format!("runbook-audit-v1:{run_id}:{}:{}", head.seq, head.hash)
}

/// Signs a run's head with an Ed25519 key (32 bytes, hex) and writes `<run>.sig` next to the
/// chain.
pub fn sign(dir: &Path, run_id: &str, head: &Head, key_hex: &str) -> Result<(), AuditError> {
    let bytes: [u8; 32] = hex::decode(key_hex.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            AuditError::Key("expected 64 hex digits (a 32-byte Ed25519 secret key)".to_owned())
        })?;
    let key = ed25519_dalek::SigningKey::from_bytes(&bytes);
    use ed25519_dalek::Signer;
    let sig = key.sign(signed_message(run_id, head).as_bytes());
    let doc = serde_json::json!({
        "run_id": run_id, "seq": head.seq, "head": head.hash,
        "public_key": hex::encode(key.verifying_key().to_bytes()),
        "signature": hex::encode(sig.to_bytes()),
    });
    let path = dir.join(format!("{run_id}.sig"));
    let tmp = dir.join(format!("{run_id}.sig.tmp"));
    std::fs::write(&tmp, canonical(&doc) + "\n").map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(dir);
    Ok(())
}

/// Checks `<run>.sig` against a public key (hex) and the chain's head.
pub fn check_signature(
    dir: &Path,
    run_id: &str,
    head: &Head,
    public_hex: &str,
) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join(format!("{run_id}.sig")))
        .map_err(|_| "the run is not signed".to_owned())?;
    let doc: Json =
        serde_json::from_str(&text).map_err(|_| "the signature file is damaged".to_owned())?;
    let pk: [u8; 32] = hex::decode(public_hex.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "the public key must be 64 hex digits".to_owned())?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&pk)
        .map_err(|_| "the public key is not a valid Ed25519 key".to_owned())?;
    let sig: [u8; 64] = doc["signature"]
        .as_str()
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "the signature is damaged".to_owned())?;
    let signed = Head {
        seq: doc["seq"].as_i64().unwrap_or(-1),
        hash: doc["head"].as_str().unwrap_or_default().to_owned(),
    };
    use ed25519_dalek::Verifier;
    key.verify(
        signed_message(run_id, &signed).as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .map_err(|_| {
        "the signature does not match the key (wrong key, or the signed head was edited)".to_owned()
    })?;
    if signed != *head {
        return Err(format!(
            "the signature covers record {} but the log's head is record {}: records were added or changed after signing",
            signed.seq, head.seq
        ));
    }
    Ok(())
}

/// A new Ed25519 key pair, hex: (secret, public).
pub fn keygen() -> Result<(String, String), AuditError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| AuditError::Key(e.to_string()))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    Ok((
        hex::encode(seed),
        hex::encode(key.verifying_key().to_bytes()),
    ))
}

/// A short, redacted excerpt of text for a record.
pub fn excerpt(text: &str) -> String {
    if text.chars().count() <= EXCERPT {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(EXCERPT).collect::<String>())
    }
}

/// The central sink: an append-only PostgreSQL table; a trigger rejects UPDATE, DELETE and
/// TRUNCATE, so even its owner cannot quietly rewrite history through SQL.
pub struct Sink {
    conn: sqlx::PgConnection,
}

impl Sink {
    pub async fn connect(url: &str) -> Result<Sink, AuditError> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| AuditError::Sink(e.to_string()))?;
        for stmt in [
            "CREATE TABLE IF NOT EXISTS runbook_audit_log (
                run_id TEXT NOT NULL, seq BIGINT NOT NULL, hash TEXT NOT NULL, record JSONB NOT NULL,
                received_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (run_id, seq))",
            "CREATE OR REPLACE FUNCTION runbook_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'runbook_audit_log is append-only: % is not allowed', TG_OP; END $$",
            "DROP TRIGGER IF EXISTS runbook_audit_no_change ON runbook_audit_log",
            "CREATE TRIGGER runbook_audit_no_change BEFORE UPDATE OR DELETE ON runbook_audit_log
             FOR EACH ROW EXECUTE FUNCTION runbook_audit_append_only()",
            "DROP TRIGGER IF EXISTS runbook_audit_no_truncate ON runbook_audit_log",
            "CREATE TRIGGER runbook_audit_no_truncate BEFORE TRUNCATE ON runbook_audit_log
             FOR EACH STATEMENT EXECUTE FUNCTION runbook_audit_append_only()",
        ] {
            // Several runs may set the sink up at once; the second `CREATE` may race.
            if let Err(e) = sqlx::query(stmt).execute(&mut conn).await {
                let msg = e.to_string();
                if !msg.contains("already exists") && !msg.contains("duplicate key") && !msg.contains("tuple concurrently updated") {
                    return Err(AuditError::Sink(msg));
                }
            }
        }
        Ok(Sink { conn })
    }

    async fn insert(
        &mut self,
        run_id: &str,
        seq: i64,
        hash: &str,
        record: &Json,
    ) -> Result<(), AuditError> {
        sqlx::query(
            "INSERT INTO runbook_audit_log (run_id, seq, hash, record) VALUES ($1, $2, $3, $4)",
        )
        .bind(run_id)
        .bind(seq)
        .bind(hash)
        .bind(sqlx::types::Json(record))
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(|e| AuditError::Sink(e.to_string()))
    }
}

/// The audit record of a run event: the run's facts (`meta`) plus what the event says, in the
/// fields auditors read. Result rows of queries never go in (they may be patient data): only
/// counts, a hash of the outputs and a short redacted excerpt of program output.
pub fn body_from_event(meta: &Map<String, Json>, ev: &crate::run::Event) -> Map<String, Json> {
    use crate::run::EventKind as K;
    let mut b = meta.clone();
    b.insert("event".into(), Json::from(ev.kind.as_str()));
    if let Some(step) = &ev.step {
        b.insert("step".into(), Json::from(step.clone()));
    }
    if let Some(phase) = ev.phase {
        b.insert("phase".into(), Json::from(phase.as_str()));
    }
    let d = &ev.data;
    let get = |k: &str| d.get(k).cloned().unwrap_or(Json::Null);
    for k in ["action", "args", "attempt"] {
        if let Some(v) = d.get(k) {
            b.insert(k.into(), v.clone());
        }
    }
    let mut outcome = Map::new();
    match ev.kind {
        K::StepFinished => {
            let outputs = get("outputs");
            outcome.insert("status".into(), Json::from("succeeded"));
            outcome.insert("duration_ms".into(), get("duration_ms"));
            for k in ["exit_code", "rows_affected", "row_count"] {
                if let Some(v) = outputs.get(k) {
                    outcome.insert(k.into(), v.clone());
                }
            }
            let mut hashed = outputs.clone();
            if let Json::Object(m) = &mut hashed {
                m.remove("rows");
                m.remove("row");
                m.remove("scalar");
            }
            let text = outputs
                .get("stdout")
                .and_then(Json::as_str)
                .or_else(|| outputs.get("message").and_then(Json::as_str))
                .unwrap_or_default();
            b.insert(
                "output".into(),
                serde_json::json!({
                    "sha256": hex::encode(Sha256::digest(canonical(&hashed).as_bytes())),
                    "excerpt": excerpt(text),
                }),
            );
        }
        K::StepFailed => {
            let error = get("error");
            outcome.insert("status".into(), Json::from("failed"));
            outcome.insert(
                "error".into(),
                Json::from(excerpt(error.as_str().unwrap_or_default())),
            );
            outcome.insert("duration_ms".into(), get("duration_ms"));
            outcome.insert("will_retry".into(), get("will_retry"));
            if let Some(code) = error
                .as_str()
                .and_then(|e| e.split("SQLSTATE ").nth(1))
                .map(|c| c.trim_end_matches(')').to_owned())
            {
                outcome.insert("sqlstate".into(), Json::from(code));
            }
            if let Some(code) = error
                .as_str()
                .and_then(|e| e.split("exited with code ").nth(1))
                .and_then(|c| c.split(|ch: char| !ch.is_ascii_digit() && ch != '-').next())
                .and_then(|c| c.parse::<i64>().ok())
            {
                outcome.insert("exit_code".into(), Json::from(code));
            }
        }
        K::StepSkipped => {
            outcome.insert("status".into(), Json::from("skipped"));
            outcome.insert("reason".into(), get("reason"));
        }
        K::GateDecision => {
            outcome.insert("status".into(), get("outcome"));
            let detail = get("detail");
            if let Some(a) = detail.get("approvers") {
                b.insert("approvals".into(), a.clone());
            }
            if let Some(r) = detail.get("reason").or_else(|| detail.get("note")) {
                outcome.insert("reason".into(), r.clone());
            }
            b.insert("shown".into(), get("gate"));
        }
        K::ApprovalRecorded => {
            b.insert(
                "approvals".into(),
                serde_json::json!([{ "actor": get("actor"), "decision": get("decision"), "comment": get("comment"), "plan_hash": get("plan_hash") }]),
            );
        }
        K::RunFinished | K::RunInterrupted => {
            outcome.insert("status".into(), get("status"));
            outcome.insert("exit_code".into(), get("exit_code"));
            outcome.insert("error".into(), get("error"));
        }
        K::RunWaiting => {
            outcome.insert("status".into(), Json::from("waiting_approval"));
            outcome.insert("reason".into(), get("reason"));
        }
        K::ResumeDecision => {
            outcome.insert("status".into(), get("choice"));
            b.insert("decided_by".into(), get("operator"));
        }
        K::RunStarted
        | K::RunResumed
        | K::RollbackStarted
        | K::RollbackFinished
        | K::StepStarted => {
            for k in [
                "params",
                "plan_hash",
                "failed_step",
                "error",
                "ok",
                "operator",
                "host",
            ] {
                if let Some(v) = d.get(k) {
                    outcome.insert(k.into(), v.clone());
                }
            }
        }
    }
    if !outcome.is_empty() {
        b.insert("outcome".into(), Json::Object(outcome));
    }
    b
}

/// The git commit of the repository a file is in, if it is in one.
pub fn git_commit(file: &Path) -> Option<String> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let out = duct::cmd("git", ["rev-parse", "HEAD"])
        .dir(dir)
        .stderr_null()
        .stdout_capture()
        .unchecked()
        .run()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && text.len() == 40).then_some(text)
}
