//! One table at a time: skipped when an earlier run copied it and the source is unchanged,
//! loaded again when the source changed or an earlier copy did not finish, else loaded; each
//! table's outcome for the report; foreign keys once every table is in.

use super::checksum::{Checksum, source_checksum};
use super::ddl::{Names, index_plans};
use super::keys::add_foreign_keys;
use super::load::{Attempt, Loaded, load_table};
use super::plan::{Planned, column_decisions, inspect, plan_from_stats, plan_table};
use super::progress::{self, Recorded};
use super::report::{Decision, Inexact, TableOutcome};
use super::schema::SrcTable;
use super::target::{drop_table, replace_tables, target_count, target_exists};
use super::{Op, OpError, Request, note, per_second};
use crate::fmt::plural;
use sqlx::PgConnection;
use sqlx::sqlite::SqliteConnection;
use std::time::Instant;

/// Copies the selected tables in order, then their foreign keys. A table's failure is its
/// outcome; only an interruption or a broken connection stops the rest.
pub(super) async fn copy_tables(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    req: &Request,
    op: &Op<'_>,
    selected: &[&SrcTable],
    decisions: &mut Vec<Decision>,
) -> Result<(Vec<TableOutcome>, Vec<Inexact>), OpError> {
    let source_name = req.source.display().to_string();
    if req.replace && !selected.is_empty() {
        replace_tables(pg, selected).await?;
    }
    let record = progress::recorded(pg).await?;
    let mut names = Names::default();
    names.allow_skip.clone_from(&req.allow_skip);
    names.zone = super::source_zone(req)?;
    let mut outcomes = Vec::new();
    let mut inexact = Vec::new();
    for t in selected {
        if op.cancelled() {
            return Err(OpError::Interrupted);
        }
        let began = Instant::now();
        let result = copy_table(
            pg,
            src,
            op,
            t,
            record.get(&t.name),
            &source_name,
            &mut names,
        )
        .await;
        let seconds = began.elapsed().as_secs_f64();
        let outcome = match result {
            Ok(TableResult::Copied(loaded)) => {
                copied(op, t, loaded, seconds, decisions, &mut inexact)
            }
            Ok(TableResult::Skipped(sum)) => skipped(op, t, &sum, seconds),
            Err(OpError::Failed(msg)) => {
                note(op, &format!("`{}`: failed: {msg}", t.name));
                progress::record_failed(pg, &t.name, &source_name, &msg).await;
                TableOutcome {
                    table: t.name.clone(),
                    status: "failed".to_owned(),
                    rows: 0,
                    seconds,
                    rows_per_second: 0.0,
                    checksum: None,
                    error: Some(msg),
                }
            }
            Err(e) => return Err(e),
        };
        outcomes.push(outcome);
    }
    if outcomes.iter().all(|o| o.status != "failed") {
        for t in selected {
            add_foreign_keys(pg, t, &names, decisions).await?;
        }
    } else if selected.iter().any(|t| !t.fks.is_empty()) {
        note(
            op,
            "foreign keys are added once every table is copied; run the step again after fixing the failed tables",
        );
    }
    Ok((outcomes, inexact))
}

/// A loaded table's outcome; its decisions and inexact values join the report's.
fn copied(
    op: &Op<'_>,
    t: &SrcTable,
    loaded: Loaded,
    seconds: f64,
    decisions: &mut Vec<Decision>,
    inexact: &mut Vec<Inexact>,
) -> TableOutcome {
    let rows = loaded.checksum.rows;
    let [load, keys, verify] = loaded.phases;
    note(
        op,
        &format!(
            "`{}`: {} in {seconds:.1}s ({} rows/s; rows {load:.1}s, keys and \
             indexes {keys:.1}s, verification {verify:.1}s), checksum verified",
            t.name,
            plural(rows, "row", "rows"),
            per_second(rows, seconds)
        ),
    );
    for ((col, reason), (count, values)) in loaded.inexact.groups {
        inexact.push(Inexact {
            table: t.name.clone(),
            column: t.columns[col].name.clone(),
            reason,
            count,
            values,
        });
    }
    decisions.extend(loaded.decisions);
    TableOutcome {
        table: t.name.clone(),
        status: "copied".to_owned(),
        rows,
        seconds,
        rows_per_second: per_second(rows, seconds),
        checksum: Some(loaded.checksum.hex()),
        error: None,
    }
}

/// A skipped table's outcome.
fn skipped(op: &Op<'_>, t: &SrcTable, sum: &Checksum, seconds: f64) -> TableOutcome {
    note(
        op,
        &format!(
            "`{}`: skipped, copied by an earlier run and the source is unchanged ({})",
            t.name,
            plural(sum.rows, "row", "rows")
        ),
    );
    TableOutcome {
        table: t.name.clone(),
        status: "skipped".to_owned(),
        rows: sum.rows,
        seconds,
        rows_per_second: 0.0,
        checksum: Some(sum.hex()),
        error: None,
    }
}

/// What became of a table that did not fail.
enum TableResult {
    Copied(Loaded),
    Skipped(Checksum),
}

/// Skips, reloads or loads one table; a value that does not fit its optimistic type sends
/// the table through a full inspection and a second load.
async fn copy_table(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    op: &Op<'_>,
    t: &SrcTable,
    recorded: Option<&Recorded>,
    source_name: &str,
    names: &mut Names,
) -> Result<TableResult, OpError> {
    let exists = target_exists(pg, &t.name).await?;
    let mut plan = plan_table(src, op, t).await?.with_zone(names.zone);
    if exists {
        match recorded {
            Some(r) if r.status == "done" => {
                let sum = source_checksum(src, op, &mut plan).await?;
                let count = target_count(pg, &t.name).await?;
                let unchanged =
                    i64::try_from(sum.rows).ok() == Some(r.source_rows) && sum.hex() == r.checksum;
                if unchanged && count == r.source_rows {
                    reserve_names(t, names);
                    return Ok(TableResult::Skipped(sum));
                }
                if count != r.source_rows {
                    return Err(OpError::Failed(format!(
                        "`{}` was copied by an earlier run ({}) but has {} in the \
                         target now; runbook does not overwrite changes made there: set \
                         `replace: true` to copy it again",
                        t.name,
                        plural(r.source_rows, "row", "rows"),
                        plural(count, "row", "rows")
                    )));
                }
                note(
                    op,
                    &format!(
                        "`{}`: the source changed since it was copied; copying it again",
                        t.name
                    ),
                );
                drop_table(pg, &t.name).await?;
            }
            Some(_) => {
                note(
                    op,
                    &format!(
                        "`{}`: an earlier copy did not finish; loading it again",
                        t.name
                    ),
                );
                drop_table(pg, &t.name).await?;
            }
            None => {
                let count = target_count(pg, &t.name).await?;
                let what = if count == 0 {
                    "exists (empty)".to_owned()
                } else {
                    format!("exists with {}", plural(count, "row", "rows"))
                };
                return Err(OpError::Failed(format!(
                    "table `{}` {what} in the target and was not made by an earlier copy; \
                     copy creates its own tables: drop it, or set `replace: true` to drop it",
                    t.name
                )));
            }
        }
    }
    load_until_it_fits(pg, src, op, t, plan, source_name, names).await
}

/// Loads the table; a value that does not fit its optimistic type sends the table through a
/// full inspection and a second load, and one that does not fit a declared length or
/// precision loads its column without it.
async fn load_until_it_fits(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    op: &Op<'_>,
    t: &SrcTable,
    mut plan: Planned<'_>,
    source_name: &str,
    names: &mut Names,
) -> Result<TableResult, OpError> {
    let mut inspected = false;
    loop {
        let m = match load_table(pg, src, op, t, &plan, source_name, names).await? {
            Attempt::Done(mut loaded) => {
                loaded
                    .decisions
                    .splice(0..0, column_decisions(t, &plan, &loaded.stats));
                return Ok(TableResult::Copied(loaded));
            }
            Attempt::Misfit(m) => m,
        };
        let limited = t
            .columns
            .iter()
            .position(|c| c.name == m.column)
            .filter(|&i| plan.cols[i].limit.is_some());
        if let Some(i) = limited {
            note(
                op,
                &format!(
                    "`{}`: column `{}` has {}; loading it without its declared limit",
                    t.name, m.column, m.what
                ),
            );
            plan.cols[i].limit = None;
        } else if !inspected && plan.inspected.is_none() {
            note(
                op,
                &format!(
                    "`{}`: column `{}` has {}; inspecting every value to choose its types",
                    t.name, m.column, m.what
                ),
            );
            let stats = inspect(src, op, t).await?;
            plan = plan_from_stats(t, stats).with_zone(names.zone);
            inspected = true;
        } else {
            return Err(OpError::Failed(format!(
                "column `{}` has {} after its values were inspected (a date-time that does \
                 not exist or is ambiguous in `time_zone`, or the source changed during the \
                 copy)",
                m.column, m.what
            )));
        }
    }
}

/// Reserves the constraint and index names a skipped table already uses.
fn reserve_names(t: &SrcTable, names: &mut Names) {
    let _ = index_plans(t, names);
}
