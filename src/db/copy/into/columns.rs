//! The target's tables as its migrations made them: each column's type (with its length,
//! precision, scale, enum labels or array element), whether it has a default, the sequence
//! behind it, and the tables its foreign keys point to.

use super::super::{OpError, db_error};
use crate::fmt::quote_ident;
use sqlx::{PgConnection, Row};

/// A scalar type a source value is converted to.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::db::copy) enum Scalar {
    Bool,
    /// smallint, integer, bigint: the range.
    Int(i64, i64),
    Float4,
    Float8,
    /// `numeric(p,s)`: precision and scale; `None` when unconstrained.
    Numeric(Option<(u32, u32)>),
    /// text, varchar(n): the length limit in characters.
    Text(Option<usize>),
    /// char(n): its length; PostgreSQL pads shorter values with spaces.
    Char(Option<usize>),
    Enum(Vec<String>),
    Date,
    /// timestamp without time zone and its fractional digits (6 unless declared).
    Timestamp(u32),
    Timestamptz(u32),
    Json,
    Bytea,
    Uuid,
    /// Anything else: the value's text, which PostgreSQL parses.
    Other,
}

/// A target column's type: a scalar, or a one-dimensional array of one.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::db::copy) enum TgtType {
    Scalar(Scalar),
    Array(Scalar),
}

/// A column of a target table.
#[derive(Debug, Clone)]
pub(in crate::db::copy) struct TgtColumn {
    pub(in crate::db::copy) name: String,
    /// As `format_type` shows it, for messages and decisions.
    pub(in crate::db::copy) shown: String,
    pub(in crate::db::copy) ty: TgtType,
    pub(in crate::db::copy) not_null: bool,
    /// A default, identity or generated value covers the column when the source has none.
    pub(in crate::db::copy) has_default: bool,
    pub(in crate::db::copy) generated: bool,
    /// The sequence of a serial or identity column.
    pub(in crate::db::copy) sequence: Option<String>,
}

/// A target table.
#[derive(Debug, Clone)]
pub(in crate::db::copy) struct TgtTable {
    pub(in crate::db::copy) name: String,
    pub(in crate::db::copy) columns: Vec<TgtColumn>,
    /// Tables this one's foreign keys reference (itself left out).
    pub(in crate::db::copy) parents: Vec<String>,
}

/// The target table `name` (on the search path), or `None` when there is none.
pub(in crate::db::copy) async fn read_table(
    pg: &mut PgConnection,
    name: &str,
) -> Result<Option<TgtTable>, OpError> {
    let rel = quote_ident(name);
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&rel)
        .fetch_one(&mut *pg)
        .await
        .map_err(db_error)?;
    if !exists {
        return Ok(None);
    }
    let rows = sqlx::query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                coalesce(e.typname, t.typname)::text, coalesce(e.typtype, t.typtype)::text, \
                coalesce(e.oid, t.oid)::int8, t.typcategory = 'A', a.atttypmod, a.attnotnull, \
                (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''), \
                a.attgenerated <> '', pg_get_serial_sequence($1, a.attname) \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind(&rel)
    .fetch_all(&mut *pg)
    .await
    .map_err(db_error)?;
    let mut columns = Vec::new();
    for r in rows {
        let typname: String = r.try_get(2).map_err(db_error)?;
        let typtype: String = r.try_get(3).map_err(db_error)?;
        let oid: i64 = r.try_get(4).map_err(db_error)?;
        let typmod: i32 = r.try_get(6).map_err(db_error)?;
        let scalar = if typtype == "e" {
            Scalar::Enum(enum_labels(pg, oid).await?)
        } else {
            scalar(&typname, typmod)
        };
        let is_array: bool = r.try_get(5).map_err(db_error)?;
        columns.push(TgtColumn {
            name: r.try_get(0).map_err(db_error)?,
            shown: r.try_get(1).map_err(db_error)?,
            ty: if is_array {
                TgtType::Array(scalar)
            } else {
                TgtType::Scalar(scalar)
            },
            not_null: r.try_get(7).map_err(db_error)?,
            has_default: r.try_get(8).map_err(db_error)?,
            generated: r.try_get(9).map_err(db_error)?,
            sequence: r.try_get(10).map_err(db_error)?,
        });
    }
    let parents = sqlx::query_scalar(
        "SELECT DISTINCT p.relname::text FROM pg_constraint k JOIN pg_class p ON p.oid = k.confrelid \
         WHERE k.contype = 'f' AND k.conrelid = to_regclass($1) AND k.confrelid <> k.conrelid",
    )
    .bind(&rel)
    .fetch_all(&mut *pg)
    .await
    .map_err(db_error)?;
    Ok(Some(TgtTable {
        name: name.to_owned(),
        columns,
        parents,
    }))
}

async fn enum_labels(pg: &mut PgConnection, oid: i64) -> Result<Vec<String>, OpError> {
    sqlx::query_scalar(
        "SELECT enumlabel::text FROM pg_enum WHERE enumtypid = $1::int8::oid ORDER BY enumsortorder",
    )
    .bind(oid)
    .fetch_all(&mut *pg)
    .await
    .map_err(db_error)
}

/// The scalar of a (non-enum) type by its `pg_type` name and the column's type modifier.
fn scalar(typname: &str, typmod: i32) -> Scalar {
    let fraction = || u32::try_from(typmod).ok().filter(|p| *p <= 6).unwrap_or(6);
    match typname {
        "bool" => Scalar::Bool,
        "int2" => Scalar::Int(i64::from(i16::MIN), i64::from(i16::MAX)),
        "int4" => Scalar::Int(i64::from(i32::MIN), i64::from(i32::MAX)),
        "int8" => Scalar::Int(i64::MIN, i64::MAX),
        "float4" => Scalar::Float4,
        "float8" => Scalar::Float8,
        "numeric" => Scalar::Numeric(
            u32::try_from(typmod - 4)
                .ok()
                .map(|m| (m >> 16, m & 0xffff)),
        ),
        "text" | "citext" | "name" => Scalar::Text(None),
        "varchar" => Scalar::Text(usize::try_from(typmod - 4).ok()),
        "bpchar" => Scalar::Char(usize::try_from(typmod - 4).ok()),
        "date" => Scalar::Date,
        "timestamp" => Scalar::Timestamp(fraction()),
        "timestamptz" => Scalar::Timestamptz(fraction()),
        "json" | "jsonb" => Scalar::Json,
        "bytea" => Scalar::Bytea,
        "uuid" => Scalar::Uuid,
        _ => Scalar::Other,
    }
}

/// The order to load tables in: every table after the tables it references, where the
/// references allow (a cycle keeps the given order for the tables in it).
pub(in crate::db::copy) fn load_order(tables: &[TgtTable]) -> Vec<usize> {
    let mut done = vec![false; tables.len()];
    let mut order = Vec::new();
    while order.len() < tables.len() {
        let ready = (0..tables.len()).find(|&i| {
            !done[i]
                && tables[i].parents.iter().all(|p| {
                    tables
                        .iter()
                        .enumerate()
                        .all(|(j, t)| &t.name != p || done[j])
                })
        });
        // A cycle: take the first table left; deferrable keys wait for the commit.
        let next = ready.unwrap_or_else(|| (0..tables.len()).find(|&i| !done[i]).unwrap_or(0));
        done[next] = true;
        order.push(next);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::{Scalar, TgtTable, load_order, scalar};

    #[test]
    fn type_modifiers_give_lengths_precision_and_fractions() {
        assert_eq!(scalar("varchar", 14), Scalar::Text(Some(10)));
        assert_eq!(scalar("varchar", -1), Scalar::Text(None));
        assert_eq!(
            scalar("numeric", (10 << 16 | 2) + 4),
            Scalar::Numeric(Some((10, 2)))
        );
        assert_eq!(scalar("numeric", -1), Scalar::Numeric(None));
        assert_eq!(scalar("timestamp", 3), Scalar::Timestamp(3));
        assert_eq!(scalar("timestamptz", -1), Scalar::Timestamptz(6));
        assert_eq!(scalar("inet", -1), Scalar::Other);
    }

    #[test]
    fn parents_load_first() {
        let t = |name: &str, parents: &[&str]| TgtTable {
            name: name.to_owned(),
            columns: Vec::new(),
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
        };
        let tables = [
            t("Appointment", &["Patient", "Provider"]),
            t("Patient", &["User"]),
            t("Provider", &["User"]),
            t("User", &[]),
            t("A", &["B"]),
            t("B", &["A"]),
        ];
        let order: Vec<&str> = load_order(&tables)
            .into_iter()
            .map(|i| tables[i].name.as_str())
            .collect();
        assert_eq!(
            order,
            ["User", "Patient", "Provider", "Appointment", "A", "B"]
        );
    }
}
