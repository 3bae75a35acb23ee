//! Plain indexes around the load, inside the copy's one transaction: the indexes of the
//! tables being loaded that back no constraint are dropped before the rows go in and created
//! again, with their own definitions and names, once every table is in. PostgreSQL then builds
//! each index once, sorted, instead of inserting every row into it. A unique index that does
//! not hold (a duplicate in the source) fails the copy at its creation, naming the index and
//! PostgreSQL's detail (the duplicated key); the transaction rolls back, so the target keeps
//! its indexes and its rows.
//!
//! Only when the role owns the tables (the caller asks after dropping their foreign keys).
//! Indexes that back a constraint (primary keys, unique constraints, exclusions, and those a
//! foreign key of another table relies on), invalid ones, the clustering index, the replica
//! identity, partitions' indexes and indexes with a comment stay in place.

use super::super::{OpError, describe};
use crate::fmt::quote_ident;
use sqlx::{PgConnection, Row};

/// An index taken off a loaded table, to be created again.
pub(super) struct Dropped {
    table: String,
    name: String,
    definition: String,
}

/// Drops the plain indexes of `tables`. `Ok(None)` when the role may not drop them, and
/// nothing was changed.
pub(super) async fn drop_indexes(
    pg: &mut PgConnection,
    tables: &[String],
) -> Result<Option<Vec<Dropped>>, OpError> {
    let rows = sqlx::query(
        "SELECT t.relname::text, ic.relname::text, pg_get_indexdef(i.indexrelid) \
         FROM pg_index i \
         JOIN pg_class ic ON ic.oid = i.indexrelid \
         JOIN pg_class t ON t.oid = i.indrelid \
         WHERE i.indrelid IN (SELECT to_regclass(quote_ident(n)) FROM unnest($1::text[]) n) \
           AND ic.relkind = 'i' AND t.relkind = 'r' \
           AND i.indisvalid AND NOT i.indisclustered AND NOT i.indisreplident \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) \
           AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) \
           AND obj_description(i.indexrelid, 'pg_class') IS NULL \
         ORDER BY 1, 2",
    )
    .bind(tables)
    .fetch_all(&mut *pg)
    .await
    .map_err(|e| OpError::Failed(format!("reading indexes: {}", describe(&e))))?;
    let indexes: Vec<Dropped> = rows
        .iter()
        .map(|r| Dropped {
            table: r.get(0),
            name: r.get(1),
            definition: r.get(2),
        })
        .collect();
    if indexes.is_empty() {
        return Ok(Some(indexes));
    }
    let sql: String = indexes
        .iter()
        .map(|x| format!("DROP INDEX {};", quote_ident(&x.name)))
        .collect();
    run(pg, "SAVEPOINT runbook_indexes").await?;
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *pg)
        .await
    {
        Ok(_) => {
            run(pg, "RELEASE SAVEPOINT runbook_indexes").await?;
            Ok(Some(indexes))
        }
        Err(e) if insufficient_privilege(&e) => {
            run(pg, "ROLLBACK TO SAVEPOINT runbook_indexes").await?;
            Ok(None)
        }
        Err(e) => Err(OpError::Failed(format!(
            "dropping indexes for the load: {}",
            describe(&e)
        ))),
    }
}

/// Creates the dropped indexes again.
pub(super) async fn create_indexes(
    pg: &mut PgConnection,
    indexes: &[Dropped],
) -> Result<(), OpError> {
    for x in indexes {
        sqlx::raw_sql(sqlx::AssertSqlSafe(x.definition.clone()))
            .execute(&mut *pg)
            .await
            .map_err(|e| {
                OpError::Failed(format!(
                    "`{}`: index `{}` could not be created again after the load: {}",
                    x.table,
                    x.name,
                    describe(&e)
                ))
            })?;
    }
    Ok(())
}

async fn run(pg: &mut PgConnection, sql: &'static str) -> Result<(), OpError> {
    sqlx::raw_sql(sql)
        .execute(&mut *pg)
        .await
        .map(|_| ())
        .map_err(|e| OpError::Failed(describe(&e)))
}

/// Whether PostgreSQL refused for want of ownership or a privilege (SQLSTATE 42501).
fn insufficient_privilege(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("42501"))
}
