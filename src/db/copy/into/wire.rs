//! The binary COPY form of a converted value, for tables whose every loaded column has one
//! here: the value's text as `convert` wrote it (already checked against the column's type)
//! is turned into PostgreSQL's binary form, which the server stores without parsing text.
//! Arrays, domains and types the copy does not know go as COPY text (the whole table then).

use super::super::binary;
use super::super::datetime::{parse_date, parse_timestamp};
use super::columns::{Scalar, TgtColumn, TgtType};

/// Whether every column has a binary form here.
pub(super) fn all_binary(columns: &[&TgtColumn]) -> bool {
    columns.iter().all(|c| match &c.ty {
        TgtType::Scalar(Scalar::Other) | TgtType::Array(_) => false,
        TgtType::Scalar(Scalar::Json) => matches!(c.shown.as_str(), "json" | "jsonb"),
        TgtType::Scalar(_) => true,
    })
}

/// Writes the binary field of the converted value `text` of column `col`.
pub(super) fn field(out: &mut Vec<u8>, col: &TgtColumn, text: &str) -> Result<(), String> {
    let bad = || format!("internal: `{text}` has no binary form as {}", col.shown);
    let TgtType::Scalar(s) = &col.ty else {
        return Err(bad());
    };
    match s {
        Scalar::Bool => match text {
            "t" => binary::boolean(out, true),
            "f" => binary::boolean(out, false),
            _ => return Err(bad()),
        },
        Scalar::Int(min, _) => {
            let i: i64 = text.parse().map_err(|_| bad())?;
            if *min == i64::from(i16::MIN) {
                let v = i16::try_from(i).map_err(|_| bad())?;
                out.extend_from_slice(&2i32.to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            } else if *min == i64::from(i32::MIN) {
                let v = i32::try_from(i).map_err(|_| bad())?;
                out.extend_from_slice(&4i32.to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            } else {
                binary::int8(out, i);
            }
        }
        Scalar::Float4 => {
            let f: f32 = text.parse().map_err(|_| bad())?;
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Scalar::Float8 => binary::float8(out, text.parse().map_err(|_| bad())?),
        Scalar::Numeric(_) => binary::numeric(out, text).ok_or_else(bad)?,
        Scalar::Text(_) | Scalar::Char(_) | Scalar::Enum(_) => {
            binary::bytes(out, text.as_bytes());
        }
        Scalar::Date => binary::date(out, parse_date(text).ok_or_else(bad)?),
        Scalar::Timestamp(_) | Scalar::Timestamptz(_) => {
            binary::timestamp(out, parse_timestamp(text).ok_or_else(bad)?);
        }
        Scalar::Json if col.shown == "jsonb" => binary::jsonb(out, text.as_bytes()),
        Scalar::Json => binary::bytes(out, text.as_bytes()),
        Scalar::Bytea => {
            let hex = text.strip_prefix("\\x").ok_or_else(bad)?;
            binary::bytes(out, &hex::decode(hex).map_err(|_| bad())?);
        }
        Scalar::Uuid => {
            let digits: String = text.chars().filter(|c| !"-{}".contains(*c)).collect();
            let b = hex::decode(digits).map_err(|_| bad())?;
            if b.len() != 16 {
                return Err(bad());
            }
            binary::bytes(out, &b);
        }
        Scalar::Other => return Err(bad()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::field;
    use crate::db::copy::into::columns::{Scalar, TgtColumn, TgtType};

    fn col(shown: &str, s: Scalar) -> TgtColumn {
        TgtColumn {
            name: "c".to_owned(),
            shown: shown.to_owned(),
            ty: TgtType::Scalar(s),
            not_null: false,
            has_default: false,
            generated: false,
            sequence: None,
        }
    }

    fn wire(c: &TgtColumn, text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        field(&mut out, c, text).expect("a binary form");
        out
    }

    #[test]
    fn converted_values_have_their_binary_forms() {
        let int4 = col(
            "integer",
            Scalar::Int(i64::from(i32::MIN), i64::from(i32::MAX)),
        );
        assert_eq!(wire(&int4, "-2"), [0, 0, 0, 4, 255, 255, 255, 254]);
        let int2 = col(
            "smallint",
            Scalar::Int(i64::from(i16::MIN), i64::from(i16::MAX)),
        );
        assert_eq!(wire(&int2, "258"), [0, 0, 0, 2, 1, 2]);
        assert!(field(&mut Vec::new(), &int2, "70000").is_err());
        let ts = col("timestamp(3) without time zone", Scalar::Timestamp(3));
        // 2000-01-01 00:00:00.001 is 1000 microseconds after PostgreSQL's epoch.
        assert_eq!(
            wire(&ts, "2000-01-01 00:00:00.001000"),
            [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 3, 232]
        );
        let date = col("date", Scalar::Date);
        assert_eq!(wire(&date, "2000-01-02"), [0, 0, 0, 4, 0, 0, 0, 1]);
        let uuid = col("uuid", Scalar::Uuid);
        let u = wire(&uuid, "{0123ABCD-0000-0000-0000-00000000FFFF}");
        assert_eq!(u.len(), 20);
        assert_eq!(&u[4..6], [1, 35]);
        let bytea = col("bytea", Scalar::Bytea);
        assert_eq!(wire(&bytea, "\\x00ff"), [0, 0, 0, 2, 0, 255]);
        let jsonb = col("jsonb", Scalar::Json);
        assert_eq!(wire(&jsonb, "1"), [0, 0, 0, 2, 1, b'1']);
        let json = col("json", Scalar::Json);
        assert_eq!(wire(&json, "1"), [0, 0, 0, 1, b'1']);
        let b = col("boolean", Scalar::Bool);
        assert_eq!(wire(&b, "t"), [0, 0, 0, 1, 1]);
        assert!(field(&mut Vec::new(), &col("x", Scalar::Other), "x").is_err());
    }
}
