//! `Db`: an open connection to the target, either dialect, and running one statement with
//! bound parameters on it (read-only when asked).

use super::{Dialect, MAX_ROWS, SqlResult, TargetSpec, postgres, sqlite};
use futures_util::TryStreamExt;
use serde_json::{Map, Value as Json};
use sqlx::query::Query;
use sqlx::{Column, ConnectOptions, Connection, Encode, Row, Type};
use std::str::FromStr;

/// An open connection to the target.
pub enum Db {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl Db {
    pub async fn connect(spec: &TargetSpec) -> Result<Db, sqlx::Error> {
        match spec {
            TargetSpec::Postgres(url) => Ok(Db::Postgres(Db::connect_postgres(url).await?)),
            TargetSpec::Sqlite(path) => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .foreign_keys(true)
                    .busy_timeout(std::time::Duration::from_secs(10));
                Ok(Db::Sqlite(opts.connect().await?))
            }
        }
    }

    /// A PostgreSQL connection to the target as every step gets one (named `runbook`): the
    /// one the identity is read on and kept for the first step, and the second connection
    /// a maintenance step watches its statement from, are the same kind.
    pub async fn connect_postgres(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
        sqlx::postgres::PgConnectOptions::from_str(url)?
            .application_name("runbook")
            .connect()
            .await
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Runs one statement with bound parameters. With `read_only`, inside a read-only
    /// transaction that is rolled back.
    pub async fn execute(
        &mut self,
        query: &str,
        params: &[Json],
        read_only: bool,
    ) -> Result<SqlResult, sqlx::Error> {
        match self {
            Db::Postgres(conn) => {
                if read_only {
                    let mut tx = conn.begin().await?;
                    sqlx::query("SET TRANSACTION READ ONLY")
                        .execute(&mut *tx)
                        .await?;
                    let out = postgres::run(&mut tx, query, params).await;
                    tx.rollback().await?;
                    out
                } else {
                    postgres::run(conn, query, params).await
                }
            }
            Db::Sqlite(conn) => {
                if read_only {
                    sqlx::query("PRAGMA query_only = ON")
                        .execute(&mut *conn)
                        .await?;
                    let out = sqlite::run(conn, query, params).await;
                    sqlx::query("PRAGMA query_only = OFF")
                        .execute(&mut *conn)
                        .await?;
                    out
                } else {
                    sqlite::run(conn, query, params).await
                }
            }
        }
    }

    pub async fn close(self) {
        let _ = match self {
            Db::Postgres(c) => c.close().await,
            Db::Sqlite(c) => c.close().await,
        };
    }
}

/// A statement and the parameters bound to it so far, either dialect.
pub(super) type BoundQuery<'q, DB> = Query<'q, DB, <DB as sqlx::Database>::Arguments>;

/// A statement with its JSON parameters bound, either dialect: null, booleans, numbers and
/// strings as themselves, an object or array the way `nested` binds it (PostgreSQL as JSON,
/// SQLite as its text).
pub(super) fn bind_json<'q, DB: sqlx::Database>(
    query: &str,
    params: &[Json],
    nested: fn(BoundQuery<'q, DB>, &Json) -> BoundQuery<'q, DB>,
) -> BoundQuery<'q, DB>
where
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
{
    let mut q = sqlx::query(sqlx::AssertSqlSafe(query.to_owned()));
    for p in params {
        q = match p {
            Json::Null => q.bind(None::<String>),
            Json::Bool(b) => q.bind(*b),
            Json::Number(n) if n.is_i64() => q.bind(n.as_i64().unwrap_or_default()),
            Json::Number(n) => q.bind(n.as_f64().unwrap_or_default()),
            Json::String(s) => q.bind(s.clone()),
            other => nested(q, other),
        };
    }
    q
}

/// Gathers a statement's results, either dialect: rows affected, columns, the row count and
/// the first `MAX_ROWS` rows as JSON.
pub(super) async fn collect<R: Row>(
    results: impl futures_util::Stream<Item = Result<sqlx::Either<u64, R>, sqlx::Error>>,
    to_json: fn(&R) -> Map<String, Json>,
) -> Result<SqlResult, sqlx::Error> {
    let mut results = std::pin::pin!(results);
    let mut out = SqlResult::default();
    while let Some(item) = results.try_next().await? {
        match item {
            sqlx::Either::Left(affected) => out.rows_affected += affected,
            sqlx::Either::Right(row) => {
                if out.columns.is_empty() {
                    out.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                }
                out.row_count += 1;
                if out.rows.len() < MAX_ROWS {
                    out.rows.push(to_json(&row));
                }
            }
        }
    }
    Ok(out)
}
