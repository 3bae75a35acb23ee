//! COPY encoding: each value written as a field of `COPY ... FROM STDIN (FORMAT binary)` for
//! its column's type, its canonical form fed to the row hash, and what was not kept exactly
//! named.

use super::binary;
use super::checksum::RowHash;
use super::datetime::{local_to_utc, parse_date, parse_timestamp_zoned};
use super::json::{canon_json_text, json_ok};
use super::limits::over_limit;
use super::report::val_shown;
use super::scan::Val;
use super::types::{ColPlan, Kind, MAX_MS, MIN_MS};
use std::borrow::Cow;

/// UTF-8 without NUL bytes: what a PostgreSQL text value can hold.
pub(super) fn clean_text(b: &[u8]) -> bool {
    !b.contains(&0) && std::str::from_utf8(b).is_ok()
}

/// Appends `b` to a COPY text field, escaping what the format needs.
pub(super) fn escape_into(out: &mut Vec<u8>, b: &[u8]) {
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let rep: &[u8] = match c {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(rep);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

/// A double in the shortest text that reads back as the same value.
pub(super) fn real_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f == f64::INFINITY {
        "Infinity".to_owned()
    } else if f == f64::NEG_INFINITY {
        "-Infinity".to_owned()
    } else {
        format!("{f}")
    }
}

/// A real as SQLite shows it as text (`3.0`, not `3`), but with every digit needed.
pub(super) fn real_as_text(f: f64) -> String {
    let t = real_text(f);
    if f.is_finite() && !t.contains('.') {
        format!("{t}.0")
    } else {
        t
    }
}

/// Text for a text column; lossy for invalid UTF-8 and NUL bytes, which PostgreSQL text
/// cannot hold.
fn text_value(b: &[u8]) -> (Cow<'_, [u8]>, Option<&'static str>) {
    match std::str::from_utf8(b) {
        Ok(_) if !b.contains(&0) => (Cow::Borrowed(b), None),
        Ok(s) => (
            Cow::Owned(s.replace('\0', "").into_bytes()),
            Some("text with NUL bytes: PostgreSQL text cannot hold them, they were removed"),
        ),
        Err(_) => (
            Cow::Owned(String::from_utf8_lossy(b).replace('\0', "").into_bytes()),
            Some("text that is not valid UTF-8: invalid bytes were replaced by U+FFFD"),
        ),
    }
}

/// What encoding one value gave: `Ok(Some((reason, stored)))` when it was not kept exactly,
/// `Err` naming what did not fit the column's type.
pub(super) type Encoded = Result<Option<(&'static str, String)>, String>;

/// Encodes one value as a binary COPY field and feeds its canonical form to the row hash.
pub(super) fn encode(
    out: &mut Vec<u8>,
    hash: &mut RowHash,
    plan: &ColPlan,
    v: Val<'_>,
    scratch: &mut Vec<u8>,
) -> Encoded {
    if let Val::Null = v {
        binary::null(out);
        hash.null();
        return Ok(None);
    }
    if let Some(limit) = plan.limit
        && let Some(what) = over_limit(limit, v)
    {
        return Err(what);
    }
    match plan.kind {
        Kind::Identity | Kind::BigInt | Kind::Double | Kind::Numeric | Kind::Bool => {
            encode_number(out, hash, plan.kind, v)
        }
        Kind::Text => encode_text(out, hash, plan, v),
        Kind::Bytea => encode_bytea(out, hash, plan, v),
        Kind::Timestamptz | Kind::Date => encode_time(out, hash, plan, v),
        Kind::Jsonb => encode_json(out, hash, v, scratch),
    }
}

/// A value that does not fit a column of `kind`.
fn misfit(kind: Kind, what: &str) -> Encoded {
    Err(format!("{what} in a {} column", kind.name()))
}

/// bigint, double precision, numeric and boolean: numbers only, kept by value.
fn encode_number(out: &mut Vec<u8>, hash: &mut RowHash, kind: Kind, v: Val<'_>) -> Encoded {
    match kind {
        Kind::Double => {
            let f = match v {
                Val::Real(f) => f,
                Val::Int(i) if i.unsigned_abs() <= 1 << 53 => i as f64,
                other => return misfit(kind, class_name(other)),
            };
            binary::float8(out, f);
            hash.bytes(&f.to_bits().to_le_bytes());
            Ok(None)
        }
        Kind::Numeric => {
            let t = match v {
                Val::Int(i) => i.to_string(),
                Val::Real(f) if !f.is_nan() => real_text(f),
                other => return misfit(kind, class_name(other)),
            };
            if binary::numeric(out, &t).is_none() {
                return misfit(kind, "a number that is not a plain decimal");
            }
            hash.bytes(norm_decimal(&t).unwrap_or(t).as_bytes());
            Ok(None)
        }
        Kind::Bool => match v {
            Val::Int(i @ (0 | 1)) => {
                binary::boolean(out, i == 1);
                hash.bytes(&[i as u8]);
                Ok(None)
            }
            Val::Int(_) => misfit(kind, "an integer other than 0 or 1"),
            other => misfit(kind, class_name(other)),
        },
        _ => match v {
            Val::Int(i) => {
                binary::int8(out, i);
                hash.bytes(&i.to_le_bytes());
                Ok(None)
            }
            other => misfit(kind, class_name(other)),
        },
    }
}

/// text: text values, and in a column of mixed classes numbers and clean blobs as text.
fn encode_text(out: &mut Vec<u8>, hash: &mut RowHash, plan: &ColPlan, v: Val<'_>) -> Encoded {
    let (bytes, note): (Cow<'_, [u8]>, Option<&'static str>) = match v {
        Val::Text(b) => text_value(b),
        Val::Int(i) if plan.lenient => (
            Cow::Owned(i.to_string().into_bytes()),
            Some("integer stored as text"),
        ),
        Val::Real(f) if plan.lenient => (
            Cow::Owned(real_as_text(f).into_bytes()),
            Some("real stored as text"),
        ),
        Val::Blob(b) if plan.lenient && clean_text(b) => {
            (Cow::Borrowed(b), Some("blob stored as UTF-8 text"))
        }
        other => return misfit(plan.kind, class_name(other)),
    };
    binary::bytes(out, &bytes);
    hash.bytes(&bytes);
    Ok(note.map(|n| (n, String::from_utf8_lossy(&bytes).into_owned())))
}

/// bytea: blobs, and in a column of mixed classes the bytes of everything else.
fn encode_bytea(out: &mut Vec<u8>, hash: &mut RowHash, plan: &ColPlan, v: Val<'_>) -> Encoded {
    let (bytes, note): (Cow<'_, [u8]>, Option<&'static str>) = match v {
        Val::Blob(b) => (Cow::Borrowed(b), None),
        Val::Text(b) if plan.lenient => (Cow::Borrowed(b), Some("text stored as its bytes")),
        Val::Int(i) if plan.lenient => (
            Cow::Owned(i.to_string().into_bytes()),
            Some("integer stored as the bytes of its decimal text"),
        ),
        Val::Real(f) if plan.lenient => (
            Cow::Owned(real_as_text(f).into_bytes()),
            Some("real stored as the bytes of its decimal text"),
        ),
        other => return misfit(plan.kind, class_name(other)),
    };
    binary::bytes(out, &bytes);
    hash.bytes(&bytes);
    Ok(note.map(|n| (n, val_shown(Val::Blob(&bytes)))))
}

/// timestamptz (ISO 8601 text or integer milliseconds) and date (ISO 8601 text).
fn encode_time(out: &mut Vec<u8>, hash: &mut RowHash, plan: &ColPlan, v: Val<'_>) -> Encoded {
    let kind = plan.kind;
    if kind == Kind::Date {
        let days = match v {
            Val::Text(b) => match std::str::from_utf8(b).ok().and_then(parse_date) {
                Some(d) => d,
                None => return misfit(kind, "text that is not an ISO 8601 date"),
            },
            other => return misfit(kind, class_name(other)),
        };
        binary::date(out, days);
        hash.bytes(&i64::from(days).to_le_bytes());
        return Ok(None);
    }
    let micros = match v {
        Val::Int(ms) if (MIN_MS..=MAX_MS).contains(&ms) => ms * 1000,
        Val::Text(b) => match std::str::from_utf8(b).ok().and_then(parse_timestamp_zoned) {
            Some((m, false)) if let Some(tz) = plan.zone => match local_to_utc(m, tz) {
                Ok(m) => m,
                Err(e) => return misfit(kind, &format!("text that {e}")),
            },
            Some((m, _)) => m,
            None => return misfit(kind, "text that is not an ISO 8601 timestamp"),
        },
        Val::Int(_) => return misfit(kind, "an integer out of the millisecond range"),
        other => return misfit(kind, class_name(other)),
    };
    binary::timestamp(out, micros);
    hash.bytes(&micros.to_le_bytes());
    Ok(None)
}

/// jsonb: JSON text and finite numbers, hashed in canonical form.
fn encode_json(
    out: &mut Vec<u8>,
    hash: &mut RowHash,
    v: Val<'_>,
    scratch: &mut Vec<u8>,
) -> Encoded {
    let text = match v {
        Val::Text(b) => match std::str::from_utf8(b) {
            Ok(t) if json_ok(t) => Cow::Borrowed(t),
            _ => return misfit(Kind::Jsonb, "text that is not JSON"),
        },
        Val::Int(i) => Cow::Owned(i.to_string()),
        Val::Real(f) if f.is_finite() => Cow::Owned(real_text(f)),
        other => return misfit(Kind::Jsonb, class_name(other)),
    };
    binary::jsonb(out, text.as_bytes());
    scratch.clear();
    canon_json_text(&text, scratch);
    hash.bytes(scratch);
    Ok(None)
}

/// The storage class of a value, for misfit messages.
pub(super) fn class_name(v: Val<'_>) -> &'static str {
    match v {
        Val::Null => "NULL",
        Val::Int(_) => "an integer",
        Val::Real(_) => "a real",
        Val::Text(_) => "text",
        Val::Blob(_) => "a blob",
    }
}

/// A decimal without insignificant zeros: `-0012.3400` is `-12.34`, `-0.0` is `0`.
pub(super) fn norm_decimal(s: &str) -> Option<String> {
    match s {
        "Infinity" | "-Infinity" | "NaN" => return Some(s.to_owned()),
        _ => {}
    }
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if int == "0" && frac.is_empty() {
        return Some("0".to_owned());
    }
    let sign = if neg { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

#[cfg(test)]
mod tests {
    use super::{escape_into, norm_decimal, real_as_text, real_text};

    #[test]
    fn copy_text_escapes_what_the_format_needs() {
        let mut out = Vec::new();
        escape_into(&mut out, b"a\tb\nc\\d\re");
        assert_eq!(out, b"a\\tb\\nc\\\\d\\re");
    }

    #[test]
    fn decimals_normalise() {
        assert_eq!(norm_decimal("-0012.3400").as_deref(), Some("-12.34"));
        assert_eq!(norm_decimal("-0.000").as_deref(), Some("0"));
        assert_eq!(norm_decimal("100").as_deref(), Some("100"));
        assert_eq!(norm_decimal("Infinity").as_deref(), Some("Infinity"));
        assert_eq!(norm_decimal("1e5"), None);
        assert_eq!(real_text(0.1), "0.1");
        assert_eq!(real_as_text(3.0), "3.0");
        assert_eq!(real_text(f64::NEG_INFINITY), "-Infinity");
    }
}
