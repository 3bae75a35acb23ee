//! Verifying a chain's bytes: every line a record, hashes recomputed, links and a gapless
//! sequence, one run id, nothing after the run's final record (`run_finished`, or a refusal's
//! `run_refused`), and nothing missing before the head the state store recorded.
//! `Problem` tells a torn write (a crash) from tampering and truncation.

use super::canonical::sealed;
use super::head::{GENESIS, Head};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::io::BufRead;

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
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Complete records that verified.
    pub records: usize,
    /// The hash of the last verified record.
    pub head: Option<String>,
    pub problem: Option<Problem>,
    /// Records read, for tools that show them (empty unless asked for: see [`Scan`]).
    pub entries: Vec<Map<String, Json>>,
    /// The event of the first and of the last verified record.
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    /// The hashes of the verified records at the sequences [`Scan::watch`] asked for.
    pub watched: BTreeMap<i64, String>,
}

impl Report {
    /// The hash of verified record `seq`, when it was kept or watched.
    pub fn hash_at(&self, seq: i64) -> Option<&str> {
        if let Some(h) = self.watched.get(&seq) {
            return Some(h);
        }
        let i = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.entries.get(i)?.get("hash").and_then(Json::as_str)
    }
}

/// What a scan keeps besides the verdict: every record (`keep`, for tools that show them), or
/// only the hashes at the sequences in `watch` (the recorded head, the signed head), so that
/// verifying holds one record at a time.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub keep: bool,
    pub watch: Vec<i64>,
}

/// Verifies a chain's bytes: every line a record, hashes recomputed, links, gapless sequence,
/// one run id; then, with `expected` (the head from the state store), that nothing is missing.
/// Keeps every record.
pub fn verify_bytes(bytes: &[u8], expected: Option<&Head>) -> Report {
    let scan = Scan {
        keep: true,
        watch: Vec::new(),
    };
    verify_reader(bytes, expected, &scan)
}

/// Verifies a chain read line by line from `input` (memory: one record at a time, plus what
/// `scan` keeps). A read error ends the chain there, as a problem of the line it was reading.
pub fn verify_reader(mut input: impl BufRead, expected: Option<&Head>, scan: &Scan) -> Report {
    let mut report = Report::default();
    let mut watch = scan.watch.clone();
    watch.extend(expected.map(|h| h.seq));
    let mut prev = GENESIS.to_owned();
    let mut run_id: Option<String> = None;
    let mut final_seq: Option<(i64, String)> = None;
    let mut line_no = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = input.read_until(b'\n', &mut buf);
        let seq = report.records as i64 + 1;
        match read {
            Ok(0) => break,
            Ok(_) => line_no += 1,
            Err(e) => {
                report.problem = Some(Problem::Tampered {
                    line: line_no + 1,
                    seq,
                    reason: format!("could not be read: {e}"),
                });
                break;
            }
        }
        // A crash cuts the record being written short, anywhere up to its newline; a complete
        // line that is not a record was put there.
        let Some(line) = buf.strip_suffix(b"\n") else {
            report.problem = Some(Problem::Torn { line: line_no, seq });
            break;
        };
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
                let event = rec.get("event").and_then(Json::as_str).map(str::to_owned);
                // A refusal's one record ends its chain as `run_finished` ends a run's.
                if let Some(ev @ ("run_finished" | "run_refused")) = event.as_deref() {
                    final_seq = Some((seq, ev.to_owned()));
                }
                if report.records == 0 {
                    report.first_event.clone_from(&event);
                }
                report.last_event = event;
                if watch.contains(&seq) {
                    report.watched.insert(seq, hash.clone());
                }
                prev.clone_from(&hash);
                report.records += 1;
                report.head = Some(hash);
                if scan.keep {
                    report.entries.push(rec);
                }
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

/// Checks records appended after `head` by another process (complete lines, each of run
/// `run_id` and chaining on from the one before it) and returns the head they lead to and the
/// last one's event.
pub fn continue_chain(
    bytes: &[u8],
    head: &Head,
    run_id: &str,
) -> Result<(Head, Option<String>), Problem> {
    let mut head = head.clone();
    let mut rid = Some(run_id.to_owned());
    let mut last = None;
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let seq = head.seq + 1;
        let Some(line) = line.strip_suffix(b"\n") else {
            return Err(Problem::Torn { line: i + 1, seq });
        };
        let (rec, hash) = check_record(line, Place { line: i + 1, seq }, &head.hash, &mut rid)?;
        last = rec.get("event").and_then(Json::as_str).map(str::to_owned);
        head = Head { seq, hash };
    }
    Ok((head, last))
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
    let (computed, canonical_line) = sealed(&rec);
    if computed != hash {
        return Err(tampered(
            "was changed after it was written (its hash does not match its contents)",
        ));
    }
    if canonical_line.as_bytes() != line {
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
            if head.seq > 0 && report.hash_at(head.seq) != Some(head.hash.as_str()) {
                report.problem = Some(Problem::HeadMismatch { seq: head.seq });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::canonical::sealed;
    use super::*;

    /// A chain of `n` records of run `r1` as the writer appends them.
    fn chain(n: usize, last: &str) -> Vec<u8> {
        let mut prev = GENESIS.to_owned();
        let mut out = Vec::new();
        for seq in 1..=n {
            let event = if seq == n { last } else { "step_started" };
            let serde_json::Value::Object(rec) = serde_json::json!({
                "event": event, "seq": seq, "prev": prev, "run_id": "r1", "step": format!("s{seq}"),
            }) else {
                unreachable!()
            };
            let (hash, line) = sealed(&rec);
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
            prev = hash;
        }
        out
    }

    /// Scanning without keeping records gives the verdict keeping them gives, for a good chain
    /// and for each kind of problem, with and without a recorded head.
    #[test]
    fn a_scan_that_keeps_nothing_judges_as_one_that_keeps_everything() {
        let good = chain(5, "run_finished");
        let mut torn = chain(4, "step_started");
        torn.truncate(torn.len() - 7);
        let mut tampered = chain(5, "step_started");
        let at = tampered.iter().position(|&b| b == b's').unwrap_or(0);
        tampered[at + 40] ^= 1;
        let mut sealed_then_more = chain(3, "run_finished");
        sealed_then_more.extend(
            chain(4, "step_started")
                .split(|&b| b == b'\n')
                .nth(3)
                .unwrap(),
        );
        sealed_then_more.push(b'\n');
        let heads = |c: &[u8]| {
            let r = verify_bytes(c, None);
            let mut hs = vec![None];
            for seq in [1, 3, r.records as i64, r.records as i64 + 2] {
                let hash = r.hash_at(seq).unwrap_or("0f").to_owned();
                hs.push(Some(Head { seq, hash }));
            }
            hs.push(Some(Head {
                seq: 2,
                hash: "bad".into(),
            }));
            hs
        };
        for c in [&good, &torn, &tampered, &sealed_then_more, &Vec::new()] {
            for head in heads(c) {
                let all = verify_bytes(c, head.as_ref());
                let scan = Scan {
                    keep: false,
                    watch: vec![2],
                };
                let lean = verify_reader(&c[..], head.as_ref(), &scan);
                assert_eq!(lean.records, all.records);
                assert_eq!(lean.head, all.head);
                assert_eq!(lean.problem, all.problem, "{head:?}");
                assert!(lean.entries.is_empty());
                let event = |e: Option<&Map<String, Json>>| {
                    e.and_then(|r| r.get("event")?.as_str().map(str::to_owned))
                };
                assert_eq!(lean.first_event, event(all.entries.first()));
                assert_eq!(lean.last_event, event(all.entries.last()));
                assert_eq!(lean.hash_at(2), all.hash_at(2));
            }
        }
        assert!(verify_bytes(&good, None).problem.is_none());
        assert!(matches!(
            verify_bytes(&torn, None).problem,
            Some(Problem::Torn { .. })
        ));
        assert!(matches!(
            verify_bytes(&tampered, None).problem,
            Some(Problem::Tampered { .. })
        ));
        assert!(matches!(
            verify_bytes(&sealed_then_more, None).problem,
            Some(Problem::Tampered { .. })
        ));
    }

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
