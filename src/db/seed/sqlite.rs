//! Seed SQL for SQLite: values bound as they are (lists and mappings as JSON text), dates
//! generated the way Prisma stores them, the declared column types, binding.

use super::columns::Bind;
use super::model::Generated;
use crate::db::conn::BoundQuery;
use crate::fmt::quote_ident;
use serde_json::Value as Json;
use sqlx::{Row, Sqlite};
use std::collections::BTreeMap;

/// The columns of a table: name to declared type, upper-cased.
pub(super) type SqliteColumns = BTreeMap<String, String>;

/// The bound value and the SQL that reads it at placeholder `n` (1-based).
pub(super) fn bind(v: &Json, n: usize) -> (Bind, String) {
    let b = match v {
        Json::Null => Bind::Null,
        Json::Bool(b) => Bind::Bool(*b),
        Json::Number(x) => match x.as_i64() {
            Some(i) => Bind::Int(i),
            None => Bind::Float(x.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Bind::Text(s.clone()),
        other => Bind::Text(other.to_string()),
    };
    (b, format!("?{n}"))
}

/// SQL for a generated value of column `col`.
pub(super) fn generated(m: &SqliteColumns, col: &str, g: Generated) -> String {
    match g {
        Generated::Uuid => "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))".to_owned(),
        Generated::Now => {
            // Prisma keeps SQLite dates as epoch milliseconds in integer columns and ISO 8601
            // text elsewhere; follow the column's declared type.
            if m.get(col).is_some_and(|t| t.contains("INT")) {
                "CAST(unixepoch('subsec') * 1000 AS INTEGER)".to_owned()
            } else {
                "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')".to_owned()
            }
        }
    }
}

/// `a IS NOT b` for column `col` of `table`.
pub(super) fn differs(table: &str, col: &str) -> String {
    let (t, c) = (quote_ident(table), quote_ident(col));
    format!("{t}.{c} IS NOT excluded.{c}")
}

/// How a stored secret is read back as text.
pub(super) fn read_text(col: &str) -> String {
    format!("CAST({} AS TEXT)", quote_ident(col))
}

/// How a list or a JSON value is bound; `Tx::first` binds the plain values, alike in both
/// dialects, and hands only these over.
pub(super) fn bind_nested<'q>(q: BoundQuery<'q, Sqlite>, b: &Bind) -> BoundQuery<'q, Sqlite> {
    match b {
        Bind::TextArray(v) => q.bind(serde_json::to_string(v).unwrap_or_default()),
        Bind::Json(j) => q.bind(j.to_string()),
        _ => q,
    }
}

/// The table's columns, `None` when there is no such table.
pub(super) async fn columns(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
) -> Result<Option<SqliteColumns>, sqlx::Error> {
    let rows = sqlx::query("SELECT name, upper(type) FROM pragma_table_info(?1)")
        .bind(table.to_owned())
        .fetch_all(&mut *conn)
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut m = BTreeMap::new();
    for r in rows {
        m.insert(r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?);
    }
    Ok(Some(m))
}

/// The tables in the file, for a did-you-mean.
pub(super) async fn table_names(conn: &mut sqlx::SqliteConnection) -> Vec<String> {
    sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .fetch_all(conn)
        .await
        .map(|rs| rs.iter().filter_map(|r| r.try_get(0).ok()).collect())
        .unwrap_or_default()
}
