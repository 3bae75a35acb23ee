//! Schema migrations: discovery, history table, status, apply, revert, baseline, resolve, lint,
//! rehearse.
//!
//! Everything here works on a [`Db`](crate::db::Db), a
//! [`TargetSpec`](crate::db::TargetSpec) and plain values, so other commands can use it (a
//! `plan --rehearse`, the `health` check of migration status); the `migrate` action
//! (`exec/actions/migrate.rs`) only turns the results into outputs and notes. Operations take
//! an [`Op`] for the run id, cancellation, the deadline and notes, and fail with an
//! [`OpError`].
//!
//! Files live in `<base>/<dialect>/` (`postgres` or `sqlite`): `<version>_<name>.sql` with an
//! optional `<version>_<name>.down.sql` (sqlx's `.up.sql` works too), or Prisma folders
//! `<timestamp>_<name>/migration.sql`. A Prisma folder may also be the base itself, so an
//! existing Prisma project runs as is, and migrations Prisma already applied (in
//! `_prisma_migrations`) count as applied. For a Prisma folder runbook keeps
//! `_prisma_migrations` as Prisma would, beside its own history, so Prisma agrees afterwards.
//!
//! What a run can rely on:
//! - Each migration runs in its own transaction together with its history row, unless its
//!   first line is `-- runbook:no-transaction`. Then its statements run one at a time (one
//!   multi-statement query would be an implicit transaction block, where `CREATE INDEX
//!   CONCURRENTLY` fails), and its history row is written first as failed and marked done at
//!   the end, so a crash in the middle shows as a failed migration rather than as nothing.
//! - Nothing is applied while an applied migration's file changed (drift), is gone, or an
//!   INVALID index from a failed concurrent build is still there.
//! - On PostgreSQL the migration lock is a session advisory lock on a dedicated connection,
//!   polled (never a blocking call), and released on every path: each operation takes it,
//!   runs, then releases it whatever the result (sqlx's migrator keeps it after a failure).
//!   The same connection cancels a running statement on Ctrl-C or at the step's deadline.
//!   On SQLite the run lock already serialises runs and `BEGIN IMMEDIATE` takes the write lock.
//!
//! One concept per file: `source` (files on disk), `version`, `script` (the SQL as text),
//! `history`, `prisma` (Prisma's table, written as Prisma writes it), `status`, `lock`, `tx`,
//! `run` (one file; on PostgreSQL `batched` sends a file in a transaction with its rows in one
//! message, and `outside` a file outside one with its rows in a message before and after it),
//! `failure` (its error), `watch` (what a running statement waits on: its blockers, listed and
//! stopped by `blockers`, and an index build's progress), `apply`, `revert`, `baseline`,
//! `resolve`, `rehearse`, `lint`;
//! the SQL of each dialect is in `postgres` and `sqlite` (Prisma's table's in `prisma`).

mod apply;
mod baseline;
mod batched;
mod blockers;
mod failure;
mod history;
mod lint;
mod lock;
mod outside;
mod postgres;
mod prisma;
mod rehearse;
mod resolve;
mod revert;
mod run;
mod script;
mod source;
mod sqlite;
mod status;
mod tokens;
mod tx;
mod version;
mod watch;

pub use apply::{ApplyReport, apply};
pub use baseline::{BaselineReport, baseline};
pub use blockers::{Blocker, Stopped, mask_literals, shown_query};
pub use history::{HISTORY_TABLE, HistoryEntry, PrismaRecord, history};
pub use lint::{
    Finding, TableSize, annotate, assume_empty_schema, lint, lint_offline, server_version,
    table_size,
};
pub use lock::{LOCK_KEY, LOCK_POLL, LOCK_WAIT, MigrationLock};
pub use prisma::{PRISMA_TABLE, PrismaFailure};
pub use rehearse::{LockTaken, Rehearsal, Rehearsed, rehearse};
pub use resolve::{Resolution, ResolveReport, resolve};
pub use revert::{RevertReport, RevertTo, revert};
pub use run::{Ran, Settings};
pub use script::{NO_TRANSACTION, is_no_transaction};
pub use source::{Migration, MigrationSet, checksum, discover, locate, normalize, read_dir};
pub use status::{
    Drift, FailedMigration, MissingFile, PendingMigration, Status, compare, status, to_json,
};
pub use version::compare_versions;
pub use watch::{BuildSample, WATCH_POLL, Watched};

use crate::db::describe;
use crate::db::op::OpError;

/// A database error as `what: message (SQLSTATE ...)`.
fn db_failed(what: &str, e: &sqlx::Error) -> OpError {
    OpError::failed(format!("{what}: {}", describe(e)))
}

/// The SQLSTATE of a database error.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}
