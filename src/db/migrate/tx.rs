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

/// Rolls back, ignoring errors: it runs on a path that already failed. Gives whether the
/// transaction `begin` opened was still open, so that the rollback undid everything since:
/// a script can end it itself (a `COMMIT` in the file), after which its statements committed
/// one by one.
pub(super) async fn rollback(db: &mut Db) -> bool {
    match db {
        // A savepoint is refused outside a transaction block (25P01), and inside a failed one
        // the block is still open (25P02): it tells which, where `ROLLBACK` succeeds either way.
        Db::Postgres(_) => {
            let open = match exec(db, "SAVEPOINT runbook_open").await {
                Ok(()) => true,
                Err(e) => super::sqlstate(&e).as_deref() == Some("25P02"),
            };
            // A connection lost here rolls back on the server: nothing more commits.
            let _ = exec(db, "ROLLBACK").await;
            open
        }
        // SQLite refuses `ROLLBACK` when no transaction is open.
        Db::Sqlite(_) => exec(db, "ROLLBACK").await.is_ok(),
    }
}
