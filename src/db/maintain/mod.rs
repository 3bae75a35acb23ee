//! Maintenance on PostgreSQL: `VACUUM (ANALYZE)` (`vacuum.rs`) and `REINDEX CONCURRENTLY`
//! (`reindex.rs`), one relation at a time, each statement on its own outside any transaction
//! (`REINDEX CONCURRENTLY` and `VACUUM` refuse to run in one). Names are resolved by the server
//! (`to_regclass`) and written back as it quotes them, never spliced as given. A second
//! connection (`monitor.rs`) shows the running statement's progress and, when the run stops
//! (Ctrl-C, the step's timeout), cancels it on the server.

mod monitor;
mod reindex;
mod vacuum;

pub use reindex::reindex;
pub use vacuum::vacuum;

use crate::db::describe;
use crate::db::op::{Op, OpError};
use monitor::{Monitor, View};
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgConnection};
use std::time::{Duration, Instant};

/// How long a cancelled statement may take to end before the step gives up on it.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// One table or index a maintenance step worked on.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    /// The name as PostgreSQL writes it (schema-qualified when off the search path).
    pub name: String,
    pub duration_ms: u64,
    /// `pg_total_relation_size` of a table, `pg_relation_size` of an index, before and after.
    pub size_before: i64,
    pub size_after: i64,
}

/// What a maintenance step did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Maintained {
    pub tables: Vec<Done>,
    pub indexes: Vec<Done>,
    pub duration_ms: u64,
}

/// A relation named in a step, resolved: its name as the server writes it and its kind.
pub(super) struct Relation {
    pub name: String,
    pub kind: char,
}

/// Resolves a name the way a statement would (`to_regclass`: search path, quoting).
pub(super) async fn resolve(c: &mut PgConnection, given: &str) -> Result<Relation, OpError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT c.oid::regclass::text, c.relkind::text FROM pg_class c WHERE c.oid = to_regclass($1)",
    )
    .bind(given)
    .fetch_optional(&mut *c)
    .await
    .map_err(|e| failed_db(&format!("cannot look up `{given}`"), &e))?;
    match row {
        Some((name, kind)) => Ok(Relation {
            name,
            kind: kind.chars().next().unwrap_or('?'),
        }),
        None => Err(OpError::NothingCommitted(format!(
            "no table or index `{given}` in the database (a name is looked up on the search path; \
             write `schema.name`, and quote a mixed-case name: `'\"Order\"'`)"
        ))),
    }
}

/// The ordinary tables and materialized views runbook's role owns (directly or through a
/// role it is a member of; all of them for a superuser), outside the system schemas; with
/// `indexed`, only those with an index.
pub(super) async fn own_tables(
    c: &mut PgConnection,
    indexed: bool,
) -> Result<Vec<String>, OpError> {
    let sql = format!(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'm') AND n.nspname <> 'information_schema' \
           AND n.nspname NOT LIKE 'pg\\_%' AND pg_has_role(c.relowner, 'MEMBER'){} \
         ORDER BY n.nspname, c.relname",
        if indexed { " AND c.relhasindex" } else { "" }
    );
    sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_all(&mut *c)
        .await
        .map_err(|e| failed_db("cannot list the tables", &e))
}

/// The size of a relation in bytes (tables with their indexes and TOAST).
pub(super) async fn size(c: &mut PgConnection, name: &str, table: bool) -> i64 {
    let sql = if table {
        "SELECT pg_total_relation_size($1::regclass)::int8"
    } else {
        "SELECT pg_relation_size($1::regclass)::int8"
    };
    sqlx::query_scalar(sql)
        .bind(name)
        .fetch_one(&mut *c)
        .await
        .unwrap_or(0)
}

/// Runs one statement outside a transaction and times it, its progress watched through
/// `mon`; a stop cancels it on the server.
async fn run(
    c: &mut PgConnection,
    mon: &mut Monitor,
    sql: &str,
    view: View,
    op: &Op<'_>,
) -> Result<Duration, StmtError> {
    op.check().map_err(StmtError::Stopped)?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *c)
        .await
        .map_err(StmtError::Sql)?;
    let started = Instant::now();
    let fut = sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(&mut *c);
    tokio::pin!(fut);
    let stop = tokio::select! {
        r = &mut fut => return r.map(|_| started.elapsed()).map_err(StmtError::Sql),
        e = op.stopped() => e,
        never = mon.watch(pid, view, sql, op) => match never {},
    };
    if mon.cancel(pid).await {
        let _ = tokio::time::timeout(CANCEL_GRACE, &mut fut).await;
    }
    Err(StmtError::Stopped(stop))
}

/// How a statement ended early.
pub(super) enum StmtError {
    Stopped(OpError),
    Sql(sqlx::Error),
}

pub(super) fn failed_db(what: &str, e: &sqlx::Error) -> OpError {
    OpError::failed(format!("{what}: {}", describe(e)))
}

/// The error of a maintenance step on SQLite.
pub(super) fn postgres_only(action: &str) -> OpError {
    OpError::NothingCommitted(format!(
        "`{action}` runs on PostgreSQL; on SQLite run `{}` with a `sql` step",
        if action == "vacuum" {
            "VACUUM"
        } else {
            "REINDEX"
        }
    ))
}

/// What the step did before it failed, for the message.
pub(super) fn done_before(done: &[Done]) -> String {
    if done.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = done.iter().map(|d| d.name.as_str()).collect();
    format!(" (done before it: {})", names.join(", "))
}
