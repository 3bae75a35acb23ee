//! The payload of each action but gates and health checks: shell, sql, migrate, backup,
//! restore, find_backup, seed, log, wait_for, copy, include.

use super::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Starts a process. `argv` runs a program directly; `script` runs `sh -c` explicitly.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellAction {
    /// The program and its arguments; no shell is involved.
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    /// A shell script run with `sh -c`.
    #[serde(default)]
    pub script: Option<String>,
    /// Extra environment variables for the process.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory, relative to the project root.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Exit codes that count as success (default `[0]`).
    #[serde(default)]
    pub expect_exit: Option<Vec<i32>>,
}

/// A statement against the target database. Template values go in `params` and are bound,
/// never spliced into the SQL text.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlAction {
    /// The statement; `$1`, `$2` (PostgreSQL) or `?` (SQLite) mark bound parameters.
    pub query: String,
    /// Values bound to the placeholders, in order; templates are allowed here.
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
    /// Assertions on the result.
    #[serde(default)]
    pub expect: Option<SqlExpect>,
    /// Run in a read-only transaction.
    #[serde(default)]
    pub read_only: bool,
}

/// Assertions on a SQL result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlExpect {
    /// Exactly this many rows.
    #[serde(default)]
    pub rows: Option<u64>,
    #[serde(default)]
    pub min_rows: Option<u64>,
    #[serde(default)]
    pub max_rows: Option<u64>,
    /// The first column of the first row equals this value.
    #[serde(default)]
    pub scalar: Option<serde_json::Value>,
    #[serde(default)]
    pub scalar_min: Option<f64>,
    #[serde(default)]
    pub scalar_max: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MigrateOp {
    Status,
    Apply,
    Revert,
    Baseline,
    // Marks one failed migration `applied` or `rolled_back` in both histories (runbook's and
    // Prisma's), as `prisma migrate resolve` does. (Plain comments: a doc comment on a variant
    // turns the schema's `enum` into `oneOf`, and the diagnostic of a typo loses its hint.)
    Resolve,
    Lint,
    Rehearse,
}

/// What `resolve` marks a migration as: `applied` (completed by hand, the next apply skips
/// it) or `rolled_back` (undone by hand, the next apply runs it again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResolveAs {
    Applied,
    RolledBack,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LintLevel {
    Warning,
    Error,
}

impl LintLevel {
    /// The level as written in playbooks and messages: `warning`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            LintLevel::Warning => "warning",
            LintLevel::Error => "error",
        }
    }
}

/// Schema migrations from `migrations/<dialect>/`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateAction {
    pub action: MigrateOp,
    /// The migrations folder (default: the config's `migrations_dir`).
    #[serde(default)]
    pub dir: Option<String>,
    /// Per-migration `lock_timeout` (PostgreSQL).
    #[serde(default)]
    pub lock_timeout: Option<Duration>,
    /// Per-migration `statement_timeout` (PostgreSQL).
    #[serde(default)]
    pub statement_timeout: Option<Duration>,
    /// Retries after a lock timeout, with backoff.
    #[serde(default)]
    #[schemars(range(max = 20))]
    pub lock_retries: Option<u32>,
    /// `apply` up to / `revert` down to this version; `baseline` at this version; `resolve`
    /// this version.
    #[serde(default)]
    pub version: Option<String>,
    /// `resolve`: mark the migration `applied` or `rolled_back`.
    #[serde(default, rename = "as")]
    pub resolve_as: Option<ResolveAs>,
    /// `revert` this many migrations (default 1).
    #[serde(default)]
    pub count: Option<u32>,
    /// `lint` fails the step at or above this level (default `error`).
    #[serde(default)]
    pub fail_on: Option<LintLevel>,
    /// `apply`/`revert` (PostgreSQL): cancel or terminate a session that blocks a migration
    /// for longer than `after`. Needs a gate before the step in a protected environment.
    #[serde(default)]
    pub on_blocked: Option<super::OnBlocked>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackupMode {
    #[default]
    Full,
    SchemaOnly,
    DataOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackupFormat {
    #[default]
    Custom,
    Directory,
}

/// A backup of the target: pg_dump for PostgreSQL, `VACUUM INTO` for SQLite.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupAction {
    /// Folder the archive and its manifest go to.
    pub dir: String,
    #[serde(default)]
    pub mode: BackupMode,
    #[serde(default)]
    pub format: BackupFormat,
    /// Parallel jobs for the directory format.
    #[serde(default)]
    #[schemars(range(min = 1, max = 64))]
    pub jobs: Option<u32>,
    /// Delete backups in `dir` older than this many days.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Keep at most this many backups in `dir`.
    #[serde(default)]
    pub keep: Option<u32>,
    /// Verify the archive after writing it (default true).
    #[serde(default)]
    pub verify: Option<bool>,
}

/// Restores an archive written by `backup`. Destructive: needs a confirmation gate first in
/// a protected environment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreAction {
    /// The archive (or its manifest).
    pub from: String,
    #[serde(default)]
    #[schemars(range(min = 1, max = 64))]
    pub jobs: Option<u32>,
    /// Take a backup of the current state first (default true).
    #[serde(default)]
    pub pre_backup: Option<bool>,
    /// Where the pre-restore backup goes (default: next to the archive).
    #[serde(default)]
    pub pre_backup_dir: Option<String>,
}

/// Chooses the backup a later `restore` takes and shows it (time, size, sha256, row counts),
/// changing nothing: the archive `from` names, or when `from` is empty the newest full backup
/// of the target's database in `dir` that verifies. Put it before the confirmation gate, so
/// the operator confirms the backup they were shown.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindBackupAction {
    /// The folder `backup` steps write to, searched when `from` is empty.
    pub dir: String,
    /// A backup to take instead of searching: an archive or its manifest (verified all the
    /// same). Empty or absent: search `dir`.
    #[serde(default)]
    pub from: Option<String>,
}

/// Baseline data from `seeds/`, applied as upserts by natural key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedAction {
    /// The seed set: a file name under the seeds folder without extension (e.g. `production`).
    pub set: String,
    /// The seeds folder (default: the config's `seeds_dir`).
    #[serde(default)]
    pub dir: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    #[default]
    Info,
    Warn,
    Error,
}

/// Prints a message to the operator and the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogAction {
    pub message: String,
    #[serde(default)]
    pub level: LogLevel,
}

/// Polls until a condition holds or the deadline passes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForAction {
    /// A query polled against the target; its first value is `result`.
    #[serde(default)]
    pub sql: Option<String>,
    /// A program polled; its exit code is `result`.
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    /// An expression over `result` (and earlier outputs) that ends the wait when true.
    pub until: String,
    /// Time between polls (default 1s).
    #[serde(default)]
    pub interval: Option<Duration>,
    /// Give up after this long.
    pub deadline: Duration,
}

/// Copies a SQLite database into the PostgreSQL target: schema (names keep their case), rows
/// by COPY, then indexes, foreign keys and identity sequences, verified by row counts and
/// content checksums on both sides.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyAction {
    /// The SQLite database to read, e.g. `sqlite:dev.db` (a path relative to the project).
    pub from: String,
    /// Only these tables (default: all).
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    /// Drop tables that already exist in the target instead of refusing.
    #[serde(default)]
    pub replace: bool,
    /// Write the report of type decisions and inexact values to this JSON file. Each run's
    /// report is also kept as `.runbook/reports/copy-RUN-STEP.json` (the step's `report` output).
    #[serde(default)]
    pub report: Option<String>,
    /// `new` (default): copy creates the tables, in SQLite's shape. `existing`: the target's
    /// tables already exist (made by its migrations); each source table goes into the table of
    /// the same name, each value converted to the target column's type.
    #[serde(default)]
    pub into: CopyInto,
    /// The time zone of date-time text without an offset in the source, e.g. `Europe/Berlin`
    /// (default: UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// `into: existing`: source columns not copied, as `Table.column`.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// `into: existing`: source names to target names: `Table` to a target table, or
    /// `Table.column` to a target column of that table.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// `into: new`: indexes and constraints (by name, or `all`) that may be left out when they
    /// cannot be translated to PostgreSQL; any other fails the table.
    #[serde(default)]
    pub allow_skip: Vec<String>,
    /// `into: existing`: what an integer in a date-time or date column counts since 1970:
    /// `seconds` or `milliseconds`. Without it integers are milliseconds, and one that could
    /// be either (before 1973-03-03 as milliseconds) fails the copy rather than be guessed.
    #[serde(default)]
    pub epoch: Option<CopyEpoch>,
}

/// The unit of integer date-times in a copy's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CopyEpoch {
    Seconds,
    Milliseconds,
}

/// Where `copy` puts the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum CopyInto {
    #[default]
    New,
    Existing,
}

/// Runs another playbook's steps in place.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncludeAction {
    /// A playbook name from `playbooks/` or a path relative to this file.
    pub playbook: String,
    /// Parameters passed to the included playbook.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}
