//! Choosing the backup a restore will use, before anyone is asked to confirm it: the archive
//! the operator named, or else the newest backup of the target's database in a folder that
//! verifies. Changes nothing.
//!
//! A search takes only what a rollback can return to: full backups (`mode: full`) written by a
//! `backup` step, of the target's dialect and database (the PostgreSQL database name, the
//! SQLite file's stem, as the manifest records them). Pre-restore backups (the state just
//! before an earlier restore, usually the state that was being undone) and schema-only or
//! data-only archives are taken only when named. Candidates are verified newest first, as
//! `verify_archive` does (sha256 and size, then `pg_restore --list` or `PRAGMA
//! integrity_check`); one that fails is passed over with a line saying why, and the first
//! that verifies is the choice.

use super::files::read_dir;
use super::guard::{check_cancel, explain, guard};
use super::manifest::{MANIFEST_SUFFIX, Manifest, Purpose, find_manifest, read_manifest};
use super::pg_tools::{PgTools, find_pg_tools};
use super::postgres::pg_server;
use super::verify::{Verified, verify_archive};
use crate::db::op::{Op, OpError};
use crate::db::{Db, Dialect, TargetSpec};
use crate::fmt::{bytes, count, list_some, plural};
use crate::playbook::BackupMode;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a `find_backup` step asks for.
#[derive(Debug, Clone)]
pub struct FindRequest {
    /// The folder searched when `from` is `None`.
    pub dir: PathBuf,
    /// An archive or manifest the operator named: verified and taken, never searched for.
    pub from: Option<PathBuf>,
}

/// The chosen backup, verified.
#[derive(Debug, Clone)]
pub struct Found {
    pub manifest_path: PathBuf,
    pub verified: Verified,
    /// The target's database, as manifests name it.
    pub database: String,
    /// Whether the operator named it (else it was found in the folder).
    pub named: bool,
    /// The folder searched.
    pub dir: PathBuf,
}

/// A backup in the folder that may be restored: its manifest and when it was taken.
struct Candidate {
    path: PathBuf,
    manifest: Manifest,
    created: DateTime<Utc>,
}

/// Finds and verifies the backup to restore into `target`. `db` is the target's connection,
/// opened here when the database's name must be asked (PostgreSQL).
pub async fn find_backup(
    db: &mut Option<Db>,
    target: &TargetSpec,
    req: &FindRequest,
    op: &Op<'_>,
) -> Result<Found, OpError> {
    let (database, major) = target_database(db, target, op).await?;
    let dialect = Dialect::of(target);
    let mut tools = Tools { major, found: None };
    let Some(from) = &req.from else {
        return search(req, dialect, database, &mut tools, op).await;
    };
    let manifest_path = find_manifest(from).map_err(|e| {
        // A directory-format archive is a folder too, but it has a manifest beside it.
        if from.is_dir() {
            OpError::failed(format!(
                "{} is a folder, not a backup: name an archive in it, or leave `from` empty to take the newest verified backup in `dir`",
                from.display()
            ))
        } else {
            e
        }
    })?;
    let manifest = read_manifest(&manifest_path)?;
    if manifest.dialect != dialect {
        return Err(OpError::failed(format!(
            "{} is a {} backup and the target is {}",
            manifest_path.display(),
            manifest.dialect.label(),
            dialect.label()
        )));
    }
    let verified = verify_archive(&manifest_path, tools.get(dialect, op).await?, op)
        .await
        .map_err(|e| explain(e, |m| format!("{} does not verify: {m}", from.display())))?;
    Ok(Found {
        manifest_path,
        verified,
        database,
        named: true,
        dir: req.dir.clone(),
    })
}

/// The newest verified full backup of the connected database in `dir`, as `find_backup`
/// searches for one: what the backup freshness health check grades by age.
pub async fn newest_verified(
    db: &mut Db,
    target: &TargetSpec,
    dir: &Path,
    op: &Op<'_>,
) -> Result<Found, OpError> {
    let (database, major) = match (target, db) {
        (TargetSpec::Sqlite(path), _) => (
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "db".to_owned()),
            0,
        ),
        (TargetSpec::Postgres(_), Db::Postgres(conn)) => {
            let server = guard(op, "cannot read the database name", None, pg_server(conn)).await?;
            (server.database, server.major)
        }
        _ => return Err(OpError::failed("the connection does not match the target")),
    };
    let req = FindRequest {
        dir: dir.to_path_buf(),
        from: None,
    };
    let mut tools = Tools { major, found: None };
    search(&req, Dialect::of(target), database, &mut tools, op).await
}

/// The target's database name as a backup's manifest records it, and the PostgreSQL server's
/// major version (0 for SQLite).
async fn target_database(
    db: &mut Option<Db>,
    target: &TargetSpec,
    op: &Op<'_>,
) -> Result<(String, u32), OpError> {
    match target {
        TargetSpec::Sqlite(path) => Ok((
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "db".to_owned()),
            0,
        )),
        TargetSpec::Postgres(_) => {
            if db.is_none() {
                let what = format!("cannot connect to {}", target.describe());
                *db = Some(guard(op, &what, None, Db::connect(target)).await?);
            }
            let Some(Db::Postgres(conn)) = db.as_mut() else {
                return Err(OpError::failed("the connection does not match the target"));
            };
            let server = guard(op, "cannot read the database name", None, pg_server(conn)).await?;
            Ok((server.database, server.major))
        }
    }
}

/// The PostgreSQL client programs, looked for once and only when an archive is to be read.
struct Tools {
    major: u32,
    found: Option<PgTools>,
}

impl Tools {
    async fn get(&mut self, dialect: Dialect, op: &Op<'_>) -> Result<Option<&PgTools>, OpError> {
        if dialect == Dialect::Sqlite {
            return Ok(None);
        }
        if self.found.is_none() {
            self.found = Some(find_pg_tools(self.major, op).await?);
        }
        Ok(self.found.as_ref())
    }
}

/// The newest backup of `database` in the folder that verifies.
async fn search(
    req: &FindRequest,
    dialect: Dialect,
    database: String,
    tools: &mut Tools,
    op: &Op<'_>,
) -> Result<Found, OpError> {
    let (candidates, undated) = candidates(&req.dir, dialect, &database)?;
    let mut passed = Vec::new();
    let mut failed = 0;
    for c in candidates {
        check_cancel(op)?;
        if let Some(kind) = not_taken(&c.manifest) {
            passed.push(kind);
            continue;
        }
        match verify_archive(&c.path, tools.get(dialect, op).await?, op).await {
            Ok(verified) => {
                if !passed.is_empty() {
                    op.note(&format!("passed over newer {}", tally(&passed)));
                }
                return Ok(Found {
                    manifest_path: c.path,
                    verified,
                    database,
                    named: false,
                    dir: req.dir.clone(),
                });
            }
            Err(OpError::Interrupted) => return Err(OpError::Interrupted),
            Err(e) => {
                failed += 1;
                op.note(&format!(
                    "skipped {} (taken {}): {e}",
                    c.manifest.archive,
                    utc(&c.manifest.created_at)
                ));
            }
        }
    }
    let mut why = Vec::new();
    if failed > 0 {
        why.push(format!(
            "{} failed verification",
            plural(failed, "backup", "backups")
        ));
    }
    if !passed.is_empty() {
        why.push(tally(&passed));
    }
    if undated > 0 {
        why.push(format!(
            "{} no readable time",
            plural(undated, "manifest has", "manifests have")
        ));
    }
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(" ({})", why.join("; "))
    };
    Err(OpError::failed(format!(
        "no verified backup of database `{database}` in {}{why}; take one with `runbook run backup`, or name the archive to restore with `--var from=PATH`",
        req.dir.display()
    )))
}

/// Why a backup of the database is not taken unless it is named, or `None` when it may be.
fn not_taken(m: &Manifest) -> Option<&'static str> {
    match (m.purpose, m.mode) {
        (Purpose::PreRestore, _) => Some("pre-restore"),
        (_, BackupMode::SchemaOnly) => Some("schema_only"),
        (_, BackupMode::DataOnly) => Some("data_only"),
        (Purpose::Backup, BackupMode::Full) => None,
    }
}

/// `2 pre-restore backups and 1 schema_only backup, taken only when named with `from``.
fn tally(kinds: &[&str]) -> String {
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for k in kinds {
        *by_kind.entry(k).or_default() += 1;
    }
    let parts: Vec<String> = by_kind
        .iter()
        .map(|(k, n)| plural(n, &format!("{k} backup"), &format!("{k} backups")))
        .collect();
    format!("{}, taken only when named with `from`", parts.join(" and "))
}

/// The backups of `database` in `dir`, newest first (by the manifest's time, then name), and
/// how many of its manifests have no readable time. A folder that does not exist holds none.
fn candidates(
    dir: &Path,
    dialect: Dialect,
    database: &str,
) -> Result<(Vec<Candidate>, usize), OpError> {
    if !dir.exists() {
        return Ok((Vec::new(), 0));
    }
    let mut out = Vec::new();
    let mut undated = 0;
    for path in read_dir(dir)? {
        let is_manifest = path
            .file_name()
            .and_then(|f| f.to_str())
            .is_some_and(|f| f.ends_with(MANIFEST_SUFFIX) && !f.starts_with('.'));
        if !is_manifest {
            continue;
        }
        // Files that are not runbook manifests are not backups (retention leaves them too).
        let Ok(manifest) = read_manifest(&path) else {
            continue;
        };
        if manifest.dialect != dialect || manifest.database != database {
            continue;
        }
        match DateTime::parse_from_rfc3339(&manifest.created_at) {
            Ok(t) => out.push(Candidate {
                path,
                manifest,
                created: t.with_timezone(&Utc),
            }),
            Err(_) => undated += 1,
        }
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.path.cmp(&a.path)));
    Ok((out, undated))
}

impl Found {
    /// What the operator is shown before confirming: which backup, when it was taken, its
    /// size and sha256, and its row counts (the first tables by name, then how many more).
    pub fn lines(&self, now: DateTime<Utc>) -> Vec<String> {
        let m = &self.verified.manifest;
        let (how, archive) = if self.named {
            (
                "named by `from`".to_owned(),
                self.verified.archive.display().to_string(),
            )
        } else {
            (
                format!(
                    "the newest verified backup of `{}` in {}",
                    self.database,
                    self.dir.display()
                ),
                m.archive.clone(),
            )
        };
        let mut lines = vec![
            format!("backup to restore, {how}:"),
            format!("  archive {archive}"),
        ];
        let age = DateTime::parse_from_rfc3339(&m.created_at)
            .map(|t| format!(" ({})", ago(now - t.with_timezone(&Utc))))
            .unwrap_or_default();
        lines.push(format!(
            "  taken   {}{age}, by run {}, step {}",
            utc(&m.created_at),
            m.run_id,
            m.step_id
        ));
        lines.push(format!(
            "  size    {}, sha256 {}",
            bytes(m.size),
            short(&m.sha256)
        ));
        lines.push(format!("  rows    {}", rows(&m.row_counts)));
        if m.database != self.database {
            lines.push(format!(
                "  note    a backup of `{}`, not of the target's `{}`",
                m.database, self.database
            ));
        }
        match (m.purpose, m.mode) {
            (Purpose::PreRestore, _) => {
                lines.push(
                    "  note    a pre-restore backup (taken just before an earlier restore)"
                        .to_owned(),
                );
            }
            (_, BackupMode::Full) => {}
            (_, BackupMode::SchemaOnly) => {
                lines.push("  note    a schema_only backup: its tables restore empty".to_owned())
            }
            (_, BackupMode::DataOnly) => {
                lines.push("  note    a data_only backup: it holds rows, not the schema".to_owned())
            }
        }
        lines
    }

    /// One line naming the backup, for a confirmation message.
    pub fn summary(&self) -> String {
        let m = &self.verified.manifest;
        format!(
            "{} of {} ({}, sha256 {})",
            m.archive,
            utc(&m.created_at),
            bytes(m.size),
            short(&m.sha256)
        )
    }

    /// When the backup was taken, as [`Found::lines`] shows it.
    pub fn time(&self) -> String {
        utc(&self.verified.manifest.created_at)
    }
}

/// `601 in 4 tables: log 250, orders 250, ...` (rows in all, then per table), at most ten
/// tables by name.
fn rows(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none: the backup holds no tables".to_owned();
    }
    let total: u64 = counts.values().sum();
    let each: Vec<String> = counts
        .iter()
        .map(|(t, n)| format!("{t} {}", count(i64::try_from(*n).unwrap_or(i64::MAX))))
        .collect();
    format!(
        "{} in {}: {}",
        count(i64::try_from(total).unwrap_or(i64::MAX)),
        plural(counts.len(), "table", "tables"),
        list_some(&each)
    )
}

/// An RFC 3339 time as `2025-01-02 03:04:05 UTC`; as written when it does not parse.
fn utc(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// How long ago, in the largest whole unit: `just now`, `5 minutes ago`, `3 days ago`.
fn ago(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    if secs < 60 {
        return "just now".to_owned();
    }
    let (n, one, many) = match secs {
        s if s < 3600 => (s / 60, "minute", "minutes"),
        s if s < 86_400 => (s / 3600, "hour", "hours"),
        s => (s / 86_400, "day", "days"),
    };
    format!("{} ago", plural(n, one, many))
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_their_largest_unit() {
        assert_eq!(ago(chrono::Duration::seconds(5)), "just now");
        assert_eq!(ago(chrono::Duration::seconds(-30)), "just now");
        assert_eq!(ago(chrono::Duration::seconds(60)), "1 minute ago");
        assert_eq!(ago(chrono::Duration::seconds(7300)), "2 hours ago");
        assert_eq!(ago(chrono::Duration::days(40)), "40 days ago");
    }

    #[test]
    fn row_counts_stay_on_one_short_line() {
        let many: BTreeMap<String, u64> = (0..40).map(|i| (format!("t{i:02}"), 1000)).collect();
        let line = rows(&many);
        assert!(
            line.starts_with("40,000 in 40 tables: t00 1,000, "),
            "{line}"
        );
        assert!(line.ends_with("t09 1,000 and 30 more"), "{line}");
        assert_eq!(rows(&BTreeMap::new()), "none: the backup holds no tables");
        let one = BTreeMap::from([("users".to_owned(), 1)]);
        assert_eq!(rows(&one), "1 in 1 table: users 1");
    }

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(
            utc("2025-01-02T04:04:05.123+01:00"),
            "2025-01-02 03:04:05 UTC"
        );
        assert_eq!(utc("yesterday"), "yesterday");
    }

    #[test]
    fn passed_over_kinds_are_counted() {
        let kinds = ["pre-restore", "schema_only", "pre-restore"];
        assert_eq!(
            tally(&kinds),
            "2 pre-restore backups and 1 schema_only backup, taken only when named with `from`"
        );
    }
}
