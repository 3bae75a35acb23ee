//! Scripts and transactions on the target, the same for every operation: a transaction
//! begins the dialect's way (SQLite takes its write lock up front) and ends with `COMMIT` or
//! `ROLLBACK`.

use super::{postgres, sqlite};
use crate::db::Db;
use sqlx::AssertSqlSafe;

/// Runs a script (one or more statements, simple protocol).
pub(super) async fn exec(db: &mut Db, sql: &str) -> Result<(), sqlx::Error> {
    match db {
        Db::Postgres(c) => raw(c, sql).await,
        Db::Sqlite(c) => raw(c, sql).await,
    }
}

async fn raw<'c, E: sqlx::Executor<'c>>(c: E, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(c)
        .await
        .map(|_| ())
}

/// Begins a transaction.
pub(super) async fn begin(db: &mut Db) -> Result<(), sqlx::Error> {
    let sql = match db {
        Db::Postgres(_) => postgres::BEGIN,
        Db::Sqlite(_) => sqlite::BEGIN,
    };
    exec(db, sql).await
}

pub(super) async fn commit(db: &mut Db) -> Result<(), sqlx::Error> {
    exec(db, "COMMIT").await
}

/// Rolls back, ignoring errors: it runs on a path that already failed.
pub(super) async fn rollback(db: &mut Db) {
    let _ = exec(db, "ROLLBACK").await;
}
