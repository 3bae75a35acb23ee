//! One source value converted to a target column's type, as the text `COPY` carries (before
//! escaping), or why it does not convert. Nothing is rounded, cut or turned into NULL: a value
//! the target type cannot hold exactly is an error.

use super::super::datetime::{
    format_date, format_timestamp, local_to_utc, parse_date, parse_timestamp_zoned,
};
use super::super::encode::{class_name, norm_decimal, real_text};
use super::super::json::json_ok;
use super::super::scan::Val;
use super::columns::{Scalar, TgtType};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::fmt::Write as _;

/// How date-time text without a zone is read.
#[derive(Debug, Clone, Copy)]
pub(in crate::db::copy) enum Zone {
    Utc,
    Named(chrono_tz::Tz),
}

/// What an integer date-time counts since 1970.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::db::copy) enum Epoch {
    Seconds,
    Milliseconds,
    /// Not said: milliseconds, and an integer that could be seconds is an error.
    Unsaid,
}

/// How source values are read: the zone of date-time text without one, the unit of integer
/// date-times.
#[derive(Debug, Clone, Copy)]
pub(in crate::db::copy) struct Reading {
    pub(in crate::db::copy) zone: Zone,
    pub(in crate::db::copy) epoch: Epoch,
}

/// Below this many milliseconds (1973-03-03) an integer could as well be seconds since 1970
/// of a recent date; the same bound own-tables mode uses.
const AMBIGUOUS_MS: i64 = 100_000_000_000;

/// Milliseconds since 1970 accepted for integer date-times (years 1 to 9999).
const MIN_MS: i64 = -62_135_596_800_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// Writes the value's text for a column of type `ty` to `out`: `Ok(false)` for NULL.
pub(in crate::db::copy) fn convert(
    ty: &TgtType,
    v: Val<'_>,
    how: Reading,
    out: &mut String,
) -> Result<bool, String> {
    if let Val::Null = v {
        return Ok(false);
    }
    match ty {
        TgtType::Scalar(s) => scalar(s, v, how, out)?,
        TgtType::Array(s) => array(s, v, how, out)?,
    }
    Ok(true)
}

/// A JSON array (text) as a one-dimensional PostgreSQL array literal, each element converted.
fn array(elem: &Scalar, v: Val<'_>, how: Reading, out: &mut String) -> Result<(), String> {
    let Val::Text(b) = v else {
        return Err(format!("{} is not a JSON array", class_name(v)));
    };
    let items: Vec<Json> = serde_json::from_slice(b).map_err(|_| "is not a JSON array")?;
    out.push('{');
    let mut one = String::new();
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let text;
        let val = match item {
            Json::Null => {
                out.push_str("NULL");
                continue;
            }
            Json::String(s) => Val::Text(s.as_bytes()),
            Json::Number(x) => match x.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Real(x.as_f64().unwrap_or(f64::NAN)),
            },
            Json::Bool(b) if *elem == Scalar::Bool => Val::Int(i64::from(*b)),
            other if *elem == Scalar::Json => {
                text = other.to_string();
                Val::Text(text.as_bytes())
            }
            _ => return Err(format!("element {} is not a {}", n + 1, elem_name(elem))),
        };
        one.clear();
        scalar(elem, val, how, &mut one).map_err(|e| format!("element {}: {e}", n + 1))?;
        out.push('"');
        for c in one.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    Ok(())
}

fn elem_name(s: &Scalar) -> &'static str {
    match s {
        Scalar::Bool => "boolean",
        Scalar::Int(..) | Scalar::Float4 | Scalar::Float8 | Scalar::Numeric(_) => "number",
        _ => "string",
    }
}

/// One scalar value (not NULL).
fn scalar(s: &Scalar, v: Val<'_>, how: Reading, out: &mut String) -> Result<(), String> {
    match s {
        Scalar::Bool => out.push(boolean(v)?),
        Scalar::Int(min, max) => {
            let i = integer(v)?;
            if i < *min || i > *max {
                return Err(format!("is out of the column's range ({min} to {max})"));
            }
            let _ = write!(out, "{i}");
        }
        Scalar::Float4 | Scalar::Float8 => out.push_str(&float(s, v)?),
        Scalar::Numeric(limits) => out.push_str(&numeric(v, *limits)?),
        Scalar::Text(limit) | Scalar::Char(limit) => {
            let t = text(v)?;
            if let Some(n) = limit
                && t.chars().count() > *n
            {
                return Err(format!("is longer than the column's {n} characters"));
            }
            out.push_str(&t);
        }
        Scalar::Enum(labels) => {
            let t = utf8(v)?;
            if !labels.iter().any(|l| l == t) {
                return Err(format!(
                    "is not one of the enum's values ({})",
                    labels.join(", ")
                ));
            }
            out.push_str(t);
        }
        Scalar::Date => date(v, how.epoch, out)?,
        Scalar::Timestamp(p) | Scalar::Timestamptz(p) => {
            let micros = instant(v, how)?;
            let unit = 10i64.pow(6 - p);
            if micros % unit != 0 {
                return Err(format!(
                    "has more fractional digits than the column's {p} would keep"
                ));
            }
            let mut buf = Vec::with_capacity(32);
            format_timestamp(&mut buf, micros);
            if matches!(s, Scalar::Timestamp(_)) {
                buf.truncate(buf.len() - 3);
            }
            out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
        }
        Scalar::Json => match v {
            Val::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Val::Real(f) if f.is_finite() => out.push_str(&real_text(f)),
            _ => {
                let t = utf8(v)?;
                if !json_ok(t) {
                    return Err("is not JSON".to_owned());
                }
                out.push_str(t);
            }
        },
        Scalar::Bytea => {
            let b: &[u8] = match v {
                Val::Blob(b) | Val::Text(b) => b,
                other => return Err(format!("{} is not bytes", class_name(other))),
            };
            out.push_str("\\x");
            out.push_str(&hex::encode(b));
        }
        Scalar::Uuid => {
            let t = utf8(v)?;
            let hex_digits = t.chars().filter(char::is_ascii_hexdigit).count();
            if hex_digits != 32
                || !t
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || "-{}".contains(c))
            {
                return Err("is not a UUID".to_owned());
            }
            out.push_str(t);
        }
        Scalar::Other => out.push_str(&text(v)?),
    }
    Ok(())
}

/// UTF-8 text without NUL bytes, or why not.
fn utf8<'v>(v: Val<'v>) -> Result<&'v str, String> {
    match v {
        Val::Text(b) => match std::str::from_utf8(b) {
            Ok(s) if !s.contains('\0') => Ok(s),
            Ok(_) => Err("has NUL bytes, which PostgreSQL text cannot hold".to_owned()),
            Err(_) => Err("is not valid UTF-8".to_owned()),
        },
        other => Err(format!("{} is not text", class_name(other))),
    }
}

/// Text for a text column: text as it is, numbers as their exact decimal text.
fn text(v: Val<'_>) -> Result<Cow<'_, str>, String> {
    match v {
        Val::Int(i) => Ok(Cow::Owned(i.to_string())),
        Val::Real(f) => Ok(Cow::Owned(real_text(f))),
        other => utf8(other).map(Cow::Borrowed),
    }
}

fn boolean(v: Val<'_>) -> Result<char, String> {
    let b = match v {
        Val::Int(0) => Some(false),
        Val::Int(1) => Some(true),
        Val::Real(0.0) => Some(false),
        Val::Real(1.0) => Some(true),
        Val::Text(t) => match t.to_ascii_lowercase().as_slice() {
            b"true" | b"t" | b"1" | b"yes" => Some(true),
            b"false" | b"f" | b"0" | b"no" => Some(false),
            _ => None,
        },
        _ => None,
    };
    b.map(|b| if b { 't' } else { 'f' })
        .ok_or_else(|| "is not a boolean (0/1, true/false)".to_owned())
}

fn integer(v: Val<'_>) -> Result<i64, String> {
    match v {
        Val::Int(i) => Ok(i),
        Val::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        Val::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| "is not an integer".to_owned()),
        _ => Err("is not an integer".to_owned()),
    }
}

fn float(s: &Scalar, v: Val<'_>) -> Result<String, String> {
    let f = match v {
        Val::Int(i) if i.unsigned_abs() <= 1 << 53 => i as f64,
        Val::Real(f) => f,
        Val::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or("is not a number")?,
        _ => return Err("is not a number a double holds exactly".to_owned()),
    };
    if *s == Scalar::Float4 && f.is_finite() && (f as f32).to_string() != real_text(f) {
        return Err("does not fit a real (4-byte float) exactly".to_owned());
    }
    Ok(real_text(f))
}

/// A number as numeric(p,s) holds it; more integer digits than `p - s` or fractional
/// digits beyond `s` are errors (PostgreSQL would round them).
fn numeric(v: Val<'_>, limits: Option<(u32, u32)>) -> Result<String, String> {
    let text = match v {
        Val::Int(i) => i.to_string(),
        Val::Real(f) if f.is_finite() => real_text(f),
        Val::Text(t) => std::str::from_utf8(t)
            .map_err(|_| "is not a decimal number")?
            .to_owned(),
        _ => return Err("is not a decimal number".to_owned()),
    };
    let norm = norm_decimal(&text)
        .filter(|n| !n.contains('N') && !n.contains('I'))
        .ok_or("is not a decimal number")?;
    if let Some((p, s)) = limits {
        let digits = norm.trim_start_matches('-');
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let int_digits = if int == "0" { 0 } else { int.len() };
        if frac.len() > s as usize {
            return Err(format!(
                "has more than {s} decimal places: numeric({p},{s}) would round it"
            ));
        }
        if int_digits + s as usize > p as usize {
            return Err(format!("overflows numeric({p},{s})"));
        }
    }
    Ok(norm)
}

/// An integer date-time in milliseconds since 1970, read in `epoch`'s unit; refused when the
/// unit was not said and the value could be either.
fn epoch_ms(i: i64, epoch: Epoch) -> Result<i64, String> {
    let ms = match epoch {
        Epoch::Seconds => i.checked_mul(1000),
        Epoch::Milliseconds => Some(i),
        Epoch::Unsaid if i != 0 && i.abs() < AMBIGUOUS_MS => {
            return Err(
                "is an integer date-time that could be seconds or milliseconds since 1970 \
                 (as milliseconds it is before 1973-03-03): say which with `epoch: seconds` or \
                 `epoch: milliseconds`"
                    .to_owned(),
            );
        }
        Epoch::Unsaid => Some(i),
    };
    ms.filter(|ms| (MIN_MS..=MAX_MS).contains(ms))
        .ok_or_else(|| "is an integer date-time outside the years 1 to 9999".to_owned())
}

/// A date: ISO date text, a date-time at midnight, or an integer date-time at midnight UTC.
fn date(v: Val<'_>, epoch: Epoch, out: &mut String) -> Result<(), String> {
    let days = match v {
        Val::Text(_) => {
            let t = utf8(v)?;
            match parse_date(t) {
                Some(d) => i64::from(d),
                None => {
                    let micros = common_timestamp(t).ok_or("is not a date")?.0;
                    if micros % 86_400_000_000 != 0 {
                        return Err("is a date-time with a time of day, not a date".to_owned());
                    }
                    micros / 86_400_000_000
                }
            }
        }
        Val::Int(i) => {
            let ms = epoch_ms(i, epoch)?;
            if ms % 86_400_000 != 0 {
                return Err("is a date-time with a time of day, not a date".to_owned());
            }
            ms / 86_400_000
        }
        _ => return Err("is not a date".to_owned()),
    };
    let mut buf = Vec::with_capacity(10);
    format_date(&mut buf, i32::try_from(days).map_err(|_| "is not a date")?);
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
    Ok(())
}

/// Microseconds since 1970 (UTC) of a date-time: text with its zone or in the reading's zone,
/// or an integer since 1970 in the reading's unit.
fn instant(v: Val<'_>, how: Reading) -> Result<i64, String> {
    let t = match v {
        Val::Int(i) => return Ok(epoch_ms(i, how.epoch)? * 1000),
        Val::Text(_) => utf8(v)?,
        _ => return Err("is not a date-time".to_owned()),
    };
    let (micros, zoned) = common_timestamp(t).ok_or("is not a date-time")?;
    match how.zone {
        _ if zoned => Ok(micros),
        Zone::Utc => Ok(micros),
        Zone::Named(tz) => local_to_utc(micros, tz),
    }
}

/// ISO 8601 and its common variants: `/` between date parts, a space before the zone,
/// `UTC`/`GMT` for `Z`.
fn common_timestamp(t: &str) -> Option<(i64, bool)> {
    // ISO 8601 as it is (most values): parsed without a copy.
    if let Some(parsed) = parse_timestamp_zoned(t) {
        return Some(parsed);
    }
    let mut s = t.trim().to_owned();
    if s.len() >= 10 && s.as_bytes()[4] == b'/' && s.as_bytes()[7] == b'/' {
        s.replace_range(4..5, "-");
        s.replace_range(7..8, "-");
    }
    for suffix in [" UTC", " GMT"] {
        if let Some(rest) = s.strip_suffix(suffix) {
            s = format!("{rest}Z");
        }
    }
    if let Some(at) = s.rfind(' ')
        && at > 10
        && s[at + 1..].starts_with(['+', '-', 'Z'])
    {
        s.remove(at);
    }
    parse_timestamp_zoned(&s)
}

#[cfg(test)]
mod tests {
    use super::{Epoch, Reading, Scalar, TgtType, Val, Zone, convert};

    fn reading(zone: Zone, epoch: Epoch) -> Reading {
        Reading { zone, epoch }
    }

    fn conv_in(ty: Scalar, v: Val<'_>, how: Reading) -> Result<String, String> {
        let mut out = String::new();
        convert(&TgtType::Scalar(ty), v, how, &mut out).map(|_| out)
    }

    fn conv(ty: Scalar, v: Val<'_>, zone: Zone) -> Result<String, String> {
        conv_in(ty, v, reading(zone, Epoch::Unsaid))
    }

    #[test]
    fn integer_date_times_are_read_in_the_unit_said_or_refused_when_ambiguous() {
        let ts = Scalar::Timestamptz(3);
        let secs = reading(Zone::Utc, Epoch::Seconds);
        let ms = reading(Zone::Utc, Epoch::Milliseconds);
        assert_eq!(
            conv_in(ts.clone(), Val::Int(1_700_000_000), secs).unwrap(),
            "2023-11-14 22:13:20.000000+00"
        );
        assert_eq!(
            conv_in(ts.clone(), Val::Int(1_700_000_000), ms).unwrap(),
            "1970-01-20 16:13:20.000000+00"
        );
        let e = conv(ts.clone(), Val::Int(1_700_000_000), Zone::Utc).unwrap_err();
        assert!(e.contains("could be seconds or milliseconds"), "{e}");
        // Unsaid: milliseconds from 1973-03-03 on, and 0 is the same instant either way.
        assert_eq!(
            conv(ts.clone(), Val::Int(100_000_000_000), Zone::Utc).unwrap(),
            "1973-03-03 09:46:40.000000+00"
        );
        assert!(conv(ts.clone(), Val::Int(0), Zone::Utc).is_ok());
        assert!(conv_in(ts, Val::Int(i64::MAX), secs).is_err());
        assert_eq!(
            conv_in(Scalar::Date, Val::Int(1_699_920_000), secs).unwrap(),
            "2023-11-14"
        );
        assert!(conv_in(Scalar::Date, Val::Int(1_699_920_001), secs).is_err());
    }

    #[test]
    fn values_convert_exactly_or_not_at_all() {
        let utc = Zone::Utc;
        let berlin = Zone::Named(chrono_tz::Europe::Berlin);
        assert_eq!(conv(Scalar::Bool, Val::Int(1), utc).unwrap(), "t");
        assert_eq!(conv(Scalar::Bool, Val::Text(b"FALSE"), utc).unwrap(), "f");
        assert!(conv(Scalar::Bool, Val::Int(2), utc).is_err());
        let ts = Scalar::Timestamptz(6);
        assert_eq!(
            conv(ts.clone(), Val::Text(b"2024-07-01 12:00:00"), berlin).unwrap(),
            "2024-07-01 10:00:00.000000+00"
        );
        assert_eq!(
            conv(ts.clone(), Val::Text(b"2024/07/01 12:00:00 +02:00"), utc).unwrap(),
            "2024-07-01 10:00:00.000000+00"
        );
        assert!(conv(ts.clone(), Val::Text(b"2024-03-31 02:30:00"), berlin).is_err());
        assert!(conv(ts, Val::Text(b"yesterday"), utc).is_err());
        assert!(
            conv(
                Scalar::Timestamp(3),
                Val::Text(b"2024-01-01 00:00:00.0001"),
                utc
            )
            .is_err()
        );
        assert_eq!(
            conv(Scalar::Timestamp(3), Val::Int(1_700_000_000_123), utc).unwrap(),
            "2023-11-14 22:13:20.123000"
        );
        let money = Scalar::Numeric(Some((6, 2)));
        assert_eq!(conv(money.clone(), Val::Real(12.5), utc).unwrap(), "12.5");
        assert!(conv(money.clone(), Val::Text(b"1.005"), utc).is_err());
        assert!(conv(money, Val::Int(10_000), utc).is_err());
        assert!(conv(Scalar::Text(Some(3)), Val::Text(b"abcd"), utc).is_err());
        assert!(conv(Scalar::Int(-32768, 32767), Val::Int(40_000), utc).is_err());
        let e = Scalar::Enum(vec!["A".to_owned(), "B".to_owned()]);
        assert!(conv(e, Val::Text(b"C"), utc).is_err());
        assert_eq!(
            conv(Scalar::Date, Val::Text(b"2024-01-31T00:00:00Z"), utc).unwrap(),
            "2024-01-31"
        );
        let mut out = String::new();
        convert(
            &TgtType::Array(Scalar::Text(None)),
            Val::Text(br#"["a \"b\"", null, "c\\d"]"#),
            reading(utc, Epoch::Unsaid),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, r#"{"a \"b\"",NULL,"c\\d"}"#);
        assert!(
            convert(
                &TgtType::Array(Scalar::Text(None)),
                Val::Text(b"[1"),
                reading(utc, Epoch::Unsaid),
                &mut out
            )
            .is_err()
        );
    }
}
