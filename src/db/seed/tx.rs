//! The one transaction a seed set is applied in, either dialect: it runs the probes and
//! upserts, reads a table's columns, and commits; dropped without a commit, it rolls back.

use super::columns::{Bind, Columns};
use super::{postgres, sqlite};
use crate::db::Db;
use sqlx::Connection;

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

impl Tx<'_> {
    /// The first row of a statement, each of its first `columns` columns read as optional text.
    pub(super) async fn first(
        &mut self,
        sql: &str,
        binds: &[Bind],
        columns: usize,
    ) -> Result<Option<Vec<Option<String>>>, sqlx::Error> {
        match self {
            Tx::Pg(tx) => postgres::first(tx, sql, binds, columns).await,
            Tx::Sqlite(tx) => sqlite::first(tx, sql, binds, columns).await,
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
