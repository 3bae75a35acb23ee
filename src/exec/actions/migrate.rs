//! `migrate`: schema migrations from `migrations/<dialect>/` (status, apply, revert, baseline,
//! resolve, lint, rehearse). The logic lives in `db::migrate`; this file turns a step's arguments into
//! a call, and the result into outputs and notes.
//!
//! Outputs, for every operation that reads the target: `pending`, `applied` (the migrations
//! the database has), `drifted`, `missing`, `current_version`. Then per operation: `apply`
//! gives `results` (the files it ran, each with its checksum, direction and duration) and
//! `count` (how many); `revert` gives `reverted` and `count`; `baseline` gives `marked` and
//! `count` (how many it marked); `resolve` gives `resolved` (the migration, as `applied` or
//! `rolled_back`) and `count` (1); `status` gives `count` (pending) and `failed` (what Prisma
//! recorded as failed);
//! `lint` gives `findings`, `errors`, `warnings` and `count`; `rehearse` gives `results`,
//! `locks` and `count`. `apply` and `revert` also give what the watcher saw while files ran
//! (PostgreSQL): `blocked_by` (the sessions that blocked a file), `stopped` (those
//! `on_blocked` cancelled or terminated) and `index_progress` (index build phases).

use crate::db::Dialect;
use crate::db::migrate::{self as mg, MigrationSet, RevertTo, Settings, to_json};
use crate::db::op::{Op, OpError};
use crate::db::{Db, TargetSpec};
use crate::exec::{ActionCtx, StepError, StepResult};
use crate::fmt::duration as fmt_duration;
use crate::fmt::plural;
use crate::playbook::{LintLevel, MigrateAction, MigrateOp, ResolveAs};
use serde_json::{Map, Value as Json, json};
use std::path::Path;
use std::time::Duration;

/// Findings shown one per line; the rest are counted.
const MAX_FINDING_NOTES: usize = 50;

type Outputs = Result<Map<String, Json>, OpError>;

pub async fn run(a: &MigrateAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    let redactor = ctx.redactor;
    let result = run_op(a, ctx).await;
    if result.is_err() {
        // A stopped statement or a failed rollback can leave the connection in a state the
        // next step should not inherit: it reconnects instead.
        if let Some(db) = ctx.db.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), db.close()).await;
        }
    }
    result.map_err(|e| StepError::of_op(e, redactor))
}

fn failed(msg: impl Into<String>) -> OpError {
    OpError::failed(msg)
}

fn from_step(e: StepError) -> OpError {
    match e {
        StepError::Failed(m) => OpError::Failed(m),
        StepError::NothingCommitted(m) => OpError::NothingCommitted(m),
        StepError::Interrupted => OpError::Interrupted,
    }
}

async fn run_op(a: &MigrateAction, ctx: &mut ActionCtx<'_>) -> Outputs {
    let base = match &a.dir {
        Some(d) => ctx.root.join(d),
        None => ctx.dirs.migrations.clone(),
    };
    let settings = Settings {
        lock_timeout: a.lock_timeout.as_ref().and_then(|d| d.parse()),
        statement_timeout: a.statement_timeout.as_ref().and_then(|d| d.parse()),
        lock_retries: a.lock_retries.unwrap_or(0),
        on_blocked: a
            .on_blocked
            .as_ref()
            .and_then(|ob| Some((ob.blocker, ob.after.parse()?))),
    };
    let op = ctx.op("migrate");

    if a.action == MigrateOp::Lint {
        return lint(a, ctx, &base, &settings, &op).await;
    }
    let Some(target) = ctx.target else {
        return Err(failed(
            "`migrate` needs a database: give the environment a target or pass --target",
        ));
    };
    if a.on_blocked.is_some() && ctx.dirs.protected && !ctx.human_gate_passed {
        return Err(OpError::NothingCommitted(format!(
            "`on_blocked` is refused on the protected environment `{}` without a gate before \
             it: it cancels or terminates other sessions; put an `approval` or `confirm` gate \
             before this step",
            ctx.dirs.env
        )));
    }
    if a.action == MigrateOp::Rehearse && ctx.dirs.protected && !ctx.human_gate_passed {
        return Err(failed(format!(
            "`rehearse` is refused on the protected environment `{}`: it runs the pending \
             migrations and holds their locks until it rolls back; put an `approval` or \
             `confirm` gate before this step, or rehearse on staging or on a copy of this \
             database",
            ctx.dirs.env
        )));
    }
    // Reading the files and connecting write nothing.
    let set =
        mg::discover(&base, Dialect::of(target), ctx.root).map_err(OpError::nothing_committed)?;
    for s in &set.skipped {
        op.note(&format!("skipped `{}`: {}", s.folder, s.reason));
    }
    let db = ctx
        .db()
        .await
        .map_err(|e| from_step(e).nothing_committed())?;
    let on = Target {
        db,
        target,
        set: &set,
        op: &op,
    };
    match a.action {
        // `lint` returned above; it reads the status of the same files.
        MigrateOp::Status | MigrateOp::Lint => {
            let st = mg::status(on.db, &set).await?;
            note_status(&op, &st, &set);
            let mut out = st.outputs();
            out.insert("skipped".into(), to_json(&set.skipped));
            Ok(out)
        }
        MigrateOp::Apply => apply(a, on, &settings).await,
        MigrateOp::Revert => revert(a, on, &settings).await,
        MigrateOp::Baseline => baseline(a, on).await,
        MigrateOp::Resolve => resolve(a, on).await,
        MigrateOp::Rehearse => rehearse(on, &settings).await,
    }
}

/// What an operation on the target works with.
struct Target<'x, 'o> {
    db: &'x mut Db,
    target: &'x TargetSpec,
    set: &'x MigrationSet,
    op: &'x Op<'o>,
}

async fn apply(a: &MigrateAction, on: Target<'_, '_>, settings: &Settings) -> Outputs {
    let upto = a.version.as_deref();
    let r = mg::apply(on.db, on.target, on.set, upto, settings, on.op).await?;
    if r.applied.is_empty() {
        on.op.note(&format!(
            "nothing to apply: {} applied, current version {}",
            plural(r.status.applied.len(), "migration", "migrations"),
            r.status.current_version.as_deref().unwrap_or("none")
        ));
    }
    let mut out = r.status.outputs();
    out.insert("count".into(), r.applied.len().into());
    out.insert("results".into(), to_json(&r.applied));
    watched(&mut out, &r.watched);
    Ok(out)
}

async fn revert(a: &MigrateAction, on: Target<'_, '_>, settings: &Settings) -> Outputs {
    let to = match (a.count, a.version.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(failed("`revert` takes `count` or `version`, not both"));
        }
        (_, Some(v)) => RevertTo::Version(v),
        (n, None) => RevertTo::Count(n.unwrap_or(1)),
    };
    let r = mg::revert(on.db, on.target, on.set, to, settings, on.op).await?;
    if r.reverted.is_empty() {
        on.op.note("nothing to revert");
    }
    let mut out = r.status.outputs();
    out.insert("count".into(), r.reverted.len().into());
    out.insert("reverted".into(), to_json(&r.reverted));
    watched(&mut out, &r.watched);
    Ok(out)
}

/// What blocked the migrations (`blocked_by`), the sessions `on_blocked` stopped (`stopped`)
/// and the phases of index builds seen (`index_progress`).
fn watched(out: &mut Map<String, Json>, w: &mg::Watched) {
    out.insert("blocked_by".into(), to_json(&w.blocked_by));
    out.insert("stopped".into(), to_json(&w.stopped));
    out.insert("index_progress".into(), to_json(&w.index_progress));
}

async fn baseline(a: &MigrateAction, on: Target<'_, '_>) -> Outputs {
    let Some(v) = a.version.as_deref() else {
        return Err(failed(
            "`baseline` needs `version`: the newest migration the database already has",
        ));
    };
    let r = mg::baseline(on.db, on.target, on.set, v, on.op).await?;
    if r.marked.is_empty() {
        on.op.note(&format!(
            "nothing to baseline: every migration up to {v} is applied"
        ));
    }
    // What was marked, with the checksum the history table now holds for each.
    let marked: Vec<Json> = r
        .marked
        .iter()
        .map(|p| {
            let checksum = on.set.find(&p.version).map(|m| m.checksum.clone());
            json!({"version": p.version, "name": p.name, "file": p.file, "checksum": checksum, "direction": "baseline"})
        })
        .collect();
    let mut out = r.status.outputs();
    out.insert("count".into(), r.marked.len().into());
    out.insert("marked".into(), Json::Array(marked));
    Ok(out)
}

async fn resolve(a: &MigrateAction, on: Target<'_, '_>) -> Outputs {
    let (Some(v), Some(how)) = (a.version.as_deref(), a.resolve_as) else {
        return Err(failed(
            "`resolve` needs `version` (the migration) and `as`: `applied` (its changes were completed by hand) or `rolled_back` (they were undone)",
        ));
    };
    let how = match how {
        ResolveAs::Applied => mg::Resolution::Applied,
        ResolveAs::RolledBack => mg::Resolution::RolledBack,
    };
    let r = mg::resolve(on.db, on.target, on.set, v, how, on.op).await?;
    if r.prisma_rolled_back > 0 {
        on.op.note(&format!(
            "marked {} of {} rolled back",
            plural(
                r.prisma_rolled_back,
                "failed `_prisma_migrations` row",
                "failed `_prisma_migrations` rows"
            ),
            r.version
        ));
    }
    let resolved = json!({"version": r.version, "name": r.name, "file": r.file,
        "checksum": r.checksum, "direction": format!("resolve_{}", r.resolution.name())});
    let mut out = r.status.outputs();
    out.insert("count".into(), 1.into());
    out.insert("resolved".into(), Json::Array(vec![resolved]));
    Ok(out)
}

async fn rehearse(on: Target<'_, '_>, settings: &Settings) -> Outputs {
    let r = mg::rehearse(on.db, on.target, on.set, settings, on.op).await?;
    if r.results.is_empty() {
        on.op.note("nothing to rehearse: no pending migrations");
    }
    let locks: Vec<Json> = r
        .results
        .iter()
        .flat_map(|f| {
            f.locks.iter().map(move |l| {
                json!({"version": f.version, "file": f.file, "relation": l.relation,
                       "kind": l.kind, "mode": l.mode})
            })
        })
        .collect();
    if let Some(f) = r.failed() {
        return Err(failed(format!(
            "the rehearsal of `{}` failed: {}; the rehearsal was rolled back",
            f.file,
            f.error.as_deref().unwrap_or("unknown error")
        )));
    }
    let mut out = r.status.outputs();
    out.insert("count".into(), r.results.len().into());
    out.insert("results".into(), to_json(&r.results));
    out.insert("locks".into(), Json::Array(locks));
    Ok(out)
}

fn note_status(op: &Op<'_>, st: &mg::Status, set: &MigrationSet) {
    op.note(&format!(
        "`{}`: {} applied, {} pending, {} drifted, {} missing; current version {}",
        set.shown_dir,
        st.applied.len(),
        st.pending.len(),
        st.drifted.len(),
        st.missing.len(),
        st.current_version.as_deref().unwrap_or("none")
    ));
    for p in &st.pending {
        op.note(&format!(
            "pending `{}`{}{}",
            p.file,
            if p.retry {
                " (failed before; runs again)"
            } else {
                ""
            },
            if p.out_of_order {
                " (older than the current version)"
            } else {
                ""
            }
        ));
    }
    for f in &st.failed {
        op.note(&format!(
            "failed: `_prisma_migrations` records `{}` (started at {}) as failed{}; apply refuses until it is resolved (`migrate: {{ action: resolve, version: \"{}\", as: rolled_back | applied }}`)",
            f.migration_name,
            f.started_at,
            f.logs
                .as_deref()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|l| !l.is_empty())
                .map_or(String::new(), |l| format!(": {l}")),
            f.version
        ));
    }
    for d in &st.drifted {
        op.note(&format!(
            "drifted `{}`: applied with checksum {}, the file now has {}",
            d.file, d.expected, d.actual
        ));
    }
    for m in &st.missing {
        op.note(&format!(
            "missing: migration {} ({}) is applied but has no file{}",
            m.version,
            m.name,
            if m.future {
                " (the database is ahead of this checkout)"
            } else {
                ""
            }
        ));
    }
}

/// The files `lint` reads, and whether the target can give row estimates; `None` when there
/// is nothing to lint.
fn lint_set(
    ctx: &ActionCtx<'_>,
    base: &Path,
    op: &Op<'_>,
) -> Result<Option<(MigrationSet, bool)>, OpError> {
    let root = ctx.root;
    Ok(Some(match ctx.target.map(Dialect::of) {
        Some(Dialect::Sqlite) => {
            let dir = base.join(Dialect::Postgres.folder());
            let shown = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
            if !dir.is_dir() {
                op.note(&format!(
                    "lint applies to PostgreSQL migrations, and `{shown}` does not exist: nothing to lint"
                ));
                return Ok(None);
            }
            op.note(&format!(
                "lint applies to PostgreSQL migrations: linting every file in `{shown}` (the target is SQLite, so no row estimates)"
            ));
            let (migrations, skipped) = mg::read_dir(&dir, root)?;
            let set = MigrationSet {
                dir,
                shown_dir: shown,
                migrations,
                skipped,
            };
            (set, false)
        }
        Some(Dialect::Postgres) => (mg::discover(base, Dialect::Postgres, root)?, true),
        None => (mg::discover(base, Dialect::Postgres, root)?, false),
    }))
}

async fn lint(
    a: &MigrateAction,
    ctx: &mut ActionCtx<'_>,
    base: &Path,
    settings: &Settings,
    op: &Op<'_>,
) -> Outputs {
    let fail_on = a.fail_on.unwrap_or(LintLevel::Error);
    let mut out = Map::new();
    let started = std::time::Instant::now();
    let Some((set, on_postgres)) = lint_set(ctx, base, op)? else {
        return Ok(findings_outputs(out, &[]));
    };
    let mut findings = if on_postgres {
        let db = ctx.db().await.map_err(from_step)?;
        let st = mg::status(db, &set).await?;
        let files: Vec<&mg::Migration> = st
            .pending
            .iter()
            .filter_map(|p| set.find(&p.version))
            .collect();
        let version = mg::server_version(db).await;
        let mut findings = mg::lint(&files, version.as_deref(), settings);
        mg::annotate(db, &mut findings).await?;
        op.note(&format!(
            "linted {} in `{}` in {}",
            plural(files.len(), "pending migration", "pending migrations"),
            set.shown_dir,
            fmt_duration(started.elapsed())
        ));
        out = st.outputs();
        findings
    } else {
        let files: Vec<&mg::Migration> = set.migrations.iter().collect();
        mg::lint(&files, None, settings)
    };
    findings.sort_by(|x, y| mg::compare_versions(&x.version, &y.version).then(x.line.cmp(&y.line)));
    note_findings(op, &findings);
    let over: Vec<&mg::Finding> = findings.iter().filter(|f| f.level >= fail_on).collect();
    if let Some(first) = over.first() {
        return Err(failed(format!(
            "lint found {} at or above `{}`, the first: {}:{} {}: {}",
            plural(over.len(), "finding", "findings"),
            fail_on.as_str(),
            first.file,
            first.line,
            first.rule,
            first.message
        )));
    }
    Ok(findings_outputs(out, &findings))
}

/// One note per finding, up to [`MAX_FINDING_NOTES`]; the rest counted.
fn note_findings(op: &Op<'_>, findings: &[mg::Finding]) {
    for f in findings.iter().take(MAX_FINDING_NOTES) {
        op.note(&format!(
            "{}:{}:{} {} {}: {}{}",
            f.file,
            f.line,
            f.column,
            f.level.as_str(),
            f.rule,
            f.message,
            f.help
                .as_deref()
                .map_or(String::new(), |h| format!(" (hint: {h})"))
        ));
    }
    if findings.len() > MAX_FINDING_NOTES {
        op.note(&format!(
            "... and {} more (all are in the `findings` output)",
            plural(findings.len() - MAX_FINDING_NOTES, "finding", "findings")
        ));
    }
}

fn findings_outputs(mut out: Map<String, Json>, findings: &[mg::Finding]) -> Map<String, Json> {
    let count = |l: LintLevel| findings.iter().filter(|f| f.level == l).count();
    out.insert("errors".into(), count(LintLevel::Error).into());
    out.insert("warnings".into(), count(LintLevel::Warning).into());
    out.insert("count".into(), findings.len().into());
    out.insert("findings".into(), to_json(&findings));
    out
}
