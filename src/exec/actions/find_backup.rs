//! `find_backup`: chooses the backup a later `restore` takes (the one `from` names, else the
//! newest verified backup of the target's database in `dir`) and shows it before the
//! confirmation gate that follows it. Changes nothing; the work is in `db::backup::find`.

use super::backup::{resolve, shown, step_error, target};
use crate::db::backup::{self, FindRequest};
use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::FindBackupAction;
use serde_json::{Map, json};

pub async fn run(a: &FindBackupAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    let target = target(ctx, "find_backup")?;
    let from = a
        .from
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| resolve(ctx.root, f));
    if from.is_none() && a.dir.trim().is_empty() {
        return Err(StepError::Failed(
            "`dir` is empty and so is `from`: give the folder backups are written to, or the archive to restore".to_owned(),
        ));
    }
    let ops = ctx.op("find_backup");
    let req = FindRequest {
        dir: resolve(ctx.root, &a.dir),
        from,
    };
    let found = match backup::find_backup(ctx.db, &target, &req, &ops).await {
        Ok(found) => found,
        Err(e) => return Err(step_error(e, ctx)),
    };
    for line in found.lines(chrono::Utc::now()) {
        ops.note(&line);
    }
    let m = &found.verified.manifest;
    let mut out = Map::new();
    out.insert("path".to_owned(), shown(&found.verified.archive));
    out.insert("manifest".to_owned(), shown(&found.manifest_path));
    out.insert("database".to_owned(), json!(m.database));
    out.insert("time".to_owned(), json!(found.time()));
    out.insert("size".to_owned(), json!(m.size));
    out.insert("sha256".to_owned(), json!(m.sha256));
    out.insert("row_counts".to_owned(), json!(m.row_counts));
    out.insert("summary".to_owned(), json!(found.summary()));
    Ok(out)
}
