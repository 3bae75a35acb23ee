//! What a pass over a table saw in each column: storage classes, the integer range, and which
//! values would not fit a boolean, timestamp, date or JSON column. The type decisions read it.

use super::datetime::{parse_date, parse_timestamp};
use super::encode::clean_text;
use super::json::json_ok;
use super::scan::Val;
use super::types::{MAX_MS, MIN_MS};

/// What one pass saw in a column.
#[derive(Debug, Clone, Default)]
pub(super) struct Stats {
    pub(super) nulls: u64,
    pub(super) ints: u64,
    pub(super) reals: u64,
    pub(super) texts: u64,
    pub(super) blobs: u64,
    pub(super) int_min: Option<i64>,
    pub(super) int_max: Option<i64>,
    /// Integers other than 0 and 1.
    pub(super) non_bool: u64,
    /// Integers beyond 2^53, which a double cannot hold exactly.
    pub(super) wide_ints: u64,
    /// Texts that are not ISO 8601 timestamps / dates / JSON, with the first of each.
    pub(super) not_timestamp: u64,
    pub(super) not_timestamp_example: Option<String>,
    pub(super) not_date: u64,
    pub(super) not_json: u64,
    pub(super) not_json_example: Option<String>,
    /// Non-finite reals (not JSON numbers).
    pub(super) non_finite: u64,
    /// Blobs that are not UTF-8 text without NUL bytes.
    pub(super) binary_blobs: u64,
}

impl Stats {
    /// Each storage class seen, and null, with how many values had it, in a fixed order.
    fn seen(&self) -> impl Iterator<Item = (u64, &'static str)> {
        [
            (self.ints, "integer"),
            (self.reals, "real"),
            (self.texts, "text"),
            (self.blobs, "blob"),
            (self.nulls, "null"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
    }

    /// The storage classes seen, in a fixed order.
    pub(super) fn classes(&self) -> Vec<&'static str> {
        self.seen()
            .map(|(_, name)| name)
            .filter(|name| *name != "null")
            .collect()
    }

    /// `3 integer, 1 null`: what was seen, for reasons.
    pub(super) fn describe(&self) -> String {
        let parts: Vec<String> = self.seen().map(|(n, name)| format!("{n} {name}")).collect();
        if parts.is_empty() {
            "no values".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// Integer timestamps that look like seconds since 1970 rather than milliseconds: all of
    /// them before 1973-03-03 when read as milliseconds.
    pub(super) fn ints_look_like_seconds(&self) -> bool {
        self.ints > 0
            && self.int_min.is_some_and(|m| m > 0)
            && self.int_max.is_some_and(|m| m < 100_000_000_000)
    }
}

/// Storage classes and the integer range only: what a load needs for its reasons and the
/// seconds-or-milliseconds check, without parsing any text.
pub(super) fn count(s: &mut Stats, v: Val<'_>) {
    match v {
        Val::Null => s.nulls += 1,
        Val::Int(i) => {
            s.ints += 1;
            s.int_min = Some(s.int_min.map_or(i, |m| m.min(i)));
            s.int_max = Some(s.int_max.map_or(i, |m| m.max(i)));
        }
        Val::Real(_) => s.reals += 1,
        Val::Text(_) => s.texts += 1,
        Val::Blob(_) => s.blobs += 1,
    }
}

/// Everything the choice of a column's type needs to know about a value: what [`count`]
/// counts, and whether it fits each candidate type.
pub(super) fn observe(s: &mut Stats, v: Val<'_>, check_text: (bool, bool, bool)) {
    count(s, v);
    match v {
        Val::Null => {}
        Val::Int(i) => {
            if i != 0 && i != 1 {
                s.non_bool += 1;
            }
            if i.unsigned_abs() > 1 << 53 {
                s.wide_ints += 1;
            }
            if !(MIN_MS..=MAX_MS).contains(&i) {
                s.not_timestamp += 1;
            }
        }
        Val::Real(f) => {
            if !f.is_finite() {
                s.non_finite += 1;
            }
            s.not_timestamp += 1;
        }
        Val::Text(b) => {
            let (ts, date, js) = check_text;
            let text = std::str::from_utf8(b).ok();
            if ts && text.and_then(parse_timestamp).is_none() {
                s.not_timestamp += 1;
                if s.not_timestamp_example.is_none() {
                    s.not_timestamp_example = Some(String::from_utf8_lossy(b).into_owned());
                }
            }
            if date && text.and_then(parse_date).is_none() {
                s.not_date += 1;
            }
            if js && text.is_none_or(|t| !json_ok(t)) {
                s.not_json += 1;
                if s.not_json_example.is_none() {
                    s.not_json_example = Some(String::from_utf8_lossy(b).into_owned());
                }
            }
        }
        Val::Blob(b) => {
            s.not_timestamp += 1;
            s.not_json += 1;
            if !clean_text(b) {
                s.binary_blobs += 1;
            }
        }
    }
}
