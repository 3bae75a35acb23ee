//! Condition gates in a connected plan: each gate's expression evaluated now, when every step it
//! reads is a read-only query that can run on the read-only connection; otherwise a note says
//! why its value is known only at run time.

use crate::db::Db;
use crate::playbook::{Action, Step};
use crate::project::Playbook;
use crate::template;
use serde_json::{Map, Value as Json, json};
use std::fmt::Write as _;

/// Condition gates: evaluates them now when every step they read is a read-only query.
pub(super) async fn condition_gates(
    db: &mut Db,
    playbook: &Playbook,
    ctx: &Json,
    text: &mut String,
) -> Vec<Json> {
    let mut gates = Vec::new();
    let steps = &playbook.def.steps;
    for (i, s) in steps.iter().enumerate() {
        let Some(cond) = s.gate.as_ref().and_then(|g| g.condition.as_ref()) else {
            continue;
        };
        let id = s.id.clone().unwrap_or_default();
        let entry = match read_outputs(db, &steps[..i], &cond.expr, ctx).await {
            Err(reason) => json!({"gate": id, "expr": cond.expr, "value": null, "note": reason}),
            Ok(outputs) => {
                let mut c = ctx.clone();
                if let Json::Object(m) = &mut c {
                    m.insert("steps".into(), Json::Object(outputs));
                }
                match template::eval(&cond.expr, &c) {
                    Ok(v) => {
                        json!({"gate": id, "expr": cond.expr, "value": v, "holds": template::truthy(&v)})
                    }
                    Err(e) => json!({"gate": id, "expr": cond.expr, "value": null, "note": e}),
                }
            }
        };
        let _ = match entry.get("holds") {
            Some(h) => writeln!(
                text,
                "gate {id}: `{}` is currently {} ({})",
                cond.expr,
                if h == true { "true" } else { "FALSE" },
                entry["value"]
            ),
            None => writeln!(
                text,
                "gate {id}: `{}`: {}",
                cond.expr,
                entry["note"].as_str().unwrap_or_default()
            ),
        };
        gates.push(entry);
    }
    gates
}

/// The outputs of the earlier steps a gate expression reads, by running their queries now; or
/// why that cannot be done (the last reason found, as a plan shows one note per gate).
async fn read_outputs(
    db: &mut Db,
    earlier: &[Step],
    expr: &str,
    ctx: &Json,
) -> Result<Map<String, Json>, String> {
    let vars = template::expression_vars(expr).unwrap_or_default();
    let mut outputs = Map::new();
    let mut why_not = None;
    for v in vars.iter().filter(|v| v.starts_with("steps.")) {
        let sid = v.split('.').nth(1).unwrap_or_default();
        if outputs.contains_key(sid) {
            continue;
        }
        let Some(src) = earlier.iter().find(|x| x.id.as_deref() == Some(sid)) else {
            continue;
        };
        match src.action() {
            Some(Action::Sql(q)) if is_query(&q.query) => {
                let params: Vec<Json> = q
                    .params
                    .iter()
                    .map(|p| match p {
                        Json::String(t) if template::is_template(t) => {
                            template::render_native(t, ctx).unwrap_or(Json::Null)
                        }
                        other => other.clone(),
                    })
                    .collect();
                match db.execute(&q.query, &params, true).await {
                    Ok(r) => {
                        let scalar = r
                            .rows
                            .first()
                            .and_then(|row| r.columns.first().and_then(|c| row.get(c)))
                            .cloned()
                            .unwrap_or(Json::Null);
                        outputs.insert(sid.to_owned(), json!({"outputs": {"rows": r.rows, "scalar": scalar, "row_count": r.row_count}}));
                    }
                    Err(e) => {
                        why_not = Some(format!(
                            "step `{sid}` failed read-only: {}",
                            crate::db::describe(&e)
                        ))
                    }
                }
            }
            _ => {
                why_not = Some(format!(
                    "step `{sid}` is not a read-only query; its value is known only at run time"
                ))
            }
        }
    }
    match why_not {
        Some(reason) => Err(reason),
        None => Ok(outputs),
    }
}

/// A statement that only reads (as far as its first word says; the read-only session makes
/// sure of the rest).
fn is_query(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "SELECT" | "WITH" | "SHOW" | "VALUES" | "EXPLAIN"
    )
}
