//! `sql`: one statement against the target, values bound as parameters, with `expect:`
//! assertions on the rows and the first value.

use crate::cancel::wait_cancel;
use crate::db::describe;
use crate::exec::{ActionCtx, StepError, StepResult};
use crate::playbook::SqlAction;
use serde_json::{Map, Value as Json, json};

pub async fn run(a: &SqlAction, ctx: &mut ActionCtx<'_>) -> StepResult {
    let redactor = ctx.redactor.clone();
    let mut cancel = ctx.cancel.clone();
    let db = ctx.db().await?;
    let result = tokio::select! {
        r = db.execute(&a.query, &a.params, a.read_only) => r,
        _ = wait_cancel(&mut cancel) => return Err(StepError::Interrupted),
    };
    let result = result.map_err(|e| StepError::Failed(redactor.redact(&describe(&e))))?;
    let first_row = result
        .rows
        .first()
        .cloned()
        .map(Json::Object)
        .unwrap_or(Json::Null);
    let scalar = result
        .rows
        .first()
        .and_then(|r| result.columns.first().and_then(|c| r.get(c)).cloned())
        .unwrap_or(Json::Null);
    if let Some(expect) = &a.expect {
        let n = result.row_count;
        if let Some(want) = expect.rows
            && n != want
        {
            return Err(StepError::Failed(format!(
                "expected {}, got {n}",
                crate::fmt::plural(want, "row", "rows")
            )));
        }
        if let Some(min) = expect.min_rows
            && n < min
        {
            return Err(StepError::Failed(format!(
                "expected at least {}, got {n}",
                crate::fmt::plural(min, "row", "rows")
            )));
        }
        if let Some(max) = expect.max_rows
            && n > max
        {
            return Err(StepError::Failed(format!(
                "expected at most {}, got {n}",
                crate::fmt::plural(max, "row", "rows")
            )));
        }
        if let Some(want) = &expect.scalar
            && !loosely_equal(&scalar, want)
        {
            return Err(StepError::Failed(redactor.redact(&format!(
                "expected the first value to be {want}, got {scalar}"
            ))));
        }
        let as_num = number(&scalar);
        if let Some(min) = expect.scalar_min
            && as_num.is_none_or(|v| v < min)
        {
            return Err(StepError::Failed(format!(
                "expected the first value to be at least {min}, got {scalar}"
            )));
        }
        if let Some(max) = expect.scalar_max
            && as_num.is_none_or(|v| v > max)
        {
            return Err(StepError::Failed(format!(
                "expected the first value to be at most {max}, got {scalar}"
            )));
        }
    }
    let mut outputs = Map::new();
    outputs.insert(
        "rows".to_owned(),
        Json::Array(result.rows.into_iter().map(Json::Object).collect()),
    );
    outputs.insert("row".to_owned(), first_row);
    outputs.insert("scalar".to_owned(), scalar);
    outputs.insert("row_count".to_owned(), json!(result.row_count));
    outputs.insert("rows_affected".to_owned(), json!(result.rows_affected));
    Ok(outputs)
}

/// Numbers compare by value (`6` equals `6.0` and `"6"` from a NUMERIC column).
fn loosely_equal(got: &Json, want: &Json) -> bool {
    match (number(got), number(want)) {
        (Some(a), Some(b)) => (a - b).abs() < f64::EPSILON,
        _ => got == want,
    }
}

fn number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
