//! Column defaults: SQLite default expressions translated to PostgreSQL for the column's
//! type, or the reason one is not carried over.

use super::datetime::{format_timestamp, parse_date, parse_timestamp};
use super::json::json_ok;
use super::types::{Kind, MAX_MS, MIN_MS};

/// A PostgreSQL string literal.
fn ql(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A translated default: `Ok(None)` for none, `Err` with the reason it is not carried over.
type Translated = Result<Option<String>, String>;

/// The PostgreSQL default for a SQLite default expression, `Ok(None)` for none, `Err` with the
/// reason when it cannot be carried over.
pub(super) fn translate_default(expr: &str, kind: Kind) -> Translated {
    let mut e = expr.trim();
    while e.starts_with('(') && e.ends_with(')') && e.len() >= 2 {
        e = e[1..e.len() - 1].trim();
    }
    if let Some(t) = keyword_default(expr, &e.to_ascii_uppercase(), kind) {
        return t;
    }
    if let Some(n) = number_literal(e) {
        return number_default(expr, n, kind);
    }
    if (e.starts_with("X'") || e.starts_with("x'")) && e.ends_with('\'') && e.len() >= 3 {
        let hex = &e[2..e.len() - 1];
        return match kind {
            Kind::Bytea
                if hex.bytes().all(|c| c.is_ascii_hexdigit()) && hex.len().is_multiple_of(2) =>
            {
                Ok(Some(format!("'\\x{}'::bytea", hex.to_ascii_lowercase())))
            }
            _ => unsupported(expr, kind),
        };
    }
    if let Some(s) = string_literal(e) {
        return string_default(expr, &s, kind);
    }
    Err(format!(
        "`{expr}` is an expression runbook does not translate"
    ))
}

/// Why `expr` has no translation for a column of `kind`.
fn unsupported(expr: &str, kind: Kind) -> Translated {
    Err(format!(
        "`{expr}` has no translation for a {} column",
        kind.name()
    ))
}

/// `NULL`, `CURRENT_TIMESTAMP`, `CURRENT_DATE`, `CURRENT_TIME`, `TRUE`, `FALSE`; `None` for
/// anything else.
fn keyword_default(expr: &str, upper: &str, kind: Kind) -> Option<Translated> {
    Some(match upper {
        "NULL" => Ok(None),
        "CURRENT_TIMESTAMP" => match kind {
            Kind::Timestamptz => Ok(Some("CURRENT_TIMESTAMP".to_owned())),
            Kind::Text => Ok(Some(
                "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')".to_owned(),
            )),
            _ => unsupported(expr, kind),
        },
        "CURRENT_DATE" => match kind {
            Kind::Date => Ok(Some("CURRENT_DATE".to_owned())),
            Kind::Timestamptz => Ok(Some(
                "date_trunc('day', CURRENT_TIMESTAMP AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
                    .to_owned(),
            )),
            Kind::Text => Ok(Some(
                "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'YYYY-MM-DD')".to_owned(),
            )),
            _ => unsupported(expr, kind),
        },
        "CURRENT_TIME" => match kind {
            Kind::Text => Ok(Some(
                "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'HH24:MI:SS')".to_owned(),
            )),
            _ => unsupported(expr, kind),
        },
        "TRUE" | "FALSE" => {
            let one = upper == "TRUE";
            match kind {
                Kind::Bool => Ok(Some(upper.to_lowercase())),
                Kind::BigInt | Kind::Double | Kind::Numeric | Kind::Jsonb => {
                    Ok(Some(if one { "1" } else { "0" }.to_owned()))
                }
                _ => unsupported(expr, kind),
            }
        }
        _ => return None,
    })
}

/// A numeric literal as a default.
fn number_default(expr: &str, n: String, kind: Kind) -> Translated {
    match kind {
        Kind::BigInt | Kind::Identity if n.parse::<i64>().is_ok() => Ok(Some(n)),
        Kind::Double | Kind::Numeric => Ok(Some(n)),
        Kind::Bool if n == "0" || n == "1" => {
            Ok(Some(if n == "1" { "true" } else { "false" }.to_owned()))
        }
        Kind::Text => Ok(Some(ql(&n))),
        Kind::Jsonb => Ok(Some(format!("{}::jsonb", ql(&n)))),
        Kind::Timestamptz => match n.parse::<i64>() {
            Ok(ms) if (MIN_MS..=MAX_MS).contains(&ms) => {
                let mut out = Vec::new();
                format_timestamp(&mut out, ms * 1000);
                Ok(Some(ql(&String::from_utf8_lossy(&out))))
            }
            _ => unsupported(expr, kind),
        },
        _ => unsupported(expr, kind),
    }
}

/// A string literal as a default.
fn string_default(expr: &str, s: &str, kind: Kind) -> Translated {
    match kind {
        Kind::Text => Ok(Some(ql(s))),
        Kind::Bytea => Ok(Some(format!("'\\x{}'::bytea", hex::encode(s.as_bytes())))),
        Kind::Jsonb if json_ok(s) => Ok(Some(format!("{}::jsonb", ql(s)))),
        Kind::Timestamptz => match parse_timestamp(s) {
            Some(m) => {
                let mut out = Vec::new();
                format_timestamp(&mut out, m);
                Ok(Some(ql(&String::from_utf8_lossy(&out))))
            }
            None => unsupported(expr, kind),
        },
        Kind::Date if parse_date(s).is_some() => Ok(Some(ql(s))),
        Kind::BigInt if s.trim().parse::<i64>().is_ok() => Ok(Some(s.trim().to_owned())),
        Kind::Double | Kind::Numeric if number_literal(s.trim()).is_some() => {
            Ok(Some(s.trim().to_owned()))
        }
        Kind::Bool => match s.to_ascii_lowercase().as_str() {
            "0" | "false" => Ok(Some("false".to_owned())),
            "1" | "true" => Ok(Some("true".to_owned())),
            _ => unsupported(expr, kind),
        },
        _ => unsupported(expr, kind),
    }
}

/// A numeric literal, normalised for PostgreSQL (`+1` is `1`, `.5` is `0.5`).
fn number_literal(e: &str) -> Option<String> {
    let (sign, body) = match e.as_bytes().first() {
        Some(b'-') => ("-", e[1..].trim_start()),
        Some(b'+') => ("", e[1..].trim_start()),
        _ => ("", e),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(p) => (&body[..p], Some(&body[p + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let ok_digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !ok_digits(int) || !ok_digits(frac) {
        return None;
    }
    if let Some(x) = exp {
        let x = x.strip_prefix(['+', '-']).unwrap_or(x);
        if x.is_empty() || !ok_digits(x) {
            return None;
        }
    }
    let int = if int.is_empty() { "0" } else { int };
    let mut out = format!("{sign}{int}");
    if mantissa.contains('.') {
        out.push('.');
        out.push_str(if frac.is_empty() { "0" } else { frac });
    }
    if let Some(p) = body.find(['e', 'E']) {
        out.push_str(&body[p..]);
    }
    Some(out)
}

/// The text of one SQL string literal (quotes doubled inside), or `None`.
fn string_literal(e: &str) -> Option<String> {
    let inner = e.strip_prefix('\'')?.strip_suffix('\'')?;
    // A quote inside must be doubled; anything else means this is not one literal.
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Names

#[cfg(test)]
mod tests {
    use super::translate_default;
    use crate::db::copy::types::Kind;

    #[test]
    fn defaults_translate_or_say_why_not() {
        assert_eq!(
            translate_default("CURRENT_TIMESTAMP", Kind::Timestamptz),
            Ok(Some("CURRENT_TIMESTAMP".to_owned()))
        );
        assert_eq!(
            translate_default("'it''s'", Kind::Text),
            Ok(Some("'it''s'".to_owned()))
        );
        assert_eq!(
            translate_default("(0)", Kind::Bool),
            Ok(Some("false".to_owned()))
        );
        assert_eq!(
            translate_default("false", Kind::Bool),
            Ok(Some("false".to_owned()))
        );
        assert_eq!(
            translate_default("-1.5", Kind::Double),
            Ok(Some("-1.5".to_owned()))
        );
        assert_eq!(
            translate_default(".5", Kind::Numeric),
            Ok(Some("0.5".to_owned()))
        );
        assert_eq!(translate_default("NULL", Kind::Text), Ok(None));
        assert_eq!(
            translate_default("X'00FF'", Kind::Bytea),
            Ok(Some("'\\x00ff'::bytea".to_owned()))
        );
        assert_eq!(
            translate_default("'2024-01-02 03:04:05'", Kind::Timestamptz),
            Ok(Some("'2024-01-02 03:04:05.000000+00'".to_owned()))
        );
        assert!(translate_default("abs(random())", Kind::BigInt).is_err());
        assert!(translate_default("'x' || 'y'", Kind::Text).is_err());
        assert!(translate_default("'abc'", Kind::BigInt).is_err());
    }
}
