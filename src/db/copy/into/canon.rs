//! The canonical form of a converted value for the content checksum, the same function on
//! both sides: the text the copy sent and the text PostgreSQL gives back (`COPY ... TO
//! STDOUT` in the session's UTC and ISO formats) hash alike exactly when they are the same
//! value of the column's type.

use super::super::checksum::RowHash;
use super::super::datetime::{parse_date, parse_timestamp};
use super::super::encode::norm_decimal;
use super::super::json::canon_json_text;
use super::columns::{Scalar, TgtType};

/// Feeds the value's canonical form to the row hash.
pub(in crate::db::copy) fn canon(
    ty: &TgtType,
    text: &str,
    hash: &mut RowHash,
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    scratch.clear();
    match ty {
        TgtType::Scalar(s) => scalar(s, text, scratch)?,
        TgtType::Array(s) => {
            let items = parse_array(text).ok_or_else(|| format!("not an array: {text}"))?;
            let mut one = Vec::new();
            for item in items {
                match item {
                    None => scratch.push(0),
                    Some(v) => {
                        one.clear();
                        scalar(s, &v, &mut one)?;
                        scratch.push(1);
                        scratch.extend_from_slice(&(one.len() as u64).to_le_bytes());
                        scratch.extend_from_slice(&one);
                    }
                }
            }
        }
    }
    hash.bytes(scratch);
    Ok(())
}

fn scalar(s: &Scalar, text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let bad = || format!("cannot read `{text}` back as {s:?}");
    match s {
        Scalar::Bool => out.push(match text {
            "t" => 1,
            "f" => 0,
            _ => return Err(bad()),
        }),
        Scalar::Int(..) => {
            let i: i64 = text.parse().map_err(|_| bad())?;
            out.extend_from_slice(&i.to_le_bytes());
        }
        Scalar::Float4 => {
            let f: f32 = text.parse().map_err(|_| bad())?;
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Scalar::Float8 => {
            let f: f64 = text.parse().map_err(|_| bad())?;
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Scalar::Numeric(_) => out.extend_from_slice(norm_decimal(text).ok_or_else(bad)?.as_bytes()),
        Scalar::Date => {
            out.extend_from_slice(&parse_date(text).ok_or_else(bad)?.to_le_bytes());
        }
        Scalar::Timestamp(_) | Scalar::Timestamptz(_) => {
            out.extend_from_slice(&parse_timestamp(text).ok_or_else(bad)?.to_le_bytes());
        }
        Scalar::Json => canon_json_text(text, out),
        Scalar::Bytea | Scalar::Uuid => {
            let t: String = text.chars().filter(|c| !"-{}".contains(*c)).collect();
            out.extend_from_slice(t.to_ascii_lowercase().as_bytes());
        }
        Scalar::Text(_) | Scalar::Enum(_) => out.extend_from_slice(text.as_bytes()),
        // char(n) pads with spaces, and compares without them.
        Scalar::Char(_) => out.extend_from_slice(text.trim_end_matches(' ').as_bytes()),
        // Types the copy does not know are parsed by PostgreSQL, which may print them
        // differently: only whether there is a value counts.
        Scalar::Other => {}
    }
    Ok(())
}

/// The elements of a one-dimensional array literal (`{a,"b c",NULL}`); `None` for NULL.
fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    if inner.is_empty() {
        return Some(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
        }
        items.push(if !quoted && item == "NULL" {
            None
        } else {
            Some(item)
        });
        match chars.next() {
            None => return Some(items),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// The fields of one line of `COPY ... TO STDOUT` text output, unescaped; `None` for `\N`.
pub(in crate::db::copy) fn copy_fields(line: &[u8]) -> Vec<Option<String>> {
    line.split(|&b| b == b'\t')
        .map(|f| {
            if f == b"\\N" {
                return None;
            }
            let mut out = Vec::with_capacity(f.len());
            let mut it = f.iter();
            while let Some(&c) = it.next() {
                if c != b'\\' {
                    out.push(c);
                    continue;
                }
                match it.next() {
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b'b') => out.push(8),
                    Some(b'f') => out.push(12),
                    Some(b'v') => out.push(11),
                    Some(&o) => out.push(o),
                    None => {}
                }
            }
            Some(String::from_utf8_lossy(&out).into_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{copy_fields, parse_array};

    #[test]
    fn array_literals_and_copy_lines_parse() {
        assert_eq!(
            parse_array(r#"{a,"b c",NULL,"NULL","x\"y\\z"}"#).unwrap(),
            vec![
                Some("a".to_owned()),
                Some("b c".to_owned()),
                None,
                Some("NULL".to_owned()),
                Some("x\"y\\z".to_owned())
            ]
        );
        assert_eq!(parse_array("{}").unwrap(), Vec::<Option<String>>::new());
        assert!(parse_array("a,b").is_none());
        assert_eq!(
            copy_fields(b"a\\tb\t\\N\tc\\\\d"),
            vec![Some("a\tb".to_owned()), None, Some("c\\d".to_owned())]
        );
    }
}
