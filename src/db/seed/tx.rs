//! The one transaction a seed set is applied in, either dialect: it runs the probes and
//! upserts, reads a table's columns, and commits; dropped without a commit, it rolls back.

use super::columns::{Bind, Columns};
use super::{postgres, sqlite};
use crate::db::Db;
use crate::db::conn::BoundQuery;
use sqlx::{ColumnIndex, Connection, Decode, Encode, Row, Type};

pub(super) enum Tx<'c> {
    Pg(sqlx::Transaction<'c, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'c, sqlx::Sqlite>),
}

impl<'c> Tx<'c> {
    pub(super) async fn begin(db: &'c mut Db) -> Result<Tx<'c>, sqlx::Error> {
        Ok(match db {
            Db::Postgres(c) => Tx::Pg(c.begin().await?),
            Db::Sqlite(c) => Tx::Sqlite(c.begin().await?),
        })
    }
}

/// The first row of a statement, either dialect, each of its first `columns` columns read as
/// optional text. Plain values are bound as themselves; a list or JSON value the way `nested`
/// binds it.
async fn first_row<DB: sqlx::Database>(
    conn: &mut DB::Connection,
    sql: &str,
    binds: &[Bind],
    columns: usize,
    nested: for<'q> fn(BoundQuery<'q, DB>, &Bind) -> BoundQuery<'q, DB>,
) -> Result<Option<Vec<Option<String>>>, sqlx::Error>
where
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for b in binds {
        q = match b {
            Bind::Null => q.bind(None::<String>),
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
            Bind::Float(f) => q.bind(*f),
            Bind::Bool(x) => q.bind(*x),
            Bind::TextArray(_) | Bind::Json(_) => nested(q, b),
        };
    }
    let row = q.fetch_optional(conn).await?;
    Ok(row.map(|r| {
        (0..columns)
            .map(|i| r.try_get::<Option<String>, _>(i).ok().flatten())
            .collect()
    }))
}

impl Tx<'_> {
    /// The first row of a statement, each of its first `columns` columns read as optional text.
    pub(super) async fn first(
        &mut self,
        sql: &str,
        binds: &[Bind],
        columns: usize,
    ) -> Result<Option<Vec<Option<String>>>, sqlx::Error> {
        match self {
            Tx::Pg(tx) => first_row(&mut **tx, sql, binds, columns, postgres::bind_nested).await,
            Tx::Sqlite(tx) => first_row(&mut **tx, sql, binds, columns, sqlite::bind_nested).await,
        }
    }

    /// The table's columns, `None` when there is no such table.
    pub(super) async fn columns(&mut self, table: &str) -> Result<Option<Columns>, sqlx::Error> {
        Ok(match self {
            Tx::Pg(tx) => postgres::columns(tx, table).await?.map(Columns::Pg),
            Tx::Sqlite(tx) => sqlite::columns(tx, table).await?.map(Columns::Sqlite),
        })
    }

    /// The tables there are, for a did-you-mean (empty when they cannot be read).
    pub(super) async fn table_names(&mut self) -> Vec<String> {
        match self {
            Tx::Pg(tx) => postgres::table_names(tx).await,
            Tx::Sqlite(tx) => sqlite::table_names(tx).await,
        }
    }

    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
    }
}
