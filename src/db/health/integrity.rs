//! The referential integrity checks: foreign key constraints (and whether PostgreSQL has
//! validated them) and rows whose foreign key points at nothing. Each dialect finds the keys
//! and the orphans; the results are built here the same way for both.

use super::grade::graded;
use super::{CheckResult, HealthOptions, Status};
use crate::fmt::{list_some, list_some_by, plural};
use crate::playbook::HealthCheck;
use serde_json::{Value as Json, json};

/// A foreign key: the child columns and the parent columns they reference.
#[derive(Debug, Clone)]
pub(super) struct ForeignKey {
    pub name: String,
    pub table: String,
    pub columns: Vec<String>,
    pub parent: String,
    pub parent_columns: Vec<String>,
    pub validated: bool,
    /// Quoted `schema.table` forms for SQL.
    pub table_sql: String,
    pub parent_sql: String,
}

/// The `foreign_keys` result: the constraints found, graded by how many are not validated.
pub(super) fn foreign_keys_result(fks: &[ForeignKey], opts: &HealthOptions) -> CheckResult {
    let unvalidated: Vec<String> = fks
        .iter()
        .filter(|f| !f.validated)
        .map(|f| format!("{}.{}", f.table, f.name))
        .collect();
    let mut message = format!(
        "found {}",
        plural(
            fks.len(),
            "foreign key constraint",
            "foreign key constraints"
        )
    );
    if !unvalidated.is_empty() {
        message.push_str(&format!(
            ", {} not validated ({}): rows written before `NOT VALID` are unchecked; run `ALTER TABLE ... VALIDATE CONSTRAINT`",
            unvalidated.len(),
            list_some(&unvalidated)
        ));
    }
    let list: Vec<Json> = fks
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "table": f.table,
                "columns": f.columns,
                "references": f.parent,
                "referenced_columns": f.parent_columns,
                "validated": f.validated,
            })
        })
        .collect();
    graded(
        HealthCheck::ForeignKeys,
        unvalidated.len() as f64,
        opts,
        json!(fks.len()),
        message,
    )
    .with("count", fks.len())
    .with("not_validated", unvalidated)
    .with("constraints", list)
}

/// The `orphaned_rows` result: `checked` keys, those with orphans and their row counts, and
/// the keys whose query failed.
pub(super) fn orphans_result(
    checked: usize,
    found: Vec<(ForeignKey, i64)>,
    errors: Vec<Json>,
    opts: &HealthOptions,
) -> CheckResult {
    let total: i64 = found.iter().map(|(_, n)| n).sum();
    let list: Vec<Json> = found
        .iter()
        .map(|(f, n)| {
            json!({
                "constraint": f.name,
                "table": f.table,
                "columns": f.columns,
                "references": f.parent,
                "referenced_columns": f.parent_columns,
                "rows": n,
            })
        })
        .collect();
    let message = if found.is_empty() {
        format!(
            "no orphaned records found ({} checked)",
            plural(checked, "foreign key", "foreign keys")
        )
    } else {
        let parts: Vec<String> = found
            .iter()
            .map(|(f, n)| {
                format!(
                    "{n} in {}({}) without a {}",
                    f.table,
                    f.columns.join(", "),
                    f.parent
                )
            })
            .collect();
        format!(
            "{}: {}",
            plural(total, "orphaned row", "orphaned rows"),
            list_some_by(&parts, "; ")
        )
    };
    let mut r = graded(
        HealthCheck::OrphanedRows,
        total as f64,
        opts,
        json!(total),
        message,
    );
    if !errors.is_empty() {
        r.status = r.status.max(Status::Warn);
        r.message = format!(
            "{}; {} foreign keys could not be checked",
            r.message,
            errors.len()
        );
    }
    r.with("total", total)
        .with("orphans", list)
        .with("errors", errors)
}
