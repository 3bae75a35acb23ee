//! Connections to the target database and running statements on it: PostgreSQL and SQLite
//! through sqlx. Values are always bound parameters; rows come back as JSON objects.

pub mod backup;
mod conn;
pub mod copy;
pub mod dialect;
pub mod health;
pub mod identity;
pub mod maintain;
pub mod migrate;
pub mod op;
mod postgres;
pub mod reach;
pub mod seed;
mod sqlite;
mod target;

use serde_json::{Map, Value as Json};

pub use conn::Db;
pub use dialect::Dialect;
pub use target::TargetSpec;

/// Rows kept from one statement; more are counted but not kept.
pub const MAX_ROWS: usize = 1_000;

/// The database's message with its SQLSTATE, which is what an operator searches for.
pub fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    }
}

/// The result of one statement.
#[derive(Debug, Clone, Default)]
pub struct SqlResult {
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Json>>,
    /// Rows returned, including any beyond [`MAX_ROWS`].
    pub row_count: u64,
    pub rows_affected: u64,
}
