//! `verify_run`: one run's chain checked against the head the state store recorded (when it
//! can say) and its signature (as the project promises); the `Verdict` and its one-line summary.

use super::head::Head;
use super::trust::{HeadCheck, SigPolicy, SigRead, Signature, is_refusal};
use super::verify::{Problem, Report, Scan, verify_reader};
use serde_json::{Map, Value as Json};
use std::path::Path;

/// What the state store says of a run's head.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// The store knows the run: its recorded head, if it recorded one.
    Head(Option<Head>),
    /// The store cannot say (`why`); `accepted` when `--chain-only` accepts that.
    Unknown { why: String, accepted: bool },
}

/// One run's verification result.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub run_id: String,
    pub records: usize,
    pub head: Option<String>,
    pub problem: Option<Problem>,
    /// Whether a chain cut short could be told from a complete one.
    pub head_check: HeadCheck,
    pub signature: Signature,
    pub entries: Vec<Map<String, Json>>,
}

impl Verdict {
    /// Tampering, truncation, a head that could not be checked (unless accepted), or a
    /// signature missing, invalid or not checked (unless accepted): what makes `verify` fail.
    pub fn failed(&self) -> bool {
        self.problem.as_ref().is_some_and(Problem::is_tampering)
            || matches!(
                self.head_check,
                HeadCheck::Unknown {
                    accepted: false,
                    ..
                }
            )
            || self.signature.fails()
    }

    pub fn summary(&self) -> String {
        let head = short(self.head.as_deref().unwrap_or("-"));
        let mut s = match (&self.problem, &self.head_check) {
            (
                None,
                HeadCheck::Unknown {
                    why,
                    accepted: false,
                },
            ) => format!(
                "HEAD UNKNOWN: {} verified (head {head}), but {why}, so a chain cut short cannot be told from a complete one",
                crate::fmt::plural(self.records, "record", "records")
            ),
            (
                None,
                HeadCheck::Unknown {
                    why,
                    accepted: true,
                },
            ) => format!(
                "ok, chain only: {}, head {head}; truncation not checked ({why})",
                crate::fmt::plural(self.records, "record", "records")
            ),
            (None, _) => format!(
                "ok: {}, head {head}",
                crate::fmt::plural(self.records, "record", "records")
            ),
            (Some(p @ Problem::Torn { .. }), _) => format!(
                "ok up to record {}, then a torn write: {} (a crash while writing, not tampering)",
                self.records,
                p.describe()
            ),
            (Some(p), _) => format!("FAILED at record {}: {}", p.seq(), p.describe()),
        };
        if let (Some(Problem::Torn { .. }), HeadCheck::Unknown { why, .. }) =
            (&self.problem, &self.head_check)
        {
            s.push_str(&format!("; head unknown ({why}): truncation not checked"));
        }
        if let Some(sig) = self.signature.describe(self.records) {
            s.push_str("; ");
            s.push_str(&sig);
        }
        s
    }
}

/// The first 12 characters of a hash, enough to tell records apart on screen.
pub(super) fn short(h: &str) -> &str {
    &h[..12.min(h.len())]
}

/// Verifies one run's chain against what the state store recorded of it and its signature
/// under `policy`, reading it line by line; `keep` keeps every record in the verdict (for the
/// tools that show them), otherwise memory is one record at a time.
pub fn verify_run(
    dir: &Path,
    run_id: &str,
    recorded: Recorded,
    policy: &SigPolicy,
    keep: bool,
) -> Verdict {
    let expected = match &recorded {
        Recorded::Head(h) => h.as_ref(),
        Recorded::Unknown { .. } => None,
    };
    // The signature names the record it covers: read first, so the scan keeps that hash.
    let sig = SigRead::read(dir, run_id, policy);
    let scan = Scan {
        keep,
        watch: sig.watch().into_iter().collect(),
    };
    let path = dir.join(format!("{run_id}.jsonl"));
    let report = match std::fs::File::open(&path) {
        Ok(f) => verify_reader(
            std::io::BufReader::with_capacity(1 << 16, f),
            expected,
            &scan,
        ),
        // No chain at all: cut to nothing when the store recorded a head.
        Err(_) => Report {
            problem: expected.map(|h| Problem::Truncated {
                have: 0,
                expected: h.seq,
            }),
            ..Report::default()
        },
    };
    let head_check = match recorded {
        Recorded::Head(Some(_)) => HeadCheck::Compared,
        // A refusal is never in the state store: its one sealed record is the whole chain.
        _ if is_refusal(&report) => HeadCheck::Refusal,
        Recorded::Head(None) => HeadCheck::Compared,
        Recorded::Unknown { why, accepted } => HeadCheck::Unknown { why, accepted },
    };
    let signature = sig.judge(&report);
    Verdict {
        run_id: run_id.to_owned(),
        records: report.records,
        head: report.head,
        problem: report.problem,
        head_check,
        signature,
        entries: report.entries,
    }
}
