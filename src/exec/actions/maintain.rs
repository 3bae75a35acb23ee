//! `vacuum` and `reindex`: PostgreSQL maintenance, a thin wrapper over `db::maintain`.
//! `vacuum` with `full` runs only after a person let the run through a `confirm` or
//! `approval` gate, in every environment (validation says so before the run starts).
//!
//! Outputs: `tables` (and for `reindex`, `indexes`): each relation with its `duration_ms` and
//! its size in bytes before and after; `count` (relations done) and `duration_ms` (the step).

use crate::db::maintain::{self, Maintained};
use crate::db::op::OpError;
use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::{ReindexAction, VacuumAction};
use serde_json::{Map, Value as Json, json};

pub async fn vacuum(a: &VacuumAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    if a.full && !ctx.human_gate_passed {
        return Err(StepError::NothingCommitted(
            "`vacuum` with `full: true` locks each table against reads and writes while it \
             rewrites it; it runs only after a `confirm` or `approval` gate earlier in the run"
                .to_owned(),
        ));
    }
    let (op, target) = (ctx.op("vacuum"), ctx.target);
    let Some(target) = target else {
        return Err(StepError::NothingCommitted(
            "`vacuum` needs a database: give the environment a target or pass --target".into(),
        ));
    };
    let redactor = ctx.redactor;
    let db = ctx.db().await?;
    let r = maintain::vacuum(db, target, a, &op).await;
    outputs(r).map_err(|e| StepError::of_op(e, redactor))
}

pub async fn reindex(a: &ReindexAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    let (op, target) = (ctx.op("reindex"), ctx.target);
    let Some(target) = target else {
        return Err(StepError::NothingCommitted(
            "`reindex` needs a database: give the environment a target or pass --target".into(),
        ));
    };
    let redactor = ctx.redactor;
    let db = ctx.db().await?;
    let r = maintain::reindex(db, target, a, &op).await;
    outputs(r).map_err(|e| StepError::of_op(e, redactor))
}

fn outputs(r: Result<Maintained, OpError>) -> Result<Map<String, Json>, OpError> {
    let r = r?;
    let mut out = Map::new();
    out.insert("count".into(), json!(r.tables.len() + r.indexes.len()));
    out.insert("duration_ms".into(), json!(r.duration_ms));
    out.insert("tables".into(), json!(r.tables));
    out.insert("indexes".into(), json!(r.indexes));
    Ok(out)
}
