//! The PostgreSQL side's session and the few questions asked about target tables: the session
//! settings values are written and read back in, whether a table exists and how many rows it
//! has, and dropping tables.

use super::schema::SrcTable;
use super::{OpError, db_error, describe, progress};
use crate::fmt::quote_ident;
use sqlx::PgConnection;

/// Checks the server's version, sets the session's formats, and creates the progress table.
pub(super) async fn setup_session(pg: &mut PgConnection) -> Result<(), OpError> {
    let version: String = sqlx::query_scalar("SHOW server_version_num")
        .fetch_one(&mut *pg)
        .await
        .map_err(db_error)?;
    if version.parse::<u32>().unwrap_or(0) < 100_000 {
        return Err(OpError::Failed(format!(
            "the target runs PostgreSQL {version}; identity columns need 10 or later"
        )));
    }
    // Values are written and read back in these formats: timestamps in UTC and ISO form,
    // floats in their shortest exact form, bytea in hex.
    sqlx::raw_sql(
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 1; \
         SET bytea_output = 'hex'",
    )
    .execute(&mut *pg)
    .await
    .map_err(db_error)?;
    progress::create(pg).await
}

/// The session's settings go back to what the connection had, for the steps after this one.
pub(super) async fn reset_session(pg: &mut PgConnection) {
    let _ = sqlx::raw_sql(
        "RESET TimeZone; RESET DateStyle; RESET extra_float_digits; RESET bytea_output",
    )
    .execute(&mut *pg)
    .await;
}

pub(super) async fn target_exists(pg: &mut PgConnection, table: &str) -> Result<bool, OpError> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(quote_ident(table))
        .fetch_one(&mut *pg)
        .await
        .map_err(db_error)
}

pub(super) async fn target_count(pg: &mut PgConnection, table: &str) -> Result<i64, OpError> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        quote_ident(table)
    )))
    .fetch_one(&mut *pg)
    .await
    .map_err(db_error)
}

/// Drops the copy an earlier run made of a table, to load it again.
pub(super) async fn drop_table(pg: &mut PgConnection, table: &str) -> Result<(), OpError> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP TABLE {}",
        quote_ident(table)
    )))
    .execute(&mut *pg)
    .await
    .map_err(|e| OpError::Failed(format!("cannot drop the earlier copy: {}", describe(&e))))?;
    Ok(())
}

/// `replace: true`: drops the selected tables and forgets that they were copied.
pub(super) async fn replace_tables(
    pg: &mut PgConnection,
    selected: &[&SrcTable],
) -> Result<(), OpError> {
    let names: Vec<String> = selected.iter().map(|t| quote_ident(&t.name)).collect();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS {}",
        names.join(", ")
    )))
    .execute(&mut *pg)
    .await
    .map_err(|e| {
        OpError::Failed(format!(
            "`replace: true` could not drop the existing tables: {}",
            describe(&e)
        ))
    })?;
    progress::forget(pg, selected.iter().map(|t| t.name.clone()).collect()).await
}
