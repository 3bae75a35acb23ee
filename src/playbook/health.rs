//! The health action: which checks run, their thresholds, and the row-count baseline.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    BackupAge,
    Tls,
    Superuser,
    Deadlocks,
    SlowStatements,
    UnusedIndexes,
    DeadTuples,
    TableSizes,
    ReplicationLag,
    Tablespaces,
    Settings,
    FailedQueries,
}

/// `all`, or a list of check names: connection, version, database_size, row_counts, indexes,
/// foreign_keys, orphaned_rows, connections, cache_hit_ratio, long_running_queries,
/// blocking_locks, migration_status, disk_space, backup_age, tls, superuser, deadlocks,
/// slow_statements, unused_indexes, dead_tuples, table_sizes, replication_lag, tablespaces,
/// settings, failed_queries.
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
    /// Checks whose figure must be known: one that could not be measured (free disk on a
    /// managed or remote server with neither `disk_limit` nor `disk_command` in the
    /// environment's vars) fails the step, saying why, whatever `fail_on` says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_known: Vec<HealthCheck>,
    /// The folder `backup` steps write to (relative to the project): the `backup_age` check
    /// grades the age of the newest full backup of the target there that verifies (hours,
    /// default warn 26, fail 48). Without it, `all` leaves `backup_age` out.
    #[serde(default)]
    pub backup_dir: Option<String>,
    /// How long `failed_queries` watches the database's rolled-back transactions to measure
    /// their rate per minute (default 10s). Given, `all` includes `failed_queries`; without
    /// it, `all` leaves the check out (it waits for the whole window).
    #[serde(default)]
    pub sample_window: Option<super::Duration>,
    /// A file (relative to the project) the results are written to as Prometheus metrics, for
    /// node_exporter's textfile collector (`*.prom` in its `--collector.textfile.directory`):
    /// replaced atomically on every run, passing or failing.
    #[serde(default)]
    pub metrics_file: Option<String>,
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
