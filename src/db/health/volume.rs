//! The data volume checks: the database's size and the rows per table, graded the same on
//! both dialects once each has measured them (the comparison with a baseline is in
//! `baseline.rs`).

use super::grade::graded;
use super::{CheckResult, HealthOptions, Status, baseline};
use crate::fmt::{bytes, list_some, plural};
use crate::playbook::HealthCheck;
use serde_json::{Map, Value as Json, json};

/// The `database_size` result for a database of `size` bytes.
pub(super) fn size_result(size: i64, opts: &HealthOptions) -> CheckResult {
    let mib = size as f64 / (1024.0 * 1024.0);
    let human = bytes(size.max(0) as u64);
    graded(
        HealthCheck::DatabaseSize,
        mib,
        opts,
        json!(size),
        human.clone(),
    )
    .with("bytes", size)
    .with("human", human)
}

/// What the row count check measured.
pub(super) struct RowCounts {
    /// Rows per table (partitioned tables with all their partitions).
    pub counts: Map<String, Json>,
    /// Rows per partition, counted only when a baseline names them.
    pub partitions: Map<String, Json>,
    /// Tables whose count is the planner's estimate.
    pub estimated: Vec<Json>,
    /// Tables that could not be counted, with why.
    pub errors: Map<String, Json>,
    pub total: i64,
}

/// The `row_counts` result: the counts, graded, then compared with the baseline if there is
/// one.
pub(super) fn row_counts_result(measured: RowCounts, opts: &HealthOptions) -> CheckResult {
    let n = measured.counts.len();
    let mut message = format!(
        "counted {} ({})",
        plural(n, "table", "tables"),
        plural(measured.total, "row", "rows")
    );
    if !measured.estimated.is_empty() {
        message.push_str(&format!(
            "; {} estimated from statistics",
            plural(measured.estimated.len(), "large table", "large tables")
        ));
    }
    let mut r = graded(
        HealthCheck::RowCounts,
        measured.total as f64,
        opts,
        json!(measured.total),
        message,
    );
    if !measured.errors.is_empty() {
        r.status = r.status.max(Status::Warn);
        r.message = format!(
            "{}; could not count {}",
            r.message,
            list_some(&measured.errors.keys().cloned().collect::<Vec<_>>())
        );
    }
    if let Some(b) = &opts.baseline {
        r = baseline::judge(r, b, &measured);
    }
    let RowCounts {
        counts,
        estimated,
        errors,
        total,
        ..
    } = measured;
    r.with("tables", counts)
        .with("estimated", estimated)
        .with("errors", errors)
        .with("total", total)
}
