//! The history table (`runbook_migrations`) and Prisma's (`_prisma_migrations`): reading them,
//! and writing and removing rows. The SQL of each dialect lives in `postgres.rs`/`sqlite.rs`.

use super::prisma::PRISMA_TABLE;
use super::source::Migration;
use super::tx;
use super::version::compare_versions;
use super::{db_failed, postgres, sqlite};
use crate::db::Db;
use crate::db::op::OpError;
use serde::Serialize;
use sqlx::{ColumnIndex, Decode, Row, Type};

/// The history table, in the target database.
pub const HISTORY_TABLE: &str = "runbook_migrations";

pub(super) const HISTORY_SELECT: &str = "SELECT version, name, checksum, execution_ms, success, applied_at, run_id, kind FROM runbook_migrations";

/// One row of the history table.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub version: String,
    pub name: String,
    pub checksum: String,
    pub execution_ms: i64,
    pub success: bool,
    pub applied_at: String,
    pub run_id: Option<String>,
    /// `apply`, `baseline` (marked applied without running) or `prisma` (applied by Prisma).
    pub kind: String,
}

impl HistoryEntry {
    /// A row of [`HISTORY_SELECT`], either dialect; `applied_at` is read by the caller, as it
    /// is stored as a different type in each.
    pub(super) fn from_row<R: Row>(r: &R, applied_at: String) -> Result<Self, sqlx::Error>
    where
        usize: ColumnIndex<R>,
        for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    {
        Ok(HistoryEntry {
            version: r.try_get(0)?,
            name: r.try_get(1)?,
            checksum: r.try_get(2)?,
            execution_ms: r.try_get(3)?,
            success: r.try_get(4)?,
            applied_at,
            run_id: r.try_get(6)?,
            kind: r.try_get(7)?,
        })
    }
}

/// A migration Prisma recorded as finished.
#[derive(Debug, Clone)]
pub struct PrismaRecord {
    pub name: String,
    pub checksum: String,
    pub finished_at: String,
}

/// Which of the two history tables exist in the target database.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tables {
    /// `runbook_migrations`.
    pub history: bool,
    /// `_prisma_migrations`.
    pub prisma: bool,
}

impl Tables {
    /// The tables there are once `ensure_history(db, prisma)` returned these.
    pub(super) fn ensured(self, prisma: bool) -> Tables {
        Tables {
            history: true,
            prisma: prisma || self.prisma,
        }
    }
}

/// Which history tables exist: one query.
pub(super) async fn tables(db: &mut Db) -> Result<Tables, OpError> {
    lookup(db)
        .await
        .map_err(|e| db_failed("cannot look for the migration history tables", &e))
}

/// [`tables`], failing with the database's error as it is.
pub(super) async fn lookup(db: &mut Db) -> Result<Tables, sqlx::Error> {
    let [history, prisma] = match db {
        Db::Postgres(c) => postgres::tables_exist(c, [HISTORY_TABLE, PRISMA_TABLE]).await?,
        Db::Sqlite(c) => sqlite::tables_exist(c, [HISTORY_TABLE, PRISMA_TABLE]).await?,
    };
    Ok(Tables { history, prisma })
}

/// Creates the history table when it does not exist, and Prisma's (with Prisma's definition)
/// when `prisma` and it does not exist, both in one message (on PostgreSQL one implicit
/// transaction, so a fresh database pays one commit for them; SQLite commits each). Which
/// tables exist is looked up on the search path (`to_regclass`), so a history table in a later
/// schema of it is used rather than shadowed by a new empty one. Returns which tables existed
/// before: a table it created is empty, and need not be read.
pub(super) async fn ensure_history(db: &mut Db, prisma: bool) -> Result<Tables, OpError> {
    let before = tables(db).await?;
    let with_prisma = prisma && !before.prisma;
    let (history_ddl, prisma_ddl) = match db {
        Db::Postgres(_) => (postgres::HISTORY_DDL, super::prisma::POSTGRES_DDL),
        Db::Sqlite(_) => (sqlite::HISTORY_DDL, super::prisma::SQLITE_DDL),
    };
    let (what, ddl) = match (before.history, with_prisma) {
        (true, false) => return Ok(before),
        (false, false) => (
            format!("cannot create `{HISTORY_TABLE}`"),
            history_ddl.to_owned(),
        ),
        (true, true) => (
            format!("cannot create `{PRISMA_TABLE}`"),
            prisma_ddl.to_owned(),
        ),
        (false, true) => (
            format!("cannot create `{HISTORY_TABLE}` and `{PRISMA_TABLE}`"),
            format!("{history_ddl};\n{prisma_ddl}"),
        ),
    };
    tx::exec(db, &ddl).await.map_err(|e| db_failed(&what, &e))?;
    Ok(before)
}

/// The history table's rows, by version; empty when the table does not exist yet.
pub async fn history(db: &mut Db) -> Result<Vec<HistoryEntry>, OpError> {
    let exists = tables(db).await?.history;
    read_history(db, exists).await
}

/// The history table's rows, by version, when it `exists` (the caller knows); else none.
pub(super) async fn read_history(db: &mut Db, exists: bool) -> Result<Vec<HistoryEntry>, OpError> {
    if !exists {
        return Ok(Vec::new());
    }
    let what = format!("cannot read `{HISTORY_TABLE}`");
    let mut out = match db {
        Db::Postgres(c) => postgres::history_rows(c).await,
        Db::Sqlite(c) => sqlite::history_rows(c).await,
    }
    .map_err(|e| db_failed(&what, &e))?;
    out.sort_by(|a, b| compare_versions(&a.version, &b.version));
    Ok(out)
}

/// Replaces the history row of `m`.
pub(super) async fn record(
    db: &mut Db,
    m: &Migration,
    execution_ms: i64,
    success: bool,
    run_id: &str,
    kind: &str,
) -> Result<(), sqlx::Error> {
    unrecord(db, &m.version).await?;
    match db {
        Db::Postgres(c) => {
            postgres::insert_history(c, m, execution_ms, success, run_id, kind).await
        }
        Db::Sqlite(c) => sqlite::insert_history(c, m, execution_ms, success, run_id, kind).await,
    }
}

/// Removes the history row of `version`.
pub(super) async fn unrecord(db: &mut Db, version: &str) -> Result<(), sqlx::Error> {
    match db {
        Db::Postgres(c) => postgres::delete_history(c, version).await,
        Db::Sqlite(c) => sqlite::delete_history(c, version).await,
    }
}

/// Records `migrations` as applied without running them (`kind` says why), all in one
/// transaction; `in_prisma`: in Prisma's table too, as `prisma migrate resolve --applied`
/// writes a row (for the Prisma folders among them). Every error is `what` with the
/// database's message.
pub(super) async fn record_all(
    db: &mut Db,
    migrations: &[&Migration],
    run_id: &str,
    kind: &str,
    in_prisma: bool,
    what: &str,
) -> Result<(), OpError> {
    tx::begin(db).await.map_err(|e| db_failed(what, &e))?;
    for m in migrations {
        let mut done = record(db, m, 0, true, run_id, kind).await;
        if done.is_ok() && in_prisma {
            done = super::prisma::insert_marked(db, m).await;
        }
        if let Err(e) = done {
            let _ = tx::rollback(db).await;
            return Err(db_failed(what, &e));
        }
    }
    tx::commit(db).await.map_err(|e| db_failed(what, &e))
}
