//! The playbook model: the typed form of a playbook file, and the source of its JSON Schema.
//!
//! These types are deserialized only after the document passed the JSON Schema, so serde
//! errors here are not the user's first line of feedback; the schema and the semantic checks
//! in `validate` are. Every struct denies unknown keys so the generated schema does too.
//!
//! A step names its action by a key (`shell:`, `sql:`, ...). The model keeps one optional field
//! per action rather than a serde enum, because that gives a plain schema (an unknown action is
//! an unknown key with a "did you mean") and `validate` checks that exactly one is present.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A duration such as `500ms`, `30s`, `5m`, `2h`, `7d`, or a combination like `1h30m`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Duration(
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h|d))+$"))]
    #[schemars(
        description = "A duration: digits and a unit (ms, s, m, h, d), e.g. `30s`, `1h30m`"
    )]
    pub String,
);

impl Duration {
    /// Parses the duration; the schema already guarantees the shape.
    pub fn parse(&self) -> Option<std::time::Duration> {
        parse_duration(&self.0)
    }
}

/// Parses `1h30m`-style durations.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let mut total_ms: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (mult, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('d') {
            (86_400_000, 1)
        } else {
            return None;
        };
        total_ms = total_ms.checked_add(n.checked_mul(mult)?)?;
        rest = &rest[len..];
    }
    Some(std::time::Duration::from_millis(total_ms))
}

/// A playbook file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "runbook playbook")]
pub struct PlaybookDef {
    /// The playbook's name, used by `runbook run NAME`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"))]
    pub name: String,
    /// One line saying what the playbook does.
    #[serde(default)]
    pub description: Option<String>,
    /// Environments this playbook may run in; all when absent.
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// Parameters, set with `--var name=value`.
    #[serde(default)]
    pub params: BTreeMap<String, Param>,
    /// The steps, run in order.
    pub steps: Vec<Step>,
    /// Steps run after a failure, once the rollback compensations have run.
    #[serde(default)]
    pub on_failure: Vec<Step>,
    /// Steps run at the end whether the run succeeded or failed.
    #[serde(default)]
    pub finally: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    #[default]
    String,
    Integer,
    Number,
    Boolean,
}

impl ParamType {
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
        }
    }
}

/// A playbook parameter.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// The value's type; `--var` values are converted to it.
    #[serde(default, rename = "type")]
    pub kind: ParamType,
    /// Used when no `--var` sets the parameter.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// The run refuses to start when a required parameter has no value.
    #[serde(default)]
    pub required: bool,
    /// A secret is never printed, logged, audited or stored in plain text.
    #[serde(default)]
    pub secret: bool,
    /// Read the value from this environment variable when no `--var` sets it.
    #[serde(default)]
    pub from_env: Option<String>,
    /// The allowed values.
    #[serde(default)]
    pub choices: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A step: an id, exactly one action, and options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the playbook; later templates read `steps.<id>.outputs`.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub id: Option<String>,
    /// A human title shown in plans and progress.
    #[serde(default)]
    pub name: Option<String>,
    /// A template expression; the step is skipped when it is false.
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub retry: Option<Retry>,
    /// The step fails (and its child processes are killed) after this long.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// A failure of this step is recorded but does not fail the run.
    #[serde(default)]
    pub continue_on_error: bool,
    /// Compensations run in reverse step order when a later step fails.
    #[serde(default)]
    pub rollback: Vec<Step>,
    /// Named values extracted from the action's result.
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputSpec>,
    /// Tags select steps with `--tags` and `--skip-tags`.
    #[serde(default)]
    pub tags: Vec<String>,

    #[serde(default)]
    pub shell: Option<ShellAction>,
    #[serde(default)]
    pub sql: Option<SqlAction>,
    #[serde(default)]
    pub migrate: Option<MigrateAction>,
    #[serde(default)]
    pub backup: Option<BackupAction>,
    #[serde(default)]
    pub restore: Option<RestoreAction>,
    #[serde(default)]
    pub seed: Option<SeedAction>,
    #[serde(default)]
    pub health: Option<HealthAction>,
    #[serde(default)]
    pub gate: Option<GateAction>,
    #[serde(default)]
    pub log: Option<LogAction>,
    #[serde(default)]
    pub wait_for: Option<WaitForAction>,
    #[serde(default)]
    pub include: Option<IncludeAction>,
    #[serde(default)]
    pub copy: Option<CopyAction>,
}

/// The names of the action keys, in the order the model declares them.
pub const ACTION_KEYS: &[&str] = &[
    "shell", "sql", "migrate", "backup", "restore", "seed", "health", "gate", "log", "wait_for",
    "include", "copy",
];

/// A borrowed view of a step's one action.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    Shell(&'a ShellAction),
    Sql(&'a SqlAction),
    Migrate(&'a MigrateAction),
    Backup(&'a BackupAction),
    Restore(&'a RestoreAction),
    Seed(&'a SeedAction),
    Health(&'a HealthAction),
    Gate(&'a GateAction),
    Log(&'a LogAction),
    WaitFor(&'a WaitForAction),
    Include(&'a IncludeAction),
    Copy(&'a CopyAction),
}

impl Action<'_> {
    pub fn key(&self) -> &'static str {
        match self {
            Action::Shell(_) => "shell",
            Action::Sql(_) => "sql",
            Action::Migrate(_) => "migrate",
            Action::Backup(_) => "backup",
            Action::Restore(_) => "restore",
            Action::Seed(_) => "seed",
            Action::Health(_) => "health",
            Action::Gate(_) => "gate",
            Action::Log(_) => "log",
            Action::WaitFor(_) => "wait_for",
            Action::Include(_) => "include",
            Action::Copy(_) => "copy",
        }
    }
}

impl Step {
    /// The id the step goes by in its block: its own, else `<block>-N` (`step-2`,
    /// `on_failure-1`, `deploy.rollback-1` for a compensation of `deploy`). The executor
    /// records steps by it and the plan shows it, so the two always agree.
    pub fn local_id(&self, block: &str, index: usize) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| format!("{block}-{}", index + 1))
    }

    /// Every action present on the step; a valid step has exactly one.
    pub fn actions(&self) -> Vec<Action<'_>> {
        let mut out = Vec::with_capacity(1);
        if let Some(a) = &self.shell {
            out.push(Action::Shell(a));
        }
        if let Some(a) = &self.sql {
            out.push(Action::Sql(a));
        }
        if let Some(a) = &self.migrate {
            out.push(Action::Migrate(a));
        }
        if let Some(a) = &self.backup {
            out.push(Action::Backup(a));
        }
        if let Some(a) = &self.restore {
            out.push(Action::Restore(a));
        }
        if let Some(a) = &self.seed {
            out.push(Action::Seed(a));
        }
        if let Some(a) = &self.health {
            out.push(Action::Health(a));
        }
        if let Some(a) = &self.gate {
            out.push(Action::Gate(a));
        }
        if let Some(a) = &self.log {
            out.push(Action::Log(a));
        }
        if let Some(a) = &self.wait_for {
            out.push(Action::WaitFor(a));
        }
        if let Some(a) = &self.include {
            out.push(Action::Include(a));
        }
        if let Some(a) = &self.copy {
            out.push(Action::Copy(a));
        }
        out
    }

    /// The step's one action. Validation guarantees there is exactly one.
    pub fn action(&self) -> Option<Action<'_>> {
        self.actions().into_iter().next()
    }

    /// The id, or a stand-in for unnamed compensation steps.
    pub fn id_or<'a>(&'a self, fallback: &'a str) -> &'a str {
        self.id.as_deref().unwrap_or(fallback)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Total attempts including the first.
    #[schemars(range(min = 1, max = 100))]
    pub attempts: u32,
    /// Wait before the second attempt.
    #[serde(default)]
    pub delay: Option<Duration>,
    /// Each further wait is the previous one times this factor.
    #[serde(default)]
    #[schemars(range(min = 1.0, max = 10.0))]
    pub backoff: Option<f64>,
    /// No wait is longer than this.
    #[serde(default)]
    pub max_delay: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputSource {
    Stdout,
    Stderr,
    Rows,
}

/// How to extract a named output from the action's result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// What to read: `stdout` (default for shell), `stderr`, or `rows` (default for sql).
    #[serde(default)]
    pub from: Option<OutputSource>,
    /// A regular expression; the output is its first capture group (or the whole match).
    #[serde(default)]
    pub regex: Option<String>,
    /// A dotted path into the JSON parsed from the source, e.g. `items.0.name`.
    #[serde(default)]
    pub json: Option<String>,
}

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
    Lint,
    Rehearse,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LintLevel {
    Warning,
    Error,
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
    /// `apply` up to / `revert` down to this version; `baseline` at this version.
    #[serde(default)]
    pub version: Option<String>,
    /// `revert` this many migrations (default 1).
    #[serde(default)]
    pub count: Option<u32>,
    /// `lint` fails the step at or above this level (default `error`).
    #[serde(default)]
    pub fail_on: Option<LintLevel>,
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

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheck {
    Connection,
    Version,
    DatabaseSize,
    RowCounts,
    Indexes,
    ForeignKeys,
    OrphanedRows,
    Connections,
    CacheHitRatio,
    LongRunningQueries,
    BlockingLocks,
    MigrationStatus,
    DiskSpace,
}

/// `all`, or a list of check names: connection, version, database_size, row_counts, indexes,
/// foreign_keys, orphaned_rows, connections, cache_hit_ratio, long_running_queries,
/// blocking_locks, migration_status, disk_space.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HealthChecks {
    /// `all`: every check that applies to the target.
    All(AllChecks),
    List(Vec<HealthCheck>),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllChecks {
    All,
}

/// Warn and fail thresholds of one check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    #[serde(default)]
    pub warn: Option<f64>,
    #[serde(default)]
    pub fail: Option<f64>,
}

/// The production guide's health check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthAction {
    pub checks: HealthChecks,
    /// Overrides of the default thresholds, by check name.
    #[serde(default)]
    pub thresholds: BTreeMap<HealthCheck, Threshold>,
    /// The step fails on this outcome or worse (default `fail`).
    #[serde(default)]
    pub fail_on: Option<HealthOutcome>,
    /// Row counts to compare with, table to rows (a backup manifest's `row_counts`, with
    /// `public.` names or bare ones): the `row_counts` check fails naming every table that has
    /// fewer rows now, or is gone. Usually a template, `"{{ steps.before.outputs.counts }}"`,
    /// which is rendered to the map it gives.
    #[serde(default)]
    pub baseline: Option<RowBaseline>,
    /// Tables left out of the baseline comparison: ones whose rows come and go (sessions,
    /// tokens, queues). `public.` names or bare ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline_ignore: Vec<String>,
}

/// Row counts by table, or a template that gives them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RowBaseline {
    Counts(BTreeMap<String, u64>),
    Template(String),
}

impl HealthChecks {
    /// Whether the list runs `check` (`all` runs every check).
    pub fn includes(&self, check: HealthCheck) -> bool {
        match self {
            HealthChecks::All(_) => true,
            HealthChecks::List(list) => list.contains(&check),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthOutcome {
    Warn,
    Fail,
}

/// A gate stops the run until its condition holds. Exactly one kind per gate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateAction {
    #[serde(default)]
    pub approval: Option<ApprovalGate>,
    #[serde(default)]
    pub confirm: Option<ConfirmGate>,
    #[serde(default)]
    pub condition: Option<ConditionGate>,
    #[serde(default)]
    pub window: Option<WindowGate>,
    #[serde(default)]
    pub require_run: Option<RequireRunGate>,
}

pub const GATE_KINDS: &[&str] = &["approval", "confirm", "condition", "window", "require_run"];

impl GateAction {
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.approval.is_some() {
            out.push("approval");
        }
        if self.confirm.is_some() {
            out.push("confirm");
        }
        if self.condition.is_some() {
            out.push("condition");
        }
        if self.window.is_some() {
            out.push("window");
        }
        if self.require_run.is_some() {
            out.push("require_run");
        }
        out
    }
}

/// People approve the run before it goes on.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalGate {
    /// Shown to the approver.
    pub message: String,
    /// Who may approve (user names); anyone but the operator when absent.
    #[serde(default)]
    pub approvers: Option<Vec<String>>,
    /// How many distinct approvals are needed (at least the environment's requirement).
    #[serde(default)]
    #[schemars(range(min = 1, max = 10))]
    pub required: Option<u32>,
    /// Approvals older than this do not count.
    #[serde(default)]
    pub expires: Option<Duration>,
}

/// The operator types a value (by default the target database name) to go on.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmGate {
    pub message: String,
    /// What must be typed; defaults to the target database name.
    #[serde(default)]
    pub expect: Option<String>,
}

/// An expression over earlier outputs that must be true.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionGate {
    /// A template expression, e.g. `steps.disk.outputs.free_percent >= 30`.
    pub expr: String,
    /// Shown when the condition is false.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// A maintenance window; outside it the run is refused with the next opening time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowGate {
    /// Days the window opens (default: every day).
    #[serde(default)]
    pub days: Option<Vec<Weekday>>,
    /// Opening time, `HH:MM`.
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// Closing time, `HH:MM` (may be past midnight).
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub end: String,
    /// IANA time zone or a fixed offset like `+02:00` (default UTC).
    #[serde(default)]
    pub tz: Option<String>,
}

/// A successful run of a playbook on another environment must exist.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequireRunGate {
    /// The playbook that must have succeeded (default: this one).
    #[serde(default)]
    pub playbook: Option<String>,
    /// The environment it must have succeeded on, e.g. `staging`.
    pub env: String,
    /// How recent the run must be.
    #[serde(default)]
    pub within: Option<Duration>,
    /// The run must have had the same migration checksums (default true).
    #[serde(default)]
    pub same_migrations: Option<bool>,
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
    /// Write the report of type decisions and inexact values to this JSON file.
    #[serde(default)]
    pub report: Option<String>,
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

impl Action<'_> {
    /// The outputs an action produces, readable as `steps.<id>.outputs.<name>`. `None` means
    /// any name (an include passes on whatever the included playbook produces).
    pub fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(match self {
            Action::Shell(_) => &["stdout", "stderr", "exit_code", "json"],
            Action::Sql(_) => &["rows", "row", "scalar", "row_count", "rows_affected"],
            Action::Migrate(_) => &[
                "pending",
                "applied",
                "drifted",
                "missing",
                "current_version",
                "reverted",
                "findings",
                "errors",
                "warnings",
                "results",
                "locks",
                "count",
            ],
            Action::Backup(_) => &[
                "path",
                "manifest",
                "sha256",
                "size",
                "format",
                "server_version",
                "row_counts",
            ],
            Action::Restore(_) => &["path", "pre_backup", "row_counts", "tables"],
            Action::Seed(_) => &["inserted", "updated", "unchanged", "tables"],
            Action::Health(_) => &["status", "passed", "warnings", "failed", "checks"],
            Action::Gate(_) => &["outcome", "approvers", "value"],
            Action::Log(_) => &["message"],
            Action::WaitFor(_) => &["result", "attempts"],
            Action::Include(_) => return None,
            Action::Copy(_) => &[
                "tables",
                "rows",
                "rows_per_second",
                "decisions",
                "inexact",
                "report",
            ],
        })
    }

    /// Whether the action destroys data or schema: restore, migrate revert, or SQL that drops
    /// or truncates. In a protected environment such a step needs a gate before it.
    pub fn is_destructive(&self) -> bool {
        match self {
            Action::Restore(_) => true,
            Action::Migrate(m) => m.action == MigrateOp::Revert,
            Action::Sql(s) => sql_is_destructive(&s.query),
            _ => false,
        }
    }
}

/// Whether SQL text drops or truncates something (comments and string literals ignored).
pub fn sql_is_destructive(query: &str) -> bool {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let Some(re) = RE
        .get_or_init(|| regex::Regex::new(r"(?i)\b(drop|truncate)\b").ok())
        .as_ref()
    else {
        return false;
    };
    let mut code = String::with_capacity(query.len());
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
                code.push(' ');
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                code.push(' ');
            }
            c => code.push(c),
        }
    }
    re.is_match(&code)
}
