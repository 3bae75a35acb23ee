//! `into: existing`: the rows go into the tables the target already has (made by its
//! migrations), not into tables the copy creates.
//!
//! Each source table goes into the target table of the same name (or the one `map` names),
//! each source column into the target column of the same name (or the one `map` names); a
//! source column without a target column is an error unless `ignore` lists it, and target
//! columns the source lacks take their defaults. Every value is converted to the target
//! column's type (`convert`), and one that does not convert exactly fails the copy naming its
//! row's key, the column and the value. All tables load in one transaction, so a failure
//! leaves the target as it was; the loaded tables' foreign keys are dropped inside it and added
//! again after the last table (`fkeys`: one check per key, and cycles of keys that are not
//! deferrable load too), or, for a role that may not drop them, tables load parents first and
//! deferrable keys are checked at the commit. Plain indexes (backing no constraint) are
//! dropped and built again after the last table too (`indexes`), when the role owns the
//! tables. One transaction means one connection: the
//! tables load one after another (PostgreSQL cannot share a transaction between sessions). Each table is read back and its checksum compared with
//! the source's (`canon`); serial and identity sequences continue after the copied values.
//! A table recorded as copied by an earlier run, whose source is unchanged and whose row count
//! is as recorded, is skipped.

mod canon;
mod columns;
mod convert;
mod fkeys;
mod indexes;
mod load;
mod mapping;
mod wire;

use super::checksum::Checksum;
use super::progress::{self, Recorded};
use super::report::{Decision, TableOutcome};
use super::schema::SrcTable;
use super::target::target_count;
use super::{Op, OpError, Request, db_error, describe, detail, note, per_second, source_zone};
use crate::fmt::{plural, quote_ident};
use crate::playbook::CopyEpoch;
use columns::{TgtTable, load_order, read_table};
use convert::{Epoch, Reading, Zone};
use load::{Job, Mapping, convert_rows, move_sequences, target_checksum};
use sqlx::PgConnection;
use sqlx::sqlite::SqliteConnection;
use std::collections::HashMap;
use std::time::Instant;

/// Copies the selected tables into the target's existing tables, in one transaction.
pub(super) async fn copy_into(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    req: &Request,
    op: &Op<'_>,
    selected: &[&SrcTable],
    decisions: &mut Vec<Decision>,
) -> Result<Vec<TableOutcome>, OpError> {
    let zone = Reading {
        zone: source_zone(req)?.map_or(Zone::Utc, Zone::Named),
        epoch: match req.epoch {
            Some(CopyEpoch::Seconds) => Epoch::Seconds,
            Some(CopyEpoch::Milliseconds) => Epoch::Milliseconds,
            None => Epoch::Unsaid,
        },
    };
    let mut targets = Vec::new();
    let mut maps = Vec::new();
    for t in selected {
        let name = req
            .map
            .get(&t.name)
            .cloned()
            .unwrap_or_else(|| t.name.clone());
        let tgt = read_table(pg, &name).await?.ok_or_else(|| {
            OpError::Failed(format!(
                "the target has no table `{name}` for the source's `{}`: apply the schema's \
                 migrations first, name its table with `map`, or leave it out with `tables`",
                t.name
            ))
        })?;
        maps.push(mapping::map_columns(t, &tgt, req, decisions)?);
        targets.push(tgt);
    }
    mapping::check_names(selected, req)?;
    sqlx::raw_sql("BEGIN; SET CONSTRAINTS ALL DEFERRED")
        .execute(&mut *pg)
        .await
        .map_err(db_error)?;
    let result = load_all(pg, src, req, op, selected, &targets, &maps, zone).await;
    match result {
        Ok(outcomes) => {
            sqlx::raw_sql("COMMIT")
                .execute(&mut *pg)
                .await
                .map_err(|e| {
                    OpError::Failed(format!(
                        "commit (foreign keys are checked here): {}",
                        describe(&e)
                    ))
                })?;
            Ok(outcomes)
        }
        Err(e) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *pg).await;
            Err(match e {
                OpError::Failed(m) => OpError::NothingCommitted(format!(
                    "{m}; nothing was copied (the copy is one transaction)"
                )),
                other => other,
            })
        }
    }
}

/// Loads every table, parents first, inside the open transaction.
#[allow(clippy::too_many_arguments)]
async fn load_all(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    req: &Request,
    op: &Op<'_>,
    selected: &[&SrcTable],
    targets: &[TgtTable],
    maps: &[Mapping],
    zone: Reading,
) -> Result<Vec<TableOutcome>, OpError> {
    if req.replace {
        let names: Vec<String> = targets.iter().map(|t| quote_ident(&t.name)).collect();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "TRUNCATE {}",
            names.join(", ")
        )))
        .execute(&mut *pg)
        .await
        .map_err(|e| {
            OpError::Failed(format!(
                "`replace: true` could not empty the target tables: {}",
                describe(&e)
            ))
        })?;
        progress::forget(pg, targets.iter().map(|t| t.name.clone()).collect()).await?;
    }
    let recorded = progress::recorded(pg).await?;
    let source_name = req.source.display().to_string();
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let keys = fkeys::drop_keys(pg, &names).await?;
    let plain = match keys {
        Some(_) => indexes::drop_indexes(pg, &names).await?,
        None => None,
    };
    if keys.is_none() {
        note(
            op,
            "foreign keys and indexes stay in place during the load (the role does not own \
             the tables): parents load first and deferrable keys are checked at the commit",
        );
    }
    let mut outcomes = Vec::new();
    for i in load_order(targets) {
        if op.cancelled() {
            return Err(OpError::Interrupted);
        }
        let job = Job {
            src: selected[i],
            tgt: &targets[i],
            map: &maps[i],
            zone,
        };
        let began = Instant::now();
        let (status, sum) = load_one(pg, src, op, &job, &recorded, &source_name).await?;
        let seconds = began.elapsed().as_secs_f64();
        let rows_per_second = if status == "copied" {
            per_second(sum.rows, seconds)
        } else {
            0.0
        };
        note(
            op,
            &format!(
                "`{}`: {} {status} in {seconds:.1}s, checksum verified",
                job.tgt.name,
                plural(sum.rows, "row", "rows")
            ),
        );
        outcomes.push(TableOutcome {
            table: job.tgt.name.clone(),
            status: status.to_owned(),
            rows: sum.rows,
            seconds,
            rows_per_second,
            checksum: Some(sum.hex()),
            error: None,
        });
    }
    if let Some(plain) = plain.filter(|x| !x.is_empty()) {
        detail(op, "creating indexes");
        indexes::create_indexes(pg, &plain).await?;
    }
    if let Some(keys) = keys.filter(|k| !k.is_empty()) {
        detail(op, "checking foreign keys");
        fkeys::add_keys(pg, &keys).await?;
        note(
            op,
            &format!(
                "foreign keys checked over the loaded tables: {}",
                fkeys::names(&keys)
            ),
        );
    }
    Ok(outcomes)
}

/// Skips a table an earlier run copied from the same source values, refuses one with rows
/// of other origin, else loads and verifies it.
async fn load_one(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    op: &Op<'_>,
    job: &Job<'_>,
    recorded: &HashMap<String, Recorded>,
    source_name: &str,
) -> Result<(&'static str, Checksum), OpError> {
    let count = target_count(pg, &job.tgt.name).await?;
    if count > 0 {
        if let Some(r) = recorded.get(&job.tgt.name)
            && r.status == "done"
            && r.source_rows == count
        {
            let sum = convert_rows(pg, src, op, job, false).await?;
            if sum.hex() == r.checksum && i64::try_from(sum.rows).ok() == Some(count) {
                return Ok(("skipped", sum));
            }
        }
        return Err(OpError::Failed(format!(
            "`{}` has {} in the target that this source's copy did not put there; copy into \
             an existing schema loads empty tables: set `replace: true` to empty them first",
            job.tgt.name,
            plural(count, "row", "rows")
        )));
    }
    let sum = convert_rows(pg, src, op, job, true).await?;
    let back = target_checksum(pg, op, job).await?;
    if back != sum {
        return Err(OpError::Failed(format!(
            "`{}`: verification failed: the source has {} rows (checksum {}), the target {} \
             rows (checksum {})",
            job.tgt.name,
            sum.rows,
            sum.hex(),
            back.rows,
            back.hex()
        )));
    }
    let moved = move_sequences(pg, job).await?;
    if !moved.is_empty() {
        note(
            op,
            &format!("`{}`: sequences: {}", job.tgt.name, moved.join(", ")),
        );
    }
    progress::record_done(pg, &job.tgt.name, source_name, &sum).await?;
    Ok(("copied", sum))
}
