//! Reading and writing a SQLite target directly: the tests' own setup and checks, outside the
//! tool under test.

use super::project::Target;
use std::path::Path;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs statements on the SQLite target, creating the file.
pub fn sqlite_exec(target: &Target, sql: &str) {
    let Target::Sqlite(path) = target else {
        panic!("not a SQLite target")
    };
    runtime().block_on(async {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(false)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap();
    });
}

/// Rows of a query on the database file at `path`, columns joined with `|`.
pub fn query(path: &Path, sql: &str) -> Vec<String> {
    runtime().block_on(async {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
            .await
            .unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        r.try_get::<String, _>(i)
                            .or_else(|_| r.try_get::<i64, _>(i).map(|v| v.to_string()))
                            .unwrap_or_else(|_| "NULL".to_owned())
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    })
}
