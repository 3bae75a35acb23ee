//! The production guide's health check with warn and fail thresholds: the list of checks, which
//! of them run on a target, and the run itself.
//!
//! Each check measures one number (its metric) and grades it against a warn and a fail
//! threshold: for most checks higher is worse (connections in use, orphaned rows, seconds a
//! query has run), for some lower is worse (cache hit ratio, free disk, server version). A
//! check that cannot apply says so and is skipped; it never reports a made-up number.
//!
//! Every PostgreSQL query runs read-only with a statement timeout and a lock timeout, so a
//! health check can neither change data nor queue behind a migration's lock: each in its own
//! short transaction, but for the checks that read the tables (row counts, indexes, foreign
//! keys, orphaned rows), which share one snapshot, each query under a savepoint (`snapshot.rs`).
//! One failing query does not abort the others.
//!
//! The files: `report.rs` (statuses, results, the summary), `grade.rs` (metrics and
//! thresholds), one file per group of checks (`volume.rs`, `baseline.rs`, `integrity.rs`,
//! `activity.rs`, `migrations.rs`, `disk.rs`, `backups.rs`, `security.rs`, `upkeep.rs`,
//! `replication.rs`, `tablespaces.rs`, `settings.rs`, `failed.rs`), and the queries per dialect
//! (`postgres.rs`, `sqlite.rs`).

mod activity;
mod backups;
mod baseline;
mod disk;
mod failed;
mod grade;
mod helper;
mod integrity;
mod migrations;
mod postgres;
mod replication;
mod report;
mod security;
mod settings;
mod shared;
mod side;
mod snapshot;
mod sqlite;
mod tablespaces;
mod upkeep;
mod volume;

pub use baseline::baseline_name;
pub use disk::{DiskFigure, DiskSource, parse_figure, parse_size};
pub use grade::thresholds;
pub use report::{CheckResult, HealthReport, Status};

use crate::db::op::{Op, OpError};
use crate::db::{Db, Dialect, TargetSpec};
use crate::playbook::{HealthCheck, Threshold};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// Every check, in the order they run and are shown.
pub const ALL: &[HealthCheck] = &[
    HealthCheck::Connection,
    HealthCheck::Version,
    HealthCheck::DatabaseSize,
    HealthCheck::RowCounts,
    HealthCheck::Indexes,
    HealthCheck::ForeignKeys,
    HealthCheck::OrphanedRows,
    HealthCheck::Connections,
    HealthCheck::CacheHitRatio,
    HealthCheck::LongRunningQueries,
    HealthCheck::BlockingLocks,
    HealthCheck::MigrationStatus,
    HealthCheck::DiskSpace,
    HealthCheck::BackupAge,
    HealthCheck::Tls,
    HealthCheck::Superuser,
    HealthCheck::Deadlocks,
    HealthCheck::SlowStatements,
    HealthCheck::UnusedIndexes,
    HealthCheck::DeadTuples,
    HealthCheck::TableSizes,
    HealthCheck::ReplicationLag,
    HealthCheck::Tablespaces,
    HealthCheck::Settings,
    HealthCheck::FailedQueries,
];

/// Checks that exist on PostgreSQL only.
const PG_ONLY: &[HealthCheck] = &[
    HealthCheck::Connections,
    HealthCheck::CacheHitRatio,
    HealthCheck::LongRunningQueries,
    HealthCheck::BlockingLocks,
    HealthCheck::Tls,
    HealthCheck::Superuser,
    HealthCheck::Deadlocks,
    HealthCheck::SlowStatements,
    HealthCheck::UnusedIndexes,
    HealthCheck::DeadTuples,
    HealthCheck::TableSizes,
    HealthCheck::ReplicationLag,
    HealthCheck::Tablespaces,
    HealthCheck::Settings,
    HealthCheck::FailedQueries,
];

/// How long `failed_queries` watches the database when the step gives no `sample_window`.
pub const SAMPLE_WINDOW: Duration = Duration::from_secs(10);

/// What to check.
#[derive(Debug, Clone)]
pub struct HealthOptions {
    /// `None` is `checks: all`: every check that applies to the target.
    pub checks: Option<Vec<HealthCheck>>,
    pub thresholds: BTreeMap<HealthCheck, Threshold>,
    /// The project's migrations folder (holding `postgres/` and `sqlite/`).
    pub migrations_dir: PathBuf,
    /// The project root, for showing paths.
    pub root: PathBuf,
    /// The statement timeout of each query (PostgreSQL).
    pub statement_timeout: Duration,
    /// The target's URL (PostgreSQL): given, a long list of counts is split with a second
    /// connection in the same snapshot (`helper.rs`).
    pub url: Option<String>,
    /// Row counts to compare with (table to rows): a table with fewer rows now, or gone, fails
    /// the `row_counts` check.
    pub baseline: Option<BTreeMap<String, u64>>,
    /// Where the free disk figure comes from, when the environment says (PostgreSQL): used
    /// instead of measuring the server's filesystem.
    pub disk: Option<DiskSource>,
    /// Where the target's backups are, for `backup_age`.
    pub backups: Option<BackupsAt>,
    /// The step's `sample_window`: how long `failed_queries` watches the database; given,
    /// `all` includes that check.
    pub sample_window: Option<Duration>,
}

/// The folder `backup` steps write to and the target whose backups count.
#[derive(Debug, Clone)]
pub struct BackupsAt {
    pub dir: PathBuf,
    pub target: TargetSpec,
}

/// The check's name as playbooks write it.
pub fn name(check: HealthCheck) -> &'static str {
    match check {
        HealthCheck::Connection => "connection",
        HealthCheck::Version => "version",
        HealthCheck::DatabaseSize => "database_size",
        HealthCheck::RowCounts => "row_counts",
        HealthCheck::Indexes => "indexes",
        HealthCheck::ForeignKeys => "foreign_keys",
        HealthCheck::OrphanedRows => "orphaned_rows",
        HealthCheck::Connections => "connections",
        HealthCheck::CacheHitRatio => "cache_hit_ratio",
        HealthCheck::LongRunningQueries => "long_running_queries",
        HealthCheck::BlockingLocks => "blocking_locks",
        HealthCheck::MigrationStatus => "migration_status",
        HealthCheck::DiskSpace => "disk_space",
        HealthCheck::BackupAge => "backup_age",
        HealthCheck::Tls => "tls",
        HealthCheck::Superuser => "superuser",
        HealthCheck::Deadlocks => "deadlocks",
        HealthCheck::SlowStatements => "slow_statements",
        HealthCheck::UnusedIndexes => "unused_indexes",
        HealthCheck::DeadTuples => "dead_tuples",
        HealthCheck::TableSizes => "table_sizes",
        HealthCheck::ReplicationLag => "replication_lag",
        HealthCheck::Tablespaces => "tablespaces",
        HealthCheck::Settings => "settings",
        HealthCheck::FailedQueries => "failed_queries",
    }
}

/// The guide's label for the check.
pub fn title(check: HealthCheck) -> &'static str {
    match check {
        HealthCheck::Connection => "Database Connection",
        HealthCheck::Version => "Database Version",
        HealthCheck::DatabaseSize => "Database Size",
        HealthCheck::RowCounts => "Table Row Counts",
        HealthCheck::Indexes => "Database Indexes",
        HealthCheck::ForeignKeys => "Foreign Key Constraints",
        HealthCheck::OrphanedRows => "Data Integrity",
        HealthCheck::Connections => "Connection Pool",
        HealthCheck::CacheHitRatio => "Cache Hit Ratio",
        HealthCheck::LongRunningQueries => "Long Running Queries",
        HealthCheck::BlockingLocks => "Blocking Locks",
        HealthCheck::MigrationStatus => "Migration Status",
        HealthCheck::DiskSpace => "Disk Space",
        HealthCheck::BackupAge => "Backup Freshness",
        HealthCheck::Tls => "TLS",
        HealthCheck::Superuser => "Least Privilege",
        HealthCheck::Deadlocks => "Deadlocks",
        HealthCheck::SlowStatements => "Slow Statements",
        HealthCheck::UnusedIndexes => "Unused Indexes",
        HealthCheck::DeadTuples => "Dead Tuples",
        HealthCheck::TableSizes => "Table Sizes",
        HealthCheck::ReplicationLag => "Replication Lag",
        HealthCheck::Tablespaces => "Tablespace Usage",
        HealthCheck::Settings => "Settings Review",
        HealthCheck::FailedQueries => "Failed Queries",
    }
}

/// The checks to run on this dialect: `all` leaves out those the dialect cannot have,
/// `backup_age` when no backup folder is given and `failed_queries` when no sample window is
/// (it waits for the whole window); an explicit list keeps every named check, so
/// one that does not apply shows as skipped.
fn selected(opts: &HealthOptions, dialect: Dialect) -> Vec<HealthCheck> {
    match &opts.checks {
        None => ALL
            .iter()
            .copied()
            .filter(|c| dialect == Dialect::Postgres || !PG_ONLY.contains(c))
            .filter(|c| *c != HealthCheck::BackupAge || opts.backups.is_some())
            .filter(|c| *c != HealthCheck::FailedQueries || opts.sample_window.is_some())
            .collect(),
        Some(list) => {
            let wanted: BTreeSet<HealthCheck> = list.iter().copied().collect();
            ALL.iter().copied().filter(|c| wanted.contains(c)).collect()
        }
    }
}

/// The report when the target cannot be reached: the connection fails, nothing else runs.
pub fn unreachable(opts: &HealthOptions, dialect: Dialect, error: &str) -> HealthReport {
    let mut results = vec![CheckResult::new(
        HealthCheck::Connection,
        Status::Fail,
        Json::Null,
        error,
    )];
    for c in selected(opts, dialect) {
        if c != HealthCheck::Connection {
            results.push(CheckResult::skip(c, "no connection to the database"));
        }
    }
    HealthReport { results }
}

/// Runs the selected checks, unless the run is cancelled or its time budget ends first.
pub async fn check(
    db: &mut Db,
    opts: &HealthOptions,
    op: &Op<'_>,
) -> Result<HealthReport, OpError> {
    // A run that has already stopped starts nothing.
    tokio::select! {
        biased;
        stopped = op.stopped() => Err(stopped),
        report = run_checks(db, opts, op) => Ok(report),
    }
}

async fn run_checks(db: &mut Db, opts: &HealthOptions, op: &Op<'_>) -> HealthReport {
    let mut checks = selected(opts, db.dialect());
    // Backup freshness reads the backup folder and verifies archives: it needs the whole `Db`
    // and the operation (its notes, cancellation), and runs after the database's checks.
    let backups = checks.contains(&HealthCheck::BackupAge);
    checks.retain(|c| *c != HealthCheck::BackupAge);
    // Migration status reads through `db::migrate`, which needs the whole `Db`.
    let migrations = if checks.contains(&HealthCheck::MigrationStatus) {
        Some(migrations::migration_status(db, opts).await)
    } else {
        None
    };
    let mut results = match db {
        Db::Postgres(conn) => postgres::run_checks(conn, opts, checks, migrations).await,
        Db::Sqlite(conn) => sqlite::run_checks(conn, opts, checks, migrations).await,
    };
    if backups {
        let connected = !results
            .iter()
            .any(|r| r.check == HealthCheck::Connection && r.status == Status::Fail);
        results.push(if connected {
            backups::backup_age(db, opts, op).await
        } else {
            CheckResult::skip(HealthCheck::BackupAge, "no connection to the database")
        });
    }
    HealthReport { results }
}

#[cfg(test)]
mod tests {
    use super::{ALL, HealthOptions, Status, check, selected, unreachable};
    use crate::db::Dialect;
    use crate::db::op::OpError;
    use crate::db::op::testing::cancelled_on_sqlite;
    use crate::playbook::HealthCheck;
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    /// Options with every check, default thresholds and no baseline.
    pub(super) fn opts() -> HealthOptions {
        HealthOptions {
            checks: None,
            thresholds: BTreeMap::new(),
            migrations_dir: PathBuf::from("/nonexistent"),
            root: PathBuf::from("/"),
            statement_timeout: Duration::from_secs(30),
            url: None,
            baseline: None,
            disk: None,
            backups: None,
            sample_window: None,
        }
    }

    #[test]
    fn all_leaves_out_server_checks_on_sqlite_but_a_list_keeps_them() {
        let o = opts();
        assert!(!selected(&o, Dialect::Sqlite).contains(&HealthCheck::CacheHitRatio));
        // `backup_age` needs a backup folder to apply, `failed_queries` a sample window.
        assert_eq!(selected(&o, Dialect::Postgres).len(), ALL.len() - 2);
        let mut sampled = opts();
        sampled.sample_window = Some(Duration::from_secs(1));
        assert!(selected(&sampled, Dialect::Postgres).contains(&HealthCheck::FailedQueries));
        assert!(!selected(&sampled, Dialect::Sqlite).contains(&HealthCheck::FailedQueries));
        let mut listed = opts();
        listed.checks = Some(vec![HealthCheck::BlockingLocks, HealthCheck::Connection]);
        assert_eq!(
            selected(&listed, Dialect::Sqlite),
            vec![HealthCheck::Connection, HealthCheck::BlockingLocks]
        );
    }

    #[test]
    fn an_unreachable_target_fails_the_connection_and_skips_the_rest() {
        let r = unreachable(
            &opts(),
            Dialect::Postgres,
            "cannot connect to postgres://h/db: refused",
        );
        assert_eq!(r.status(), Status::Fail);
        // `backup_age` and `failed_queries` are left out: no backup folder, no sample window.
        assert_eq!(r.results.len(), ALL.len() - 2);
        assert_eq!(r.results[0].check, HealthCheck::Connection);
        assert_eq!(r.count(Status::Skip), ALL.len() - 3);
        assert_eq!(
            r.results[12].to_json()["message"],
            "no connection to the database"
        );
    }

    #[test]
    fn a_cancelled_run_stops_the_checks() {
        cancelled_on_sqlite("health", async |db, op| {
            let r = check(db, &opts(), op).await;
            assert_eq!(r.err(), Some(OpError::Interrupted));
        });
    }
}
