//! SQLite backups: the catalog queries (tables, row counts), `PRAGMA integrity_check` of a
//! copy, and the backup itself, a `VACUUM INTO` copy of the database file.

use super::files::place;
use super::guard::guard;
use super::hash::seal_archive;
use super::is_state_table;
use super::manifest::ArchiveFormat;
use super::names::Names;
use super::take::{Archive, Backup, BackupRequest, Began, finish};
use crate::db::Dialect;
use crate::db::op::{Op, OpError};
use crate::fmt::{list_some, quote_ident};
use crate::playbook::{BackupFormat, BackupMode};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};
use std::collections::BTreeMap;
use std::path::Path;

/// A table as `pragma table_list` describes it.
pub(super) struct SqliteTable {
    pub(super) name: String,
    /// table, shadow, virtual or view.
    pub(super) kind: String,
    pub(super) without_rowid: bool,
}

/// Tables of `schema`, system tables left out.
pub(super) async fn sqlite_tables(
    conn: &mut sqlx::SqliteConnection,
    schema: &str,
) -> Result<Vec<SqliteTable>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT name, type, wr FROM pragma_table_list WHERE schema = ?1 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .bind(schema)
    .fetch_all(conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(SqliteTable {
            name: row.try_get(0)?,
            kind: row.try_get(1)?,
            without_rowid: row.try_get::<i64, _>(2)? != 0,
        });
    }
    Ok(out)
}

/// Row counts of the ordinary tables of `schema` (runbook's own left out).
pub(super) async fn sqlite_counts(
    conn: &mut sqlx::SqliteConnection,
    schema: &str,
) -> Result<BTreeMap<String, u64>, sqlx::Error> {
    let mut counts = BTreeMap::new();
    for t in sqlite_tables(conn, schema).await? {
        if t.kind != "table" || is_state_table(&t.name) {
            continue;
        }
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(schema),
            quote_ident(&t.name)
        )))
        .persistent(false)
        .fetch_one(&mut *conn)
        .await?;
        counts.insert(t.name, u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

/// `PRAGMA integrity_check` on a SQLite file opened read-only; its row counts if it is sound.
pub(super) async fn sqlite_check(path: &Path) -> Result<BTreeMap<String, u64>, String> {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let result = async {
        let report: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| format!("`PRAGMA integrity_check` failed on {}: {e}", path.display()))?;
        if report != ["ok"] {
            return Err(format!(
                "`PRAGMA integrity_check` on {} reports: {}",
                path.display(),
                list_some(&report)
            ));
        }
        sqlite_counts(&mut conn, "main")
            .await
            .map_err(|e| format!("cannot count rows in {}: {e}", path.display()))
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Backs up a SQLite database: a full copy with `VACUUM INTO`, checked and counted, then the
/// manifest.
pub(super) async fn backup_sqlite(
    conn: &mut sqlx::SqliteConnection,
    db_path: &Path,
    req: &BackupRequest,
    op: &Op<'_>,
) -> Result<Backup, OpError> {
    if req.format != BackupFormat::Custom || req.mode != BackupMode::Full || req.jobs > 1 {
        return Err(OpError::failed(
            "a SQLite backup is a full copy of the database file (`VACUUM INTO`): `mode`, `format: directory` and `jobs` are for PostgreSQL",
        ));
    }
    let began = Began::now();
    let version: String = guard(
        op,
        "cannot read the SQLite version",
        None,
        sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&mut *conn),
    )
    .await?;
    let database = db_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "db".to_owned());
    let names = Names::new(
        &req.dir,
        &database,
        began.created,
        op,
        req.purpose,
        ArchiveFormat::Sqlite,
    )?;
    let (sha256, size, row_counts) = names.or_remove(write_sqlite(conn, op, &names).await)?;
    let archive = Archive {
        dialect: Dialect::Sqlite,
        database,
        format: ArchiveFormat::Sqlite,
        mode: BackupMode::Full,
        sha256,
        size,
        files: BTreeMap::new(),
        server_version: version,
        pg_dump_version: None,
        row_counts,
        toc: None,
    };
    finish(names, archive, &began, req, None, op).await
}

/// Copies into `names.partial`, checks the copy and counts its rows, hashes and syncs it and
/// renames it into place.
async fn write_sqlite(
    conn: &mut sqlx::SqliteConnection,
    op: &Op<'_>,
    names: &Names,
) -> Result<(String, u64, BTreeMap<String, u64>), OpError> {
    let partial = names
        .partial
        .to_str()
        .ok_or_else(|| {
            OpError::failed(format!(
                "the backup path {} is not UTF-8",
                names.partial.display()
            ))
        })?
        .to_owned();
    op.note(&format!("VACUUM INTO {}", names.archive.display()));
    // The file name is a bound parameter: `VACUUM INTO` takes an expression.
    guard(
        op,
        "`VACUUM INTO` failed",
        Some(&names.partial),
        sqlx::query("VACUUM INTO ?1")
            .bind(partial)
            .execute(&mut *conn),
    )
    .await?;
    // The copy is a consistent snapshot: its counts are the backup's.
    let row_counts = guard(
        op,
        "the copy is not sound",
        None,
        sqlite_check(&names.partial),
    )
    .await?;
    // VACUUM INTO does not sync what it wrote: the copy is synced as it is hashed.
    let (sha256, size, _) = seal_archive(&names.partial, ArchiveFormat::Sqlite, op).await?;
    place(&names.partial, &names.archive)?;
    Ok((sha256, size, row_counts))
}
