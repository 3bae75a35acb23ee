//! `seed`: applies a seed set from the seeds folder as upserts by natural key, in one
//! transaction, and reports what it inserted, updated and left unchanged.

use crate::db::op::OpError;
use crate::db::seed::{self, Counts, Secrets, SeedError};
use crate::exec::{ActionCtx, StepError, StepResult};
use crate::fmt::plural;
use crate::playbook::SeedAction;
use serde_json::{Map, Value as Json, json};

pub async fn run(a: &SeedAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    let dir = match &a.dir {
        Some(d) => ctx.root.join(d),
        None => ctx.dirs.seeds.clone(),
    };
    // Everything that can be checked without the database is checked first: a bad file or a
    // missing secret must not open a transaction. Until the transaction, nothing is written.
    let set = seed::load(&dir, &a.set).map_err(unwritten)?;
    let redactor = ctx.redactor.clone();
    let secrets = Secrets::resolve(
        &set,
        |name| std::env::var(name).ok(),
        |value| redactor.add(value),
    )
    .map_err(unwritten)?;
    let mut op = ctx.op("seed");
    let db = ctx.db().await.map_err(|e| match e {
        StepError::Failed(m) => StepError::NothingCommitted(m),
        other => other,
    })?;
    // The step's timeout bounds the seed, not the connection before it.
    op.start_now();
    let report = seed::apply(db, &set, &secrets, &op)
        .await
        .map_err(|e| match e {
            SeedError::Op(OpError::Interrupted) => StepError::Interrupted,
            SeedError::Op(OpError::TimedOut(_)) => StepError::NothingCommitted(format!(
                "{}; nothing was written (the transaction rolled back)",
                e.render()
            )),
            // Only a commit whose outcome is unknown says `Failed`.
            SeedError::Op(OpError::Failed(m)) => StepError::Failed(redactor.redact(&m)),
            other => StepError::NothingCommitted(redactor.redact(&other.render())),
        })?;

    let total = report.total();
    let rows = total.inserted + total.updated + total.unchanged;
    let tables = plural(report.tables.len(), "table", "tables");
    let summary = if total.inserted + total.updated == 0 {
        format!(
            "seed `{}`: nothing changed ({} already up to date in {tables})",
            set.name,
            plural(rows, "row", "rows")
        )
    } else {
        format!(
            "seed `{}`: {} inserted, {} updated, {} unchanged in {tables}",
            set.name, total.inserted, total.updated, total.unchanged
        )
    };
    ctx.progress.note(&summary);
    for (table, c) in &report.tables {
        ctx.progress.note(&format!("  {table}: {}", describe(c)));
    }

    let mut tables = Map::new();
    for (table, c) in &report.tables {
        tables.insert(
            table.clone(),
            json!({"inserted": c.inserted, "updated": c.updated, "unchanged": c.unchanged}),
        );
    }
    let mut outputs = Map::new();
    outputs.insert("inserted".to_owned(), json!(total.inserted));
    outputs.insert("updated".to_owned(), json!(total.updated));
    outputs.insert("unchanged".to_owned(), json!(total.unchanged));
    outputs.insert("tables".to_owned(), Json::Object(tables));
    Ok(outputs)
}

/// A failure before the seed's transaction began: nothing was written.
fn unwritten(e: SeedError) -> StepError {
    StepError::NothingCommitted(e.render())
}

fn describe(c: &Counts) -> String {
    format!(
        "{} inserted, {} updated, {} unchanged",
        c.inserted, c.updated, c.unchanged
    )
}
