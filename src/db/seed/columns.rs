//! A table's columns as the seed statements need them, either dialect: whether a column
//! exists, how a value is bound to it, and how a generated value, a change and a stored secret
//! are written in SQL. The SQL itself is in `postgres.rs` and `sqlite.rs`.

use super::model::Generated;
use super::{postgres, sqlite};
use serde_json::Value as Json;

/// A value as it is bound.
#[derive(Debug, Clone)]
pub(super) enum Bind {
    Null,
    Text(String),
    TextArray(Vec<Option<String>>),
    Json(Json),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The columns of one table.
pub(super) enum Columns {
    Pg(postgres::PgColumns),
    Sqlite(sqlite::SqliteColumns),
}

impl Columns {
    pub(super) fn names(&self) -> Vec<&str> {
        match self {
            Columns::Pg(m) => m.keys().map(String::as_str).collect(),
            Columns::Sqlite(m) => m.keys().map(String::as_str).collect(),
        }
    }

    pub(super) fn has(&self, col: &str) -> bool {
        match self {
            Columns::Pg(m) => m.contains_key(col),
            Columns::Sqlite(m) => m.contains_key(col),
        }
    }

    /// The bound value and the SQL that reads it at placeholder `n` (1-based).
    pub(super) fn bind(&self, col: &str, v: &Json, n: usize) -> Result<(Bind, String), String> {
        match self {
            Columns::Pg(m) => postgres::bind(m, col, v, n),
            Columns::Sqlite(_) => Ok(sqlite::bind(v, n)),
        }
    }

    /// SQL for a generated value of column `col`.
    pub(super) fn generated(&self, col: &str, g: Generated) -> String {
        match self {
            Columns::Pg(m) => postgres::generated(m, col, g),
            Columns::Sqlite(m) => sqlite::generated(m, col, g),
        }
    }

    /// `a IS DISTINCT FROM b` for column `col` of `table`.
    pub(super) fn differs(&self, table: &str, col: &str) -> String {
        match self {
            Columns::Pg(m) => postgres::differs(m, table, col),
            Columns::Sqlite(_) => sqlite::differs(table, col),
        }
    }

    /// How a stored secret is read back as text.
    pub(super) fn read_text(&self, col: &str) -> String {
        match self {
            Columns::Pg(_) => postgres::read_text(col),
            Columns::Sqlite(_) => sqlite::read_text(col),
        }
    }
}
