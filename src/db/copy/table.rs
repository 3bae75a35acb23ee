//! The tables in two lanes, largest first, one streaming at a time: skipped when an earlier run copied it and the
//! source is unchanged, loaded again when the source changed or an earlier copy did not
//! finish, else loaded; each table's outcome for the report; foreign keys once every table
//! is in.

use super::checksum::{Checksum, source_checksum};
use super::ddl::Names;
use super::foreign::add_foreign_keys;
use super::keys::Keys;
use super::load::{Attempt, Loaded, Streamed, finish_table, stream_table};
use super::plan::{Planned, inspect, plan_from_stats, plan_table};
use super::progress::{self, Recorded};
use super::report::{Decision, Inexact, TableOutcome};
use super::scan::Source;
use super::schema::SrcTable;
use super::target::{drop_table, replace_tables, target_count, target_exists};
use super::{Op, OpError, Request, db_error, note, per_second};
use crate::fmt::{plural, quote_ident};
use sqlx::PgConnection;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Instant;

/// Copies the selected tables, then their foreign keys. A table's failure is its outcome;
/// only an interruption or a broken connection stops the rest.
///
/// With a second connection, two lanes take the tables largest first, each table in its own
/// transaction on its lane's connection. One table streams at a time: while a lane runs its
/// table's keys, indexes and verification (PostgreSQL's work), the other streams the next
/// ones. Two streams at once measured slower on two cores (the largest table's rows, on the
/// critical path, shared the cores with the small ones' instead of running before them).
/// Both lanes read the one source connection in its one read transaction (one snapshot), a
/// chunk at a time under its lock. Outcomes, decisions and inexact values are reported in
/// the selection's order, whichever lane finished first.
pub(super) async fn copy_tables(
    pg: &mut PgConnection,
    mut second: Option<&mut PgConnection>,
    src: &Source,
    req: &Request,
    op: &Op<'_>,
    selected: &[&SrcTable],
    decisions: &mut Vec<Decision>,
) -> Result<(Vec<TableOutcome>, Vec<Inexact>), OpError> {
    if req.replace && !selected.is_empty() {
        replace_tables(pg, selected).await?;
    }
    let mut names = Names::default();
    names.allow_skip.clone_from(&req.allow_skip);
    names.zone = super::source_zone(req)?;
    let keys = selected
        .iter()
        .map(|t| Some(Keys::plan(t, &mut names)))
        .collect();
    let lanes = Lanes {
        src,
        op,
        selected,
        record: progress::recorded(pg).await?,
        source_name: req.source.display().to_string(),
        names: RefCell::new(names),
        order: largest_first(src, selected).await?,
        next: Cell::new(0),
        stop: Cell::new(false),
        keys: RefCell::new(keys),
        done: RefCell::new((0..selected.len()).map(|_| None).collect()),
        streaming: tokio::sync::Mutex::new(()),
    };
    match second.as_deref_mut() {
        Some(b) => {
            let (x, y) = futures_util::future::join(lanes.run(&mut *pg), lanes.run(b)).await;
            x.and(y)?;
        }
        None => lanes.run(&mut *pg).await?,
    }
    let mut outcomes = Vec::new();
    let mut inexact = Vec::new();
    for (outcome, d, i) in lanes.done.into_inner().into_iter().flatten() {
        outcomes.push(outcome);
        decisions.extend(d);
        inexact.extend(i);
    }
    if outcomes.len() != selected.len() {
        return Err(OpError::Failed(
            "internal: a table was left without an outcome".to_owned(),
        ));
    }
    let names = lanes.names.into_inner();
    if outcomes.iter().all(|o| o.status != "failed") {
        let tables: Vec<(&SrcTable, u64)> = selected
            .iter()
            .copied()
            .zip(outcomes.iter().map(|o| o.rows))
            .collect();
        add_foreign_keys((pg, second), &tables, &names, decisions).await?;
    } else if selected.iter().any(|t| !t.fks.is_empty()) {
        note(
            op,
            "foreign keys are added once every table is copied; run the step again after fixing the failed tables",
        );
    }
    Ok((outcomes, inexact))
}

/// The selection's positions, the tables with the most rows first: the largest table starts
/// at once and the small ones fill the other lane around it.
async fn largest_first(src: &Source, selected: &[&SrcTable]) -> Result<Vec<usize>, OpError> {
    let mut rows = Vec::with_capacity(selected.len());
    let mut conn = src.lock().await?;
    for t in selected {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            quote_ident(&t.name)
        )))
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
        rows.push(n);
    }
    let mut order: Vec<usize> = (0..selected.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rows[i]));
    Ok(order)
}

/// A table's outcome with its decisions and inexact values.
type Done = (TableOutcome, Vec<Decision>, Vec<Inexact>);

/// What the lanes share: the queue of tables, the names, and the outcomes by position.
struct Lanes<'s, 'o, 't> {
    src: &'s Source,
    op: &'s Op<'o>,
    selected: &'s [&'t SrcTable],
    record: HashMap<String, Recorded>,
    source_name: String,
    names: RefCell<Names>,
    order: Vec<usize>,
    next: Cell<usize>,
    /// Set by the lane that met an error stopping everything: the other takes no new table.
    stop: Cell<bool>,
    keys: RefCell<Vec<Option<Keys>>>,
    done: RefCell<Vec<Option<Done>>>,
    /// Held while a table streams: one stream at a time, the other lane's finish beside it.
    streaming: tokio::sync::Mutex<()>,
}

impl Lanes<'_, '_, '_> {
    /// The next table's position, unless the queue is empty or stopped.
    fn take(&self) -> Option<usize> {
        if self.stop.get() {
            return None;
        }
        let k = self.next.get();
        let i = *self.order.get(k)?;
        self.next.set(k + 1);
        Some(i)
    }

    /// One lane: tables from the queue, each loaded and finished on `pg`, until none is left.
    async fn run(&self, pg: &mut PgConnection) -> Result<(), OpError> {
        let out = self.run_tables(pg).await;
        if out.is_err() {
            self.stop.set(true);
        }
        out
    }

    async fn run_tables(&self, pg: &mut PgConnection) -> Result<(), OpError> {
        while let Some(i) = self.take() {
            if self.op.cancelled() {
                return Err(OpError::Interrupted);
            }
            let t = self.selected[i];
            let keys = self.keys.borrow_mut()[i].take();
            let recorded = self.record.get(&t.name);
            let streaming = self.streaming.lock().await;
            let began = Instant::now();
            let streamed = copy_table(pg, self.src, self.op, t, recorded, &self.names).await;
            drop(streaming);
            let result = match streamed {
                Ok(TableResult::Streamed(streamed)) => match keys {
                    Some(keys) => finish_table(
                        pg,
                        self.op,
                        t,
                        streamed,
                        &self.source_name,
                        keys,
                        &self.names,
                    )
                    .await
                    .map(TableResult::Copied),
                    None => Err(OpError::Failed("internal: keys planned twice".to_owned())),
                },
                other => other,
            };
            let mut decisions = Vec::new();
            let mut inexact = Vec::new();
            let o = outcome(
                pg,
                self.op,
                t,
                result,
                began,
                &mut decisions,
                &mut inexact,
                &self.source_name,
            )
            .await?;
            self.done.borrow_mut()[i] = Some((o, decisions, inexact));
        }
        Ok(())
    }
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
             indexes {keys:.1}s, verification {verify:.1}s), checksum verified {}",
            t.name,
            plural(rows, "row", "rows"),
            per_second(rows, seconds),
            loaded.verified_by
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
    src: &Source,
    op: &Op<'_>,
    t: &'a SrcTable,
    recorded: Option<&Recorded>,
    names: &RefCell<Names>,
) -> Result<TableResult<'a>, OpError> {
    let exists = target_exists(pg, &t.name).await?;
    let zone = names.borrow().zone;
    let mut plan = plan_table(&mut *src.lock().await?, op, t)
        .await?
        .with_zone(zone);
    if exists {
        match recorded {
            Some(r) if r.status == "done" => {
                let sum = source_checksum(&mut *src.lock().await?, op, &mut plan).await?;
                let count = target_count(pg, &t.name).await?;
                let unchanged =
                    i64::try_from(sum.rows).ok() == Some(r.source_rows) && sum.hex() == r.checksum;
                if unchanged && count == r.source_rows {
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
    src: &Source,
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
            let stats = inspect(&mut *src.lock().await?, op, t).await?;
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
