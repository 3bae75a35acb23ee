//! `verify_run`: one run's chain checked against the head the state store recorded and, with a
//! public key, its signature; the `Verdict` and its one-line summary.

use super::chain::Head;
use super::sign::check_signature;
use super::verify::{Problem, verify_bytes};
use serde_json::{Map, Value as Json};
use std::path::Path;

/// One run's verification result.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub run_id: String,
    pub records: usize,
    pub head: Option<String>,
    pub problem: Option<Problem>,
    /// `Some(Ok)` when a signature was checked and holds; `Some(Err)` when it does not.
    pub signature: Option<Result<(), String>>,
    pub entries: Vec<Map<String, Json>>,
}

impl Verdict {
    /// Tampering, truncation or a bad signature: what makes `verify` fail.
    pub fn failed(&self) -> bool {
        self.problem.as_ref().is_some_and(Problem::is_tampering)
            || matches!(self.signature, Some(Err(_)))
    }

    pub fn summary(&self) -> String {
        let mut s = match &self.problem {
            None => format!(
                "ok: {} records, head {}",
                self.records,
                short(self.head.as_deref().unwrap_or("-"))
            ),
            Some(p @ Problem::Torn { .. }) => format!(
                "ok up to record {}, then a torn write: {} (a crash while writing, not tampering)",
                self.records,
                p.describe()
            ),
            Some(p) => format!("FAILED at record {}: {}", p.seq(), p.describe()),
        };
        match &self.signature {
            Some(Ok(())) => s.push_str("; signature valid"),
            Some(Err(e)) => s.push_str(&format!("; signature INVALID: {e}")),
            None => {}
        }
        s
    }
}

/// The first 12 characters of a hash, enough to tell records apart on screen.
pub(super) fn short(h: &str) -> &str {
    &h[..12.min(h.len())]
}

/// Verifies one run's chain against the head the state store recorded (if any) and, with a
/// public key, its signature.
pub fn verify_run(dir: &Path, run_id: &str, expected: Option<&Head>, key: Option<&str>) -> Verdict {
    let path = dir.join(format!("{run_id}.jsonl"));
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(_) => {
            let problem = expected.map(|h| Problem::Truncated {
                have: 0,
                expected: h.seq,
            });
            return Verdict {
                run_id: run_id.to_owned(),
                records: 0,
                head: None,
                problem,
                signature: None,
                entries: Vec::new(),
            };
        }
    };
    let report = verify_bytes(&bytes, expected);
    let signature = key.map(|k| {
        let head = Head {
            seq: report.records as i64,
            hash: report.head.clone().unwrap_or_default(),
        };
        check_signature(dir, run_id, &head, k)
    });
    Verdict {
        run_id: run_id.to_owned(),
        records: report.records,
        head: report.head,
        problem: report.problem,
        signature,
        entries: report.entries,
    }
}
