//! `health`: the production guide's health check. Prints one line per check and the guide's
//! summary as notes, and returns every check's status, value and details as outputs.

use crate::db::Dialect;
use crate::db::health::{self, HealthOptions, HealthReport, Status};
use crate::db::op::OpError;
use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::{HealthAction, HealthChecks, HealthOutcome, RowBaseline};
use crate::redact::Redactor;
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Each query's statement timeout when the step sets no timeout of its own.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(a: &HealthAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    let opts = HealthOptions {
        checks: match &a.checks {
            HealthChecks::All(_) => None,
            HealthChecks::List(list) => Some(list.clone()),
        },
        thresholds: a.thresholds.clone(),
        migrations_dir: ctx.dirs.migrations.clone(),
        root: ctx.root.to_path_buf(),
        statement_timeout: ctx
            .timeout
            .map_or(STATEMENT_TIMEOUT, |t| t.min(STATEMENT_TIMEOUT)),
        baseline: baseline(a, ctx.redactor)?,
    };
    let dialect = ctx.target.map_or(Dialect::Sqlite, Dialect::of);
    let mut op = ctx.op("health");
    let report = match ctx.db().await {
        Err(StepError::Failed(msg)) => health::unreachable(&opts, dialect, &msg),
        Err(other) => return Err(other),
        Ok(db) => {
            // The step's timeout bounds the checks, not the connection before them.
            op.start_now();
            match health::check(db, &opts, &op).await {
                Ok(report) => report,
                Err(OpError::Interrupted) => return Err(StepError::Interrupted),
                Err(OpError::TimedOut(t)) => {
                    return Err(StepError::Failed(format!(
                        "the health check did not finish within {}",
                        crate::fmt::duration(t)
                    )));
                }
                Err(OpError::Failed(msg) | OpError::NothingCommitted(msg)) => {
                    return Err(StepError::Failed(msg));
                }
            }
        }
    };

    for r in &report.results {
        ctx.progress.note(&ctx.redactor.redact(&format!(
            "  {:<4}  {}: {}",
            r.status.word(),
            health::title(r.check),
            r.message
        )));
    }
    ctx.progress.note(&report.summary());

    let outputs = ctx.redactor.redact_json(&Json::Object(outputs(&report)));
    let fail_on = match a.fail_on.unwrap_or(HealthOutcome::Fail) {
        HealthOutcome::Warn => Status::Warn,
        HealthOutcome::Fail => Status::Fail,
    };
    if report.status() >= fail_on {
        let bad: Vec<String> = report
            .results
            .iter()
            .filter(|r| r.status >= fail_on)
            .map(|r| {
                format!(
                    "{} {}: {}",
                    health::name(r.check),
                    r.status.word(),
                    r.message
                )
            })
            .collect();
        return Err(StepError::Failed(ctx.redactor.redact(&format!(
            "{}; {}",
            report.summary(),
            bad.join("; ")
        ))));
    }
    match outputs {
        Json::Object(m) => Ok(m),
        _ => Ok(Map::new()),
    }
}

fn outputs(report: &HealthReport) -> Map<String, Json> {
    let mut checks = Map::new();
    for r in &report.results {
        checks.insert(health::name(r.check).to_owned(), r.to_json());
    }
    let mut out = Map::new();
    out.insert("status".to_owned(), json!(report.status().word()));
    out.insert("passed".to_owned(), json!(report.count(Status::Pass)));
    out.insert("warnings".to_owned(), json!(report.count(Status::Warn)));
    out.insert("failed".to_owned(), json!(report.count(Status::Fail)));
    out.insert("checks".to_owned(), Json::Object(checks));
    out
}

/// The row counts to compare with, less the tables the step ignores; `None` when nothing is
/// left to compare. A template that did not give counts fails the step.
fn baseline(
    a: &HealthAction,
    redactor: &Redactor,
) -> Result<Option<BTreeMap<String, u64>>, StepError> {
    match &a.baseline {
        // An empty baseline (a backup of an empty database, `allow_fewer_rows`) has nothing
        // to compare.
        None => Ok(None),
        Some(RowBaseline::Counts(c)) => {
            let ignored: Vec<&str> = a
                .baseline_ignore
                .iter()
                .map(|t| health::baseline_name(t))
                .collect();
            let kept: BTreeMap<String, u64> = c
                .iter()
                .filter(|(t, _)| !ignored.contains(&health::baseline_name(t)))
                .map(|(t, n)| (t.clone(), *n))
                .collect();
            Ok((!kept.is_empty()).then_some(kept))
        }
        Some(RowBaseline::Template(t)) => Err(StepError::Failed(format!(
            "`baseline` gave {:?}, not a map of table to row count",
            redactor.redact(t)
        ))),
    }
}
