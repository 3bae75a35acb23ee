//! `restore`: verifies an archive written by `backup`, takes a pre-restore backup, restores,
//! and compares row counts with the manifest. The work is in `db::backup`.
//!
//! The typed confirmation the runbooks ask for is a `confirm` gate before this step: validation
//! refuses a playbook with a `restore` and no gate before it in a protected environment, so
//! this action does not prompt.

use super::backup::{resolve, shown, step_error, target};
use crate::db::backup::{self, RestoreRequest};
use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::RestoreAction;
use serde_json::{Map, Value as Json, json};

pub async fn run(a: &RestoreAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    let target = target(ctx, "restore")?;
    // An empty `from` would name the project folder, which has no manifest; say what is missing.
    if a.from.trim().is_empty() {
        return Err(StepError::Failed(
            "`from` is empty: name the archive (or its manifest) to restore, or choose one with a `find_backup` step before the confirmation".to_owned(),
        ));
    }
    let ops = ctx.op("restore");
    let req = RestoreRequest {
        from: resolve(ctx.root, &a.from),
        jobs: a.jobs.unwrap_or(1),
        pre_backup: a.pre_backup.unwrap_or(true),
        pre_backup_dir: a.pre_backup_dir.as_deref().map(|d| resolve(ctx.root, d)),
    };
    let done = match backup::restore(ctx.db, &target, &req, &ops).await {
        Ok(done) => done,
        Err(e) => return Err(step_error(e, ctx)),
    };
    ops.note(&format!(
        "restored {}: {}, row counts equal to the manifest's",
        done.archive.display(),
        crate::fmt::plural(done.row_counts.len(), "table", "tables")
    ));
    let mut out = Map::new();
    out.insert("path".to_owned(), shown(&done.archive));
    // The archive's sha256 and size as its manifest names them: `restore` verified the
    // archive against them just before it changed anything.
    out.insert("sha256".to_owned(), json!(done.manifest.sha256));
    out.insert("size".to_owned(), json!(done.manifest.size));
    out.insert(
        "pre_backup".to_owned(),
        done.pre_backup
            .as_ref()
            .map_or(Json::Null, |b| shown(&b.archive)),
    );
    out.insert(
        "pre_backup_sha256".to_owned(),
        done.pre_backup
            .as_ref()
            .map_or(Json::Null, |b| json!(b.manifest.sha256)),
    );
    out.insert("tables".to_owned(), json!(done.row_counts.len()));
    out.insert("row_counts".to_owned(), json!(done.row_counts));
    Ok(out)
}
