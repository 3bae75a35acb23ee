//! `copy`: a SQLite database into the PostgreSQL target in one step. The work is in
//! `db::copy`; this file checks the target, resolves paths, bounds the work by the step's
//! timeout and Ctrl-C, and maps the report to outputs.

use crate::db::copy::{self, Report, Request};
use crate::db::op::OpError;
use crate::db::{Db, TargetSpec};
use crate::exec::{ActionCtx, StepError, StepResult};
use crate::fmt::plural;
use crate::playbook::{CopyAction, CopyInto};
use serde_json::{Map, Value as Json, json};
use std::path::{Path, PathBuf};

/// Inexact values listed per column in the step's outputs; the report file has them all.
const OUTPUT_VALUES: usize = 20;

pub async fn run(a: &CopyAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    match ctx.target {
        Some(TargetSpec::Postgres(url)) => ctx.redactor.add_url(url),
        Some(TargetSpec::Sqlite(path)) => {
            return Err(StepError::Failed(format!(
                "`copy` loads a SQLite database into PostgreSQL, and the target is SQLite \
                 (`sqlite:{}`); run it on an environment whose target is PostgreSQL, or pass \
                 --target postgres://...",
                path.display()
            )));
        }
        None => {
            return Err(StepError::Failed(
                "`copy` needs a PostgreSQL target: give the environment one or pass --target"
                    .to_owned(),
            ));
        }
    }
    let source = source_path(ctx.root, &a.from)?;
    let req = Request {
        source,
        tables: a.tables.clone(),
        replace: a.replace,
        into_existing: a.into == CopyInto::Existing,
        time_zone: a.time_zone.clone(),
        ignore: a.ignore.clone(),
        map: a.map.clone(),
        allow_skip: a.allow_skip.clone(),
        epoch: a.epoch,
        target_url: match ctx.target {
            Some(TargetSpec::Postgres(url)) => Some(url.clone()),
            _ => None,
        },
    };
    let report_path = a.report.as_deref().map(|p| resolve(ctx.root, p));
    // Every run's report is kept under its run id; `report:` names a copy of the latest.
    let run_report =
        Path::new(".runbook/reports").join(format!("copy-{}-{}.json", ctx.run_id, ctx.step_id));
    let redactor = ctx.redactor.clone();
    ctx.db().await?;
    // The connection is taken for the copy and given back only when it ends cleanly: a copy
    // cut short by the timeout or Ctrl-C leaves it mid-protocol, and the next step connects
    // afresh.
    let Some(Db::Postgres(mut pg)) = ctx.db.take() else {
        return Err(StepError::Failed("no PostgreSQL connection".to_owned()));
    };
    let op = ctx.op("copy");
    // The copy checks for Ctrl-C between chunks; stopping here as well ends it at once, and
    // the step's timeout ends it wherever it is.
    let result = tokio::select! {
        r = copy::copy(&mut pg, &req, &op) => r,
        e = op.stopped() => Err(e),
    };
    let report = match result {
        Ok(r) => {
            *ctx.db = Some(Db::Postgres(pg));
            r
        }
        Err(OpError::Interrupted) => return Err(StepError::Interrupted),
        Err(OpError::TimedOut(t)) => {
            return Err(StepError::Failed(redactor.redact(&format!(
                "timed out after {}; tables verified before then are recorded and a re-run \
                 skips them",
                crate::fmt::duration(t)
            ))));
        }
        Err(OpError::Failed(m) | OpError::NothingCommitted(m)) => {
            return Err(StepError::Failed(redactor.redact(&m)));
        }
    };
    copy::write_report(&ctx.root.join(&run_report), &report).map_err(StepError::Failed)?;
    if let Some(path) = &report_path {
        copy::write_report(path, &report).map_err(StepError::Failed)?;
    }
    summarise(&report, ctx);
    let failed = report.failed();
    if !failed.is_empty() {
        let list: Vec<String> = failed
            .iter()
            .map(|t| format!("`{}`: {}", t.table, t.error.as_deref().unwrap_or("failed")))
            .collect();
        return Err(StepError::Failed(redactor.redact(&format!(
            "{} of {} failed ({}); the others are recorded as copied, and running the \
             step again loads only what is missing",
            failed.len(),
            plural(report.tables.len(), "table", "tables"),
            list.join("; ")
        ))));
    }
    Ok(outputs(&report, &run_report))
}

/// `sqlite:PATH`, `sqlite://PATH` or a plain path, relative to the project root.
fn source_path(root: &Path, from: &str) -> Result<PathBuf, StepError> {
    let path = if from.starts_with("sqlite:") {
        match TargetSpec::parse(from).map_err(StepError::Failed)? {
            TargetSpec::Sqlite(p) => p,
            TargetSpec::Postgres(_) => {
                return Err(StepError::Failed(
                    "`from` is a SQLite database (`sqlite:FILE`)".to_owned(),
                ));
            }
        }
    } else if from.starts_with("postgres://") || from.starts_with("postgresql://") {
        return Err(StepError::Failed(
            "`from` is a SQLite database (`sqlite:FILE`); copying from PostgreSQL is not \
             supported"
                .to_owned(),
        ));
    } else {
        PathBuf::from(from)
    };
    Ok(resolve(root, &path.to_string_lossy()))
}

fn resolve(root: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

fn summarise(report: &Report, ctx: &ActionCtx<'_>) {
    let copied = report
        .tables
        .iter()
        .filter(|t| t.status == "copied")
        .count();
    let skipped = report
        .tables
        .iter()
        .filter(|t| t.status == "skipped")
        .count();
    let inexact: u64 = report.inexact.iter().map(|i| i.count).sum();
    let not_carried = report
        .decisions
        .iter()
        .filter(|d| d.to == "not carried over" || d.to.ends_with("NOT VALID"))
        .count();
    ctx.progress.note(&format!(
        "{} (copy): {} copied ({}, {} rows/s), {skipped} skipped, {} not kept exactly, {} not \
         carried over (see `decisions`)",
        ctx.step_id,
        plural(copied, "table", "tables"),
        plural(report.rows, "row", "rows"),
        report.rows_per_second,
        plural(inexact, "value", "values"),
        plural(not_carried, "schema item", "schema items")
    ));
}

/// The step's outputs; `report` is this run's own report file, which the audit record keeps.
fn outputs(report: &Report, run_report: &Path) -> Map<String, Json> {
    let mut tables = Map::new();
    for t in &report.tables {
        tables.insert(
            t.table.clone(),
            json!({
                "status": t.status,
                "rows": t.rows,
                "seconds": (t.seconds * 1000.0).round() / 1000.0,
                "rows_per_second": t.rows_per_second,
                "checksum": t.checksum,
            }),
        );
    }
    let inexact: Vec<Json> = report
        .inexact
        .iter()
        .map(|i| {
            json!({
                "table": i.table,
                "column": i.column,
                "reason": i.reason,
                "count": i.count,
                "values": i.values.iter().take(OUTPUT_VALUES).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut out = Map::new();
    out.insert("tables".to_owned(), Json::Object(tables));
    out.insert("rows".to_owned(), json!(report.rows));
    out.insert("rows_per_second".to_owned(), json!(report.rows_per_second));
    out.insert("decisions".to_owned(), json!(report.decisions));
    out.insert("inexact".to_owned(), Json::Array(inexact));
    out.insert("report".to_owned(), json!(run_report.display().to_string()));
    out
}
