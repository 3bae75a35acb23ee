//! Backups and restores: pg_dump/pg_restore and SQLite `VACUUM INTO`, manifests, verification,
//! retention.
//!
//! A backup is an archive and a manifest next to it: `{stem}.dump` (pg_dump custom format),
//! `{stem}.dir` (pg_dump directory format) or `{stem}.sqlite`, and `{stem}.manifest.json`. The
//! stem names the database, the UTC time, the run and the step. The manifest (sha256, size,
//! versions, row count per table, run, mode, format, time) is what makes files a runbook
//! backup: verification, restore and retention deal only with archives that have one, and
//! retention never deletes anything else.
//!
//! What holds:
//! - An archive is written under a hidden `.partial` name and renamed when it is complete and
//!   hashed; the manifest is written last, atomically. A crash leaves at worst a `.partial`
//!   file, which nothing takes for a backup.
//! - A restore verifies the archive (sha256 against the manifest, then `pg_restore --list` or
//!   `PRAGMA integrity_check`) before it changes anything, and takes a verified pre-restore
//!   backup before the first destructive statement.
//! - Passwords never reach an argv (which `ps` shows to every user): pg_dump and pg_restore get
//!   a URL without it and the password in `PGPASSWORD`; their stderr is redacted.
//! - PostgreSQL row counts are taken in the snapshot pg_dump dumps (an exported snapshot), so
//!   they are the archive's exactly, even while the application writes. SQLite counts are taken
//!   on the copy.
//! - runbook's own state and audit tables (present when the state store lives in the target)
//!   are neither dumped nor restored: a restore must not rewind the record of the run doing it.
//!
//! Typed confirmation is not this module's job: validation demands a `confirm` or approval gate
//! before a `restore` in protected environments, and the gate runs before the step.

use crate::db::{Db, TargetSpec};
use crate::playbook::{BackupFormat, BackupMode};
use crate::process::{self, ProcessError, ProcessOutput, ProcessSpec};
use crate::redact::Redactor;
use crate::ui::Progress;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Suffix of a manifest's file name: `{stem}.manifest.json` next to `{stem}.dump`.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// The manifest layout this version writes. Its presence marks a runbook manifest.
pub const MANIFEST_LAYOUT: u32 = 1;

/// A directory holding `pg_dump` and `pg_restore`, searched before the installed versions.
pub const PG_BIN_ENV: &str = "RUNBOOK_PG_BIN";

/// Debian's layout of installed PostgreSQL versions: `/usr/lib/postgresql/<version>/bin`.
const PG_LIB_DIR: &str = "/usr/lib/postgresql";

const PARTIAL_SUFFIX: &str = ".partial";

/// The state store's tables (src/state.rs) and, by prefix, the audit log's (src/audit.rs).
const STATE_TABLES: &[&str] = &[
    "runbook_runs",
    "runbook_steps",
    "runbook_events",
    "runbook_approvals",
    "runbook_meta",
];
const STATE_TABLE_PREFIX: &str = "runbook_audit";

/// Lines of a failed client program's stderr quoted in the error.
const STDERR_TAIL: usize = 8;

/// Whether a table belongs to runbook's own records rather than to the application.
pub fn is_state_table(name: &str) -> bool {
    STATE_TABLES.contains(&name) || name.starts_with(STATE_TABLE_PREFIX)
}

/// Why a backup, verification or restore did not succeed.
#[derive(Debug)]
pub enum BackupError {
    Failed(String),
    Interrupted,
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupError::Failed(msg) => f.write_str(msg),
            BackupError::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for BackupError {}

fn failed(msg: impl Into<String>) -> BackupError {
    BackupError::Failed(msg.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    fn of(target: &TargetSpec) -> Dialect {
        match target {
            TargetSpec::Postgres(_) => Dialect::Postgres,
            TargetSpec::Sqlite(_) => Dialect::Sqlite,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::Sqlite => "SQLite",
        }
    }
}

/// Why a backup was taken: by a `backup` step, or by `restore` just before it restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Backup,
    PreRestore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveFormat {
    /// pg_dump `--format=custom`: one file.
    Custom,
    /// pg_dump `--format=directory`: a folder of files, dumped and restored in parallel.
    Directory,
    /// A SQLite database file written by `VACUUM INTO`.
    Sqlite,
}

impl ArchiveFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveFormat::Custom => "custom",
            ArchiveFormat::Directory => "directory",
            ArchiveFormat::Sqlite => "sqlite",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ArchiveFormat::Custom => ".dump",
            ArchiveFormat::Directory => ".dir",
            ArchiveFormat::Sqlite => ".sqlite",
        }
    }
}

/// sha256 and size of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub sha256: String,
    pub size: u64,
}

/// What `{stem}.manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest layout ([`MANIFEST_LAYOUT`]); marks the file as a runbook manifest.
    pub runbook_backup: u32,
    pub purpose: Purpose,
    pub dialect: Dialect,
    /// The database backed up: the PostgreSQL database name or the SQLite file's stem.
    pub database: String,
    /// The archive's file (or folder) name, in the manifest's folder.
    pub archive: String,
    pub format: ArchiveFormat,
    pub mode: BackupMode,
    /// Of the file; for a directory archive, of its listing (`sha256  name` lines in name
    /// order, as `sha256sum` prints them), each file's own sum being in `files`.
    pub sha256: String,
    /// Bytes, all files together.
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileSum>,
    /// PostgreSQL `server_version` or the SQLite library version.
    pub server_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_dump_version: Option<String>,
    /// Rows per table at the moment of the backup: `schema.table` for PostgreSQL, the table
    /// name for SQLite. For a `schema_only` archive these are the source's counts; its tables
    /// restore empty.
    pub row_counts: BTreeMap<String, u64>,
    pub run_id: String,
    pub step_id: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub duration_ms: u64,
}

/// What a backup or restore needs from the run: where processes start, cancellation, the
/// step's time budget, redaction, and the terminal.
pub struct Ops<'a> {
    pub cwd: PathBuf,
    pub cancel: watch::Receiver<bool>,
    /// The step's timeout, counted from `started`.
    pub timeout: Option<Duration>,
    pub started: Instant,
    pub redactor: &'a Redactor,
    pub progress: &'a Progress,
    /// The step as its progress line names it, e.g. `nightly (backup)`.
    pub label: String,
    pub run_id: String,
    pub step_id: String,
}

impl Ops<'_> {
    /// Time left in the step's budget; an error once it is spent.
    fn left(&self) -> Result<Option<Duration>, BackupError> {
        let Some(timeout) = self.timeout else {
            return Ok(None);
        };
        match timeout.checked_sub(self.started.elapsed()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> BackupError {
        failed(format!(
            "timed out after {}",
            crate::fmt::duration(self.timeout.unwrap_or_default())
        ))
    }

    fn check_cancel(&self) -> Result<(), BackupError> {
        if *self.cancel.borrow() {
            return Err(BackupError::Interrupted);
        }
        Ok(())
    }

    /// A status line (redacted) on stderr.
    pub fn note(&self, text: &str) {
        self.progress.note(&self.redactor.redact(text));
    }

    /// Runs `fut` under the step's deadline and cancellation; with `watch`, shows the bytes
    /// written to that path so far on the spinner.
    async fn guard<T, E: fmt::Display>(
        &self,
        what: &str,
        watch: Option<&Path>,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, BackupError> {
        let left = self.left()?;
        let mut cancel = self.cancel.clone();
        let deadline = async move {
            match left {
                Some(left) => tokio::time::sleep(left).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(fut);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                r = &mut fut => {
                    return r.map_err(|e| failed(self.redactor.redact(&format!("{what}: {e}"))));
                }
                () = &mut deadline => return Err(self.timed_out()),
                () = crate::cancel::wait_cancel(&mut cancel) => return Err(BackupError::Interrupted),
                _ = tick.tick() => self.show_written(watch),
            }
        }
    }

    fn show_written(&self, watch: Option<&Path>) {
        if let Some(path) = watch {
            self.progress.detail(&format!(
                "{} {} written",
                self.label,
                human_bytes(disk_usage(path))
            ));
        }
    }

    /// Runs a client program through the one process wrapper; with `watch`, shows the bytes
    /// written to that path so far on the spinner.
    async fn run(
        &self,
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        watch: Option<&Path>,
    ) -> Result<ProcessOutput, BackupError> {
        let program = argv.first().map(|p| program_name(p)).unwrap_or_default();
        let spec = ProcessSpec {
            argv,
            cwd: self.cwd.clone(),
            env,
            timeout: self.left()?,
        };
        let mut cancel = self.cancel.clone();
        let run = process::run(&spec, &mut cancel);
        tokio::pin!(run);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                _ = tick.tick() => self.show_written(watch),
            }
        };
        match result {
            Ok(out) => Ok(out),
            Err(ProcessError::Interrupted) => Err(BackupError::Interrupted),
            Err(ProcessError::TimedOut(_)) => Err(self.timed_out()),
            Err(ProcessError::Spawn { source, .. }) => {
                Err(failed(format!("cannot start `{program}`: {source}")))
            }
            Err(e) => Err(failed(self.redactor.redact(&e.to_string()))),
        }
    }

    /// An error quoting the end of stderr unless the program exited with 0.
    fn exited_ok(&self, out: &ProcessOutput, what: &str) -> Result<(), BackupError> {
        if out.code == Some(0) {
            return Ok(());
        }
        let how = match out.code {
            Some(c) => format!("exited with code {c}"),
            None => "was killed by a signal".to_owned(),
        };
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let tail = lines[lines.len().saturating_sub(STDERR_TAIL)..].join(" | ");
        let detail = if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        };
        Err(failed(
            self.redactor.redact(&format!("`{what}` {how}{detail}")),
        ))
    }
}

fn program_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |f| f.to_string_lossy().into_owned())
}

/// How pg_dump and pg_restore reach the target: a URL without the password (an argv is
/// visible to every local user through `ps`) and the password for `PGPASSWORD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibpqTarget {
    pub url: String,
    pub password: Option<String>,
}

impl LibpqTarget {
    /// Splits the password out of a `postgres://` URL (from its user info or a `password`
    /// query parameter) and turns sqlx's spellings of query parameters into libpq's, dropping
    /// the ones libpq does not know (it refuses unknown parameters).
    pub fn parse(url: &str) -> LibpqTarget {
        let (scheme, rest) = url.split_once("://").unwrap_or(("postgresql", url));
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let mut password = None;
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, pw)) => {
                    password = Some(percent_decode(pw));
                    format!("{user}@{host}")
                }
                None => authority.to_owned(),
            },
            None => authority.to_owned(),
        };
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let mut kept: Vec<String> = Vec::new();
        let mut options: Vec<String> = Vec::new();
        let mut has_app_name = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "password" => password = Some(percent_decode(value)),
                "statement-cache-capacity" => {}
                "ssl-mode" => kept.push(format!("sslmode={value}")),
                "ssl-root-cert" | "ssl-ca" => kept.push(format!("sslrootcert={value}")),
                "ssl-cert" => kept.push(format!("sslcert={value}")),
                "ssl-key" => kept.push(format!("sslkey={value}")),
                "options" => options.push(percent_decode(value)),
                k if k.starts_with("options[") && k.ends_with(']') => {
                    let name = &k["options[".len()..k.len() - 1];
                    options.push(format!(
                        "-c {}={}",
                        percent_decode(name),
                        percent_decode(value)
                    ));
                }
                _ => {
                    has_app_name |= key == "application_name";
                    kept.push(pair.to_owned());
                }
            }
        }
        if !options.is_empty() {
            kept.push(format!("options={}", percent_encode(&options.join(" "))));
        }
        if !has_app_name {
            kept.push("application_name=runbook".to_owned());
        }
        LibpqTarget {
            url: format!("{scheme}://{authority}{path}?{}", kept.join("&")),
            password: password.filter(|p| !p.is_empty()),
        }
    }

    /// The environment of a client program: the password, and no prompt for one (stdin is
    /// not a terminal, but libpq would open /dev/tty).
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        if let Some(pw) = &self.password {
            env.insert("PGPASSWORD".to_owned(), pw.clone());
        }
        env
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The client programs used for a server, and their version.
#[derive(Debug, Clone)]
pub struct PgTools {
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    /// As `pg_dump --version` prints it, e.g. `15.4`.
    pub version: String,
    pub major: u32,
}

/// Finds pg_dump and pg_restore: in `RUNBOOK_PG_BIN` if set, else the installed version whose
/// major is `prefer_major` (else the newest) under `/usr/lib/postgresql`, else on `PATH`.
pub async fn find_pg_tools(prefer_major: u32, ops: &Ops<'_>) -> Result<PgTools, BackupError> {
    let dir = match std::env::var_os(PG_BIN_ENV).filter(|d| !d.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if !dir.join("pg_dump").is_file() || !dir.join("pg_restore").is_file() {
                return Err(failed(format!(
                    "`{PG_BIN_ENV}` is {} but it holds no `pg_dump` and `pg_restore`",
                    dir.display()
                )));
            }
            Some(dir)
        }
        None => installed_bin_dir(Path::new(PG_LIB_DIR), prefer_major),
    };
    let (pg_dump, pg_restore) = match &dir {
        Some(d) => (d.join("pg_dump"), d.join("pg_restore")),
        None => (PathBuf::from("pg_dump"), PathBuf::from("pg_restore")),
    };
    let hint = format!(
        "install the PostgreSQL {prefer_major} client programs or set `{PG_BIN_ENV}` to their directory"
    );
    let out = ops
        .run(
            vec![pg_dump.display().to_string(), "--version".to_owned()],
            BTreeMap::new(),
            None,
        )
        .await
        .map_err(|e| match e {
            BackupError::Failed(m) => failed(format!("{m}; {hint}")),
            other => other,
        })?;
    ops.exited_ok(&out, "pg_dump --version")?;
    let version = client_version(&out.stdout).ok_or_else(|| {
        failed(format!(
            "cannot read the version of `{}` from `{}`",
            pg_dump.display(),
            out.stdout.trim()
        ))
    })?;
    Ok(PgTools {
        major: leading_number(&version),
        version,
        pg_dump,
        pg_restore,
    })
}

/// The `bin` folder of the installed PostgreSQL whose major version is `prefer_major`, else of
/// the newest one; `None` when none is installed under `root`. The same major is preferred
/// because that pg_dump writes what the server's own pg_restore reads.
pub fn installed_bin_dir(root: &Path, prefer_major: u32) -> Option<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            (bin.join("pg_dump").is_file() && bin.join("pg_restore").is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found
        .iter()
        .rev()
        .find(|(v, _)| v.first() == Some(&prefer_major))
    {
        return Some(bin.clone());
    }
    found.pop().map(|(_, bin)| bin)
}

/// `15.4` out of `pg_dump (PostgreSQL) 15.4 (Debian 15.4-1)`.
fn client_version(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_owned)
}

/// The leading digits of a version (`15` of `15.4`, `17` of `17beta1`), 0 if none.
fn leading_number(version: &str) -> u32 {
    version
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

struct PgServer {
    major: u32,
    version: String,
    database: String,
}

async fn pg_server(conn: &mut sqlx::PgConnection) -> Result<PgServer, sqlx::Error> {
    let row = sqlx::query(
        "SELECT current_setting('server_version_num')::int4, current_setting('server_version'), current_database()::text",
    )
    .fetch_one(conn)
    .await?;
    let num: i32 = row.try_get(0)?;
    let full: String = row.try_get(1)?;
    Ok(PgServer {
        major: u32::try_from(num / 10_000).unwrap_or(0),
        version: full.split_whitespace().next().unwrap_or(&full).to_owned(),
        database: row.try_get(2)?,
    })
}

/// A user table: its key in row counts (`schema.table`) and its quoted name for SQL, quoted by
/// the server (`format('%I.%I')`).
struct PgTable {
    key: String,
    ident: String,
}

/// Plain tables (partitions included, partitioned parents not: their rows are their
/// partitions'), outside system schemas, not owned by an extension (pg_dump does not dump
/// those), not runbook's own.
const PG_TABLES: &str = "SELECT n.nspname::text || '.' || c.relname::text, format('%I.%I', n.nspname, c.relname), c.relname::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1";

async fn pg_tables(conn: &mut sqlx::PgConnection) -> Result<Vec<PgTable>, sqlx::Error> {
    let rows = sqlx::query(PG_TABLES).fetch_all(conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get(2)?;
        if !is_state_table(&name) {
            out.push(PgTable {
                key: row.try_get(0)?,
                ident: row.try_get(1)?,
            });
        }
    }
    Ok(out)
}

/// Exact counts, `SELECT count(*)` per table (fine for now; a sampled estimate would not do
/// for comparing a restore with its backup).
async fn pg_counts(
    conn: &mut sqlx::PgConnection,
    tables: &[PgTable],
) -> Result<BTreeMap<String, u64>, sqlx::Error> {
    let mut counts = BTreeMap::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {}", t.ident)))
            .persistent(false)
            .fetch_one(&mut *conn)
            .await?;
        counts.insert(t.key.clone(), u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

/// What a `backup` step (or a pre-restore backup) asks for.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Absolute, or relative to the process's working directory.
    pub dir: PathBuf,
    pub mode: BackupMode,
    pub format: BackupFormat,
    pub jobs: u32,
    pub verify: bool,
    pub purpose: Purpose,
}

/// A written (and, if asked, verified) backup.
#[derive(Debug, Clone)]
pub struct Backup {
    pub archive: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    /// How long verification took, when it ran.
    pub verified_in: Option<Duration>,
}

/// Backs up the target `db` is connected to.
pub async fn backup(
    db: &mut Db,
    target: &TargetSpec,
    req: &BackupRequest,
    ops: &Ops<'_>,
) -> Result<Backup, BackupError> {
    match (db, target) {
        (Db::Postgres(conn), TargetSpec::Postgres(url)) => {
            backup_postgres(conn, url, req, ops).await
        }
        (Db::Sqlite(conn), TargetSpec::Sqlite(path)) => backup_sqlite(conn, path, req, ops).await,
        _ => Err(failed("the connection does not match the target")),
    }
}

/// The paths of a backup being written.
struct Names {
    archive: PathBuf,
    archive_name: String,
    partial: PathBuf,
    manifest: PathBuf,
}

impl Names {
    /// Picks names no file in `dir` has yet (a retried step may run in the same second).
    fn new(
        dir: &Path,
        database: &str,
        when: DateTime<Utc>,
        ops: &Ops<'_>,
        purpose: Purpose,
        format: ArchiveFormat,
    ) -> Result<Names, BackupError> {
        create_backup_dir(dir)?;
        let mut stem = format!(
            "{}_{}_{}_{}",
            file_safe(database),
            when.format("%Y%m%dT%H%M%SZ"),
            file_safe(&ops.run_id),
            file_safe(&ops.step_id)
        );
        if purpose == Purpose::PreRestore {
            stem.push_str("_pre-restore");
        }
        for n in 1..1000 {
            let stem = if n == 1 {
                stem.clone()
            } else {
                format!("{stem}-{n}")
            };
            let archive_name = format!("{stem}{}", format.extension());
            let names = Names {
                archive: dir.join(&archive_name),
                partial: dir.join(format!(".{archive_name}{PARTIAL_SUFFIX}")),
                manifest: dir.join(format!("{stem}{MANIFEST_SUFFIX}")),
                archive_name,
            };
            if !names.archive.exists() && !names.partial.exists() && !names.manifest.exists() {
                return Ok(names);
            }
        }
        Err(failed(format!(
            "cannot find a free name for the backup `{stem}` in {}",
            dir.display()
        )))
    }

    /// Removes whatever of this backup was written (after a failure).
    fn remove(&self) {
        for p in [&self.partial, &self.archive, &self.manifest] {
            remove_path(p);
        }
    }
}

fn remove_path(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(p);
        }
        Err(_) => {}
    }
}

/// Backups hold the application's data: a folder made here is readable by its owner only.
fn create_backup_dir(dir: &Path) -> Result<(), BackupError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            failed(format!(
                "cannot create the backup folder {}: {e}",
                dir.display()
            ))
        })
}

fn file_safe(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let out = out.trim_start_matches('.');
    if out.is_empty() {
        "db".to_owned()
    } else {
        out.to_owned()
    }
}

async fn backup_postgres(
    conn: &mut sqlx::PgConnection,
    url: &str,
    req: &BackupRequest,
    ops: &Ops<'_>,
) -> Result<Backup, BackupError> {
    if req.jobs > 1 && req.format != BackupFormat::Directory {
        return Err(failed(
            "`jobs` needs `format: directory`: pg_dump writes a custom archive with one job",
        ));
    }
    let began = Instant::now();
    let created = Utc::now();
    let server = ops
        .guard("cannot read the server version", None, pg_server(conn))
        .await?;
    let tools = find_pg_tools(server.major, ops).await?;
    if tools.major < server.major {
        return Err(failed(format!(
            "`{}` is version {}, older than the server (PostgreSQL {}): an older pg_dump cannot dump a newer server reliably; install the PostgreSQL {} client programs or set `{PG_BIN_ENV}` to their directory",
            tools.pg_dump.display(),
            tools.version,
            server.version,
            server.major
        )));
    }
    let format = match req.format {
        BackupFormat::Custom => ArchiveFormat::Custom,
        BackupFormat::Directory => ArchiveFormat::Directory,
    };
    let names = Names::new(
        &req.dir,
        &server.database,
        created,
        ops,
        req.purpose,
        format,
    )?;
    let written = write_postgres(conn, url, req, ops, &names, &server, &tools).await;
    let (sha256, size, files, row_counts) = match written {
        Ok(w) => w,
        Err(e) => {
            names.remove();
            return Err(e);
        }
    };
    let manifest = Manifest {
        runbook_backup: MANIFEST_LAYOUT,
        purpose: req.purpose,
        dialect: Dialect::Postgres,
        database: server.database.clone(),
        archive: names.archive_name.clone(),
        format,
        mode: req.mode,
        sha256,
        size,
        files,
        server_version: server.version.clone(),
        pg_dump_version: Some(tools.version.clone()),
        row_counts,
        run_id: ops.run_id.clone(),
        step_id: ops.step_id.clone(),
        created_at: created.to_rfc3339_opts(SecondsFormat::Millis, true),
        duration_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    finish(names, manifest, req.verify, Some(&tools), ops).await
}

type Written = (
    String,
    u64,
    BTreeMap<String, FileSum>,
    BTreeMap<String, u64>,
);

/// Dumps into `names.partial` inside an exported snapshot, counts rows in that snapshot,
/// hashes the archive and renames it into place.
async fn write_postgres(
    conn: &mut sqlx::PgConnection,
    url: &str,
    req: &BackupRequest,
    ops: &Ops<'_>,
    names: &Names,
    server: &PgServer,
    tools: &PgTools,
) -> Result<Written, BackupError> {
    let libpq = LibpqTarget::parse(url);
    let mut tx = ops
        .guard(
            "cannot start the snapshot transaction",
            None,
            conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        )
        .await?;
    // The transaction idles while pg_dump runs; the server must not end it before pg_dump has
    // imported the snapshot.
    ops.guard(
        "cannot prepare the snapshot transaction",
        None,
        sqlx::query("SET LOCAL idle_in_transaction_session_timeout = 0").execute(&mut *tx),
    )
    .await?;
    let snapshot: String = ops
        .guard(
            "cannot export a snapshot",
            None,
            sqlx::query_scalar("SELECT pg_export_snapshot()").fetch_one(&mut *tx),
        )
        .await?;
    let tables = ops
        .guard("cannot list the tables", None, pg_tables(&mut tx))
        .await?;
    let row_counts = ops
        .guard("cannot count rows", None, pg_counts(&mut tx, &tables))
        .await?;
    let mut argv = vec![
        tools.pg_dump.display().to_string(),
        format!(
            "--format={}",
            match req.format {
                BackupFormat::Custom => "custom",
                BackupFormat::Directory => "directory",
            }
        ),
        format!("--file={}", names.partial.display()),
        "--no-password".to_owned(),
        format!("--snapshot={snapshot}"),
    ];
    match req.mode {
        BackupMode::Full => {}
        BackupMode::SchemaOnly => argv.push("--schema-only".to_owned()),
        BackupMode::DataOnly => argv.push("--data-only".to_owned()),
    }
    if req.format == BackupFormat::Directory && req.jobs > 1 {
        argv.push(format!("--jobs={}", req.jobs));
    }
    for t in STATE_TABLES {
        argv.push(format!("--exclude-table=*.{t}"));
    }
    argv.push(format!("--exclude-table=*.{STATE_TABLE_PREFIX}*"));
    argv.push(format!("--dbname={}", libpq.url));
    ops.note(&format!(
        "pg_dump {} of `{}` (PostgreSQL {}) to {}",
        tools.version,
        server.database,
        server.version,
        names.archive.display()
    ));
    let out = ops.run(argv, libpq.env(), Some(&names.partial)).await;
    // Only a read-only snapshot: nothing to commit.
    let _ = tx.rollback().await;
    ops.exited_ok(&out?, "pg_dump")?;
    let format = match req.format {
        BackupFormat::Custom => ArchiveFormat::Custom,
        BackupFormat::Directory => ArchiveFormat::Directory,
    };
    let (sha256, size, files) = hash_archive(&names.partial, format, ops).await?;
    place(&names.partial, &names.archive)?;
    Ok((sha256, size, files, row_counts))
}

/// Makes the finished archive owner-only and renames it from its partial name (pg_dump has
/// already synced its files; the rename is synced with the folder).
fn place(partial: &Path, archive: &Path) -> Result<(), BackupError> {
    restrict(partial)?;
    std::fs::rename(partial, archive).map_err(|e| {
        failed(format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            archive.display()
        ))
    })?;
    sync_parent(archive);
    Ok(())
}

fn restrict(path: &Path) -> Result<(), BackupError> {
    let set = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| {
            failed(format!(
                "cannot set the permissions of {}: {e}",
                p.display()
            ))
        })
    };
    if path.is_dir() {
        set(path, 0o700)?;
        for entry in read_dir(path)? {
            set(&entry, 0o600)?;
        }
        Ok(())
    } else {
        set(path, 0o600)
    }
}

/// Syncs the folder holding `path`, so a rename or delete in it survives a crash.
fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| failed(format!("cannot read {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| failed(format!("cannot read {}: {e}", dir.display())))?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// Writes the manifest (the last file of a backup), then verifies the pair if asked. On
/// failure the backup's files are removed: a backup that failed verification is not one.
async fn finish(
    names: Names,
    manifest: Manifest,
    verify: bool,
    tools: Option<&PgTools>,
    ops: &Ops<'_>,
) -> Result<Backup, BackupError> {
    if let Err(e) = write_manifest(&names.manifest, &manifest) {
        names.remove();
        return Err(e);
    }
    let verified_in = if verify {
        let began = Instant::now();
        if let Err(e) = verify_archive(&names.manifest, tools, ops).await {
            names.remove();
            return Err(match e {
                BackupError::Failed(m) => {
                    failed(format!("the new backup failed verification: {m}"))
                }
                other => other,
            });
        }
        Some(began.elapsed())
    } else {
        None
    };
    Ok(Backup {
        archive: names.archive,
        manifest_path: names.manifest,
        manifest,
        verified_in,
    })
}

/// Writes to a temporary name, syncs, renames: a manifest is whole or absent.
fn write_manifest(path: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| failed(format!("cannot encode the manifest: {e}")))?;
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}{PARTIAL_SUFFIX}"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(failed(format!(
            "cannot write the manifest {}: {e}",
            path.display()
        )));
    }
    sync_parent(path);
    Ok(())
}

/// Reads a manifest, refusing files that are not runbook manifests.
pub fn read_manifest(path: &Path) -> Result<Manifest, BackupError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| failed(format!("cannot read the manifest {}: {e}", path.display())))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        failed(format!(
            "{} is not a runbook backup manifest: {e}",
            path.display()
        ))
    })?;
    if manifest.runbook_backup > MANIFEST_LAYOUT {
        return Err(failed(format!(
            "{} has manifest layout {}, newer than this runbook reads ({MANIFEST_LAYOUT})",
            path.display(),
            manifest.runbook_backup
        )));
    }
    if !is_plain_name(&manifest.archive) {
        return Err(failed(format!(
            "{} names the archive `{}`, which is not a file name in its folder",
            path.display(),
            manifest.archive
        )));
    }
    Ok(manifest)
}

/// A file name without a folder: what a manifest may name (it must not reach outside its
/// folder, for restore or for retention's deletes).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// The manifest of `from`: `from` itself if it is a manifest, else the one next to the archive
/// (by name, else the manifest in that folder that names it).
pub fn find_manifest(from: &Path) -> Result<PathBuf, BackupError> {
    let name = from
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| failed(format!("{} names no file", from.display())))?;
    if name.ends_with(MANIFEST_SUFFIX) {
        if !from.is_file() {
            return Err(failed(format!(
                "the manifest {} does not exist",
                from.display()
            )));
        }
        return Ok(from.to_path_buf());
    }
    if !from.exists() {
        return Err(failed(format!(
            "the archive {} does not exist",
            from.display()
        )));
    }
    let stem = [".dump", ".dir", ".sqlite"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(&name);
    let dir = from.parent().unwrap_or(Path::new("."));
    let by_name = dir.join(format!("{stem}{MANIFEST_SUFFIX}"));
    if by_name.is_file() {
        return Ok(by_name);
    }
    for path in read_dir(dir)? {
        if path.to_string_lossy().ends_with(MANIFEST_SUFFIX)
            && let Ok(m) = read_manifest(&path)
            && m.archive == name
        {
            return Ok(path);
        }
    }
    Err(failed(format!(
        "{} has no manifest ({stem}{MANIFEST_SUFFIX}): restore needs the manifest `backup` wrote to verify the archive",
        from.display()
    )))
}

/// A verified archive.
#[derive(Debug, Clone)]
pub struct Verified {
    pub archive: PathBuf,
    pub manifest: Manifest,
    /// Entries in the archive's table of contents (PostgreSQL), or tables (SQLite).
    pub entries: usize,
}

/// Verifies a backup: the archive's sha256 and size against its manifest, then that it reads
/// as what it claims to be (`pg_restore --list` and its table of contents against the mode and
/// the tables of the manifest, or `PRAGMA integrity_check`). Changes nothing.
pub async fn verify_archive(
    manifest_path: &Path,
    tools: Option<&PgTools>,
    ops: &Ops<'_>,
) -> Result<Verified, BackupError> {
    let manifest = read_manifest(manifest_path)?;
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let archive = dir.join(&manifest.archive);
    if !archive.exists() {
        return Err(failed(format!(
            "the archive {} named by {} does not exist",
            archive.display(),
            manifest_path.display()
        )));
    }
    ops.progress
        .detail(&format!("{} verifying {}", ops.label, manifest.archive));
    let (sha256, size, files) = hash_archive(&archive, manifest.format, ops).await?;
    if manifest.format == ArchiveFormat::Directory {
        for (name, sum) in &manifest.files {
            match files.get(name) {
                None => {
                    return Err(failed(format!(
                        "{} is corrupt: `{name}` is missing",
                        archive.display()
                    )));
                }
                Some(got) if got != sum => {
                    return Err(failed(format!(
                        "{} is corrupt: `{name}` has sha256 {} ({} bytes), the manifest says {} ({} bytes)",
                        archive.display(),
                        got.sha256,
                        got.size,
                        sum.sha256,
                        sum.size
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = files.keys().find(|n| !manifest.files.contains_key(*n)) {
            return Err(failed(format!(
                "{} is not as written: `{extra}` is not in the manifest",
                archive.display()
            )));
        }
    }
    if sha256 != manifest.sha256 || size != manifest.size {
        return Err(failed(format!(
            "{} is corrupt: sha256 {sha256} ({size} bytes), the manifest says {} ({} bytes)",
            archive.display(),
            manifest.sha256,
            manifest.size
        )));
    }
    ops.check_cancel()?;
    let entries = match manifest.dialect {
        Dialect::Postgres => {
            let found;
            let tools = match tools {
                Some(t) => t,
                None => {
                    let major = manifest
                        .pg_dump_version
                        .as_deref()
                        .map_or(0, leading_number);
                    found = find_pg_tools(major, ops).await?;
                    &found
                }
            };
            let out = ops
                .run(
                    vec![
                        tools.pg_restore.display().to_string(),
                        "--list".to_owned(),
                        archive.display().to_string(),
                    ],
                    BTreeMap::new(),
                    None,
                )
                .await?;
            ops.exited_ok(&out, "pg_restore --list")?;
            check_toc(&out.stdout, &manifest).map_err(|e| {
                failed(format!(
                    "{} does not match its manifest: {e}",
                    archive.display()
                ))
            })?
        }
        Dialect::Sqlite => {
            let checked = ops
                .guard(
                    "cannot check the SQLite archive",
                    None,
                    sqlite_check(&archive),
                )
                .await?;
            checked.len()
        }
    };
    Ok(Verified {
        archive,
        manifest,
        entries,
    })
}

/// Checks `pg_restore --list` output against the manifest: a data entry for every table in a
/// full or data-only archive, a table entry for every table and no data in a schema-only one.
/// Returns the number of entries.
fn check_toc(list: &str, manifest: &Manifest) -> Result<usize, String> {
    // Entry lines: `3351; 0 16385 TABLE DATA public a postgres`; names are printed unquoted.
    let entries: Vec<&str> = list
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest))
        .collect();
    let after = |kind: &str| -> Vec<&str> {
        entries
            .iter()
            .filter_map(|e| {
                // Skip the catalog oid and the object oid.
                let mut it = e.splitn(3, ' ');
                it.next()?;
                it.next()?;
                it.next()?.strip_prefix(kind)
            })
            .collect()
    };
    let data = after("TABLE DATA ");
    let tables: Vec<&str> = after("TABLE ")
        .into_iter()
        .filter(|r| !r.starts_with("DATA "))
        .collect();
    // A key `schema.table` may hold dots in either part: try every split.
    let listed = |rows: &[&str], key: &str| {
        key.match_indices('.').any(|(i, _)| {
            let prefix = format!("{} {} ", &key[..i], &key[i + 1..]);
            rows.iter().any(|r| r.starts_with(&prefix))
        })
    };
    let mut missing = Vec::new();
    match manifest.mode {
        BackupMode::Full | BackupMode::DataOnly => {
            for key in manifest.row_counts.keys() {
                if !listed(&data, key) {
                    missing.push(format!("no data for `{key}`"));
                }
            }
        }
        BackupMode::SchemaOnly => {
            if !data.is_empty() {
                return Err(format!(
                    "a schema-only archive holds {} data entries",
                    data.len()
                ));
            }
            for key in manifest.row_counts.keys() {
                if !listed(&tables, key) {
                    missing.push(format!("no table `{key}`"));
                }
            }
        }
    }
    if manifest.mode == BackupMode::DataOnly && !tables.is_empty() {
        return Err(format!(
            "a data-only archive holds {} table definitions",
            tables.len()
        ));
    }
    if !missing.is_empty() {
        return Err(list_some(&missing));
    }
    Ok(entries.len())
}

fn list_some(items: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
}

enum HashStop {
    Io(String),
    Interrupted,
    TimedOut,
}

/// sha256 and size of an archive; for a directory archive, of its listing, with each file's.
async fn hash_archive(
    path: &Path,
    format: ArchiveFormat,
    ops: &Ops<'_>,
) -> Result<(String, u64, BTreeMap<String, FileSum>), BackupError> {
    let path = path.to_path_buf();
    let cancel = ops.cancel.clone();
    let deadline = ops.left()?.map(|left| Instant::now() + left);
    let task = tokio::task::spawn_blocking(move || {
        if format == ArchiveFormat::Directory {
            hash_dir(&path, &cancel, deadline)
        } else {
            hash_file(&path, &cancel, deadline).map(|s| (s.sha256, s.size, BTreeMap::new()))
        }
    });
    match task.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(HashStop::Io(e))) => Err(failed(e)),
        Ok(Err(HashStop::Interrupted)) => Err(BackupError::Interrupted),
        Ok(Err(HashStop::TimedOut)) => Err(ops.timed_out()),
        Err(e) => Err(failed(format!("hashing stopped: {e}"))),
    }
}

fn hash_file(
    path: &Path,
    cancel: &watch::Receiver<bool>,
    deadline: Option<Instant>,
) -> Result<FileSum, HashStop> {
    let io = |e: std::io::Error| HashStop::Io(format!("cannot read {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        if *cancel.borrow() {
            return Err(HashStop::Interrupted);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(HashStop::TimedOut);
        }
    }
    Ok(FileSum {
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

fn hash_dir(
    dir: &Path,
    cancel: &watch::Receiver<bool>,
    deadline: Option<Instant>,
) -> Result<(String, u64, BTreeMap<String, FileSum>), HashStop> {
    let entries = read_dir(dir).map_err(|e| HashStop::Io(e.to_string()))?;
    let mut files = BTreeMap::new();
    for path in entries {
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !path.is_file() {
            return Err(HashStop::Io(format!(
                "{} holds `{name}`, which is not a file",
                dir.display()
            )));
        }
        files.insert(name, hash_file(&path, cancel, deadline)?);
    }
    let mut listing = String::new();
    let mut size = 0;
    for (name, sum) in &files {
        listing.push_str(&format!("{}  {name}\n", sum.sha256));
        size += sum.size;
    }
    Ok((hex::encode(Sha256::digest(listing.as_bytes())), size, files))
}

/// Bytes under `path` (a file, or the files of a folder); 0 while it does not exist.
fn disk_usage(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// `1 table`, `2 tables`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Tables of `schema`: (name, type as `pragma table_list` says: table, shadow, virtual, view,
/// and whether it is WITHOUT ROWID), system tables left out.
async fn sqlite_tables(
    conn: &mut sqlx::SqliteConnection,
    schema: &str,
) -> Result<Vec<(String, String, bool)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT name, type, wr FROM pragma_table_list WHERE schema = ?1 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .bind(schema)
    .fetch_all(conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push((
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get::<i64, _>(2)? != 0,
        ));
    }
    Ok(out)
}

/// Row counts of the ordinary tables of `schema` (runbook's own left out).
async fn sqlite_counts(
    conn: &mut sqlx::SqliteConnection,
    schema: &str,
) -> Result<BTreeMap<String, u64>, sqlx::Error> {
    let mut counts = BTreeMap::new();
    for (name, kind, _) in sqlite_tables(conn, schema).await? {
        if kind != "table" || is_state_table(&name) {
            continue;
        }
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(schema),
            quote_ident(&name)
        )))
        .persistent(false)
        .fetch_one(&mut *conn)
        .await?;
        counts.insert(name, u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

/// `PRAGMA integrity_check` on a SQLite file opened read-only; its row counts if it is sound.
async fn sqlite_check(path: &Path) -> Result<BTreeMap<String, u64>, String> {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let result = async {
        let report: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| format!("`PRAGMA integrity_check` failed on {}: {e}", path.display()))?;
        if report != ["ok"] {
            return Err(format!(
                "`PRAGMA integrity_check` on {} reports: {}",
                path.display(),
                list_some(&report)
            ));
        }
        sqlite_counts(&mut conn, "main")
            .await
            .map_err(|e| format!("cannot count rows in {}: {e}", path.display()))
    }
    .await;
    let _ = conn.close().await;
    result
}

async fn backup_sqlite(
    conn: &mut sqlx::SqliteConnection,
    db_path: &Path,
    req: &BackupRequest,
    ops: &Ops<'_>,
) -> Result<Backup, BackupError> {
    if req.format != BackupFormat::Custom || req.mode != BackupMode::Full || req.jobs > 1 {
        return Err(failed(
            "a SQLite backup is a full copy of the database file (`VACUUM INTO`): `mode`, `format: directory` and `jobs` are for PostgreSQL",
        ));
    }
    let began = Instant::now();
    let created = Utc::now();
    let version: String = ops
        .guard(
            "cannot read the SQLite version",
            None,
            sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&mut *conn),
        )
        .await?;
    let database = db_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "db".to_owned());
    let names = Names::new(
        &req.dir,
        &database,
        created,
        ops,
        req.purpose,
        ArchiveFormat::Sqlite,
    )?;
    let written = write_sqlite(conn, ops, &names).await;
    let (sha256, size, row_counts) = match written {
        Ok(w) => w,
        Err(e) => {
            names.remove();
            return Err(e);
        }
    };
    let manifest = Manifest {
        runbook_backup: MANIFEST_LAYOUT,
        purpose: req.purpose,
        dialect: Dialect::Sqlite,
        database,
        archive: names.archive_name.clone(),
        format: ArchiveFormat::Sqlite,
        mode: BackupMode::Full,
        sha256,
        size,
        files: BTreeMap::new(),
        server_version: version,
        pg_dump_version: None,
        row_counts,
        run_id: ops.run_id.clone(),
        step_id: ops.step_id.clone(),
        created_at: created.to_rfc3339_opts(SecondsFormat::Millis, true),
        duration_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    finish(names, manifest, req.verify, None, ops).await
}

async fn write_sqlite(
    conn: &mut sqlx::SqliteConnection,
    ops: &Ops<'_>,
    names: &Names,
) -> Result<(String, u64, BTreeMap<String, u64>), BackupError> {
    let partial = names
        .partial
        .to_str()
        .ok_or_else(|| {
            failed(format!(
                "the backup path {} is not UTF-8",
                names.partial.display()
            ))
        })?
        .to_owned();
    ops.note(&format!("VACUUM INTO {}", names.archive.display()));
    // The file name is a bound parameter: `VACUUM INTO` takes an expression.
    ops.guard(
        "`VACUUM INTO` failed",
        Some(&names.partial),
        sqlx::query("VACUUM INTO ?1")
            .bind(partial)
            .execute(&mut *conn),
    )
    .await?;
    // VACUUM INTO does not sync what it wrote.
    std::fs::File::open(&names.partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| failed(format!("cannot sync {}: {e}", names.partial.display())))?;
    // The copy is a consistent snapshot: its counts are the backup's.
    let row_counts = ops
        .guard("the copy is not sound", None, sqlite_check(&names.partial))
        .await?;
    let (sha256, size, _) = hash_archive(&names.partial, ArchiveFormat::Sqlite, ops).await?;
    place(&names.partial, &names.archive)?;
    Ok((sha256, size, row_counts))
}

/// A `file:` URI opening `path` read-only (for `ATTACH`, which takes a URI since sqlx opens
/// connections with `SQLITE_OPEN_URI`).
fn sqlite_ro_uri(path: &Path) -> Result<String, BackupError> {
    let abs = std::path::absolute(path)
        .map_err(|e| failed(format!("cannot resolve {}: {e}", path.display())))?;
    let text = abs
        .to_str()
        .ok_or_else(|| failed(format!("the path {} is not UTF-8", abs.display())))?;
    Ok(format!("file:{}?mode=ro", percent_encode(text)))
}

/// Replaces every table, index, view and trigger of the connection's main database with the
/// archive's, in one transaction: either all of the archive is in place or nothing changed.
/// The database file, its run lock and other connections stay as they are.
async fn sqlite_replace(
    conn: &mut sqlx::SqliteConnection,
    archive: &Path,
    ops: &Ops<'_>,
) -> Result<(), BackupError> {
    let uri = sqlite_ro_uri(archive)?;
    // Dropping and refilling tables in dependency-blind order needs the checks off; the
    // pragma is a no-op inside a transaction, so it comes first.
    ops.guard(
        "cannot turn foreign keys off",
        None,
        sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn),
    )
    .await?;
    let attached = ops
        .guard(
            "cannot attach the archive",
            None,
            sqlx::query("ATTACH DATABASE ?1 AS runbook_src")
                .bind(uri)
                .execute(&mut *conn),
        )
        .await;
    let result = match attached {
        Ok(_) => {
            let r = ops
                .guard("the restore failed and was rolled back", None, async {
                    let mut tx = conn
                        .begin_with("BEGIN IMMEDIATE")
                        .await
                        .map_err(|e| format!("cannot begin: {e}"))?;
                    match sqlite_copy(&mut tx).await {
                        Ok(warnings) => {
                            tx.commit()
                                .await
                                .map_err(|e| format!("cannot commit: {e}"))?;
                            Ok(warnings)
                        }
                        Err(e) => {
                            let _ = tx.rollback().await;
                            Err(e)
                        }
                    }
                })
                .await;
            let _ = sqlx::query("DETACH DATABASE runbook_src")
                .execute(&mut *conn)
                .await;
            r
        }
        Err(e) => Err(e),
    };
    let _ = sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await;
    for w in result? {
        ops.note(&format!("warning: {w}"));
    }
    Ok(())
}

/// The copy itself, inside the transaction; returns warnings.
async fn sqlite_copy(conn: &mut sqlx::SqliteConnection) -> Result<Vec<String>, String> {
    let sql = |q: String| sqlx::query(AssertSqlSafe(q)).persistent(false);
    let err = |what: &str, e: sqlx::Error| format!("{what}: {e}");

    // 1. Empty main: triggers and views, then virtual tables (which take their shadow tables
    //    with them), then the tables; runbook's own tables and what hangs on them stay.
    let objects: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT type, name, tbl_name FROM main.sqlite_schema WHERE type IN ('trigger', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| err("cannot read the schema", e))?;
    for (kind, name, table) in objects {
        if is_state_table(&table) {
            continue;
        }
        let kw = if kind == "view" { "VIEW" } else { "TRIGGER" };
        sql(format!("DROP {kw} IF EXISTS main.{}", quote_ident(&name)))
            .execute(&mut *conn)
            .await
            .map_err(|e| err(&format!("cannot drop {kind} `{name}`"), e))?;
    }
    for pass in ["virtual", "table"] {
        for (name, kind, _) in sqlite_tables(conn, "main")
            .await
            .map_err(|e| err("cannot list tables", e))?
        {
            if kind != pass || is_state_table(&name) {
                continue;
            }
            sql(format!("DROP TABLE main.{}", quote_ident(&name)))
                .execute(&mut *conn)
                .await
                .map_err(|e| err(&format!("cannot drop table `{name}`"), e))?;
        }
    }

    // 2. The archive's tables (virtual ones create their shadow tables themselves).
    let src_tables: BTreeMap<String, (String, bool)> = sqlite_tables(conn, "runbook_src")
        .await
        .map_err(|e| err("cannot list the archive's tables", e))?
        .into_iter()
        .map(|(name, kind, wr)| (name, (kind, wr)))
        .collect();
    let shadow: BTreeSet<&str> = src_tables
        .iter()
        .filter(|(_, (kind, _))| kind == "shadow")
        .map(|(name, _)| name.as_str())
        .collect();
    let objects: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT type, name, tbl_name, sql FROM runbook_src.sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| err("cannot read the archive's schema", e))?;
    let mut later = Vec::new();
    for (kind, name, table, text) in objects {
        if is_state_table(&table) || shadow.contains(table.as_str()) {
            continue;
        }
        if kind == "table" {
            // The stored text recreates the object in the main database (SQLite strips the
            // schema name when it stores it).
            sql(text)
                .execute(&mut *conn)
                .await
                .map_err(|e| err(&format!("cannot create table `{name}`"), e))?;
        } else {
            later.push((kind, name, text));
        }
    }

    // 3. Rows, rowids included (other rows and full-text indexes may refer to them); shadow
    //    tables are copied raw, which restores a full-text index without rebuilding it.
    for (name, (kind, without_rowid)) in &src_tables {
        if !(kind == "table" || kind == "shadow") || is_state_table(name) {
            continue;
        }
        let columns: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, hidden FROM pragma_table_xinfo(?1, 'runbook_src') ORDER BY cid",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| err(&format!("cannot read the columns of `{name}`"), e))?;
        // Generated columns (hidden 2 and 3) are computed, not inserted.
        let mut cols: Vec<String> = columns
            .iter()
            .filter(|(_, hidden)| *hidden == 0)
            .map(|(c, _)| quote_ident(c))
            .collect();
        if !without_rowid
            && let Some(alias) = ["rowid", "_rowid_", "oid"]
                .into_iter()
                .find(|a| !columns.iter().any(|(c, _)| c.eq_ignore_ascii_case(a)))
        {
            cols.insert(0, alias.to_owned());
        }
        let list = cols.join(", ");
        let t = quote_ident(name);
        if kind == "shadow" {
            sql(format!("DELETE FROM main.{t}"))
                .execute(&mut *conn)
                .await
                .map_err(|e| err(&format!("cannot empty `{name}`"), e))?;
        }
        sql(format!(
            "INSERT INTO main.{t} ({list}) SELECT {list} FROM runbook_src.{t}"
        ))
        .execute(&mut *conn)
        .await
        .map_err(|e| err(&format!("cannot copy the rows of `{name}`"), e))?;
    }

    // 4. Indexes, views and triggers, after the rows: faster, and no trigger fires on the copy.
    for (kind, name, text) in later {
        sql(text)
            .execute(&mut *conn)
            .await
            .map_err(|e| err(&format!("cannot create {kind} `{name}`"), e))?;
    }

    // 5. AUTOINCREMENT counters, the schema version an application keeps in `user_version`,
    //    and `application_id`.
    let has_seq = |schema: &'static str| {
        sqlx::query_scalar::<sqlx::Sqlite, i64>(AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.sqlite_schema WHERE name = 'sqlite_sequence'"
        )))
    };
    let src_seq = has_seq("runbook_src")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| err("cannot read the archive's schema", e))?;
    let main_seq = has_seq("main")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| err("cannot read the schema", e))?;
    if main_seq > 0 {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM main.sqlite_sequence")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| err("cannot read `sqlite_sequence`", e))?;
        for name in names.iter().filter(|n| !is_state_table(n)) {
            sqlx::query("DELETE FROM main.sqlite_sequence WHERE name = ?1")
                .bind(name)
                .execute(&mut *conn)
                .await
                .map_err(|e| err("cannot reset `sqlite_sequence`", e))?;
        }
        if src_seq > 0 {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT name, seq FROM runbook_src.sqlite_sequence")
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(|e| err("cannot read the archive's `sqlite_sequence`", e))?;
            for (name, seq) in rows.iter().filter(|(n, _)| !is_state_table(n)) {
                sqlx::query("INSERT INTO main.sqlite_sequence (name, seq) VALUES (?1, ?2)")
                    .bind(name)
                    .bind(seq)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| err("cannot restore `sqlite_sequence`", e))?;
            }
        }
    }
    for pragma in ["user_version", "application_id"] {
        let value: i64 = sqlx::query_scalar(AssertSqlSafe(format!("PRAGMA runbook_src.{pragma}")))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| err(&format!("cannot read `{pragma}`"), e))?;
        // An integer read back from SQLite: nothing to quote.
        sql(format!("PRAGMA main.{pragma} = {value}"))
            .execute(&mut *conn)
            .await
            .map_err(|e| err(&format!("cannot set `{pragma}`"), e))?;
    }

    // 6. Foreign keys: a faithful copy may carry the violations its source had; say so rather
    //    than refuse the only backup there is.
    let violations: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT \"table\" FROM pragma_foreign_key_check WHERE schema = 'main'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    let mut warnings = Vec::new();
    if !violations.is_empty() {
        warnings.push(format!(
            "the restored database has foreign key violations (as its backup had) in {}",
            list_some(&violations)
        ));
    }
    Ok(warnings)
}

// ---------------------------------------------------------------------------------------------
// Restore

/// What a `restore` step asks for.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The archive or its manifest.
    pub from: PathBuf,
    pub jobs: u32,
    /// Take a backup of the current state first.
    pub pre_backup: bool,
    /// Where the pre-restore backup goes; next to the archive when `None`.
    pub pre_backup_dir: Option<PathBuf>,
}

/// A finished restore.
#[derive(Debug, Clone)]
pub struct Restored {
    pub archive: PathBuf,
    pub manifest: Manifest,
    pub pre_backup: Option<Backup>,
    /// Rows per table after the restore, equal to the manifest's.
    pub row_counts: BTreeMap<String, u64>,
}

/// Restores an archive into the target: verifies it, takes a pre-restore backup, restores,
/// and compares row counts with the manifest. `db` is the target's connection (opened here if
/// `None`); it is closed and left `None` after a restore, so the next step connects afresh to
/// the restored database.
pub async fn restore(
    db: &mut Option<Db>,
    target: &TargetSpec,
    req: &RestoreRequest,
    ops: &Ops<'_>,
) -> Result<Restored, BackupError> {
    let manifest_path = find_manifest(&req.from)?;
    let manifest = read_manifest(&manifest_path)?;
    let dialect = Dialect::of(target);
    if manifest.dialect != dialect {
        return Err(failed(format!(
            "{} is a {} backup and the target is {}",
            manifest_path.display(),
            manifest.dialect.name(),
            dialect.name()
        )));
    }
    if db.is_none() {
        let conn = ops
            .guard(
                &format!("cannot connect to {}", target.describe()),
                None,
                Db::connect(target),
            )
            .await?;
        *db = Some(conn);
    }
    let pre_dir = match &req.pre_backup_dir {
        Some(d) => d.clone(),
        None => manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf(),
    };
    let result = match (db.as_mut(), target) {
        (Some(Db::Postgres(conn)), TargetSpec::Postgres(url)) => {
            restore_postgres(conn, url, &manifest_path, &pre_dir, req, ops).await
        }
        (Some(Db::Sqlite(conn)), TargetSpec::Sqlite(_)) => {
            restore_sqlite(conn, &manifest_path, &pre_dir, req, ops).await
        }
        _ => Err(failed("the connection does not match the target")),
    };
    let (verified, pre_backup) = result?;
    // A fresh connection: the old one may cache plans of dropped tables.
    if let Some(old) = db.take() {
        old.close().await;
    }
    let mut conn = ops
        .guard(
            &format!("cannot reconnect to {}", target.describe()),
            None,
            Db::connect(target),
        )
        .await?;
    let counted = match &mut conn {
        Db::Postgres(c) => {
            ops.guard("cannot count rows after the restore", None, async {
                let tables = pg_tables(c).await?;
                pg_counts(c, &tables).await
            })
            .await
        }
        Db::Sqlite(c) => {
            ops.guard(
                "cannot count rows after the restore",
                None,
                sqlite_counts(c, "main"),
            )
            .await
        }
    };
    *db = Some(conn);
    let actual = counted?;
    let pre_note = pre_backup
        .as_ref()
        .map(|b| format!("; the pre-restore backup is {}", b.archive.display()))
        .unwrap_or_default();
    let expected = &verified.manifest.row_counts;
    let schema_only = verified.manifest.mode == BackupMode::SchemaOnly;
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
        return Err(failed(format!(
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
        ops.note(&format!(
            "tables that are not in the backup were left as they were: {}",
            list_some(&extra)
        ));
    }
    let row_counts = actual
        .into_iter()
        .filter(|(t, _)| expected.contains_key(t))
        .collect();
    Ok(Restored {
        archive: verified.archive,
        manifest: verified.manifest,
        pre_backup,
        row_counts,
    })
}

fn pre_request(dir: &Path) -> BackupRequest {
    BackupRequest {
        dir: dir.to_path_buf(),
        mode: BackupMode::Full,
        format: BackupFormat::Custom,
        jobs: 1,
        verify: true,
        purpose: Purpose::PreRestore,
    }
}

fn note_verified(ops: &Ops<'_>, v: &Verified, one: &str, many: &str) {
    ops.note(&format!(
        "verified {} (sha256 {}, {}, {})",
        v.archive.display(),
        short(&v.manifest.sha256),
        human_bytes(v.manifest.size),
        plural(v.entries, one, many)
    ));
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

async fn restore_postgres(
    conn: &mut sqlx::PgConnection,
    url: &str,
    manifest_path: &Path,
    pre_dir: &Path,
    req: &RestoreRequest,
    ops: &Ops<'_>,
) -> Result<(Verified, Option<Backup>), BackupError> {
    let server = ops
        .guard("cannot read the server version", None, pg_server(conn))
        .await?;
    let tools = find_pg_tools(server.major, ops).await?;
    let manifest = read_manifest(manifest_path)?;
    let dump_major = manifest
        .pg_dump_version
        .as_deref()
        .map_or(0, leading_number);
    if tools.major < dump_major {
        return Err(failed(format!(
            "`{}` is version {} and cannot read an archive written by pg_dump {}; install the PostgreSQL {dump_major} client programs or set `{PG_BIN_ENV}` to their directory",
            tools.pg_restore.display(),
            tools.version,
            manifest.pg_dump_version.as_deref().unwrap_or("?")
        )));
    }
    // Nothing has changed yet: a corrupt or mismatched archive stops here.
    let verified = verify_archive(manifest_path, Some(&tools), ops)
        .await
        .map_err(|e| match e {
            BackupError::Failed(m) => failed(format!("refusing to restore: {m}")),
            other => other,
        })?;
    note_verified(ops, &verified, "entry", "entries");
    if verified.manifest.database != server.database {
        ops.note(&format!(
            "restoring a backup of `{}` into `{}`",
            verified.manifest.database, server.database
        ));
    }
    ops.check_cancel()?;
    let pre_backup = if req.pre_backup {
        let b = backup_postgres(conn, url, &pre_request(pre_dir), ops)
            .await
            .map_err(|e| match e {
                BackupError::Failed(m) => failed(format!(
                    "the pre-restore backup failed, nothing was restored: {m}"
                )),
                other => other,
            })?;
        ops.note(&format!(
            "pre-restore backup {} ({})",
            b.archive.display(),
            human_bytes(b.manifest.size)
        ));
        Some(b)
    } else {
        None
    };
    let pre_note = pre_backup
        .as_ref()
        .map(|b| format!("; the pre-restore backup is {}", b.archive.display()))
        .unwrap_or_default();
    ops.check_cancel()?;

    // A data-only archive brings rows without the DROP/CREATE that --clean would run: empty
    // its tables first, all in one statement, or none if one is missing.
    if verified.manifest.mode == BackupMode::DataOnly {
        let tables = ops
            .guard("cannot list the tables", None, pg_tables(conn))
            .await?;
        let present: BTreeMap<&str, &str> = tables
            .iter()
            .map(|t| (t.key.as_str(), t.ident.as_str()))
            .collect();
        let missing: Vec<String> = verified
            .manifest
            .row_counts
            .keys()
            .filter(|k| !present.contains_key(k.as_str()))
            .map(|k| format!("`{k}`"))
            .collect();
        if !missing.is_empty() {
            return Err(failed(format!(
                "a data-only archive needs its tables to exist, and these do not: {}",
                list_some(&missing)
            )));
        }
        let idents: Vec<&str> = verified
            .manifest
            .row_counts
            .keys()
            .filter_map(|k| present.get(k.as_str()).copied())
            .collect();
        if !idents.is_empty() {
            ops.guard(
                "cannot empty the tables before the data-only restore",
                None,
                sqlx::query(AssertSqlSafe(format!(
                    "TRUNCATE TABLE {}",
                    idents.join(", ")
                )))
                .persistent(false)
                .execute(&mut *conn),
            )
            .await?;
        }
    }

    let libpq = LibpqTarget::parse(url);
    let mut argv = vec![
        tools.pg_restore.display().to_string(),
        "--no-password".to_owned(),
        "--no-owner".to_owned(),
        "--exit-on-error".to_owned(),
    ];
    if verified.manifest.mode != BackupMode::DataOnly {
        argv.push("--clean".to_owned());
        argv.push("--if-exists".to_owned());
    }
    // One transaction when there is one job: a failure leaves the database as it was. Parallel
    // jobs cannot share a transaction.
    let atomic = req.jobs <= 1;
    if atomic {
        argv.push("--single-transaction".to_owned());
    } else {
        argv.push(format!("--jobs={}", req.jobs));
    }
    argv.push(format!("--dbname={}", libpq.url));
    argv.push(verified.archive.display().to_string());
    ops.note(&format!(
        "pg_restore {} into `{}`{}",
        tools.version,
        server.database,
        if atomic {
            " in one transaction".to_owned()
        } else {
            format!(" with {} jobs", req.jobs)
        }
    ));
    ops.progress.detail(&format!(
        "{} pg_restore {}",
        ops.label, verified.manifest.archive
    ));
    let out = ops.run(argv, libpq.env(), None).await;
    let state = if atomic {
        "the database was left as it was (one transaction)"
    } else {
        "the database may be partly restored (parallel jobs)"
    };
    match out {
        Ok(out) => ops.exited_ok(&out, "pg_restore").map_err(|e| match e {
            BackupError::Failed(m) => failed(format!("{m}; {state}{pre_note}")),
            other => other,
        })?,
        Err(BackupError::Failed(m)) => return Err(failed(format!("{m}; {state}{pre_note}"))),
        Err(other) => return Err(other),
    }
    Ok((verified, pre_backup))
}

async fn restore_sqlite(
    conn: &mut sqlx::SqliteConnection,
    manifest_path: &Path,
    pre_dir: &Path,
    req: &RestoreRequest,
    ops: &Ops<'_>,
) -> Result<(Verified, Option<Backup>), BackupError> {
    let verified = verify_archive(manifest_path, None, ops)
        .await
        .map_err(|e| match e {
            BackupError::Failed(m) => failed(format!("refusing to restore: {m}")),
            other => other,
        })?;
    note_verified(ops, &verified, "table", "tables");
    ops.check_cancel()?;
    let db_path: PathBuf = sqlx::query_scalar::<_, String>(
        "SELECT file FROM pragma_database_list WHERE name = 'main'",
    )
    .fetch_one(&mut *conn)
    .await
    .map(PathBuf::from)
    .unwrap_or_default();
    let pre_backup = if req.pre_backup {
        let b = backup_sqlite(conn, &db_path, &pre_request(pre_dir), ops)
            .await
            .map_err(|e| match e {
                BackupError::Failed(m) => failed(format!(
                    "the pre-restore backup failed, nothing was restored: {m}"
                )),
                other => other,
            })?;
        ops.note(&format!(
            "pre-restore backup {} ({})",
            b.archive.display(),
            human_bytes(b.manifest.size)
        ));
        Some(b)
    } else {
        None
    };
    ops.check_cancel()?;
    ops.progress.detail(&format!(
        "{} restoring {}",
        ops.label, verified.manifest.archive
    ));
    sqlite_replace(conn, &verified.archive, ops).await?;
    Ok((verified, pre_backup))
}

// ---------------------------------------------------------------------------------------------
// Retention

/// What retention keeps: backups younger than `retention_days`, and at most `keep` of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    pub retention_days: Option<u32>,
    pub keep: Option<u32>,
}

/// What retention did.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    /// Archives deleted (with their manifests).
    pub deleted: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// Deletes the backups in `dir` of the same database as `current` that are older than
/// `retention_days` or beyond the `keep` newest (`current` counts and is never deleted). Only
/// archives with a runbook manifest are candidates, by the manifest's `created_at`; every
/// other file stays. A directory archive loses only the files its manifest lists.
pub fn prune(dir: &Path, current: &Manifest, policy: Retention, now: DateTime<Utc>) -> Pruned {
    let mut pruned = Pruned::default();
    if policy.retention_days.is_none() && policy.keep.is_none() {
        return pruned;
    }
    let entries = match read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            pruned.warnings.push(format!("retention skipped: {e}"));
            return pruned;
        }
    };
    let mut candidates: Vec<(DateTime<Utc>, PathBuf, Manifest)> = Vec::new();
    for path in entries {
        let is_manifest = path
            .file_name()
            .and_then(|f| f.to_str())
            .is_some_and(|f| f.ends_with(MANIFEST_SUFFIX) && !f.starts_with('.'));
        if !is_manifest {
            continue;
        }
        let Ok(m) = read_manifest(&path) else {
            continue;
        };
        if m.dialect != current.dialect
            || m.database != current.database
            || m.archive == current.archive
        {
            continue;
        }
        match DateTime::parse_from_rfc3339(&m.created_at) {
            Ok(t) => candidates.push((t.with_timezone(&Utc), path, m)),
            Err(_) => pruned.warnings.push(format!(
                "{} has no readable `created_at`; retention left it",
                path.display()
            )),
        }
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    // The new backup is one of the `keep`.
    let others = policy.keep.map(|k| k.max(1) as usize - 1);
    let cutoff = policy
        .retention_days
        .map(|d| now - chrono::Duration::days(i64::from(d)));
    for (i, (created, manifest_path, m)) in candidates.into_iter().enumerate() {
        let too_old = cutoff.is_some_and(|c| created < c);
        let too_many = others.is_some_and(|k| i >= k);
        if !(too_old || too_many) {
            continue;
        }
        let archive = dir.join(&m.archive);
        match delete_archive(&archive, &m) {
            Ok(()) => match std::fs::remove_file(&manifest_path) {
                Ok(()) => pruned.deleted.push(archive),
                Err(e) => pruned
                    .warnings
                    .push(format!("cannot delete {}: {e}", manifest_path.display())),
            },
            Err(e) => pruned.warnings.push(e),
        }
    }
    if !pruned.deleted.is_empty() {
        sync_dir(dir);
    }
    pruned
}

/// Deletes an archive its manifest describes; an absent one is already deleted.
fn delete_archive(archive: &Path, m: &Manifest) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(archive) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", archive.display())),
    };
    if m.format == ArchiveFormat::Directory {
        if !meta.is_dir() {
            return Err(format!(
                "{} is not a folder as its manifest says; retention left it",
                archive.display()
            ));
        }
        for name in m.files.keys().filter(|n| is_plain_name(n)) {
            let p = archive.join(name);
            if let Err(e) = std::fs::remove_file(&p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(format!("cannot delete {}: {e}", p.display()));
            }
        }
        // Fails, and keeps the folder and its manifest, if it holds files the manifest does
        // not list.
        std::fs::remove_dir(archive).map_err(|e| {
            format!(
                "{} holds files its manifest does not list; retention left it: {e}",
                archive.display()
            )
        })
    } else {
        if !meta.is_file() {
            return Err(format!(
                "{} is not a file as its manifest says; retention left it",
                archive.display()
            ));
        }
        std::fs::remove_file(archive)
            .map_err(|e| format!("cannot delete {}: {e}", archive.display()))
    }
}
