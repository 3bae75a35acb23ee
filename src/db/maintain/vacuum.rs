//! `vacuum`: `VACUUM (ANALYZE)` table by table, or `VACUUM (FULL, ANALYZE)` when the step opts
//! in. A vacuum changes no row, so a failure is `NothingCommitted` (a rollback would have
//! nothing to bring back); the tables done before it stay vacuumed.

use super::monitor::{Monitor, View};
use super::{
    Done, Maintained, StmtError, done_before, own_tables, postgres_only, resolve, run, size,
};
use crate::db::op::{Op, OpError};
use crate::db::{Db, TargetSpec, describe};
use crate::fmt::{bytes, duration, plural};
use crate::playbook::VacuumAction;
use std::time::Instant;

/// Vacuums the tables `a` names (every table the role owns when it names none).
pub async fn vacuum(
    db: &mut Db,
    target: &TargetSpec,
    a: &VacuumAction,
    op: &Op<'_>,
) -> Result<Maintained, OpError> {
    let Db::Postgres(c) = db else {
        return Err(postgres_only("vacuum"));
    };
    let started = Instant::now();
    let tables = if a.tables.is_empty() {
        own_tables(c, false)
            .await
            .map_err(OpError::nothing_committed)?
    } else {
        let mut names = Vec::with_capacity(a.tables.len());
        for given in &a.tables {
            let rel = resolve(c, given).await?;
            if !matches!(rel.kind, 'r' | 'm' | 'p') {
                return Err(OpError::NothingCommitted(format!(
                    "`{given}` is not a table (`vacuum` takes tables; rebuild an index with `reindex`)"
                )));
            }
            names.push(rel.name);
        }
        names
    };
    let options = match (a.full, a.analyze()) {
        (true, true) => "(FULL, ANALYZE) ",
        (true, false) => "(FULL) ",
        (false, true) => "(ANALYZE) ",
        (false, false) => "",
    };
    let view = if a.full {
        View::VacuumFull
    } else {
        View::Vacuum
    };
    let mut mon = Monitor::open(target).await;
    let mut report = Maintained::default();
    for (i, table) in tables.iter().enumerate() {
        op.detail(&format!(
            "VACUUM {options}{table} ({} of {})",
            i + 1,
            tables.len()
        ));
        let size_before = size(c, table, true).await;
        let took = match run(c, &mut mon, &format!("VACUUM {options}{table}"), view, op).await {
            Ok(took) => took,
            Err(StmtError::Stopped(e)) => return Err(e.nothing_committed()),
            Err(StmtError::Sql(e)) => {
                return Err(OpError::NothingCommitted(format!(
                    "VACUUM {options}{table} failed: {}{}",
                    describe(&e),
                    done_before(&report.tables)
                )));
            }
        };
        let size_after = size(c, table, true).await;
        if a.full {
            op.note(&format!(
                "VACUUM FULL {table} in {}: {} -> {}",
                duration(took),
                bytes(size_before.max(0) as u64),
                bytes(size_after.max(0) as u64)
            ));
        }
        report.tables.push(Done {
            name: table.clone(),
            duration_ms: took.as_millis() as u64,
            size_before,
            size_after,
        });
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    op.note(&format!(
        "vacuumed {}{} in {}",
        plural(report.tables.len(), "table", "tables"),
        if a.analyze() {
            " and analyzed them"
        } else {
            ""
        },
        duration(started.elapsed())
    ));
    Ok(report)
}
