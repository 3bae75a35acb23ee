//! Restoring a SQLite archive in place: the archive verified, a pre-restore backup, then every
//! table, index, view and trigger of the main database replaced with the archive's in one
//! transaction. The database file, its run lock and other connections stay as they are.

use super::guard::{check_cancel, guard};
use super::is_state_table;
use super::restore::{RestoreRequest, pre_backup_taken, pre_request, verify_first};
use super::sqlite::{SqliteTable, backup_sqlite, sqlite_tables};
use super::take::Backup;
use super::verify::Verified;
use crate::db::op::{Op, OpError};
use crate::fmt::{list_some, quote_ident};
use crate::percent;
use sqlx::{AssertSqlSafe, Connection, SqliteConnection};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub(super) async fn restore_sqlite(
    conn: &mut SqliteConnection,
    manifest_path: &Path,
    pre_dir: &Path,
    req: &RestoreRequest,
    op: &Op<'_>,
) -> Result<(Verified, Option<Backup>), OpError> {
    let verified = verify_first(manifest_path, None, op, "table", "tables").await?;
    check_cancel(op)?;
    let db_path: PathBuf = sqlx::query_scalar::<_, String>(
        "SELECT file FROM pragma_database_list WHERE name = 'main'",
    )
    .fetch_one(&mut *conn)
    .await
    .map(PathBuf::from)
    .unwrap_or_default();
    let pre_backup = if req.pre_backup {
        let taken = backup_sqlite(conn, &db_path, &pre_request(pre_dir), op).await;
        Some(pre_backup_taken(taken, op)?)
    } else {
        None
    };
    check_cancel(op)?;
    op.detail(&format!(
        "{} restoring {}",
        op.label, verified.manifest.archive
    ));
    sqlite_replace(conn, &verified.archive, op).await?;
    Ok((verified, pre_backup))
}

/// A `file:` URI opening `path` read-only (for `ATTACH`, which takes a URI since sqlx opens
/// connections with `SQLITE_OPEN_URI`).
fn sqlite_ro_uri(path: &Path) -> Result<String, OpError> {
    let abs = std::path::absolute(path)
        .map_err(|e| OpError::failed(format!("cannot resolve {}: {e}", path.display())))?;
    let text = abs
        .to_str()
        .ok_or_else(|| OpError::failed(format!("the path {} is not UTF-8", abs.display())))?;
    Ok(format!("file:{}?mode=ro", percent::encode_path(text)))
}

/// Replaces every table, index, view and trigger of the connection's main database with the
/// archive's, in one transaction: either all of the archive is in place or nothing changed.
async fn sqlite_replace(
    conn: &mut SqliteConnection,
    archive: &Path,
    op: &Op<'_>,
) -> Result<(), OpError> {
    let uri = sqlite_ro_uri(archive)?;
    // Dropping and refilling tables in dependency-blind order needs the checks off; the
    // pragma is a no-op inside a transaction, so it comes first.
    guard(
        op,
        "cannot turn foreign keys off",
        None,
        sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn),
    )
    .await?;
    let attached = guard(
        op,
        "cannot attach the archive",
        None,
        sqlx::query("ATTACH DATABASE ?1 AS runbook_src")
            .bind(uri)
            .execute(&mut *conn),
    )
    .await;
    let result = match attached {
        Ok(_) => {
            let r = guard(
                op,
                "the restore failed and was rolled back",
                None,
                copy_in_transaction(conn),
            )
            .await;
            let _ = sqlx::query("DETACH DATABASE runbook_src")
                .execute(&mut *conn)
                .await;
            r
        }
        Err(e) => Err(e),
    };
    let _ = sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await;
    for w in result? {
        op.note(&format!("warning: {w}"));
    }
    Ok(())
}

/// The copy in one `BEGIN IMMEDIATE` transaction, committed whole or rolled back; returns
/// warnings.
async fn copy_in_transaction(conn: &mut SqliteConnection) -> Result<Vec<String>, String> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| format!("cannot begin: {e}"))?;
    match sqlite_copy(&mut tx).await {
        Ok(warnings) => {
            tx.commit()
                .await
                .map_err(|e| format!("cannot commit: {e}"))?;
            Ok(warnings)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// An index, view or trigger of the archive, created after the rows.
struct Later {
    kind: String,
    name: String,
    sql: String,
}

/// The copy itself, inside the transaction; returns warnings.
async fn sqlite_copy(conn: &mut SqliteConnection) -> Result<Vec<String>, String> {
    empty_main(conn).await?;
    let (src_tables, later) = create_tables(conn).await?;
    copy_rows(conn, &src_tables).await?;
    // Indexes, views and triggers, after the rows: faster, and no trigger fires on the copy.
    for l in later {
        exec(conn, l.sql, || {
            format!("cannot create {} `{}`", l.kind, l.name)
        })
        .await?;
    }
    copy_sequences(conn).await?;
    copy_pragmas(conn).await?;
    foreign_key_warnings(conn).await
}

/// Runs one statement built here (never from input), as the unnamed statement.
async fn exec(
    conn: &mut SqliteConnection,
    sql: String,
    what: impl FnOnce() -> String,
) -> Result<(), String> {
    sqlx::query(AssertSqlSafe(sql))
        .persistent(false)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| err(&what(), e))
}

fn err(what: &str, e: sqlx::Error) -> String {
    format!("{what}: {e}")
}

/// Empties main: triggers and views, then virtual tables (which take their shadow tables with
/// them), then the tables; runbook's own tables and what hangs on them stay.
async fn empty_main(conn: &mut SqliteConnection) -> Result<(), String> {
    let objects: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT type, name, tbl_name FROM main.sqlite_schema WHERE type IN ('trigger', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| err("cannot read the schema", e))?;
    for (kind, name, table) in objects {
        if is_state_table(&table) {
            continue;
        }
        let kw = if kind == "view" { "VIEW" } else { "TRIGGER" };
        let sql = format!("DROP {kw} IF EXISTS main.{}", quote_ident(&name));
        exec(conn, sql, || format!("cannot drop {kind} `{name}`")).await?;
    }
    for pass in ["virtual", "table"] {
        let tables = sqlite_tables(conn, "main")
            .await
            .map_err(|e| err("cannot list tables", e))?;
        for t in tables {
            if t.kind != pass || is_state_table(&t.name) {
                continue;
            }
            let sql = format!("DROP TABLE main.{}", quote_ident(&t.name));
            exec(conn, sql, || format!("cannot drop table `{}`", t.name)).await?;
        }
    }
    Ok(())
}

/// Creates the archive's tables (virtual ones create their shadow tables themselves); returns
/// the archive's tables and the objects to create after the rows.
async fn create_tables(
    conn: &mut SqliteConnection,
) -> Result<(Vec<SqliteTable>, Vec<Later>), String> {
    let src_tables = sqlite_tables(conn, "runbook_src")
        .await
        .map_err(|e| err("cannot list the archive's tables", e))?;
    let shadow: BTreeSet<&str> = src_tables
        .iter()
        .filter(|t| t.kind == "shadow")
        .map(|t| t.name.as_str())
        .collect();
    let objects: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT type, name, tbl_name, sql FROM runbook_src.sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| err("cannot read the archive's schema", e))?;
    let mut later = Vec::new();
    for (kind, name, table, sql) in objects {
        if is_state_table(&table) || shadow.contains(table.as_str()) {
            continue;
        }
        if kind == "table" {
            // The stored text recreates the object in the main database (SQLite strips the
            // schema name when it stores it).
            exec(conn, sql, || format!("cannot create table `{name}`")).await?;
        } else {
            later.push(Later { kind, name, sql });
        }
    }
    Ok((src_tables, later))
}

/// Copies the rows, rowids included (other rows and full-text indexes may refer to them);
/// shadow tables are copied raw, which restores a full-text index without rebuilding it.
async fn copy_rows(conn: &mut SqliteConnection, src_tables: &[SqliteTable]) -> Result<(), String> {
    for src in src_tables {
        let name = &src.name;
        if !(src.kind == "table" || src.kind == "shadow") || is_state_table(name) {
            continue;
        }
        let list = column_list(conn, src).await?;
        let t = quote_ident(name);
        if src.kind == "shadow" {
            let sql = format!("DELETE FROM main.{t}");
            exec(conn, sql, || format!("cannot empty `{name}`")).await?;
        }
        let sql = format!("INSERT INTO main.{t} ({list}) SELECT {list} FROM runbook_src.{t}");
        exec(conn, sql, || format!("cannot copy the rows of `{name}`")).await?;
    }
    Ok(())
}

/// The columns to copy of an archive's table, quoted: its stored columns, and the rowid under
/// a name no column takes, unless the table is WITHOUT ROWID.
async fn column_list(conn: &mut SqliteConnection, src: &SqliteTable) -> Result<String, String> {
    let name = &src.name;
    let columns: Vec<(String, i64)> = sqlx::query_as(
        "SELECT name, hidden FROM pragma_table_xinfo(?1, 'runbook_src') ORDER BY cid",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| err(&format!("cannot read the columns of `{name}`"), e))?;
    // Generated columns (hidden 2 and 3) are computed, not inserted.
    let mut cols: Vec<String> = columns
        .iter()
        .filter(|(_, hidden)| *hidden == 0)
        .map(|(c, _)| quote_ident(c))
        .collect();
    if !src.without_rowid
        && let Some(alias) = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|a| !columns.iter().any(|(c, _)| c.eq_ignore_ascii_case(a)))
    {
        cols.insert(0, alias.to_owned());
    }
    Ok(cols.join(", "))
}

/// AUTOINCREMENT counters: main's (runbook's own kept) replaced with the archive's.
async fn copy_sequences(conn: &mut SqliteConnection) -> Result<(), String> {
    let has_seq = |schema: &'static str| {
        sqlx::query_scalar::<sqlx::Sqlite, i64>(AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.sqlite_schema WHERE name = 'sqlite_sequence'"
        )))
    };
    let src_seq = has_seq("runbook_src")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| err("cannot read the archive's schema", e))?;
    let main_seq = has_seq("main")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| err("cannot read the schema", e))?;
    if main_seq == 0 {
        return Ok(());
    }
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM main.sqlite_sequence")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| err("cannot read `sqlite_sequence`", e))?;
    for name in names.iter().filter(|n| !is_state_table(n)) {
        sqlx::query("DELETE FROM main.sqlite_sequence WHERE name = ?1")
            .bind(name)
            .execute(&mut *conn)
            .await
            .map_err(|e| err("cannot reset `sqlite_sequence`", e))?;
    }
    if src_seq == 0 {
        return Ok(());
    }
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, seq FROM runbook_src.sqlite_sequence")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| err("cannot read the archive's `sqlite_sequence`", e))?;
    for (name, seq) in rows.iter().filter(|(n, _)| !is_state_table(n)) {
        sqlx::query("INSERT INTO main.sqlite_sequence (name, seq) VALUES (?1, ?2)")
            .bind(name)
            .bind(seq)
            .execute(&mut *conn)
            .await
            .map_err(|e| err("cannot restore `sqlite_sequence`", e))?;
    }
    Ok(())
}

/// The schema version an application keeps in `user_version`, and `application_id`.
async fn copy_pragmas(conn: &mut SqliteConnection) -> Result<(), String> {
    for pragma in ["user_version", "application_id"] {
        let value: i64 = sqlx::query_scalar(AssertSqlSafe(format!("PRAGMA runbook_src.{pragma}")))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| err(&format!("cannot read `{pragma}`"), e))?;
        // An integer read back from SQLite: nothing to quote.
        let sql = format!("PRAGMA main.{pragma} = {value}");
        exec(conn, sql, || format!("cannot set `{pragma}`")).await?;
    }
    Ok(())
}

/// Foreign keys: a faithful copy may carry the violations its source had; say so rather than
/// refuse the only backup there is.
async fn foreign_key_warnings(conn: &mut SqliteConnection) -> Result<Vec<String>, String> {
    let violations: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT \"table\" FROM pragma_foreign_key_check WHERE schema = 'main'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    let mut warnings = Vec::new();
    if !violations.is_empty() {
        warnings.push(format!(
            "the restored database has foreign key violations (as its backup had) in {}",
            list_some(&violations)
        ));
    }
    Ok(warnings)
}
