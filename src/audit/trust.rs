//! What a verdict can be trusted for, beyond the chain's own hashes, links, sequence and seal:
//! whether the head the state store recorded was compared (`HeadCheck`: a chain cut short is
//! told from a complete one only then), and the run's signature (`Signature`), judged against
//! what the project promises (`SigPolicy`).
//!
//! When a run is signed: the executor signs the chain's head each time a run stops (finished,
//! waiting at a gate, interrupted, failed), and a refusal's one-record chain when it is written;
//! `approve` and `reject` append unsigned (the run signs again when it next stops), and a crash
//! stops before signing. So a finished run (its last record `run_finished`, or a `run_refused`)
//! must carry a signature over exactly its last record; an unfinished run may be unsigned ("not
//! signed yet") or signed over an earlier record, which must then be that record of the chain.
//! Either way a signature over a record the chain does not have (cut short, or another head)
//! fails.

use super::head::Head;
use super::sign::signed_head;
use super::verify::Report;
use std::path::Path;

/// Whether the chain's length was compared with the head the state store recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadCheck {
    /// The state store's record of the run was read (with or without a head).
    Compared,
    /// A refusal: one `run_refused` record, never in the state store, complete by itself.
    Refusal,
    /// The state store could not say (`why`); `accepted` when `--chain-only` accepts that.
    Unknown { why: String, accepted: bool },
}

/// How signatures are to be checked, from the config and the flags.
#[derive(Debug, Clone)]
pub enum SigPolicy {
    /// The project does not sign and no key was given: signatures are not looked at.
    Off,
    /// Check with this public key.
    Key([u8; 32]),
    /// The project signs but they cannot be checked (`why`); `accepted` by an explicit flag.
    Unchecked { why: String, accepted: bool },
}

/// A run's signature status.
#[derive(Debug, Clone, PartialEq)]
pub enum Signature {
    /// Not looked at: the project does not sign its runs.
    NotExpected,
    /// Valid, over the chain's last record.
    Valid,
    /// An unfinished run, validly signed over record `signed` of `records`.
    ValidUpTo { signed: i64 },
    /// An unfinished run with no signature yet.
    NotSignedYet,
    /// A finished run without a signature.
    Missing,
    /// A signature that does not hold, and why.
    Invalid(String),
    /// Not checked, and why; `accepted` when a flag accepted that.
    NotChecked { why: String, accepted: bool },
}

impl Signature {
    /// Whether this status makes verification fail.
    pub fn fails(&self) -> bool {
        matches!(
            self,
            Signature::Missing
                | Signature::Invalid(_)
                | Signature::NotChecked {
                    accepted: false,
                    ..
                }
        )
    }

    /// One word for JSON and the HTML report: `valid`, `valid-so-far`, `not-signed-yet`,
    /// `missing`, `invalid`, `not-checked`, `not-expected`.
    pub fn word(&self) -> &'static str {
        match self {
            Signature::NotExpected => "not-expected",
            Signature::Valid => "valid",
            Signature::ValidUpTo { .. } => "valid-so-far",
            Signature::NotSignedYet => "not-signed-yet",
            Signature::Missing => "missing",
            Signature::Invalid(_) => "invalid",
            Signature::NotChecked { .. } => "not-checked",
        }
    }

    /// The status in plain words, or `None` when there is nothing to say.
    pub fn describe(&self, records: usize) -> Option<String> {
        Some(match self {
            Signature::NotExpected => return None,
            Signature::Valid => "signature valid".to_owned(),
            Signature::ValidUpTo { signed } => format!(
                "signature valid up to record {signed} of {records} (the run has not finished; it signs its chain again when it next stops)"
            ),
            Signature::NotSignedYet => {
                "not signed yet (the run has not finished; it signs its chain when it stops)"
                    .to_owned()
            }
            Signature::Missing => {
                "signature MISSING: the run finished but its chain carries no signature".to_owned()
            }
            Signature::Invalid(why) => format!("signature INVALID: {why}"),
            Signature::NotChecked { why, .. } => format!("signature NOT CHECKED: {why}"),
        })
    }
}

/// Whether a chain's records end the run: its last record is `run_finished` or `run_refused`.
pub fn finished(report: &Report) -> bool {
    matches!(
        report.last_event.as_deref(),
        Some("run_finished" | "run_refused")
    )
}

/// Whether a chain is a refusal's: its first record is `run_refused`.
pub fn is_refusal(report: &Report) -> bool {
    report.first_event.as_deref() == Some("run_refused")
}

/// A run's signature read before its chain is verified: judged already (not looked at, not
/// checkable, damaged), or the head it signs (if any), whose record the scan must watch.
pub enum SigRead {
    Judged(Signature),
    Signed(Option<Head>),
}

impl SigRead {
    /// Reads `<run>.sig` under `policy`.
    pub fn read(dir: &Path, run_id: &str, policy: &SigPolicy) -> SigRead {
        let key = match policy {
            SigPolicy::Off => return SigRead::Judged(Signature::NotExpected),
            SigPolicy::Unchecked { why, accepted } => {
                return SigRead::Judged(Signature::NotChecked {
                    why: why.clone(),
                    accepted: *accepted,
                });
            }
            SigPolicy::Key(key) => key,
        };
        match signed_head(dir, run_id, key) {
            Ok(head) => SigRead::Signed(head),
            Err(why) => SigRead::Judged(Signature::Invalid(why)),
        }
    }

    /// The sequence whose hash the scan must keep.
    pub fn watch(&self) -> Option<i64> {
        match self {
            SigRead::Signed(Some(h)) => Some(h.seq),
            _ => None,
        }
    }

    /// Judges the signature against the verified chain.
    pub fn judge(self, report: &Report) -> Signature {
        let done = finished(report);
        match self {
            SigRead::Judged(s) => s,
            SigRead::Signed(None) if done => Signature::Missing,
            SigRead::Signed(None) => Signature::NotSignedYet,
            SigRead::Signed(Some(signed)) => compare_signed(&signed, report, done),
        }
    }
}

/// A valid signature over `signed`, compared with the chain it should cover.
fn compare_signed(signed: &Head, report: &Report, done: bool) -> Signature {
    let records = report.records as i64;
    if signed.seq > records || signed.seq < 1 {
        return Signature::Invalid(format!(
            "the signature covers record {} but the chain has {}: it was cut short after signing",
            signed.seq,
            crate::fmt::plural(records, "record", "records")
        ));
    }
    if report.hash_at(signed.seq) != Some(signed.hash.as_str()) {
        return Signature::Invalid(format!(
            "the signature covers another record {} than the chain holds: the chain was rewritten after signing",
            signed.seq
        ));
    }
    match (signed.seq == records, done) {
        (true, _) => Signature::Valid,
        (false, true) => Signature::Invalid(format!(
            "the signature covers record {} but the finished run's chain ends at record {records}: records were added after signing",
            signed.seq
        )),
        (false, false) => Signature::ValidUpTo { signed: signed.seq },
    }
}
