//! Where a database stands against a set of migrations: applied, pending (in or out of
//! order, retried), drifted (changed after applying), missing (applied, file gone).

use super::db_failed;
use super::history::{HISTORY_TABLE, HistoryEntry, PrismaRecord, Tables, read_history, tables};
use super::prisma::{PRISMA_TABLE, PrismaFailure};
use super::source::{Migration, MigrationSet};
use super::version::{compare_versions, version_key};
use crate::db::Db;
use crate::db::op::OpError;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize)]
pub struct PendingMigration {
    pub version: String,
    pub name: String,
    pub file: String,
    /// Older than the newest applied migration (e.g. merged from a branch later).
    pub out_of_order: bool,
    /// An earlier attempt outside a transaction failed; it runs again.
    pub retry: bool,
    pub no_transaction: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub version: String,
    pub name: String,
    pub file: String,
    /// The checksum recorded when it was applied.
    pub expected: String,
    /// The checksum of the file now.
    pub actual: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MissingFile {
    pub version: String,
    pub name: String,
    /// Newer than every local file: the database is ahead of this checkout.
    pub future: bool,
}

/// A migration Prisma recorded as failed (`finished_at` and `rolled_back_at` null) that
/// runbook did not attempt itself: Prisma refuses to deploy (P3009) until it is resolved, and
/// so does `apply`.
#[derive(Debug, Clone, Serialize)]
pub struct FailedMigration {
    pub version: String,
    /// The Prisma folder name, its id in `_prisma_migrations`.
    pub migration_name: String,
    /// The file, when this checkout has it.
    pub file: Option<String>,
    pub started_at: String,
    /// What the failed attempt logged.
    pub logs: Option<String>,
}

/// Where a database stands against a set of migrations.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Applied migrations, by version (history rows that succeeded, and Prisma's).
    pub applied: Vec<HistoryEntry>,
    pub pending: Vec<PendingMigration>,
    pub drifted: Vec<Drift>,
    pub missing: Vec<MissingFile>,
    pub current_version: Option<String>,
    /// Versions Prisma applied that the history table does not hold yet.
    pub adopt: Vec<String>,
    /// Migrations Prisma recorded as failed, oldest first.
    pub failed: Vec<FailedMigration>,
}

impl Status {
    /// The reasons `apply` (and `rehearse`) refuse to run, one line each.
    pub fn refusals(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.drifted {
            out.push(format!(
                "`{}` changed after it was applied (version {}): expected checksum {}, the file now has {}",
                d.file, d.version, d.expected, d.actual
            ));
        }
        for m in self.missing.iter().filter(|m| !m.future) {
            out.push(format!(
                "migration {} ({}) is applied but its file is gone",
                m.version, m.name
            ));
        }
        out
    }

    /// Status as JSON outputs (`pending`, `applied`, `drifted`, `missing`, `current_version`,
    /// `count` = pending).
    pub fn outputs(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("pending".into(), to_json(&self.pending));
        m.insert("applied".into(), to_json(&self.applied));
        m.insert("drifted".into(), to_json(&self.drifted));
        m.insert("missing".into(), to_json(&self.missing));
        m.insert("failed".into(), to_json(&self.failed));
        m.insert(
            "current_version".into(),
            self.current_version
                .clone()
                .map_or(serde_json::Value::Null, serde_json::Value::String),
        );
        m.insert("count".into(), self.pending.len().into());
        m
    }
}

pub fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn drift(m: &Migration, expected: &str, actual: &str) -> Drift {
    Drift {
        version: m.version.clone(),
        name: m.name.clone(),
        file: m.file.clone(),
        expected: expected.to_owned(),
        actual: actual.to_owned(),
    }
}

/// Counts `m` as applied by Prisma (`p`), noting drift against Prisma's checksum.
fn adopt_prisma(st: &mut Status, m: &Migration, p: &PrismaRecord) {
    // Prisma's checksum is over the bytes as stored; accept either form.
    if p.checksum != m.raw_checksum && p.checksum != m.checksum {
        st.drifted.push(drift(m, &p.checksum, &m.raw_checksum));
    }
    st.applied.push(HistoryEntry {
        version: m.version.clone(),
        name: m.name.clone(),
        checksum: m.checksum.clone(),
        execution_ms: 0,
        success: true,
        applied_at: p.finished_at.clone(),
        run_id: None,
        kind: "prisma".into(),
    });
    st.adopt.push(m.version.clone());
}

/// The failed Prisma rows that stop `apply`: all but runbook's own failed attempts (a failed
/// row in its history too), which the next apply runs again as it always has.
fn blocking(
    set: &MigrationSet,
    by_key: &HashMap<String, &HistoryEntry>,
    failures: &[PrismaFailure],
) -> Vec<FailedMigration> {
    failures
        .iter()
        .filter_map(|f| {
            let m = set
                .migrations
                .iter()
                .find(|m| m.prisma_name.as_deref() == Some(f.migration_name.as_str()));
            let version = m.map_or_else(
                || {
                    let v = f.migration_name.split('_').next().unwrap_or_default();
                    v.to_owned()
                },
                |m| m.version.clone(),
            );
            let own = by_key
                .get(&version_key(&version))
                .is_some_and(|h| !h.success);
            (!own).then(|| FailedMigration {
                version,
                migration_name: f.migration_name.clone(),
                file: m.map(|m| m.file.clone()),
                started_at: f.started_at.clone(),
                logs: f.logs.clone(),
            })
        })
        .collect()
}

/// Compares the files with the history and Prisma's (pure: no IO).
pub fn compare(
    set: &MigrationSet,
    history: &[HistoryEntry],
    prisma: &[PrismaRecord],
    prisma_failures: &[PrismaFailure],
) -> Status {
    let by_key: HashMap<String, &HistoryEntry> = history
        .iter()
        .map(|h| (version_key(&h.version), h))
        .collect();
    let mut st = Status {
        failed: blocking(set, &by_key, prisma_failures),
        ..Status::default()
    };
    let newest_applied = history
        .iter()
        .filter(|h| h.success)
        .map(|h| h.version.as_str())
        .max_by(|a, b| compare_versions(a, b));
    for m in &set.migrations {
        match by_key.get(&version_key(&m.version)) {
            Some(h) if h.success => {
                if h.checksum != m.checksum {
                    st.drifted.push(drift(m, &h.checksum, &m.checksum));
                }
                st.applied.push((*h).clone());
            }
            found => {
                let retry = found.is_some();
                let by_prisma = m
                    .prisma_name
                    .as_ref()
                    .and_then(|pn| prisma.iter().find(|p| &p.name == pn).filter(|_| !retry));
                if let Some(p) = by_prisma {
                    adopt_prisma(&mut st, m, p);
                    continue;
                }
                st.pending.push(PendingMigration {
                    version: m.version.clone(),
                    name: m.name.clone(),
                    file: m.file.clone(),
                    out_of_order: newest_applied
                        .is_some_and(|n| compare_versions(&m.version, n) == Ordering::Less),
                    retry,
                    no_transaction: m.no_transaction,
                });
            }
        }
    }
    let newest_local = set.migrations.last().map(|m| m.version.as_str());
    for h in history.iter().filter(|h| h.success) {
        if set.find(&h.version).is_none() {
            st.missing.push(MissingFile {
                version: h.version.clone(),
                name: h.name.clone(),
                future: newest_local
                    .is_none_or(|n| compare_versions(&h.version, n) == Ordering::Greater),
            });
            st.applied.push(h.clone());
        }
    }
    st.applied
        .sort_by(|a, b| compare_versions(&a.version, &b.version));
    st.current_version = st.applied.last().map(|h| h.version.clone());
    st
}

/// Where the target stands: history (and Prisma's) against the files. Reads only.
pub async fn status(db: &mut Db, set: &MigrationSet) -> Result<Status, OpError> {
    let exist = tables(db).await?;
    status_of(db, set, exist).await
}

/// [`status`], when the caller knows which history tables exist (`ensure_history` says): a
/// table that does not is not read.
pub(super) async fn status_of(
    db: &mut Db,
    set: &MigrationSet,
    exist: Tables,
) -> Result<Status, OpError> {
    let prisma_kept = super::prisma::kept_for(&set.migrations);
    if let Db::Postgres(c) = db
        && exist.history
        && prisma_kept
        && exist.prisma
    {
        // Both tables in one round trip.
        let (mut hist, rows) = super::postgres::both_histories(c).await.map_err(|(i, e)| {
            let table = if i == 0 { HISTORY_TABLE } else { PRISMA_TABLE };
            db_failed(&format!("cannot read `{table}`"), &e)
        })?;
        hist.sort_by(|a, b| compare_versions(&a.version, &b.version));
        let (prisma, failed) = super::prisma::split(rows);
        return Ok(compare(set, &hist, &prisma, &failed));
    }
    let hist = read_history(db, exist.history).await?;
    let (prisma, failed) = super::prisma::read(db, prisma_kept && exist.prisma).await?;
    Ok(compare(set, &hist, &prisma, &failed))
}
