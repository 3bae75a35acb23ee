//! `show`: the readable timeline `runbook audit show` prints (header, verification, a table of
//! steps, what the run changed, then the run's events).

use super::timeline::{header, timeline};
use super::verdict::Verdict;
use std::fmt::Write as _;

/// The readable timeline `runbook audit show` prints.
pub fn show(v: &Verdict) -> String {
    let mut out = String::new();
    for (k, val) in header(&v.entries) {
        let _ = writeln!(out, "{k:<12} {val}");
    }
    let _ = writeln!(out, "{:<12} {}", "audit", v.summary());
    let (spans, notes) = timeline(&v.entries);
    let w = spans.iter().map(|s| s.step.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(
        out,
        "\n{:<8}  {:<w$}  {:<10}  {:<8}  {:<10}  {:>8}  detail",
        "start", "step", "phase", "action", "status", "took"
    );
    for s in &spans {
        let took = match (s.start, s.end) {
            (Some(a), Some(b)) => format!("{:.1}s", (b - a).num_milliseconds() as f64 / 1000.0),
            _ => "-".to_owned(),
        };
        let retries = if s.attempts > 1 {
            format!(" ({} attempts)", s.attempts)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{:<8}  {:<w$}  {:<10}  {:<8}  {:<10}  {:>8}  {}{retries}",
            s.start
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default(),
            s.step,
            s.phase,
            s.action,
            s.status,
            took,
            s.detail
        );
    }
    let changes = super::changes::changes(&v.entries);
    if !changes.is_empty() {
        let _ = writeln!(out, "\nchanges");
        for c in changes {
            let _ = writeln!(out, "  {c}");
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "\nevents");
        for n in notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    out
}
