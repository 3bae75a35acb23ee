//! Schema migrations: discovery, history table, status, apply, revert, baseline, lint, rehearse.
//!
//! Everything here works on a [`Db`], a [`TargetSpec`] and plain values, so other commands can
//! use it (a `plan --rehearse`, the `health` check of migration status); the `migrate` action
//! (`exec/actions/migrate.rs`) only turns the results into outputs and notes.
//!
//! Files live in `<base>/<dialect>/` (`postgres` or `sqlite`): `<version>_<name>.sql` with an
//! optional `<version>_<name>.down.sql` (sqlx's `.up.sql` works too), or Prisma folders
//! `<timestamp>_<name>/migration.sql`. A Prisma folder may also be the base itself, so an
//! existing Prisma project runs as is, and migrations Prisma already applied (in
//! `_prisma_migrations`) count as applied.
//!
//! What a run can rely on:
//! - Each migration runs in its own transaction together with its history row, unless its
//!   first line is `-- runbook:no-transaction`. Then its statements run one at a time (one
//!   multi-statement query would be an implicit transaction block, where `CREATE INDEX
//!   CONCURRENTLY` fails), and its history row is written first as failed and marked done at
//!   the end, so a crash in the middle shows as a failed migration rather than as nothing.
//! - Nothing is applied while an applied migration's file changed (drift), is gone, or an
//!   INVALID index from a failed concurrent build is still there.
//! - On PostgreSQL the migration lock is a session advisory lock on a dedicated connection,
//!   polled (never a blocking call), and released on every path: each operation takes it,
//!   runs, then releases it whatever the result (sqlx's migrator keeps it after a failure).
//!   The same connection cancels a running statement on Ctrl-C or at the step's deadline.
//!   On SQLite the run lock already serialises runs and `BEGIN IMMEDIATE` takes the write lock.

use crate::db::{Db, TargetSpec, describe};
use crate::fmt::duration as fmt_duration;
use crate::playbook::LintLevel;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};
use squawk_syntax::ast::{self, AstNode};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The history table, in the target database.
pub const HISTORY_TABLE: &str = "runbook_migrations";

/// A migration whose first line is this runs outside a transaction.
pub const NO_TRANSACTION: &str = "-- runbook:no-transaction";

/// The migration lock's advisory key: "rmigrate" in ASCII, distinct from the run lock's.
pub const LOCK_KEY: i64 = 0x726d_6967_7261_7465;

/// How often a held migration lock is tried again.
pub const LOCK_POLL: Duration = Duration::from_secs(1);

/// How long to wait for the migration lock before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Waits between attempts after a lock timeout: 1s, 2s, 4s, ... at most 30s.
const RETRY_BASE: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// How long a cancelled statement may take to end before the connection is given up.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("interrupted")]
    Interrupted,
    #[error("timed out after {}", fmt_duration(*.0))]
    TimedOut(Duration),
    #[error("{0}")]
    Failed(String),
}

fn failed(msg: impl Into<String>) -> MigrateError {
    MigrateError::Failed(msg.into())
}

fn db_failed(what: &str, e: &sqlx::Error) -> MigrateError {
    failed(format!("{what}: {}", describe(e)))
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// `50000` as `50,000`.
pub fn fmt_count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    pub fn of(target: &TargetSpec) -> Dialect {
        match target {
            TargetSpec::Postgres(_) => Dialect::Postgres,
            TargetSpec::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The folder under the migrations base that holds this dialect's files.
    pub fn folder(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::Sqlite => "SQLite",
        }
    }

    fn prisma_provider(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgresql",
            Dialect::Sqlite => "sqlite",
        }
    }
}

/// One migration file (or Prisma folder) as found on disk.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: String,
    pub name: String,
    /// The up file.
    pub path: PathBuf,
    /// The up file as shown to people: relative to the project root when inside it.
    pub file: String,
    /// The down file, when it exists.
    pub down: Option<PathBuf>,
    /// Where the down file would be (for the error when it is missing).
    pub down_expected: PathBuf,
    /// The SQL with line endings normalised to LF.
    pub sql: String,
    /// sha256 of [`Migration::sql`].
    pub checksum: String,
    /// sha256 of the bytes as stored, which is what Prisma records.
    pub raw_checksum: String,
    pub no_transaction: bool,
    /// The Prisma folder name (its id in `_prisma_migrations`) for the Prisma layout.
    pub prisma_name: Option<String>,
}

/// The migrations of one dialect, sorted by version.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    /// The folder the files were read from.
    pub dir: PathBuf,
    /// The folder as shown to people.
    pub shown_dir: String,
    pub migrations: Vec<Migration>,
}

impl Migration {
    /// A file next to the up file (its down file), shown the way the up file is.
    pub fn shown_sibling(&self, path: &Path) -> String {
        match path.file_name() {
            Some(name) => Path::new(&self.file)
                .with_file_name(name)
                .display()
                .to_string(),
            None => path.display().to_string(),
        }
    }
}

impl MigrationSet {
    pub fn find(&self, version: &str) -> Option<&Migration> {
        let key = version_key(version);
        self.migrations
            .iter()
            .find(|m| version_key(&m.version) == key)
    }
}

/// Line endings normalised to LF, so a file checked out on Windows has the same checksum.
pub fn normalize(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// sha256 (hex) of the text with CRLF normalised to LF.
pub fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(normalize(text).as_bytes()))
}

/// Whether the (normalised) SQL opts out of the transaction on its first line.
pub fn is_no_transaction(sql: &str) -> bool {
    sql.trim_start_matches('\u{feff}')
        .lines()
        .next()
        .is_some_and(|first| first.trim_end() == NO_TRANSACTION)
}

fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.split('.')
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

/// Compares versions segment by segment (split on `.`), numerically: `2` < `10`, `001` = `1`,
/// `1` = `1.0`.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (a, b) = (version_key(a), version_key(b));
    let (mut ai, mut bi) = (a.split('.'), b.split('.'));
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (x, y) => {
                let (x, y) = (x.unwrap_or("0"), y.unwrap_or("0"));
                let o = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// The canonical form of a version: no leading zeros per segment, no trailing `.0` segments.
fn version_key(v: &str) -> String {
    let mut segs: Vec<&str> = v
        .split('.')
        .map(|s| {
            let t = s.trim_start_matches('0');
            if t.is_empty() { "0" } else { t }
        })
        .collect();
    while segs.len() > 1 && segs.last() == Some(&"0") {
        segs.pop();
    }
    segs.join(".")
}

fn shown(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The folder holding the dialect's migrations: `<base>/<dialect>/`, or `<base>` itself when
/// it is a Prisma migrations folder (with `migration_lock.toml`) or holds migrations directly.
pub fn locate(base: &Path, dialect: Dialect, root: &Path) -> Result<PathBuf, MigrateError> {
    let sub = base.join(dialect.folder());
    if sub.is_dir() {
        return Ok(sub);
    }
    let lock_file = base.join("migration_lock.toml");
    if let Ok(text) = std::fs::read_to_string(&lock_file) {
        // migration_lock.toml has one setting that matters: `provider = "postgresql"`.
        let provider = text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "provider").then(|| v.trim().trim_matches('"').to_owned())
        });
        if let Some(p) = provider
            && p != dialect.prisma_provider()
        {
            return Err(failed(format!(
                "`{}` is a Prisma migrations folder for `{p}`, and the target is {}",
                shown(base, root),
                dialect.label()
            )));
        }
        return Ok(base.to_path_buf());
    }
    let direct = std::fs::read_dir(base).is_ok_and(|rd| {
        rd.filter_map(Result::ok).any(|e| {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            (p.is_file() && name.ends_with(".sql"))
                || (p.is_dir() && p.join("migration.sql").is_file())
        })
    });
    if direct {
        return Ok(base.to_path_buf());
    }
    if base.is_dir() {
        Err(failed(format!(
            "no {} migrations: `{}` does not exist",
            dialect.label(),
            shown(&sub, root)
        )))
    } else {
        Err(failed(format!(
            "the migrations folder `{}` does not exist",
            shown(base, root)
        )))
    }
}

/// Finds and reads the dialect's migrations under `base`; paths are shown relative to `root`.
pub fn discover(base: &Path, dialect: Dialect, root: &Path) -> Result<MigrationSet, MigrateError> {
    let dir = locate(base, dialect, root)?;
    let migrations = read_dir(&dir, root)?;
    Ok(MigrationSet {
        shown_dir: shown(&dir, root),
        dir,
        migrations,
    })
}

fn read_sql(path: &Path, root: &Path) -> Result<(String, String), MigrateError> {
    let bytes = std::fs::read(path)
        .map_err(|e| failed(format!("cannot read `{}`: {e}", shown(path, root))))?;
    let text = String::from_utf8(bytes.clone())
        .map_err(|_| failed(format!("`{}` is not UTF-8 text", shown(path, root))))?;
    Ok((normalize(&text), hex::encode(Sha256::digest(&bytes))))
}

/// Reads one folder of migrations: flat files and Prisma folders, sorted by version.
pub fn read_dir(dir: &Path, root: &Path) -> Result<Vec<Migration>, MigrateError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| failed(format!("cannot read `{}`: {e}", shown(dir, root))))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    let mut ups: Vec<(String, String, PathBuf, PathBuf, Option<String>)> = Vec::new();
    let mut downs: BTreeMap<String, PathBuf> = BTreeMap::new();
    let naming = "expected `<version>_<name>.sql` (version: digits and dots, e.g. `001_create_users.sql` or `20240101120000_init.sql`), with an optional `<version>_<name>.down.sql`";
    for path in entries {
        let Some(fname) = path.file_name().map(|f| f.to_string_lossy().into_owned()) else {
            continue;
        };
        if path.is_dir() {
            // A Prisma migration folder: `<timestamp>_<name>/migration.sql`.
            let Some((version, name)) = fname.split_once('_') else {
                continue;
            };
            if !valid_version(version) {
                continue;
            }
            let up = path.join("migration.sql");
            if !up.is_file() {
                return Err(failed(format!(
                    "the migration folder `{}` has no `migration.sql`",
                    shown(&path, root)
                )));
            }
            if name.is_empty() {
                return Err(failed(format!(
                    "`{}`: the folder name needs a name after the version, like `{version}_init`",
                    shown(&path, root)
                )));
            }
            let down = path.join("down.sql");
            ups.push((
                version.to_owned(),
                name.to_owned(),
                up,
                down,
                Some(fname.clone()),
            ));
            continue;
        }
        let Some(stem) = fname.strip_suffix(".sql") else {
            continue;
        };
        if let Some(base) = stem.strip_suffix(".down") {
            downs.insert(base.to_owned(), path.clone());
            continue;
        }
        let (stem, down_name) = match stem.strip_suffix(".up") {
            Some(base) => (base, format!("{base}.down.sql")),
            None => (stem, format!("{stem}.down.sql")),
        };
        let parsed = stem
            .split_once('_')
            .filter(|(v, n)| valid_version(v) && !n.is_empty());
        let Some((version, name)) = parsed else {
            return Err(failed(format!(
                "`{}` is not named like a migration: {naming}",
                shown(&path, root)
            )));
        };
        ups.push((
            version.to_owned(),
            name.to_owned(),
            path.clone(),
            dir.join(down_name),
            None,
        ));
    }
    let mut out = Vec::with_capacity(ups.len());
    for (version, name, path, down_expected, prisma_name) in ups {
        let (sql, raw_checksum) = read_sql(&path, root)?;
        let stem_key = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem_key = stem_key
            .strip_suffix(".sql")
            .map(|s| s.strip_suffix(".up").unwrap_or(s).to_owned())
            .unwrap_or_default();
        let down = if prisma_name.is_some() {
            down_expected.is_file().then(|| down_expected.clone())
        } else {
            downs.remove(&stem_key)
        };
        out.push(Migration {
            no_transaction: is_no_transaction(&sql),
            checksum: hex::encode(Sha256::digest(sql.as_bytes())),
            file: shown(&path, root),
            version,
            name,
            path,
            down,
            down_expected,
            sql,
            raw_checksum,
            prisma_name,
        });
    }
    if let Some((_, orphan)) = downs.into_iter().next() {
        return Err(failed(format!(
            "`{}` is a down file without its migration (`{}`)",
            shown(&orphan, root),
            shown(
                &orphan.with_file_name(
                    orphan
                        .file_name()
                        .map(|f| f.to_string_lossy().replace(".down.sql", ".sql"))
                        .unwrap_or_default()
                ),
                root
            )
        )));
    }
    out.sort_by(|a, b| compare_versions(&a.version, &b.version));
    for pair in out.windows(2) {
        if compare_versions(&pair[0].version, &pair[1].version) == Ordering::Equal {
            return Err(failed(format!(
                "duplicate migration version `{}`: `{}` and `{}`",
                pair[1].version, pair[0].file, pair[1].file
            )));
        }
    }
    Ok(out)
}

/// One row of the history table.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub version: String,
    pub name: String,
    pub checksum: String,
    pub execution_ms: i64,
    pub success: bool,
    pub applied_at: String,
    pub run_id: Option<String>,
    /// `apply`, `baseline` (marked applied without running) or `prisma` (applied by Prisma).
    pub kind: String,
}

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

/// A migration Prisma recorded as finished.
#[derive(Debug, Clone)]
pub struct PrismaRecord {
    pub name: String,
    pub checksum: String,
    pub finished_at: String,
}

/// Compares the files with the history (pure: no IO).
pub fn compare(set: &MigrationSet, history: &[HistoryEntry], prisma: &[PrismaRecord]) -> Status {
    let by_key: HashMap<String, &HistoryEntry> = history
        .iter()
        .map(|h| (version_key(&h.version), h))
        .collect();
    let mut st = Status::default();
    let newest_applied = history
        .iter()
        .filter(|h| h.success)
        .map(|h| h.version.as_str())
        .max_by(|a, b| compare_versions(a, b));
    for m in &set.migrations {
        match by_key.get(&version_key(&m.version)) {
            Some(h) if h.success => {
                if h.checksum != m.checksum {
                    st.drifted.push(Drift {
                        version: m.version.clone(),
                        name: m.name.clone(),
                        file: m.file.clone(),
                        expected: h.checksum.clone(),
                        actual: m.checksum.clone(),
                    });
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
                    // Prisma's checksum is over the bytes as stored; accept either form.
                    if p.checksum != m.raw_checksum && p.checksum != m.checksum {
                        st.drifted.push(Drift {
                            version: m.version.clone(),
                            name: m.name.clone(),
                            file: m.file.clone(),
                            expected: p.checksum.clone(),
                            actual: m.raw_checksum.clone(),
                        });
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

/// What an operation needs from its caller: who runs it, when to stop, where notes go.
pub struct Control<'a> {
    pub run_id: String,
    pub cancel: watch::Receiver<bool>,
    /// The deadline and the timeout it came from (for the message).
    pub deadline: Option<(Instant, Duration)>,
    pub note: &'a (dyn Fn(&str) + 'a),
}

impl<'a> Control<'a> {
    pub fn new(
        run_id: &str,
        cancel: watch::Receiver<bool>,
        timeout: Option<Duration>,
        note: &'a (dyn Fn(&str) + 'a),
    ) -> Self {
        Control {
            run_id: run_id.to_owned(),
            cancel,
            deadline: timeout.map(|t| (Instant::now() + t, t)),
            note,
        }
    }

    fn note(&self, text: &str) {
        (self.note)(text);
    }

    /// Whether the run was cancelled or the deadline passed.
    fn stop_now(&self) -> Option<MigrateError> {
        if *self.cancel.borrow() {
            return Some(MigrateError::Interrupted);
        }
        match self.deadline {
            Some((at, t)) if Instant::now() >= at => Some(MigrateError::TimedOut(t)),
            _ => None,
        }
    }

    /// Resolves when the run is cancelled or the deadline passes.
    async fn stopped(&mut self) -> MigrateError {
        let deadline = self.deadline;
        let timer = async move {
            match deadline {
                Some((at, t)) => {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                    t
                }
                None => std::future::pending().await,
            }
        };
        let cancelled = crate::cancel::wait_cancel(&mut self.cancel);
        tokio::select! {
            _ = cancelled => MigrateError::Interrupted,
            t = timer => MigrateError::TimedOut(t),
        }
    }

    /// Sleeps, unless the run stops first.
    async fn sleep(&mut self, d: Duration) -> Result<(), MigrateError> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            e = self.stopped() => Err(e),
        }
    }
}

/// Per-migration settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    /// Attempts after the first when a migration times out waiting for a lock (55P03).
    pub lock_retries: u32,
}

/// The migration lock (see the module docs). Release it with [`MigrationLock::release`].
pub struct MigrationLock {
    conn: Option<sqlx::PgConnection>,
    /// The target connection's backend, cancelled through `conn` when the run stops.
    worker_pid: Option<i32>,
    /// How long taking the lock took, and how many tries.
    pub waited: Duration,
    pub attempts: u32,
}

impl MigrationLock {
    /// Takes the lock for the target `db` is connected to, polling every [`LOCK_POLL`] for at
    /// most [`LOCK_WAIT`]; SQLite needs no lock beyond the run lock.
    pub async fn acquire(
        target: &TargetSpec,
        db: &mut Db,
        ctl: &mut Control<'_>,
    ) -> Result<MigrationLock, MigrateError> {
        let started = Instant::now();
        let (TargetSpec::Postgres(url), Db::Postgres(worker)) = (target, &mut *db) else {
            return Ok(MigrationLock {
                conn: None,
                worker_pid: None,
                waited: Duration::ZERO,
                attempts: 0,
            });
        };
        let worker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *worker)
            .await
            .map_err(|e| db_failed("cannot read the backend pid", &e))?;
        let tag: String = format!("runbook migrate run={}", ctl.run_id)
            .chars()
            .take(63)
            .collect();
        let opts = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|e| failed(format!("cannot take the migration lock: {e}")))?
            .application_name(&tag);
        let mut conn = opts
            .connect()
            .await
            .map_err(|e| failed(format!("cannot take the migration lock: {e}")))?;
        let deadline = started + LOCK_WAIT;
        let mut attempts = 0;
        let mut told = false;
        loop {
            attempts += 1;
            let got: Result<bool, sqlx::Error> =
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(LOCK_KEY)
                    .fetch_one(&mut conn)
                    .await;
            match got {
                Ok(true) => {
                    ctl.note(&format!(
                        "took the migration lock in {} ({attempts} attempt{})",
                        fmt_duration(started.elapsed()),
                        if attempts == 1 { "" } else { "s" }
                    ));
                    return Ok(MigrationLock {
                        conn: Some(conn),
                        worker_pid: Some(worker_pid),
                        waited: started.elapsed(),
                        attempts,
                    });
                }
                Ok(false) => {}
                Err(e) => {
                    let _ = conn.close().await;
                    return Err(db_failed("cannot take the migration lock", &e));
                }
            }
            let holder = lock_holder(&mut conn).await;
            if Instant::now() + LOCK_POLL > deadline {
                let _ = conn.close().await;
                return Err(failed(format!(
                    "the migration lock is held by {holder}; gave up after {}",
                    fmt_duration(LOCK_WAIT)
                )));
            }
            if !told {
                ctl.note(&format!("waiting for the migration lock, held by {holder}"));
                told = true;
            }
            if let Err(e) = ctl.sleep(LOCK_POLL).await {
                let _ = conn.close().await;
                return Err(e);
            }
        }
    }

    /// Releases the lock and closes its connection. Dropping it instead also releases the
    /// lock: the server ends the session when the connection closes.
    pub async fn release(mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LOCK_KEY)
                .execute(&mut c)
                .await;
            let _ = c.close().await;
        }
    }

    /// Asks the server to cancel the statement running on the target connection.
    async fn cancel_worker(&mut self) -> bool {
        let (Some(c), Some(pid)) = (self.conn.as_mut(), self.worker_pid) else {
            return false;
        };
        sqlx::query_scalar::<_, bool>("SELECT pg_cancel_backend($1)")
            .bind(pid)
            .fetch_one(c)
            .await
            .unwrap_or(false)
    }
}

/// Who holds the migration lock: the holder's `application_name` and pid.
async fn lock_holder(conn: &mut sqlx::PgConnection) -> String {
    let row = sqlx::query(
        "SELECT coalesce(nullif(a.application_name, ''), 'a session'), a.pid
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND ((l.classid::bigint << 32) | l.objid::bigint) = $1
         LIMIT 1",
    )
    .bind(LOCK_KEY)
    .fetch_optional(conn)
    .await;
    match row {
        Ok(Some(r)) => {
            let name: String = r.try_get(0).unwrap_or_default();
            let pid: i32 = r.try_get(1).unwrap_or_default();
            format!("`{name}` (pid {pid})")
        }
        _ => "another session".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Statements against the target.

async fn exec(db: &mut Db, sql: &str) -> Result<(), sqlx::Error> {
    match db {
        Db::Postgres(c) => sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *c)
            .await
            .map(|_| ()),
        Db::Sqlite(c) => sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *c)
            .await
            .map(|_| ()),
    }
}

fn begin_sql(db: &Db) -> &'static str {
    match db {
        Db::Postgres(_) => "BEGIN",
        // Take the write lock up front rather than at the first write.
        Db::Sqlite(_) => "BEGIN IMMEDIATE",
    }
}

enum ScriptError {
    Stopped(MigrateError),
    Sql(sqlx::Error),
}

/// Runs a script (one or more statements, simple protocol). On PostgreSQL a cancel or the
/// deadline cancels the running statement on the server and waits for it to end, so the
/// connection stays usable for the rollback.
async fn run_script(
    db: &mut Db,
    sql: &str,
    lock: &mut MigrationLock,
    ctl: &mut Control<'_>,
) -> Result<(), ScriptError> {
    if let Some(e) = ctl.stop_now() {
        return Err(ScriptError::Stopped(e));
    }
    match db {
        Db::Postgres(c) => {
            let fut = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *c);
            tokio::pin!(fut);
            let stop = tokio::select! {
                r = &mut fut => return r.map(|_| ()).map_err(ScriptError::Sql),
                e = ctl.stopped() => e,
            };
            if lock.cancel_worker().await {
                let _ = tokio::time::timeout(CANCEL_GRACE, &mut fut).await;
            }
            Err(ScriptError::Stopped(stop))
        }
        // SQLite runs in-process and briefly; it stops between migrations.
        Db::Sqlite(c) => sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *c)
            .await
            .map(|_| ())
            .map_err(ScriptError::Sql),
    }
}

/// Sets `lock_timeout` and `statement_timeout` (PostgreSQL): transaction-local inside a
/// transaction, else for the session; returns the session values to restore.
async fn set_timeouts(
    db: &mut Db,
    s: &Settings,
    local: bool,
) -> Result<Vec<(&'static str, String)>, sqlx::Error> {
    let Db::Postgres(c) = db else {
        return Ok(Vec::new());
    };
    let mut previous = Vec::new();
    for (name, value) in [
        ("lock_timeout", s.lock_timeout),
        ("statement_timeout", s.statement_timeout),
    ] {
        let Some(d) = value else { continue };
        if !local {
            let old: String = sqlx::query_scalar("SELECT current_setting($1)")
                .bind(name)
                .fetch_one(&mut *c)
                .await?;
            previous.push((name, old));
        }
        sqlx::query("SELECT set_config($1, $2, $3)")
            .bind(name)
            .bind(format!("{}ms", d.as_millis().max(1)))
            .bind(local)
            .execute(&mut *c)
            .await?;
    }
    Ok(previous)
}

async fn restore_timeouts(db: &mut Db, previous: &[(&'static str, String)]) {
    if let Db::Postgres(c) = db {
        for (name, value) in previous {
            let _ = sqlx::query("SELECT set_config($1, $2, false)")
                .bind(*name)
                .bind(value)
                .execute(&mut *c)
                .await;
        }
    }
}

/// INVALID indexes (left by failed concurrent builds), as `index on table`.
async fn invalid_indexes(db: &mut Db) -> Result<BTreeSet<String>, MigrateError> {
    let Db::Postgres(c) = db else {
        return Ok(BTreeSet::new());
    };
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname), format('%I.%I', tn.nspname, t.relname)
         FROM pg_index i
         JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
         WHERE NOT i.indisvalid ORDER BY 1",
    )
    .fetch_all(&mut *c)
    .await
    .map_err(|e| db_failed("cannot list invalid indexes", &e))?;
    Ok(rows
        .into_iter()
        .map(|(i, t)| format!("`{i}` on `{t}`"))
        .collect())
}

fn invalid_hint(invalid: &BTreeSet<String>) -> String {
    let list: Vec<&str> = invalid.iter().map(String::as_str).collect();
    let names: Vec<String> = invalid
        .iter()
        .filter_map(|s| {
            s.split('`')
                .nth(1)
                .map(|n| format!("`DROP INDEX CONCURRENTLY {n};`"))
        })
        .collect();
    format!(
        "INVALID index left by a failed concurrent build: {}; drop it ({}) before applying again",
        list.join(", "),
        names.join(", ")
    )
}

// ---------------------------------------------------------------------------------------------
// The history table.

const PG_HISTORY_DDL: &str = "CREATE TABLE IF NOT EXISTS runbook_migrations (
    version TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    execution_ms BIGINT NOT NULL,
    success BOOLEAN NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    run_id TEXT,
    kind TEXT NOT NULL DEFAULT 'apply'
)";

const SQLITE_HISTORY_DDL: &str = "CREATE TABLE IF NOT EXISTS runbook_migrations (
    version TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    execution_ms INTEGER NOT NULL,
    success INTEGER NOT NULL,
    applied_at TEXT NOT NULL,
    run_id TEXT,
    kind TEXT NOT NULL DEFAULT 'apply'
)";

async fn table_exists(db: &mut Db, table: &str) -> Result<bool, sqlx::Error> {
    match db {
        Db::Postgres(c) => {
            sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(table)
                .fetch_one(&mut *c)
                .await
        }
        Db::Sqlite(c) => {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            )
            .bind(table)
            .fetch_one(&mut *c)
            .await?;
            Ok(n > 0)
        }
    }
}

async fn ensure_history(db: &mut Db) -> Result<(), MigrateError> {
    let ddl = match db {
        Db::Postgres(_) => PG_HISTORY_DDL,
        Db::Sqlite(_) => SQLITE_HISTORY_DDL,
    };
    exec(db, ddl)
        .await
        .map_err(|e| db_failed(&format!("cannot create `{HISTORY_TABLE}`"), &e))
}

/// The history table's rows, by version; empty when the table does not exist yet.
pub async fn history(db: &mut Db) -> Result<Vec<HistoryEntry>, MigrateError> {
    let what = format!("cannot read `{HISTORY_TABLE}`");
    if !table_exists(db, HISTORY_TABLE)
        .await
        .map_err(|e| db_failed(&what, &e))?
    {
        return Ok(Vec::new());
    }
    let select = "SELECT version, name, checksum, execution_ms, success, applied_at, run_id, kind FROM runbook_migrations";
    let mut out = Vec::new();
    match db {
        Db::Postgres(c) => {
            let rows = sqlx::query(select)
                .fetch_all(&mut *c)
                .await
                .map_err(|e| db_failed(&what, &e))?;
            for r in rows {
                let at: chrono::DateTime<chrono::Utc> =
                    r.try_get(5).map_err(|e| db_failed(&what, &e))?;
                out.push(HistoryEntry {
                    version: r.try_get(0).map_err(|e| db_failed(&what, &e))?,
                    name: r.try_get(1).map_err(|e| db_failed(&what, &e))?,
                    checksum: r.try_get(2).map_err(|e| db_failed(&what, &e))?,
                    execution_ms: r.try_get(3).map_err(|e| db_failed(&what, &e))?,
                    success: r.try_get(4).map_err(|e| db_failed(&what, &e))?,
                    applied_at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    run_id: r.try_get(6).map_err(|e| db_failed(&what, &e))?,
                    kind: r.try_get(7).map_err(|e| db_failed(&what, &e))?,
                });
            }
        }
        Db::Sqlite(c) => {
            let rows = sqlx::query(select)
                .fetch_all(&mut *c)
                .await
                .map_err(|e| db_failed(&what, &e))?;
            for r in rows {
                out.push(HistoryEntry {
                    version: r.try_get(0).map_err(|e| db_failed(&what, &e))?,
                    name: r.try_get(1).map_err(|e| db_failed(&what, &e))?,
                    checksum: r.try_get(2).map_err(|e| db_failed(&what, &e))?,
                    execution_ms: r.try_get(3).map_err(|e| db_failed(&what, &e))?,
                    success: r.try_get(4).map_err(|e| db_failed(&what, &e))?,
                    applied_at: r.try_get(5).map_err(|e| db_failed(&what, &e))?,
                    run_id: r.try_get(6).map_err(|e| db_failed(&what, &e))?,
                    kind: r.try_get(7).map_err(|e| db_failed(&what, &e))?,
                });
            }
        }
    }
    out.sort_by(|a, b| compare_versions(&a.version, &b.version));
    Ok(out)
}

/// Migrations Prisma finished (and did not roll back), from `_prisma_migrations`.
pub async fn prisma_history(db: &mut Db) -> Result<Vec<PrismaRecord>, MigrateError> {
    let what = "cannot read `_prisma_migrations`";
    if !table_exists(db, "_prisma_migrations")
        .await
        .map_err(|e| db_failed(what, &e))?
    {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, String)> =
        match db {
            Db::Postgres(c) => {
                sqlx::query_as(
                    "SELECT migration_name, checksum, finished_at::text FROM _prisma_migrations
             WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL",
                )
                .fetch_all(&mut *c)
                .await
            }
            Db::Sqlite(c) => sqlx::query_as(
                "SELECT migration_name, checksum, CAST(finished_at AS TEXT) FROM _prisma_migrations
             WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL",
            )
            .fetch_all(&mut *c)
            .await,
        }
        .map_err(|e| db_failed(what, &e))?;
    Ok(rows
        .into_iter()
        .map(|(name, checksum, finished_at)| PrismaRecord {
            name,
            checksum,
            finished_at,
        })
        .collect())
}

/// Replaces the history row of `m`.
async fn record(
    db: &mut Db,
    m: &Migration,
    execution_ms: i64,
    success: bool,
    run_id: &str,
    kind: &str,
) -> Result<(), sqlx::Error> {
    unrecord(db, &m.version).await?;
    match db {
        Db::Postgres(c) => {
            sqlx::query(
                "INSERT INTO runbook_migrations
                 (version, name, checksum, execution_ms, success, applied_at, run_id, kind)
                 VALUES ($1, $2, $3, $4, $5, clock_timestamp(), $6, $7)",
            )
            .bind(&m.version)
            .bind(&m.name)
            .bind(&m.checksum)
            .bind(execution_ms)
            .bind(success)
            .bind(run_id)
            .bind(kind)
            .execute(&mut *c)
            .await?;
        }
        Db::Sqlite(c) => {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            sqlx::query(
                "INSERT INTO runbook_migrations
                 (version, name, checksum, execution_ms, success, applied_at, run_id, kind)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&m.version)
            .bind(&m.name)
            .bind(&m.checksum)
            .bind(execution_ms)
            .bind(success)
            .bind(now)
            .bind(run_id)
            .bind(kind)
            .execute(&mut *c)
            .await?;
        }
    }
    Ok(())
}

async fn unrecord(db: &mut Db, version: &str) -> Result<(), sqlx::Error> {
    match db {
        Db::Postgres(c) => {
            sqlx::query("DELETE FROM runbook_migrations WHERE version = $1")
                .bind(version)
                .execute(&mut *c)
                .await?;
        }
        Db::Sqlite(c) => {
            sqlx::query("DELETE FROM runbook_migrations WHERE version = ?")
                .bind(version)
                .execute(&mut *c)
                .await?;
        }
    }
    Ok(())
}

/// Where the target stands: history (and Prisma's) against the files. Reads only.
pub async fn status(db: &mut Db, set: &MigrationSet) -> Result<Status, MigrateError> {
    let hist = history(db).await?;
    let prisma = if set.migrations.iter().any(|m| m.prisma_name.is_some()) {
        prisma_history(db).await?
    } else {
        Vec::new()
    };
    Ok(compare(set, &hist, &prisma))
}

// ---------------------------------------------------------------------------------------------
// Running one migration file.

/// What a file's bookkeeping does in its transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

enum FileError {
    Stopped(MigrateError),
    Sql {
        error: sqlx::Error,
        line: Option<usize>,
        /// Outside a transaction: statements before the failing one stay applied.
        partial: bool,
        /// Indexes left INVALID by this attempt.
        invalid: BTreeSet<String>,
    },
    Other(MigrateError),
}

impl FileError {
    fn is_lock_timeout(&self) -> bool {
        matches!(self, FileError::Sql { error, .. } if sqlstate(error).as_deref() == Some("55P03"))
    }

    fn retry_safe(&self) -> bool {
        matches!(self, FileError::Sql { partial: false, invalid, .. } if invalid.is_empty())
    }
}

fn script_error(e: ScriptError, text: &str, piece: &Piece<'_>, partial: bool) -> FileError {
    match e {
        ScriptError::Stopped(s) => FileError::Stopped(s),
        ScriptError::Sql(error) => {
            let line = error_line(&error, text, piece.offset).or(piece.line);
            FileError::Sql {
                error,
                line,
                partial,
                invalid: BTreeSet::new(),
            }
        }
    }
}

/// The 1-based line in `text` of a PostgreSQL error position in the chunk at byte `offset`.
fn error_line(e: &sqlx::Error, text: &str, offset: usize) -> Option<usize> {
    let pos = e
        .as_database_error()?
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?
        .position()?;
    let sqlx::postgres::PgErrorPosition::Original(chars) = pos else {
        return None;
    };
    let chunk = text.get(offset..)?;
    let byte = chunk
        .char_indices()
        .nth(chars.saturating_sub(1))
        .map_or(chunk.len(), |(b, _)| b);
    Some(line_of(text, offset + byte))
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, byte: usize) -> usize {
    text.get(..byte.min(text.len()))
        .map_or(1, |t| t.matches('\n').count() + 1)
}

/// One statement of a file (or the whole file when it is not split).
#[derive(Debug, Clone, Copy)]
struct Piece<'a> {
    /// Byte offset in the file.
    offset: usize,
    text: &'a str,
    /// The line the statement starts on, when known.
    line: Option<usize>,
}

/// A file as the pieces it runs in: on PostgreSQL one statement at a time (split by squawk's
/// parser), so every error names its statement's line and a no-transaction file never sends
/// several statements at once (the server would run them as one implicit transaction, where
/// `CREATE INDEX CONCURRENTLY` fails). SQLite, and SQL squawk cannot parse cleanly, run whole;
/// the server judges them.
fn pieces<'a>(db: &Db, sql: &'a str) -> Vec<Piece<'a>> {
    let whole = vec![Piece {
        offset: 0,
        text: sql,
        line: None,
    }];
    if !db.is_postgres() {
        return whole;
    }
    split_statements(sql).unwrap_or(whole)
}

fn split_statements(sql: &str) -> Option<Vec<Piece<'_>>> {
    let parse = parse_sql(sql)?;
    if !parse.errors().is_empty() {
        return None;
    }
    let mut out: Vec<Piece<'_>> = Vec::new();
    let mut start = 0;
    for stmt in parse.tree().stmts() {
        let end = usize::from(stmt.syntax().text_range().end());
        let mut token = stmt.syntax().first_token();
        while let Some(t) = token.as_ref().filter(|t| t.kind().is_trivia()) {
            token = t.next_token();
        }
        let line = token.map(|t| line_of(sql, usize::from(t.text_range().start())));
        if end > start
            && let Some(text) = sql.get(start..end)
        {
            out.push(Piece {
                offset: start,
                text,
                line,
            });
            start = end;
        }
    }
    // Comments after the last statement go with it.
    if let Some(last) = out.last_mut()
        && start < sql.len()
        && let Some(joined) = sql.get(last.offset..)
    {
        last.text = joined;
    }
    (!out.is_empty()).then_some(out)
}

/// Runs a file's pieces in order. `outside`: not in a transaction, so a failure after the
/// first piece leaves the earlier ones applied.
async fn run_pieces(
    db: &mut Db,
    sql: &str,
    outside: bool,
    lock: &mut MigrationLock,
    ctl: &mut Control<'_>,
) -> Result<(), FileError> {
    let pieces = pieces(db, sql);
    let whole = pieces.len() == 1 && pieces[0].line.is_none();
    for (i, piece) in pieces.iter().enumerate() {
        if let Err(e) = run_script(db, piece.text, lock, ctl).await {
            // A file run whole may have applied any part of itself before failing.
            let partial = outside && (i > 0 || whole);
            return Err(script_error(e, sql, piece, partial));
        }
    }
    Ok(())
}

/// squawk's parse of a text; `None` if the parser panicked (it must never take the run down).
fn parse_sql(sql: &str) -> Option<squawk_syntax::Parse<squawk_syntax::SourceFile>> {
    std::panic::catch_unwind(|| squawk_syntax::SourceFile::parse(sql)).ok()
}

/// PostgreSQL statements that would end the transaction runbook runs a file in.
fn ends_transaction(sql: &str) -> Option<usize> {
    let parse = parse_sql(sql)?;
    parse.tree().stmts().find_map(|stmt| match stmt {
        ast::Stmt::Commit(ast::Commit::CommitTransaction(_))
        | ast::Stmt::Rollback(ast::Rollback::RollbackTransaction(_)) => Some(line_of(
            sql,
            usize::from(stmt.syntax().text_range().start()),
        )),
        _ => None,
    })
}

/// Runs a file inside a transaction with its bookkeeping; returns the SQL's run time.
#[allow(clippy::too_many_arguments)]
async fn run_inside(
    db: &mut Db,
    m: &Migration,
    sql: &str,
    dir: Direction,
    settings: &Settings,
    lock: &mut MigrationLock,
    ctl: &mut Control<'_>,
) -> Result<Duration, FileError> {
    exec(db, begin_sql(db))
        .await
        .map_err(|e| FileError::Other(db_failed("cannot begin a transaction", &e)))?;
    let run_id = ctl.run_id.clone();
    let result = async {
        set_timeouts(db, settings, true)
            .await
            .map_err(|e| FileError::Other(db_failed("cannot set the timeouts", &e)))?;
        let started = Instant::now();
        run_pieces(db, sql, false, lock, ctl).await?;
        let took = started.elapsed();
        match dir {
            Direction::Up => record(db, m, took.as_millis() as i64, true, &run_id, "apply").await,
            Direction::Down => unrecord(db, &m.version).await,
        }
        .map_err(|e| {
            FileError::Other(db_failed(&format!("cannot update `{HISTORY_TABLE}`"), &e))
        })?;
        Ok(took)
    }
    .await;
    match result {
        Ok(took) => match exec(db, "COMMIT").await {
            Ok(()) => Ok(took),
            Err(error) => {
                let _ = exec(db, "ROLLBACK").await;
                Err(FileError::Sql {
                    error,
                    line: None,
                    partial: false,
                    invalid: BTreeSet::new(),
                })
            }
        },
        Err(e) => {
            let _ = exec(db, "ROLLBACK").await;
            Err(e)
        }
    }
}

/// Runs a file outside a transaction, one statement at a time (PostgreSQL). Going up, its
/// history row is written as failed first and marked done at the end.
#[allow(clippy::too_many_arguments)]
async fn run_outside(
    db: &mut Db,
    m: &Migration,
    sql: &str,
    dir: Direction,
    settings: &Settings,
    lock: &mut MigrationLock,
    ctl: &mut Control<'_>,
) -> Result<Duration, FileError> {
    let history_err = |e: sqlx::Error| {
        FileError::Other(db_failed(&format!("cannot update `{HISTORY_TABLE}`"), &e))
    };
    let run_id = ctl.run_id.clone();
    let invalid_before = invalid_indexes(db).await.map_err(FileError::Other)?;
    if dir == Direction::Up {
        record(db, m, 0, false, &run_id, "apply")
            .await
            .map_err(history_err)?;
    }
    let previous = set_timeouts(db, settings, false)
        .await
        .map_err(|e| FileError::Other(db_failed("cannot set the timeouts", &e)))?;
    let started = Instant::now();
    let outcome = run_pieces(db, sql, true, lock, ctl).await;
    let took = started.elapsed();
    restore_timeouts(db, &previous).await;
    match outcome {
        Ok(()) => {
            match dir {
                Direction::Up => {
                    record(db, m, took.as_millis() as i64, true, &run_id, "apply").await
                }
                Direction::Down => unrecord(db, &m.version).await,
            }
            .map_err(history_err)?;
            Ok(took)
        }
        Err(mut e) => {
            if let FileError::Sql { invalid, .. } = &mut e {
                let after = invalid_indexes(db).await.unwrap_or_default();
                *invalid = after.difference(&invalid_before).cloned().collect();
            }
            Err(e)
        }
    }
}

/// One migration applied or reverted by this run.
#[derive(Debug, Clone, Serialize)]
pub struct Ran {
    pub version: String,
    pub name: String,
    pub file: String,
    pub duration_ms: u64,
    pub attempts: u32,
    pub no_transaction: bool,
}

/// Runs one file (up or down) with lock-timeout retries; the error names the file.
#[allow(clippy::too_many_arguments)]
async fn run_file(
    db: &mut Db,
    m: &Migration,
    file: &str,
    sql: &str,
    no_transaction: bool,
    dir: Direction,
    settings: &Settings,
    lock: &mut MigrationLock,
    ctl: &mut Control<'_>,
) -> Result<Ran, MigrateError> {
    if !no_transaction
        && db.is_postgres()
        && let Some(line) = ends_transaction(sql)
    {
        return Err(failed(format!(
            "`{file}` line {line} ends the transaction runbook runs it in (COMMIT or ROLLBACK): \
             remove its transaction control, or make its first line `{NO_TRANSACTION}`"
        )));
    }
    let mut attempt = 1;
    loop {
        let r = if no_transaction {
            run_outside(db, m, sql, dir, settings, lock, ctl).await
        } else {
            run_inside(db, m, sql, dir, settings, lock, ctl).await
        };
        let e = match r {
            Ok(took) => {
                return Ok(Ran {
                    version: m.version.clone(),
                    name: m.name.clone(),
                    file: file.to_owned(),
                    duration_ms: took.as_millis() as u64,
                    attempts: attempt,
                    no_transaction,
                });
            }
            Err(e) => e,
        };
        if e.is_lock_timeout() && e.retry_safe() && attempt <= settings.lock_retries {
            let wait = RETRY_BASE
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(RETRY_MAX);
            ctl.note(&format!(
                "`{file}` timed out waiting for a lock (attempt {attempt} of {}); trying again in {}",
                settings.lock_retries + 1,
                fmt_duration(wait)
            ));
            ctl.sleep(wait).await?;
            attempt += 1;
            continue;
        }
        return Err(file_failure(
            e,
            file,
            no_transaction,
            dir,
            settings,
            attempt,
        ));
    }
}

fn file_failure(
    e: FileError,
    file: &str,
    no_transaction: bool,
    dir: Direction,
    settings: &Settings,
    attempts: u32,
) -> MigrateError {
    let (error, line, partial, invalid) = match e {
        FileError::Stopped(s) => {
            return match s {
                MigrateError::TimedOut(t) => failed(format!(
                    "`{file}` timed out after {}: its statement was cancelled{}",
                    fmt_duration(t),
                    if no_transaction {
                        ""
                    } else {
                        " and its transaction rolled back"
                    }
                )),
                other => other,
            };
        }
        FileError::Other(m) => return failed(format!("`{file}`: {m}")),
        FileError::Sql {
            error,
            line,
            partial,
            invalid,
        } => (error, line, partial, invalid),
    };
    let at = line.map_or(String::new(), |l| format!(" at line {l}"));
    let mut msg = format!("`{file}` failed{at}: {}", describe(&error));
    if sqlstate(&error).as_deref() == Some("55P03") {
        let lt = settings
            .lock_timeout
            .map_or("`lock_timeout`".to_owned(), |d| {
                format!("`lock_timeout` {}", fmt_duration(d))
            });
        msg.push_str(&format!(
            "; it could not get its locks within {lt} ({attempts} attempt{})",
            if attempts == 1 { "" } else { "s" }
        ));
    }
    if !no_transaction {
        msg.push_str("; its transaction was rolled back, so none of it is applied");
    } else if partial {
        msg.push_str("; it runs outside a transaction, so the statements before the failing one stay applied");
    } else {
        msg.push_str("; it runs outside a transaction; its first statement failed");
    }
    if no_transaction && dir == Direction::Up {
        msg.push_str(" (recorded as failed: the next apply runs it again)");
    }
    if !invalid.is_empty() {
        msg.push_str("; ");
        msg.push_str(&invalid_hint(&invalid));
    }
    failed(msg)
}

// ---------------------------------------------------------------------------------------------
// Operations.

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    pub applied: Vec<Ran>,
    /// Prisma migrations now recorded in the history table.
    pub adopted: Vec<String>,
    /// The status after applying.
    pub status: Status,
    pub lock_waited: Duration,
    pub lock_attempts: u32,
}

/// Applies the pending migrations in version order (up to `upto` when given), each in its own
/// transaction, under the migration lock.
pub async fn apply(
    db: &mut Db,
    target: &TargetSpec,
    set: &MigrationSet,
    upto: Option<&str>,
    settings: &Settings,
    ctl: &mut Control<'_>,
) -> Result<ApplyReport, MigrateError> {
    if let Some(v) = upto
        && set.find(v).is_none()
    {
        return Err(unknown_version(set, v));
    }
    let mut lock = MigrationLock::acquire(target, db, ctl).await?;
    let result = apply_locked(db, set, upto, settings, &mut lock, ctl).await;
    let (waited, attempts) = (lock.waited, lock.attempts);
    lock.release().await;
    result.map(|mut r| {
        r.lock_waited = waited;
        r.lock_attempts = attempts;
        r
    })
}

fn unknown_version(set: &MigrationSet, v: &str) -> MigrateError {
    let known: Vec<&str> = set.migrations.iter().map(|m| m.version.as_str()).collect();
    failed(format!(
        "no migration has version `{v}` in `{}` (versions: {})",
        set.shown_dir,
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    ))
}

/// Refuses when drift or a missing file makes applying unsafe, or when a failed concurrent
/// build left an INVALID index behind.
async fn preflight(db: &mut Db, st: &Status) -> Result<(), MigrateError> {
    let refusals = st.refusals();
    if !refusals.is_empty() {
        return Err(failed(format!(
            "refusing to apply: {}; restore the applied files as they were (add a new migration for a change)",
            refusals.join("; ")
        )));
    }
    if st.pending.iter().any(|p| p.retry) {
        let invalid = invalid_indexes(db).await?;
        if !invalid.is_empty() {
            let failed_files: Vec<&str> = st
                .pending
                .iter()
                .filter(|p| p.retry)
                .map(|p| p.file.as_str())
                .collect();
            return Err(failed(format!(
                "refusing to apply: `{}` failed earlier outside a transaction; {}",
                failed_files.join("`, `"),
                invalid_hint(&invalid)
            )));
        }
    }
    Ok(())
}

async fn adopt_prisma(
    db: &mut Db,
    set: &MigrationSet,
    st: &Status,
    run_id: &str,
) -> Result<Vec<String>, MigrateError> {
    if st.adopt.is_empty() {
        return Ok(Vec::new());
    }
    let what = format!("cannot record Prisma's migrations in `{HISTORY_TABLE}`");
    exec(db, begin_sql(db))
        .await
        .map_err(|e| db_failed(&what, &e))?;
    for v in &st.adopt {
        if let Some(m) = set.find(v)
            && let Err(e) = record(db, m, 0, true, run_id, "prisma").await
        {
            let _ = exec(db, "ROLLBACK").await;
            return Err(db_failed(&what, &e));
        }
    }
    exec(db, "COMMIT").await.map_err(|e| db_failed(&what, &e))?;
    Ok(st.adopt.clone())
}

async fn apply_locked(
    db: &mut Db,
    set: &MigrationSet,
    upto: Option<&str>,
    settings: &Settings,
    lock: &mut MigrationLock,
    ctl: &mut Control<'_>,
) -> Result<ApplyReport, MigrateError> {
    ensure_history(db).await?;
    let st = status(db, set).await?;
    preflight(db, &st).await?;
    let run_id = ctl.run_id.clone();
    let adopted = adopt_prisma(db, set, &st, &run_id).await?;
    if !adopted.is_empty() {
        ctl.note(&format!(
            "recorded {} migration(s) Prisma applied: {}",
            adopted.len(),
            adopted.join(", ")
        ));
    }
    for m in st.missing.iter().filter(|m| m.future) {
        ctl.note(&format!(
            "migration {} ({}) is applied but not in this checkout: the database is ahead of it",
            m.version, m.name
        ));
    }
    let mut applied = Vec::new();
    for p in &st.pending {
        if let Some(v) = upto
            && compare_versions(&p.version, v) == Ordering::Greater
        {
            break;
        }
        let Some(m) = set.find(&p.version) else {
            continue;
        };
        if let Some(e) = ctl.stop_now() {
            return Err(e);
        }
        if p.out_of_order {
            ctl.note(&format!(
                "`{}` is older than the newest applied migration ({}): applying it out of order",
                m.file,
                st.current_version.as_deref().unwrap_or("?")
            ));
        }
        let ran = run_file(
            db,
            m,
            &m.file,
            &m.sql,
            m.no_transaction,
            Direction::Up,
            settings,
            lock,
            ctl,
        )
        .await?;
        ctl.note(&format!(
            "applied `{}` in {}{}{}",
            m.file,
            fmt_duration(Duration::from_millis(ran.duration_ms)),
            if m.no_transaction {
                " (outside a transaction)"
            } else {
                ""
            },
            if ran.attempts > 1 {
                format!(" after {} attempts", ran.attempts)
            } else {
                String::new()
            }
        ));
        applied.push(ran);
    }
    let status = status(db, set).await?;
    Ok(ApplyReport {
        applied,
        adopted,
        status,
        lock_waited: Duration::ZERO,
        lock_attempts: 0,
    })
}

/// How far `revert` goes.
#[derive(Debug, Clone, Copy)]
pub enum RevertTo<'a> {
    /// This many of the newest applied migrations.
    Count(u32),
    /// Every applied migration newer than this version (`0`: all of them).
    Version(&'a str),
}

#[derive(Debug, Clone)]
pub struct RevertReport {
    pub reverted: Vec<Ran>,
    pub status: Status,
}

/// Runs down files, newest first, each in its own transaction with its history row removed.
/// Every down file is checked before the first one runs.
pub async fn revert(
    db: &mut Db,
    target: &TargetSpec,
    set: &MigrationSet,
    to: RevertTo<'_>,
    settings: &Settings,
    ctl: &mut Control<'_>,
) -> Result<RevertReport, MigrateError> {
    let mut lock = MigrationLock::acquire(target, db, ctl).await?;
    let result = revert_locked(db, set, to, settings, &mut lock, ctl).await;
    lock.release().await;
    result
}

async fn revert_locked(
    db: &mut Db,
    set: &MigrationSet,
    to: RevertTo<'_>,
    settings: &Settings,
    lock: &mut MigrationLock,
    ctl: &mut Control<'_>,
) -> Result<RevertReport, MigrateError> {
    let hist = history(db).await?;
    let mut applied: Vec<&HistoryEntry> = hist.iter().filter(|h| h.success).collect();
    applied.reverse();
    let chosen: Vec<&HistoryEntry> = match to {
        RevertTo::Count(n) => applied.into_iter().take(n as usize).collect(),
        RevertTo::Version(v) => {
            let all = version_key(v) == "0";
            if !all
                && !applied
                    .iter()
                    .any(|h| version_key(&h.version) == version_key(v))
            {
                return Err(failed(format!(
                    "version `{v}` is not applied, so there is nothing to revert down to (use `0` to revert everything)"
                )));
            }
            applied
                .into_iter()
                .filter(|h| compare_versions(&h.version, v) == Ordering::Greater)
                .collect()
        }
    };
    let mut plan = Vec::new();
    for h in &chosen {
        let Some(m) = set.find(&h.version) else {
            return Err(failed(format!(
                "cannot revert migration {} ({}): its file is not in `{}`, so there is no down file",
                h.version, h.name, set.shown_dir
            )));
        };
        if h.checksum != m.checksum {
            return Err(failed(format!(
                "refusing to revert `{}`: it changed after it was applied (expected checksum {}, the file now has {}), so its down file may not match what ran",
                m.file, h.checksum, m.checksum
            )));
        }
        let Some(down) = &m.down else {
            return Err(failed(format!(
                "cannot revert `{}`: its down file `{}` does not exist",
                m.file,
                m.shown_sibling(&m.down_expected)
            )));
        };
        let (sql, _) = read_sql(down, Path::new(""))?;
        plan.push((m, m.shown_sibling(down), sql));
    }
    let mut reverted = Vec::new();
    for (m, file, sql) in plan {
        if let Some(e) = ctl.stop_now() {
            return Err(e);
        }
        let no_tx = is_no_transaction(&sql);
        let ran = run_file(
            db,
            m,
            &file,
            &sql,
            no_tx,
            Direction::Down,
            settings,
            lock,
            ctl,
        )
        .await?;
        ctl.note(&format!(
            "reverted `{}` with `{file}` in {}",
            m.file,
            fmt_duration(Duration::from_millis(ran.duration_ms))
        ));
        reverted.push(ran);
    }
    let status = status(db, set).await?;
    Ok(RevertReport { reverted, status })
}

#[derive(Debug, Clone)]
pub struct BaselineReport {
    /// Migrations marked applied without running.
    pub marked: Vec<PendingMigration>,
    pub status: Status,
}

/// Marks every migration up to `version` as applied without running it (for a database that
/// already has that schema).
pub async fn baseline(
    db: &mut Db,
    target: &TargetSpec,
    set: &MigrationSet,
    version: &str,
    ctl: &mut Control<'_>,
) -> Result<BaselineReport, MigrateError> {
    if set.find(version).is_none() {
        return Err(unknown_version(set, version));
    }
    let lock = MigrationLock::acquire(target, db, ctl).await?;
    let result = baseline_locked(db, set, version, ctl).await;
    lock.release().await;
    result
}

async fn baseline_locked(
    db: &mut Db,
    set: &MigrationSet,
    version: &str,
    ctl: &mut Control<'_>,
) -> Result<BaselineReport, MigrateError> {
    ensure_history(db).await?;
    let st = status(db, set).await?;
    let marked: Vec<PendingMigration> = st
        .pending
        .iter()
        .filter(|p| compare_versions(&p.version, version) != Ordering::Greater)
        .cloned()
        .collect();
    let what = format!("cannot write `{HISTORY_TABLE}`");
    exec(db, begin_sql(db))
        .await
        .map_err(|e| db_failed(&what, &e))?;
    for p in &marked {
        if let Some(m) = set.find(&p.version)
            && let Err(e) = record(db, m, 0, true, &ctl.run_id, "baseline").await
        {
            let _ = exec(db, "ROLLBACK").await;
            return Err(db_failed(&what, &e));
        }
    }
    exec(db, "COMMIT").await.map_err(|e| db_failed(&what, &e))?;
    for p in &marked {
        ctl.note(&format!("baselined `{}` (marked applied, not run)", p.file));
    }
    let status = status(db, set).await?;
    Ok(BaselineReport { marked, status })
}

/// A lock a rehearsed migration took.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockTaken {
    pub relation: String,
    /// table, index, sequence, view, ...
    pub kind: String,
    pub mode: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rehearsed {
    pub version: String,
    pub name: String,
    pub file: String,
    /// `ok`, `failed`, `skipped` (runs outside a transaction) or `not_run` (after a failure).
    pub status: String,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub locks: Vec<LockTaken>,
}

#[derive(Debug, Clone)]
pub struct Rehearsal {
    pub results: Vec<Rehearsed>,
    pub status: Status,
}

impl Rehearsal {
    pub fn failed(&self) -> Option<&Rehearsed> {
        self.results.iter().find(|r| r.status == "failed")
    }
}

/// Applies the pending migrations inside one transaction that is always rolled back, and
/// reports per file whether it ran, how long it took and which locks it took (PostgreSQL).
///
/// The locks of a file are those held after it that were not held before it: a lock an
/// earlier file in the rehearsal already took does not show again. The rehearsal holds every
/// lock until its rollback, so it belongs on a staging copy, not on a database in use.
pub async fn rehearse(
    db: &mut Db,
    target: &TargetSpec,
    set: &MigrationSet,
    settings: &Settings,
    ctl: &mut Control<'_>,
) -> Result<Rehearsal, MigrateError> {
    let mut lock = MigrationLock::acquire(target, db, ctl).await?;
    let result = rehearse_locked(db, set, settings, &mut lock, ctl).await;
    lock.release().await;
    result
}

async fn held_locks(db: &mut Db) -> Result<BTreeSet<LockTaken>, sqlx::Error> {
    let Db::Postgres(c) = db else {
        return Ok(BTreeSet::new());
    };
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname),
                CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
                  WHEN 'i' THEN 'index' WHEN 'I' THEN 'partitioned index'
                  WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view'
                  WHEN 'm' THEN 'materialized view' WHEN 't' THEN 'toast table'
                  ELSE c.relkind::text END,
                l.mode
         FROM pg_locks l
         JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%'",
    )
    .fetch_all(&mut *c)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(relation, kind, mode)| LockTaken {
            relation,
            kind,
            mode,
        })
        .collect())
}

async fn rehearse_locked(
    db: &mut Db,
    set: &MigrationSet,
    settings: &Settings,
    lock: &mut MigrationLock,
    ctl: &mut Control<'_>,
) -> Result<Rehearsal, MigrateError> {
    let st = status(db, set).await?;
    preflight(db, &st).await?;
    exec(db, begin_sql(db))
        .await
        .map_err(|e| db_failed("cannot begin the rehearsal", &e))?;
    let result = rehearse_files(db, set, &st, settings, lock, ctl).await;
    // Whatever happened, nothing of the rehearsal stays.
    let rolled_back = exec(db, "ROLLBACK").await;
    let results = result?;
    rolled_back.map_err(|e| db_failed("cannot roll the rehearsal back", &e))?;
    for r in &results {
        let locks: Vec<String> = r
            .locks
            .iter()
            .map(|l| format!("{} on {} {}", l.mode, l.kind, l.relation))
            .collect();
        ctl.note(&format!(
            "rehearsed `{}`: {} in {}{}{}",
            r.file,
            r.status,
            fmt_duration(Duration::from_millis(r.duration_ms)),
            if locks.is_empty() {
                String::new()
            } else {
                format!("; locks: {}", locks.join(", "))
            },
            r.error.as_ref().map_or(String::new(), |e| format!("; {e}"))
        ));
    }
    Ok(Rehearsal {
        results,
        status: st,
    })
}

async fn rehearse_files(
    db: &mut Db,
    set: &MigrationSet,
    st: &Status,
    settings: &Settings,
    lock: &mut MigrationLock,
    ctl: &mut Control<'_>,
) -> Result<Vec<Rehearsed>, MigrateError> {
    set_timeouts(db, settings, true)
        .await
        .map_err(|e| db_failed("cannot set the timeouts", &e))?;
    let mut results = Vec::new();
    let mut stopped_at_failure = false;
    for p in &st.pending {
        let Some(m) = set.find(&p.version) else {
            continue;
        };
        let mut r = Rehearsed {
            version: m.version.clone(),
            name: m.name.clone(),
            file: m.file.clone(),
            status: "ok".into(),
            duration_ms: 0,
            error: None,
            locks: Vec::new(),
        };
        if stopped_at_failure {
            r.status = "not_run".into();
            results.push(r);
            continue;
        }
        if m.no_transaction {
            r.status = "skipped".into();
            r.error = Some(format!(
                "it runs outside a transaction (`{NO_TRANSACTION}`), so it cannot be rehearsed inside one"
            ));
            results.push(r);
            continue;
        }
        if db.is_postgres()
            && let Some(line) = ends_transaction(&m.sql)
        {
            r.status = "failed".into();
            r.error = Some(format!(
                "line {line} ends the transaction it runs in (COMMIT or ROLLBACK)"
            ));
            results.push(r);
            stopped_at_failure = true;
            continue;
        }
        let before = held_locks(db)
            .await
            .map_err(|e| db_failed("cannot read pg_locks", &e))?;
        let started = Instant::now();
        let outcome = run_pieces(db, &m.sql, false, lock, ctl).await;
        r.duration_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(()) => {
                let after = held_locks(db)
                    .await
                    .map_err(|e| db_failed("cannot read pg_locks", &e))?;
                r.locks = after.difference(&before).cloned().collect();
            }
            Err(FileError::Sql { error, line, .. }) => {
                let at = line.map_or(String::new(), |l| format!("line {l}: "));
                r.status = "failed".into();
                r.error = Some(format!("{at}{}", describe(&error)));
                stopped_at_failure = true;
            }
            Err(FileError::Stopped(e) | FileError::Other(e)) => return Err(e),
        }
        results.push(r);
    }
    Ok(results)
}

// ---------------------------------------------------------------------------------------------
// Lint.

/// One lint finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub file: String,
    pub version: String,
    pub line: usize,
    pub column: usize,
    /// squawk's rule name, e.g. `require-concurrent-index-creation`.
    pub rule: String,
    pub level: LintLevel,
    pub message: String,
    pub help: Option<String>,
    /// The table a lock-taking statement locks, as written (none for other rules).
    pub table: Option<String>,
    /// The table's live row estimate on the target.
    pub rows: Option<i64>,
    /// Whether the rule is about a lock held on the table while it is scanned, rewritten or
    /// indexed: only then do its rows change how bad it is.
    #[serde(skip)]
    pub blocks_table: bool,
}

/// The level of a squawk rule, and whether it is about a long lock on a table.
///
/// Errors: statements that hold a lock blocking reads or writes of an existing table while
/// it is scanned, rewritten or indexed, or that cannot run as written (a concurrent index in
/// a transaction, transaction control inside runbook's transaction). Warnings: the rest
/// (type and style advice, changes running code may not expect, intended drops).
fn rule_level(rule: squawk_linter::Rule) -> (LintLevel, bool) {
    use squawk_linter::Rule as R;
    match rule {
        R::RequireConcurrentIndexCreation
        | R::RequireConcurrentIndexDeletion
        | R::ConstraintMissingNotValid
        | R::AddingFieldWithDefault
        | R::AddingForeignKeyConstraint
        | R::ChangingColumnType
        | R::AddingNotNullableField
        | R::AddingSerialPrimaryKeyField
        | R::DisallowedUniqueConstraint
        | R::AddingRequiredField
        | R::RequireConcurrentPartitionDetach
        | R::RequireConcurrentReindex
        | R::PreferRepack
        | R::BanAlterDomainWithAddConstraint => (LintLevel::Error, true),
        R::BanConcurrentIndexCreationInTransaction
        | R::TransactionNesting
        | R::BanUncommittedTransaction
        | R::BanDuplicateColumnAssignments => (LintLevel::Error, false),
        _ => (LintLevel::Warning, false),
    }
}

fn column_of(text: &str, byte: usize) -> usize {
    let before = text.get(..byte.min(text.len())).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    before[line_start..].chars().count() + 1
}

/// Lints migrations with squawk's default rules, as PostgreSQL `pg_version` (e.g. `15.4`). A
/// file that runs in a transaction is linted as one (so `CREATE INDEX CONCURRENTLY` in it is
/// an error); a `-- runbook:no-transaction` file is not.
///
/// runbook sets `lock_timeout` and `statement_timeout` per migration from the step, not from
/// the file: squawk's rules asking for them in the file are dropped when `settings` has them,
/// and otherwise say where runbook takes them from.
pub fn lint(
    migrations: &[&Migration],
    pg_version: Option<&str>,
    settings: &Settings,
) -> Vec<Finding> {
    use squawk_linter::Rule;
    let mut exclude = Vec::new();
    if settings.lock_timeout.is_some() {
        exclude.push(Rule::RequireLockTimeout);
    }
    if settings.statement_timeout.is_some() {
        exclude.push(Rule::RequireStatementTimeout);
    }
    let mut out = Vec::new();
    for m in migrations {
        let text = m.sql.as_str();
        let Some(parse) = parse_sql(text) else {
            out.push(Finding {
                file: m.file.clone(),
                version: m.version.clone(),
                line: 1,
                column: 1,
                rule: "syntax".into(),
                level: LintLevel::Warning,
                message: "squawk could not parse this file, so it was not linted".into(),
                help: None,
                table: None,
                rows: None,
                blocks_table: false,
            });
            continue;
        };
        // A syntax error is a warning: squawk's grammar may lag the server's, and the server
        // has the last word when the file runs (or is rehearsed).
        for e in parse.errors() {
            let at = usize::from(e.range().start());
            out.push(Finding {
                file: m.file.clone(),
                version: m.version.clone(),
                line: line_of(text, at),
                column: column_of(text, at),
                rule: "syntax".into(),
                level: LintLevel::Warning,
                message: format!("squawk cannot parse this: {}", e.message()),
                help: None,
                table: None,
                rows: None,
                blocks_table: false,
            });
        }
        let mut linter = squawk_linter::Linter::with_rules(&[], &exclude);
        linter.settings.assume_in_transaction = !m.no_transaction;
        if let Some(v) = pg_version.and_then(|v| squawk_linter::Version::from_str(v).ok()) {
            linter.settings.pg_version = v;
        }
        let Ok(violations) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| linter.lint(&parse, text)))
        else {
            continue;
        };
        let stmts: Vec<ast::Stmt> = parse.tree().stmts().collect();
        for v in violations {
            let at = usize::from(v.text_range.start());
            let (level, blocks_table) = rule_level(v.code);
            // The table whose rows decide how long the lock lasts: the first table the
            // statement names (the indexed or altered table, or the one a foreign key locks).
            let table = stmts
                .iter()
                .filter(|_| blocks_table)
                .find(|s| {
                    s.syntax()
                        .text_range()
                        .contains_inclusive(v.text_range.start())
                })
                .and_then(|s| {
                    s.syntax()
                        .descendants()
                        .find_map(ast::TableNameRef::cast)
                        .map(|t| t.syntax().text().to_string().trim().to_owned())
                })
                .filter(|t| !t.is_empty());
            let mut help = v.help.clone();
            let option = match v.code {
                Rule::RequireLockTimeout => Some("lock_timeout"),
                Rule::RequireStatementTimeout => Some("statement_timeout"),
                _ => None,
            };
            if let Some(option) = option {
                help = Some(format!(
                    "give the `migrate` steps `{option}:` (runbook sets it for each migration), or set it in the file"
                ));
            }
            out.push(Finding {
                file: m.file.clone(),
                version: m.version.clone(),
                line: line_of(text, at),
                column: column_of(text, at),
                rule: v.code.to_string(),
                level,
                message: v.message.trim_end_matches('.').to_owned(),
                help,
                table,
                rows: None,
                blocks_table,
            });
        }
    }
    out
}

/// A table's size on the target.
#[derive(Debug, Clone, Copy)]
pub struct TableSize {
    /// Live rows: the larger of `pg_class.reltuples` and `pg_stat_user_tables.n_live_tup`
    /// (summed over partitions); `None` when neither knows yet.
    pub rows: Option<i64>,
    /// Heap bytes (exact: zero means empty).
    pub bytes: i64,
}

/// The size of `table` (as written in SQL, e.g. `public."User"`), `None` if it does not exist.
pub async fn table_size(db: &mut Db, table: &str) -> Result<Option<TableSize>, MigrateError> {
    let Db::Postgres(c) = db else {
        return Ok(None);
    };
    let row: Option<(f64, bool, i64, i64)> = sqlx::query_as(
        "SELECT coalesce(sum(greatest(l.reltuples, 0)), 0)::float8,
                coalesce(bool_or(l.reltuples >= 0), false),
                coalesce(sum(s.n_live_tup), 0)::int8,
                coalesce(sum(pg_relation_size(l.oid)), 0)::int8
         FROM pg_class c
         CROSS JOIN LATERAL (
           SELECT relid FROM pg_partition_tree(c.oid) WHERE isleaf
           UNION SELECT c.oid
         ) t
         JOIN pg_class l ON l.oid = t.relid
         LEFT JOIN pg_stat_user_tables s ON s.relid = l.oid
         WHERE c.oid = to_regclass($1)
         GROUP BY c.oid",
    )
    .bind(table)
    .fetch_optional(&mut *c)
    .await
    .or_else(|e| {
        // A name squawk read but the server cannot (e.g. invalid syntax): no estimate.
        if sqlstate(&e).is_some() {
            Ok(None)
        } else {
            Err(db_failed("cannot estimate table sizes", &e))
        }
    })?;
    Ok(row.map(|(reltuples, analyzed, live, bytes)| {
        let from_class = analyzed.then_some(reltuples.round() as i64);
        let rows = match (from_class, live) {
            (Some(a), b) => Some(a.max(b)),
            (None, b) if b > 0 || bytes == 0 => Some(b),
            (None, _) => None,
        };
        TableSize { rows, bytes }
    }))
}

/// Adds each finding's table size on the target to its message and `rows`. A lock-taking
/// error on a table that is empty (or not created yet) becomes a warning: the lock is brief.
pub async fn annotate(db: &mut Db, findings: &mut [Finding]) -> Result<(), MigrateError> {
    if !db.is_postgres() {
        return Ok(());
    }
    let mut sizes: HashMap<String, Option<TableSize>> = HashMap::new();
    for f in findings.iter_mut() {
        let Some(table) = f.table.clone() else {
            continue;
        };
        let size = match sizes.get(&table) {
            Some(s) => *s,
            None => {
                let s = table_size(db, &table).await?;
                sizes.insert(table.clone(), s);
                s
            }
        };
        match size {
            Some(s) => {
                f.rows = s.rows;
                match s.rows {
                    Some(0) | None if s.bytes == 0 => {
                        f.rows = Some(0);
                        f.message
                            .push_str(&format!("; `{table}` is empty on the target"));
                        if f.blocks_table && f.level == LintLevel::Error {
                            f.level = LintLevel::Warning;
                            f.message.push_str(", so the lock is brief");
                        }
                    }
                    Some(n) => f.message.push_str(&format!(
                        "; `{table}` has ~{} rows on the target (estimate)",
                        fmt_count(n)
                    )),
                    None => f.message.push_str(&format!(
                        "; `{table}` has {} kB on the target (not analyzed yet, no row estimate)",
                        fmt_count(s.bytes / 1024)
                    )),
                }
            }
            None => {
                f.message
                    .push_str(&format!("; `{table}` does not exist on the target yet"));
                if f.blocks_table && f.level == LintLevel::Error {
                    f.level = LintLevel::Warning;
                    f.rows = Some(0);
                    f.message.push_str(
                        " (an earlier migration creates it), so it is empty when this runs",
                    );
                }
            }
        }
    }
    Ok(())
}

/// The server's version for squawk (`15.4`), PostgreSQL only.
pub async fn server_version(db: &mut Db) -> Option<String> {
    let Db::Postgres(c) = db else {
        return None;
    };
    let v: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut *c)
        .await
        .ok()?;
    v.split_whitespace().next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically_by_segment() {
        assert_eq!(compare_versions("2", "10"), Ordering::Less);
        assert_eq!(compare_versions("001", "1"), Ordering::Equal);
        assert_eq!(compare_versions("1", "1.0"), Ordering::Equal);
        assert_eq!(compare_versions("1.2", "1.10"), Ordering::Less);
        assert_eq!(
            compare_versions("20240101120000", "20231231235959"),
            Ordering::Greater
        );
    }

    #[test]
    fn crlf_and_lf_have_the_same_checksum() {
        assert_eq!(
            checksum("CREATE TABLE a (id int);\r\nSELECT 1;\r\n"),
            checksum("CREATE TABLE a (id int);\nSELECT 1;\n")
        );
        assert_ne!(checksum("SELECT 1;\n"), checksum("SELECT 2;\n"));
    }

    #[test]
    fn statements_split_on_squawk_boundaries() {
        let sql = "-- runbook:no-transaction\nCREATE INDEX CONCURRENTLY a ON t (x);\nCREATE INDEX CONCURRENTLY b ON t ($$;$$);\n-- end\n";
        let pieces = split_statements(sql).unwrap();
        assert_eq!(pieces.len(), 2, "{pieces:?}");
        assert!(pieces[0].text.contains("INDEX CONCURRENTLY a"));
        assert_eq!((pieces[0].line, pieces[1].line), (Some(2), Some(3)));
        assert!(pieces[1].text.contains("$$;$$") && pieces[1].text.ends_with("-- end\n"));
        assert_eq!(pieces.iter().map(|p| p.text).collect::<String>(), sql);
    }

    #[test]
    fn fmt_count_groups_thousands() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(50_000), "50,000");
        assert_eq!(fmt_count(10_000_000), "10,000,000");
    }
}
