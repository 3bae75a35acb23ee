//! One table at a time: skipped when an earlier run copied it and the source is unchanged,
//! loaded again when the source changed or an earlier copy did not finish, else loaded; each
//! table's outcome for the report; foreign keys once every table is in.

use super::checksum::{Checksum, source_checksum};
use super::ddl::{Names, index_plans};
use super::keys::add_foreign_keys;
use super::load::{Attempt, Loaded, Streamed, finish_table, stream_table};
use super::plan::{Planned, inspect, plan_from_stats, plan_table};
use super::progress::{self, Recorded};
use super::report::{Decision, Inexact, TableOutcome};
use super::schema::SrcTable;
use super::target::{drop_table, replace_tables, target_count, target_exists};
use super::{Op, OpError, Request, note, per_second};
use crate::fmt::plural;
use sqlx::PgConnection;
use sqlx::sqlite::SqliteConnection;
use std::cell::RefCell;
use std::time::Instant;

/// Copies the selected tables in order, then their foreign keys. A table's failure is its
/// outcome; only an interruption or a broken connection stops the rest.
///
/// With a second connection, tables alternate between the two: while one table's keys,
/// indexes and verification run on its connection (PostgreSQL's work), the next table streams
/// on the other. Only one table reads the source at a time, so every table is read from the
/// one read transaction (one snapshot).
pub(super) async fn copy_tables(
    pg: &mut PgConnection,
    mut second: Option<&mut PgConnection>,
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
    let names = RefCell::new(names);
    let mut outcomes = Vec::new();
    let mut inexact = Vec::new();
    // The table whose rows are in and whose transaction is open on the connection not in turn.
    let mut pending: Option<(&SrcTable, Streamed<'_>, Instant)> = None;
    for (i, t) in selected.iter().enumerate() {
        if op.cancelled() {
            return Err(OpError::Interrupted);
        }
        let (cur, other): (&mut PgConnection, Option<&mut PgConnection>) =
            match second.as_deref_mut() {
                Some(b) if i % 2 == 1 => (b, Some(&mut *pg)),
                Some(b) => (&mut *pg, Some(b)),
                None => (&mut *pg, None),
            };
        let began = Instant::now();
        let step = copy_table(cur, src, op, t, record.get(&t.name), &names);
        let result = match (pending.take(), other) {
            (Some((pt, streamed, pb)), Some(other)) => {
                let finish = finish_table(other, op, pt, streamed, &source_name, &names);
                let (done, result) = futures_util::future::join(finish, step).await;
                let outcome = outcome(
                    other,
                    op,
                    pt,
                    done.map(TableResult::Copied),
                    pb,
                    decisions,
                    &mut inexact,
                    &source_name,
                );
                outcomes.push(outcome.await?);
                result
            }
            _ => step.await,
        };
        match result {
            Ok(TableResult::Streamed(streamed)) if second.is_some() => {
                pending = Some((t, streamed, began));
            }
            Ok(TableResult::Streamed(streamed)) => {
                let done = finish_table(&mut *pg, op, t, streamed, &source_name, &names).await;
                let o = outcome(
                    pg,
                    op,
                    t,
                    done.map(TableResult::Copied),
                    began,
                    decisions,
                    &mut inexact,
                    &source_name,
                );
                outcomes.push(o.await?);
            }
            other => {
                let o = outcome(
                    pg,
                    op,
                    t,
                    other,
                    began,
                    decisions,
                    &mut inexact,
                    &source_name,
                );
                outcomes.push(o.await?);
            }
        }
    }
    if let Some((pt, streamed, pb)) = pending.take() {
        let i = outcomes.len();
        let conn = match second {
            Some(b) if i % 2 == 1 => b,
            _ => &mut *pg,
        };
        let done = finish_table(&mut *conn, op, pt, streamed, &source_name, &names).await;
        let o = outcome(
            conn,
            op,
            pt,
            done.map(TableResult::Copied),
            pb,
            decisions,
            &mut inexact,
            &source_name,
        );
        outcomes.push(o.await?);
    }
    let names = names.into_inner();
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

/// A table's outcome for the report (a failure recorded in `runbook_copy_progress` on the
/// table's connection); an interruption or a broken connection is the error that stops all.
#[allow(clippy::too_many_arguments)]
async fn outcome(
    pg: &mut PgConnection,
    op: &Op<'_>,
    t: &SrcTable,
    result: Result<TableResult<'_>, OpError>,
    began: Instant,
    decisions: &mut Vec<Decision>,
    inexact: &mut Vec<Inexact>,
    source_name: &str,
) -> Result<TableOutcome, OpError> {
    let seconds = began.elapsed().as_secs_f64();
    Ok(match result {
        Ok(TableResult::Copied(loaded)) => copied(op, t, loaded, seconds, decisions, inexact),
        Ok(TableResult::Skipped(sum)) => skipped(op, t, &sum, seconds),
        Ok(TableResult::Streamed(_)) => {
            return Err(OpError::Failed(format!(
                "`{}`: internal: a streamed table was not finished",
                t.name
            )));
        }
        Err(OpError::Failed(msg)) => {
            note(op, &format!("`{}`: failed: {msg}", t.name));
            progress::record_failed(pg, &t.name, source_name, &msg).await;
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
    })
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

/// What became of a table that did not fail: loaded and verified, skipped, or streamed with
/// the rest of its load (keys, indexes, verification, commit) still to do.
enum TableResult<'a> {
    Copied(Loaded),
    Skipped(Checksum),
    Streamed(Streamed<'a>),
}

/// Skips, reloads or loads one table; a value that does not fit its optimistic type sends
/// the table through a full inspection and a second load.
async fn copy_table<'a>(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    op: &Op<'_>,
    t: &'a SrcTable,
    recorded: Option<&Recorded>,
    names: &RefCell<Names>,
) -> Result<TableResult<'a>, OpError> {
    let exists = target_exists(pg, &t.name).await?;
    let zone = names.borrow().zone;
    let mut plan = plan_table(src, op, t).await?.with_zone(zone);
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
    load_until_it_fits(pg, src, op, t, plan, zone).await
}

/// Streams the table; a value that does not fit its optimistic type sends the table through
/// a full inspection and a second load, and one that does not fit a declared length or
/// precision loads its column without it.
async fn load_until_it_fits<'a>(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    op: &Op<'_>,
    t: &'a SrcTable,
    mut plan: Planned<'a>,
    zone: Option<chrono_tz::Tz>,
) -> Result<TableResult<'a>, OpError> {
    let mut inspected = false;
    loop {
        let m = match stream_table(pg, src, op, t, plan).await? {
            Attempt::Streamed(streamed) => return Ok(TableResult::Streamed(streamed)),
            Attempt::Misfit(p, m) => {
                plan = p;
                m
            }
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
            plan = plan_from_stats(t, stats).with_zone(zone);
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
fn reserve_names(t: &SrcTable, names: &RefCell<Names>) {
    let _ = index_plans(t, &mut names.borrow_mut());
}
