//! Foreign keys around the load, inside the copy's one transaction: the keys of the tables
//! being loaded are dropped before the rows go in and added again, with their own definitions
//! and names, once every table is in. PostgreSQL then checks each key once with one join over
//! the whole table (not a trigger per row), and tables that reference each other through keys
//! that are not deferrable load as well as any others. A key that does not hold fails the
//! copy naming the key and PostgreSQL's detail (the missing key value); the transaction rolls
//! back, so the target keeps its keys and its rows.
//!
//! Dropping a key needs the table's owner. A role that does not own the tables keeps its keys
//! in place (a savepoint takes the attempt back): rows then load parents first, deferrable
//! keys are checked at the commit, and a cycle of keys that are not deferrable fails there.

use super::super::{OpError, describe};
use crate::fmt::quote_ident;
use sqlx::{PgConnection, Row};

/// A foreign key taken off a loaded table, to be added again.
pub(super) struct Dropped {
    table: String,
    name: String,
    definition: String,
}

/// Drops the foreign keys of `tables` (their own keys: rows inserted into a table are checked
/// against its keys, not against the keys that reference it). `Ok(None)` when the role may not
/// drop them, and nothing was changed.
pub(super) async fn drop_keys(
    pg: &mut PgConnection,
    tables: &[String],
) -> Result<Option<Vec<Dropped>>, OpError> {
    let rows = sqlx::query(
        "SELECT cl.relname::text, c.conname::text, pg_get_constraintdef(c.oid) \
         FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid \
         WHERE c.contype = 'f' \
           AND c.conrelid IN (SELECT to_regclass(quote_ident(t)) FROM unnest($1::text[]) t) \
         ORDER BY 1, 2",
    )
    .bind(tables)
    .fetch_all(&mut *pg)
    .await
    .map_err(|e| OpError::Failed(format!("reading foreign keys: {}", describe(&e))))?;
    let keys: Vec<Dropped> = rows
        .iter()
        .map(|r| Dropped {
            table: r.get(0),
            name: r.get(1),
            definition: r.get(2),
        })
        .collect();
    if keys.is_empty() {
        return Ok(Some(keys));
    }
    let sql: String = keys
        .iter()
        .map(|k| {
            format!(
                "ALTER TABLE {} DROP CONSTRAINT {};",
                quote_ident(&k.table),
                quote_ident(&k.name)
            )
        })
        .collect();
    run(pg, "SAVEPOINT runbook_keys").await?;
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *pg)
        .await
    {
        Ok(_) => {
            run(pg, "RELEASE SAVEPOINT runbook_keys").await?;
            Ok(Some(keys))
        }
        Err(e) if insufficient_privilege(&e) => {
            run(pg, "ROLLBACK TO SAVEPOINT runbook_keys").await?;
            Ok(None)
        }
        Err(e) => Err(OpError::Failed(format!(
            "dropping foreign keys for the load: {}",
            describe(&e)
        ))),
    }
}

/// Adds the dropped keys again, each checked over its whole table.
pub(super) async fn add_keys(pg: &mut PgConnection, keys: &[Dropped]) -> Result<(), OpError> {
    for k in keys {
        let sql = format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {}",
            quote_ident(&k.table),
            quote_ident(&k.name),
            k.definition
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *pg)
            .await
            .map_err(|e| {
                OpError::Failed(format!(
                    "`{}`: foreign key `{}` does not hold after the load: {}",
                    k.table,
                    k.name,
                    describe(&e)
                ))
            })?;
    }
    Ok(())
}

/// The names of the keys, for the step's note.
pub(super) fn names(keys: &[Dropped]) -> String {
    keys.iter()
        .map(|k| format!("`{}`", k.name))
        .collect::<Vec<_>>()
        .join(", ")
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
