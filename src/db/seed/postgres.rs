//! Seed SQL for PostgreSQL: each value cast from text (or jsonb, or text[]) to the column's
//! catalog type, so enum labels, timestamps, UUIDs and decimals arrive as strings; the
//! column types read from the catalog; binding.

use super::columns::Bind;
use super::model::Generated;
use crate::db::conn::BoundQuery;
use crate::fmt::quote_ident;
use serde_json::Value as Json;
use sqlx::{Postgres, Row};
use std::collections::BTreeMap;

/// How a PostgreSQL column takes values.
#[derive(Debug, Clone)]
pub(super) struct PgColumn {
    /// `format_type` of the column: safe SQL from the catalog, quoted where needed.
    ty: String,
    array: bool,
    json: bool,
    /// `json` (not `jsonb`) has no equality operator; comparisons go through `jsonb`.
    plain_json: bool,
}

/// The columns of a table by name.
pub(super) type PgColumns = BTreeMap<String, PgColumn>;

/// The bound value and the SQL that reads it at placeholder `n` (1-based).
pub(super) fn bind(m: &PgColumns, col: &str, v: &Json, n: usize) -> Result<(Bind, String), String> {
    let c = m.get(col).ok_or_else(|| format!("no column `{col}`"))?;
    let ty = &c.ty;
    Ok(match v {
        Json::Null => (Bind::Null, format!("${n}::text::{ty}")),
        _ if c.json => (Bind::Json(v.clone()), format!("${n}::jsonb::{ty}")),
        Json::Array(items) if c.array => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                out.push(match i {
                        Json::Null => None,
                        Json::String(s) => Some(s.clone()),
                        Json::Bool(_) | Json::Number(_) => Some(i.to_string()),
                        _ => {
                            return Err(format!(
                                "column `{col}` is `{ty}`; its items must be plain values, not lists or mappings"
                            ));
                        }
                    });
            }
            (Bind::TextArray(out), format!("${n}::text[]::{ty}"))
        }
        Json::Array(_) | Json::Object(_) => {
            return Err(format!(
                "column `{col}` is `{ty}`; a {} fits only array and JSON columns",
                if v.is_array() { "list" } else { "mapping" }
            ));
        }
        _ if c.array => {
            return Err(format!(
                "column `{col}` is an array (`{ty}`); give a list, like `[a, b]`"
            ));
        }
        Json::String(s) => (Bind::Text(s.clone()), format!("${n}::text::{ty}")),
        other => (Bind::Text(other.to_string()), format!("${n}::text::{ty}")),
    })
}

/// SQL for a generated value of column `col`.
pub(super) fn generated(m: &PgColumns, col: &str, g: Generated) -> String {
    let ty = m.get(col).map_or("text", |c| c.ty.as_str());
    match g {
        Generated::Uuid => format!("CAST(gen_random_uuid() AS {ty})"),
        Generated::Now => format!("CAST(CURRENT_TIMESTAMP AS {ty})"),
    }
}

/// `a IS DISTINCT FROM b` for column `col` of `table`.
pub(super) fn differs(m: &PgColumns, table: &str, col: &str) -> String {
    let (t, c) = (quote_ident(table), quote_ident(col));
    if m.get(col).is_some_and(|x| x.plain_json) {
        format!("{t}.{c}::jsonb IS DISTINCT FROM EXCLUDED.{c}::jsonb")
    } else {
        format!("{t}.{c} IS DISTINCT FROM EXCLUDED.{c}")
    }
}

/// How a stored secret is read back as text.
pub(super) fn read_text(col: &str) -> String {
    format!("{}::text", quote_ident(col))
}

/// How a list or a JSON value is bound; `Tx::first` binds the plain values, alike in both
/// dialects, and hands only these over.
pub(super) fn bind_nested<'q>(q: BoundQuery<'q, Postgres>, b: &Bind) -> BoundQuery<'q, Postgres> {
    match b {
        Bind::TextArray(v) => q.bind(v.clone()),
        Bind::Json(j) => q.bind(sqlx::types::Json(j.clone())),
        _ => q,
    }
}

/// The table's columns, `None` when there is no such table.
pub(super) async fn columns(
    conn: &mut sqlx::PgConnection,
    table: &str,
) -> Result<Option<PgColumns>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    t.typcategory::text, t.typname::text \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(quote_ident(table))
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut m = BTreeMap::new();
    for r in rows {
        let name: String = r.try_get(0)?;
        let ty: String = r.try_get(1)?;
        let category: String = r.try_get(2)?;
        let typname: String = r.try_get(3)?;
        m.insert(
            name,
            PgColumn {
                ty,
                array: category == "A",
                json: typname == "json" || typname == "jsonb",
                plain_json: typname == "json",
            },
        );
    }
    Ok(Some(m))
}

/// The tables the connection sees, for a did-you-mean.
pub(super) async fn table_names(conn: &mut sqlx::PgConnection) -> Vec<String> {
    sqlx::query(
        "SELECT relname::text FROM pg_class WHERE relkind IN ('r', 'p') AND pg_table_is_visible(oid)",
    )
    .fetch_all(conn)
    .await
    .map(|rs| rs.iter().filter_map(|r| r.try_get(0).ok()).collect())
    .unwrap_or_default()
}
