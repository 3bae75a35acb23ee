//! Row counts after a restore: counted on a fresh connection (the old one may cache plans of
//! dropped tables) and compared with the manifest's, table by table.

use super::guard::guard;
use super::manifest::Manifest;
use super::postgres::{pg_counts, pg_tables};
use super::sqlite::sqlite_counts;
use crate::db::op::{Op, OpError};
use crate::db::{Db, TargetSpec};
use crate::fmt::list_some;
use crate::playbook::BackupMode;
use std::collections::BTreeMap;

/// Closes the connection the restore used and counts rows on a fresh one, which is left in
/// `db` for the steps after the restore.
pub(super) async fn recount(
    db: &mut Option<Db>,
    target: &TargetSpec,
    op: &Op<'_>,
) -> Result<BTreeMap<String, u64>, OpError> {
    if let Some(old) = db.take() {
        old.close().await;
    }
    let mut conn = guard(
        op,
        &format!("cannot reconnect to {}", target.describe()),
        None,
        Db::connect(target),
    )
    .await?;
    let counted = count_rows(&mut conn, op).await;
    *db = Some(conn);
    counted
}

/// Rows per user table of the connected database, keyed as a manifest keys them.
async fn count_rows(conn: &mut Db, op: &Op<'_>) -> Result<BTreeMap<String, u64>, OpError> {
    const WHAT: &str = "cannot count rows after the restore";
    match conn {
        Db::Postgres(c) => {
            guard(op, WHAT, None, async {
                let tables = pg_tables(c).await?;
                pg_counts(c, &tables).await
            })
            .await
        }
        Db::Sqlite(c) => guard(op, WHAT, None, sqlite_counts(c, "main")).await,
    }
}

/// Compares the counts after a restore with the manifest's (a schema-only archive restores
/// empty tables): a missing table or a different count fails, naming the pre-restore backup
/// (`pre_note`); tables the backup does not know are noted and left. Returns the counts of the
/// backup's tables.
pub(super) fn compare_counts(
    manifest: &Manifest,
    actual: BTreeMap<String, u64>,
    pre_note: &str,
    op: &Op<'_>,
) -> Result<BTreeMap<String, u64>, OpError> {
    let expected = &manifest.row_counts;
    let schema_only = manifest.mode == BackupMode::SchemaOnly;
    let mut problems = Vec::new();
    for (table, &n) in expected {
        let want = if schema_only { 0 } else { n };
        match actual.get(table) {
            None => problems.push(format!("`{table}` is missing")),
            Some(&got) if got != want => {
                problems.push(format!("`{table}` has {got} rows, the backup {want}"));
            }
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(OpError::failed(format!(
            "row counts after the restore differ from the manifest: {}{pre_note}",
            list_some(&problems)
        )));
    }
    let extra: Vec<String> = actual
        .keys()
        .filter(|t| !expected.contains_key(*t))
        .map(|t| format!("`{t}`"))
        .collect();
    if !extra.is_empty() {
        op.note(&format!(
            "tables that are not in the backup were left as they were: {}",
            list_some(&extra)
        ));
    }
    Ok(actual
        .into_iter()
        .filter(|(t, _)| expected.contains_key(t))
        .collect())
}
