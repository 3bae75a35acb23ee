//! `health`: the production guide's health check. Prints one line per check and the guide's
//! summary as notes, and returns every check's status, value and details as outputs.

use crate::db::Dialect;
use crate::db::health::{self, DiskSource, HealthOptions, HealthReport, Status};
use crate::db::op::OpError;
use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::{HealthAction, HealthCheck, HealthChecks, HealthOutcome, RowBaseline};
use crate::process::{self, ProcessError, ProcessSpec};
use crate::redact::Redactor;
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Each query's statement timeout when the step sets no timeout of its own.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a `disk_command` may take when the step sets no shorter timeout.
const DISK_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

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
        url: match ctx.target {
            Some(crate::db::TargetSpec::Postgres(url)) => Some(url.clone()),
            _ => None,
        },
        baseline: baseline(a, ctx.redactor)?,
        disk: None,
        backups: match (&a.backup_dir, ctx.target) {
            (Some(dir), Some(target)) => Some(health::BackupsAt {
                dir: super::backup::resolve(ctx.root, dir),
                target: target.clone(),
            }),
            _ => None,
        },
        sample_window: a.sample_window.as_ref().and_then(|d| d.parse()),
    };
    let dialect = ctx.target.map_or(Dialect::Sqlite, Dialect::of);
    let mut opts = opts;
    if dialect == Dialect::Postgres && wants_disk(&opts) {
        opts.disk = disk_source(ctx).await?;
    }
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

    let mut outputs = Json::Object(outputs(&report));
    ctx.redactor.redact_json_mut(&mut outputs);
    // The textfile says how things are now, passing or failing: written before the verdict.
    if let Some(file) = &a.metrics_file {
        write_metrics(ctx, file, &outputs)?;
    }
    let fail_on = match a.fail_on.unwrap_or(HealthOutcome::Fail) {
        HealthOutcome::Warn => Status::Warn,
        HealthOutcome::Fail => Status::Fail,
    };
    // A figure that could not be measured is a warning with no value; a check the step
    // requires to be known fails it then.
    let unknown = |r: &health::CheckResult| {
        a.require_known.contains(&r.check) && r.status == Status::Warn && r.value.is_null()
    };
    if report.status() >= fail_on || report.results.iter().any(unknown) {
        let bad: Vec<String> = report
            .results
            .iter()
            .filter(|r| r.status >= fail_on || unknown(r))
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

/// The report as Prometheus metrics in `file` (relative to the project), replaced atomically.
fn write_metrics(ctx: &ActionCtx<'_>, file: &str, outputs: &Json) -> Result<(), StepError> {
    let empty = Map::new();
    let checks = outputs["checks"].as_object().unwrap_or(&empty);
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let text = crate::metrics::render(&crate::metrics::health::families(
        checks,
        &ctx.dirs.env,
        now,
    ));
    let path = super::backup::resolve(ctx.root, file);
    crate::metrics::write_textfile(&path, &text).map_err(|e| {
        StepError::Failed(format!(
            "cannot write the metrics file {}: {e}",
            path.display()
        ))
    })
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

/// Whether the step runs the disk check.
fn wants_disk(opts: &HealthOptions) -> bool {
    opts.checks
        .as_ref()
        .is_none_or(|c| c.contains(&HealthCheck::DiskSpace))
}

/// Where the free disk figure comes from, when the environment's vars say: `disk_limit` (a
/// size) or `disk_command` (run here, through `process`, with a timeout). A value runbook
/// cannot use fails the step, naming the var and what it should hold.
async fn disk_source(ctx: &mut ActionCtx<'_>) -> Result<Option<DiskSource>, StepError> {
    let vars = &ctx.template_ctx["vars"];
    let env = &ctx.dirs.env;
    let limit = vars.get("disk_limit").filter(|v| !v.is_null());
    let command = vars.get("disk_command").filter(|v| !v.is_null());
    match (limit, command) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(StepError::Failed(format!(
            "environment `{env}` sets both `disk_limit` and `disk_command` in its vars: keep the one the free disk figure comes from"
        ))),
        (Some(l), None) => {
            let text = match l {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            health::parse_size(&text)
                .map(|b| Some(DiskSource::Limit(b)))
                .map_err(|e| {
                    StepError::Failed(format!(
                        "`disk_limit` in the vars of environment `{env}`: {e}"
                    ))
                })
        }
        (None, Some(c)) => {
            let Json::String(c) = c else {
                return Err(StepError::Failed(format!(
                    "`disk_command` in the vars of environment `{env}` is {c}, not a command: give it as text, such as \"df --output=avail,size -B1 /var/lib/postgresql | tail -1\""
                )));
            };
            let command = c.clone();
            let figure = disk_command(ctx, &command).await?;
            Ok(Some(DiskSource::Command { command, figure }))
        }
    }
}

/// Runs `disk_command` with `sh -c` in the project root and reads the figure it printed.
async fn disk_command(
    ctx: &mut ActionCtx<'_>,
    command: &str,
) -> Result<health::DiskFigure, StepError> {
    let spec = ProcessSpec {
        argv: vec!["sh".to_owned(), "-c".to_owned(), command.to_owned()],
        cwd: ctx.root.to_path_buf(),
        env: BTreeMap::new(),
        timeout: Some(
            ctx.timeout
                .map_or(DISK_COMMAND_TIMEOUT, |t| t.min(DISK_COMMAND_TIMEOUT)),
        ),
    };
    let failed = |why: String| {
        StepError::Failed(
            ctx.redactor
                .redact(&format!("`disk_command` `{command}` {why}")),
        )
    };
    let out = match process::run(&spec, &mut ctx.cancel).await {
        Ok(out) => out,
        Err(ProcessError::Interrupted) => return Err(StepError::Interrupted),
        Err(e) => return Err(failed(e.to_string())),
    };
    if out.code != Some(0) {
        let how = match out.code {
            Some(c) => format!("exited with code {c}"),
            None => "was killed by a signal".to_owned(),
        };
        let last = out.stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(failed(match last {
            Some(l) => format!("{how}: {}", l.trim()),
            None => how,
        }));
    }
    health::parse_figure(&out.stdout).map_err(failed)
}
