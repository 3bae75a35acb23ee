//! Verifying a chain's bytes: every line a record, hashes recomputed, links and a gapless
//! sequence, one run id, nothing after the run's final record (`run_finished`, or a refusal's
//! `run_refused`), and nothing missing before the head the state store recorded.
//! `Problem` tells a torn write (a crash) from tampering and truncation.

use super::canonical::{canonical, record_hash};
use super::head::{GENESIS, Head};
use serde_json::{Map, Value as Json};

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
                "the log ends at record {have} but the state store recorded {}: {} removed",
                crate::fmt::plural(*expected, "record", "records"),
                if *expected == have + 1 {
                    format!("record {expected} was")
                } else {
                    format!("records {} to {expected} were", have + 1)
                }
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
    let mut final_seq: Option<(i64, String)> = None;
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
        // A crash cuts the record being written short, anywhere up to its newline; a complete
        // line that is not a record was put there.
        if !complete {
            report.problem = Some(Problem::Torn { line: line_no, seq });
            break;
        }
        let at = Place { line: line_no, seq };
        // A finished run's chain is sealed by its final record: whatever follows it, correctly
        // hashed and linked or not, was added afterwards.
        if let Some((last, event)) = &final_seq {
            report.problem = Some(Problem::Tampered {
                line: line_no,
                seq,
                reason: format!(
                    "comes after the run's final record (record {last}, `{event}`): a finished run's chain is sealed, so it was added later"
                ),
            });
            break;
        }
        match check_record(line, at, &prev, &mut run_id) {
            Ok((rec, hash)) => {
                // A refusal's one record ends its chain as `run_finished` ends a run's.
                if let Some(ev @ ("run_finished" | "run_refused")) =
                    rec.get("event").and_then(Json::as_str)
                {
                    final_seq = Some((seq, ev.to_owned()));
                }
                prev = hash.clone();
                report.records += 1;
                report.head = Some(hash);
                report.entries.push(rec);
            }
            Err(problem) => {
                report.problem = Some(problem);
                break;
            }
        }
    }
    if let Some(head) = expected {
        compare_head(&mut report, head);
    }
    report
}

/// Where a record is: its line in the file and the sequence number it must have.
#[derive(Clone, Copy)]
struct Place {
    line: usize,
    seq: i64,
}

/// Checks one complete line: a record with the expected sequence, linked to `prev`, its hash
/// matching its contents, in canonical form, of the same run as the records before it. Returns
/// the record and its hash.
fn check_record(
    line: &[u8],
    at: Place,
    prev: &str,
    run_id: &mut Option<String>,
) -> Result<(Map<String, Json>, String), Problem> {
    let Place { line: line_no, seq } = at;
    let tampered = |reason: &str| Problem::Tampered {
        line: line_no,
        seq,
        reason: reason.to_owned(),
    };
    let parsed = std::str::from_utf8(line)
        .ok()
        .and_then(|t| serde_json::from_str::<Json>(t).ok());
    let Some(Json::Object(rec)) = parsed else {
        return Err(tampered("is not a valid record"));
    };
    let got_seq = rec.get("seq").and_then(Json::as_i64);
    if got_seq != Some(seq) {
        return Err(tampered(&match got_seq {
            Some(s) if s > seq => format!(
                "has sequence {s} where {seq} was expected: records are missing or out of order"
            ),
            Some(s) => format!(
                "has sequence {s} where {seq} was expected: records are repeated or out of order"
            ),
            None => "has no sequence number".to_owned(),
        }));
    }
    if rec.get("prev").and_then(Json::as_str) != Some(prev) {
        return Err(tampered("does not link to the record before it"));
    }
    let hash = rec
        .get("hash")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    if record_hash(&rec) != hash {
        return Err(tampered(
            "was changed after it was written (its hash does not match its contents)",
        ));
    }
    if canonical(&Json::Object(rec.clone())).as_bytes() != line {
        return Err(tampered(
            "is not in canonical form (bytes were changed without changing its meaning)",
        ));
    }
    let rid = rec.get("run_id").and_then(Json::as_str).map(str::to_owned);
    match (&*run_id, rid) {
        (None, Some(r)) => *run_id = Some(r),
        (Some(a), Some(b)) if *a == b => {}
        _ => return Err(tampered("belongs to another run")),
    }
    Ok((rec, hash))
}

/// Compares what verified with the head the state store recorded: a chain that ends before it
/// was cut short, and the record at its sequence must carry its hash.
fn compare_head(report: &mut Report, head: &Head) {
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
                && at.and_then(|r| r.get("hash")).and_then(Json::as_str) != Some(head.hash.as_str())
            {
                report.problem = Some(Problem::HeadMismatch { seq: head.seq });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Problem;

    #[test]
    fn a_truncation_names_one_record_or_a_range() {
        let one = Problem::Truncated {
            have: 25,
            expected: 26,
        };
        assert_eq!(
            one.describe(),
            "the log ends at record 25 but the state store recorded 26 records: record 26 was removed"
        );
        let many = Problem::Truncated {
            have: 3,
            expected: 7,
        };
        assert!(many.describe().ends_with("records 4 to 7 were removed"));
        let all_but = Problem::Truncated {
            have: 0,
            expected: 1,
        };
        assert!(
            all_but
                .describe()
                .contains("recorded 1 record: record 1 was removed")
        );
    }
}
