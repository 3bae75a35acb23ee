//! `backup`: a verified pg_dump archive or SQLite copy with its manifest, then retention. The
//! work is in `db::backup`; this file maps the step's arguments and outputs.

use crate::db::TargetSpec;
use crate::db::backup::{self, BackupRequest, Purpose, Retention};
use crate::db::op::OpError;
use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::BackupAction;
use serde_json::{Map, Value as Json, json};
use std::path::{Path, PathBuf};

pub async fn run(a: &BackupAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    let target = target(ctx, "backup")?;
    ctx.db().await?;
    let ops = ctx.op("backup");
    let req = BackupRequest {
        dir: resolve(ctx.root, &a.dir),
        mode: a.mode,
        format: a.format,
        jobs: a.jobs.unwrap_or(1),
        verify: a.verify.unwrap_or(true),
        purpose: Purpose::Backup,
    };
    let Some(db) = ctx.db.as_mut() else {
        return Err(StepError::Failed("no database connection".to_owned()));
    };
    let done = match backup::backup(db, &target, &req, &ops).await {
        Ok(done) => done,
        Err(e) => return Err(step_error(e, ctx)),
    };
    let m = &done.manifest;
    let verified = done.verified_in.map_or_else(
        || "not verified (`verify: false`)".to_owned(),
        |t| format!("verified in {:.1}s", t.as_secs_f64()),
    );
    ops.note(&format!(
        "backup {}: {}, sha256 {}, {}, {verified}",
        done.archive.display(),
        crate::fmt::bytes(m.size),
        &m.sha256[..m.sha256.len().min(12)],
        crate::fmt::plural(m.row_counts.len(), "table", "tables")
    ));
    let policy = Retention {
        retention_days: a.retention_days,
        keep: a.keep,
    };
    let pruned = backup::prune(&req.dir, m, policy, chrono::Utc::now());
    for p in &pruned.partials {
        ops.note(&format!(
            "removed {}: a partial backup left by a run that stopped while writing it",
            p.display()
        ));
    }
    if !pruned.deleted.is_empty() {
        let names: Vec<String> = pruned
            .deleted
            .iter()
            .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
            .collect();
        ops.note(&format!(
            "retention deleted {}: {}",
            crate::fmt::plural(names.len(), "older backup", "older backups"),
            names.join(", ")
        ));
    }
    // A backup that was made and verified stands even if cleaning up older ones did not work.
    for w in &pruned.warnings {
        ops.note(&format!("warning: {w}"));
    }
    let mut out = Map::new();
    out.insert("path".to_owned(), json!(shown(&done.archive)));
    out.insert("manifest".to_owned(), json!(shown(&done.manifest_path)));
    out.insert("sha256".to_owned(), json!(m.sha256));
    out.insert("size".to_owned(), json!(m.size));
    out.insert("format".to_owned(), json!(m.format.as_str()));
    out.insert("server_version".to_owned(), json!(m.server_version));
    out.insert("row_counts".to_owned(), json!(m.row_counts));
    Ok(out)
}

/// The step's target; a PostgreSQL URL's password is registered for redaction.
pub(super) fn target(ctx: &ActionCtx<'_>, action: &str) -> Result<TargetSpec, StepError> {
    let target = ctx.target.cloned().ok_or_else(|| {
        StepError::Failed(format!(
            "`{action}` needs a database: give the environment a target or pass --target"
        ))
    })?;
    if let TargetSpec::Postgres(url) = &target {
        ctx.redactor.add_url(url);
    }
    Ok(target)
}

/// A path from the playbook: relative to the project root unless absolute.
pub(super) fn resolve(root: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    };
    std::path::absolute(&joined).unwrap_or(joined)
}

pub(super) fn shown(path: &Path) -> Json {
    json!(path.display().to_string())
}

/// Maps a failure; the connection is dropped because a statement cut short by a timeout or
/// Ctrl-C leaves it mid-protocol. The next step connects afresh.
pub(super) fn step_error(e: OpError, ctx: &mut ActionCtx<'_>) -> StepError {
    *ctx.db = None;
    match e {
        OpError::Interrupted => StepError::Interrupted,
        other => StepError::Failed(ctx.redactor.redact(&other.to_string())),
    }
}
