//! `reindex`: `REINDEX INDEX|TABLE ... CONCURRENTLY`, one relation at a time. A concurrent
//! rebuild that fails leaves its new index behind, INVALID (`..._ccnew`): the error names it
//! and how to drop it.

use super::monitor::{Monitor, View};
use super::{
    Done, Maintained, StmtError, done_before, own_tables, postgres_only, resolve, run, size,
};
use crate::db::op::{Op, OpError};
use crate::db::{Db, TargetSpec, describe};
use crate::fmt::{bytes, duration, plural};
use crate::playbook::ReindexAction;
use sqlx::PgConnection;
use std::time::Instant;

/// Rebuilds the indexes and tables `a` names (every indexed table the role owns when it names
/// none).
pub async fn reindex(
    db: &mut Db,
    target: &TargetSpec,
    a: &ReindexAction,
    op: &Op<'_>,
) -> Result<Maintained, OpError> {
    let Db::Postgres(c) = db else {
        return Err(postgres_only("reindex"));
    };
    let started = Instant::now();
    let mut work: Vec<(String, bool)> = Vec::new();
    for given in &a.indexes {
        let rel = resolve(c, given).await?;
        if !matches!(rel.kind, 'i' | 'I') {
            return Err(OpError::NothingCommitted(format!(
                "`{given}` under `indexes` is not an index (name its table under `tables`)"
            )));
        }
        work.push((rel.name, false));
    }
    for given in &a.tables {
        let rel = resolve(c, given).await?;
        if !matches!(rel.kind, 'r' | 'm' | 'p') {
            return Err(OpError::NothingCommitted(format!(
                "`{given}` under `tables` is not a table (name an index under `indexes`)"
            )));
        }
        work.push((rel.name, true));
    }
    if a.indexes.is_empty() && a.tables.is_empty() {
        let all = own_tables(c, true)
            .await
            .map_err(OpError::nothing_committed)?;
        work.extend(all.into_iter().map(|t| (t, true)));
    }
    let how = if a.concurrently() {
        " CONCURRENTLY"
    } else {
        ""
    };
    let mut mon = Monitor::open(target).await;
    let mut report = Maintained::default();
    for (i, (name, table)) in work.iter().enumerate() {
        let kind = if *table { "TABLE" } else { "INDEX" };
        let sql = format!("REINDEX {kind}{how} {name}");
        op.detail(&format!("{sql} ({} of {})", i + 1, work.len()));
        let size_before = size(c, name, *table).await;
        let took = match run(c, &mut mon, &sql, View::Index, op).await {
            Ok(took) => took,
            Err(StmtError::Stopped(e)) => return Err(left_behind(c, e.to_string(), &report).await),
            Err(StmtError::Sql(e)) => {
                let msg = format!("{sql} failed: {}", describe(&e));
                return Err(left_behind(c, msg, &report).await);
            }
        };
        let size_after = size(c, name, *table).await;
        op.note(&format!(
            "{sql} in {}: {} -> {}",
            duration(took),
            bytes(size_before.max(0) as u64),
            bytes(size_after.max(0) as u64)
        ));
        let done = Done {
            name: name.clone(),
            duration_ms: took.as_millis() as u64,
            size_before,
            size_after,
        };
        if *table {
            report.tables.push(done);
        } else {
            report.indexes.push(done);
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    op.note(&format!(
        "rebuilt the indexes of {} and {} in {}",
        plural(report.tables.len(), "table", "tables"),
        plural(report.indexes.len(), "index", "indexes"),
        duration(started.elapsed())
    ));
    Ok(report)
}

/// The error of a failed rebuild, naming the INVALID indexes a concurrent rebuild leaves.
async fn left_behind(c: &mut PgConnection, msg: String, report: &Maintained) -> OpError {
    let mut done = report.tables.clone();
    done.extend(report.indexes.iter().cloned());
    let invalid: Vec<String> = sqlx::query_scalar(
        "SELECT i.indexrelid::regclass::text FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE NOT i.indisvalid AND c.relname LIKE '%\\_ccnew%' ORDER BY 1",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap_or_default();
    if invalid.is_empty() {
        return OpError::failed(format!("{msg}{}", done_before(&done)));
    }
    OpError::failed(format!(
        "{msg}{}; the interrupted rebuild left INVALID {} behind: {} (drop with `DROP INDEX CONCURRENTLY`)",
        done_before(&done),
        if invalid.len() == 1 {
            "index"
        } else {
            "indexes"
        },
        invalid.join(", ")
    ))
}
