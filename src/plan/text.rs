//! The human text of a plan: a header, the numbered steps with their marks and rollbacks
//! (includes indented under their step), and a summary with the plan hash.

use super::{Plan, PlannedStep};
use crate::fmt::plural;
use crate::playbook::RollbackWhen;
use serde_json::Value as Json;

/// The human text of a plan.
pub fn render_text(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "plan      {} on {}", plan.playbook, plan.environment);
    let _ = writeln!(
        out,
        "file      {} (sha256 {})",
        plan.file,
        &plan.content_hash[..12.min(plan.content_hash.len())]
    );
    let _ = writeln!(
        out,
        "target    {}{}",
        plan.target,
        if plan.protected { " (protected)" } else { "" }
    );
    if !plan.params.is_empty() {
        let params: Vec<String> = plan
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", inline(v)))
            .collect();
        let _ = writeln!(out, "params    {}", params.join(" "));
    }
    let _ = writeln!(out);
    let width = id_width(&plan.steps)
        .max(id_width(&plan.on_failure))
        .max(id_width(&plan.finally_steps))
        .max(4);
    let mut n = 0;
    write_steps(&mut out, &plan.steps, width, &mut n, 0);
    for (title, steps) in [
        ("on_failure", &plan.on_failure),
        ("finally", &plan.finally_steps),
    ] {
        if !steps.is_empty() {
            let _ = writeln!(out, "\n{title}:");
            let mut m = 0;
            write_steps(&mut out, steps, width, &mut m, 0);
        }
    }
    let compensations: usize = count(&plan.steps, &|s| s.rollback.len());
    let _ = writeln!(
        out,
        "\n{}, {}, {}; run state is checkpointed after {}",
        plural(plan.checkpoints.len(), "step", "steps"),
        plural(plan.gates.len(), "gate", "gates"),
        plural(compensations, "compensation", "compensations"),
        match plan.checkpoints.len() {
            1 => "its step".to_owned(),
            n => format!("each of its {n} steps"),
        }
    );
    let _ = writeln!(
        out,
        "values marked (at run time) are rendered when the run reaches them"
    );
    let _ = writeln!(out, "plan hash {}", plan.plan_hash);
    out
}

fn count(steps: &[PlannedStep], f: &dyn Fn(&PlannedStep) -> usize) -> usize {
    steps.iter().map(|s| f(s) + count(&s.steps, f)).sum()
}

fn id_width(steps: &[PlannedStep]) -> usize {
    steps
        .iter()
        .map(|s| {
            s.id.len()
                .max(id_width(&s.steps))
                .max(id_width(&s.on_failure))
                .max(id_width(&s.finally_steps))
        })
        .max()
        .unwrap_or(0)
}

fn write_steps(out: &mut String, steps: &[PlannedStep], width: usize, n: &mut usize, depth: usize) {
    use std::fmt::Write as _;
    // The action column fits the longest action name of the block (`find_backup`), at least 8.
    let aw = steps
        .iter()
        .map(|s| s.action.len())
        .max()
        .unwrap_or(0)
        .max(8);
    for s in steps {
        *n += 1;
        let indent = "  ".repeat(depth);
        let mut marks = Vec::new();
        if s.gate {
            marks.push("[gate]".to_owned());
        }
        if s.destructive {
            marks.push("[destructive]".to_owned());
        }
        if let Some(w) = &s.when {
            marks.push(match s.will_run {
                Some(false) => format!("[skipped: when {w}]"),
                _ => format!("[when {w}]"),
            });
        }
        if let Some(t) = &s.timeout {
            marks.push(format!("[timeout {t}]"));
        }
        if let Some(r) = &s.retry {
            marks.push(format!("[retry {}x]", r.attempts));
        }
        if s.continue_on_error {
            marks.push("[continue on error]".to_owned());
        }
        if !s.tags.is_empty() {
            marks.push(format!("[tags {}]", s.tags.join(",")));
        }
        let _ = writeln!(
            out,
            "{indent}{:>3}. {:<width$}  {:<aw$}  {}{}{}",
            n,
            s.id,
            s.action,
            describe_args(s),
            if marks.is_empty() { "" } else { "  " },
            marks.join(" ")
        );
        if let Some(name) = &s.name {
            let _ = writeln!(out, "{indent}     {:<width$}  {}", "", name);
        }
        let only_if = match s.rollback_when {
            Some(RollbackWhen::Changed) => "  [only if a later step changed the database]",
            _ => "",
        };
        for c in &s.rollback {
            let _ = writeln!(
                out,
                "{indent}     {:<width$}  rollback: {} {}{only_if}",
                "",
                c.action,
                describe_args(c)
            );
        }
        if !s.steps.is_empty() {
            let mut m = 0;
            write_steps(out, &s.steps, width, &mut m, depth + 1);
        }
        for (title, steps) in [("on_failure", &s.on_failure), ("finally", &s.finally_steps)] {
            if !steps.is_empty() {
                let _ = writeln!(out, "{indent}       {title} of {}:", s.id);
                let mut m = 0;
                write_steps(out, steps, width, &mut m, depth + 1);
            }
        }
    }
}

/// `key=value` pairs of the top-level arguments; deferred ones marked.
fn describe_args(s: &PlannedStep) -> String {
    let Some(obj) = s.args.as_object() else {
        return inline(&s.args);
    };
    let mut parts = Vec::new();
    for (k, v) in obj {
        let deferred = s
            .deferred
            .iter()
            .any(|d| d == k || d.starts_with(&format!("{k}.")));
        let mut text = format!("{k}={}", inline(v));
        if deferred {
            text.push_str(" (at run time)");
        }
        parts.push(text);
    }
    parts.join(" ")
}

fn inline(v: &Json) -> String {
    match v {
        Json::String(s) if s.contains(' ') || s.is_empty() => format!("{s:?}"),
        Json::String(s) => s.clone(),
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(inline).collect::<Vec<_>>().join(", ")
        ),
        Json::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}: {}", inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}
