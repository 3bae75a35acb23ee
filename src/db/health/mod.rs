//! The production guide's health check with warn and fail thresholds.
//!
//! Each check measures one number (its metric) and grades it against a warn and a fail
//! threshold: for most checks higher is worse (connections in use, orphaned rows, seconds a
//! query has run), for some lower is worse (cache hit ratio, free disk, server version). A
//! check that cannot apply says so and is skipped; it never reports a made-up number.
//!
//! Every PostgreSQL query runs in its own short read-only transaction with a statement
//! timeout and a lock timeout, so a health check can neither change data nor queue behind a
//! migration's lock, and one failing query does not abort the others.

use crate::db::{Db, describe, migrate};
use crate::playbook::{HealthCheck, Threshold};
use serde_json::{Map, Value as Json, json};
use sqlx::{Connection, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
];

/// Checks that exist on PostgreSQL only.
const PG_ONLY: &[HealthCheck] = &[
    HealthCheck::Connections,
    HealthCheck::CacheHitRatio,
    HealthCheck::LongRunningQueries,
    HealthCheck::BlockingLocks,
];

/// Tables estimated to hold more rows than this are not counted exactly: `count(*)` reads the
/// whole table, which on a large production table takes minutes.
const EXACT_COUNT_LIMIT: f64 = 1_000_000.0;

/// The cache hit ratio means little until the server has done this many block reads.
const MIN_CACHE_SAMPLE: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Skip,
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Skip => "skip",
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

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
    /// Row counts to compare with (table to rows): a table with fewer rows now, or gone, fails
    /// the `row_counts` check.
    pub baseline: Option<BTreeMap<String, u64>>,
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub check: HealthCheck,
    pub status: Status,
    /// The headline value: a number, a version, a count.
    pub value: Json,
    pub message: String,
    /// Check-specific facts (per-table counts, the queries found, `free_percent`, ...).
    pub details: Map<String, Json>,
}

impl CheckResult {
    fn new(check: HealthCheck, status: Status, value: Json, message: impl Into<String>) -> Self {
        CheckResult {
            check,
            status,
            value,
            message: message.into(),
            details: Map::new(),
        }
    }

    fn skip(check: HealthCheck, reason: impl Into<String>) -> Self {
        CheckResult::new(check, Status::Skip, Json::Null, reason)
    }

    fn with(mut self, key: &str, value: impl Into<Json>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// The JSON form used in step outputs: status, value, message, title, then the details.
    pub fn to_json(&self) -> Json {
        let mut m = Map::new();
        m.insert("status".to_owned(), json!(self.status.word()));
        m.insert("value".to_owned(), self.value.clone());
        m.insert("message".to_owned(), json!(self.message));
        m.insert("title".to_owned(), json!(title(self.check)));
        for (k, v) in &self.details {
            m.insert(k.clone(), v.clone());
        }
        Json::Object(m)
    }
}

/// All checks' outcomes.
#[derive(Debug, Clone, Default)]
pub struct HealthReport {
    pub results: Vec<CheckResult>,
}

impl HealthReport {
    /// The worst status of the checks that ran (pass when none ran).
    pub fn status(&self) -> Status {
        self.results
            .iter()
            .map(|r| r.status)
            .max()
            .unwrap_or(Status::Pass)
            .max(Status::Pass)
    }

    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    /// The summary line: like the guide's "Health check PASSED with warnings".
    pub fn summary(&self) -> String {
        let (p, w, f, s) = (
            self.count(Status::Pass),
            self.count(Status::Warn),
            self.count(Status::Fail),
            self.count(Status::Skip),
        );
        let verdict = match self.status() {
            Status::Fail => "FAILED",
            Status::Warn => "PASSED with warnings",
            _ => "PASSED",
        };
        let skipped = if s > 0 {
            format!(", {s} skipped")
        } else {
            String::new()
        };
        format!(
            "health check {verdict}: {}, {p} passed, {}, {f} failed{skipped}",
            plural((p + w + f) as i64, "check", "checks"),
            plural(w as i64, "warning", "warnings")
        )
    }
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
    }
}

/// Which way a metric gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Worse {
    Higher,
    Lower,
}

/// What a check's thresholds measure, and their defaults.
struct Metric {
    what: &'static str,
    unit: &'static str,
    worse: Worse,
    warn: Option<f64>,
    fail: Option<f64>,
}

/// The metric each check grades. Sizes and counts have no default thresholds: they are facts
/// about the data, not problems, until an operator says what is too much.
fn metric(check: HealthCheck) -> Metric {
    let m = |what, unit, worse, warn, fail| Metric {
        what,
        unit,
        worse,
        warn,
        fail,
    };
    use Worse::{Higher, Lower};
    match check {
        HealthCheck::Connection => m("round trip", " ms", Higher, Some(500.0), Some(5_000.0)),
        // PostgreSQL 12 and older no longer get fixes.
        HealthCheck::Version => m("major version", "", Lower, Some(13.0), None),
        HealthCheck::DatabaseSize => m("size", " MiB", Higher, None, None),
        HealthCheck::RowCounts => m("total rows", "", Higher, None, None),
        HealthCheck::Indexes => m("invalid indexes", "", Higher, Some(1.0), None),
        HealthCheck::ForeignKeys => m("unvalidated constraints", "", Higher, Some(1.0), None),
        HealthCheck::OrphanedRows => m("orphaned rows", "", Higher, Some(1.0), None),
        HealthCheck::Connections => m("connections in use", "%", Higher, Some(80.0), Some(95.0)),
        HealthCheck::CacheHitRatio => m("cache hit ratio", "%", Lower, Some(90.0), Some(80.0)),
        HealthCheck::LongRunningQueries => m("longest query", "s", Higher, Some(60.0), Some(300.0)),
        HealthCheck::BlockingLocks => m("longest lock wait", "s", Higher, Some(10.0), Some(60.0)),
        HealthCheck::MigrationStatus => m("pending migrations", "", Higher, Some(1.0), None),
        HealthCheck::DiskSpace => m("free disk", "%", Lower, Some(20.0), Some(10.0)),
    }
}

/// The warn and fail thresholds in force: the playbook's, else the defaults, field by field.
pub fn thresholds(check: HealthCheck, given: Option<&Threshold>) -> (Option<f64>, Option<f64>) {
    let d = metric(check);
    (
        given.and_then(|t| t.warn).or(d.warn),
        given.and_then(|t| t.fail).or(d.fail),
    )
}

/// Grades a metric: the status and, when it is not a pass, why.
fn grade(check: HealthCheck, value: f64, given: Option<&Threshold>) -> (Status, Option<String>) {
    let m = metric(check);
    let (warn, fail) = thresholds(check, given);
    let crossed = |t: f64| match m.worse {
        Worse::Higher => value >= t,
        Worse::Lower => value < t,
    };
    let why = |level: &str, t: f64| match m.worse {
        Worse::Higher => format!("{level} at {}{} or more", num(t), m.unit),
        Worse::Lower => format!("{level} below {}{}", num(t), m.unit),
    };
    if let Some(t) = fail
        && crossed(t)
    {
        return (Status::Fail, Some(why("fail", t)));
    }
    if let Some(t) = warn
        && crossed(t)
    {
        return (Status::Warn, Some(why("warn", t)));
    }
    (Status::Pass, None)
}

/// A number without a useless `.0`.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

/// A graded result: the message gets the reason appended when the check did not pass.
fn graded(
    check: HealthCheck,
    metric_value: f64,
    opts: &HealthOptions,
    value: Json,
    message: String,
) -> CheckResult {
    let given = opts.thresholds.get(&check);
    let (status, why) = grade(check, metric_value, given);
    let message = match why {
        Some(w) => format!("{message} ({w})"),
        None => message,
    };
    let (warn, fail) = thresholds(check, given);
    let mut r = CheckResult::new(check, status, value, message);
    let m = metric(check);
    // What the thresholds compare, so JSON readers need not know each check's convention.
    r.details.insert(
        "thresholds".to_owned(),
        json!({
            "metric": m.what,
            "unit": m.unit.trim(),
            "worse": if m.worse == Worse::Higher { "higher" } else { "lower" },
            "warn": warn,
            "fail": fail,
        }),
    );
    r
}

/// The checks to run on this dialect: `all` leaves out those the dialect cannot have; an
/// explicit list keeps every named check, so one that does not apply shows as skipped.
fn selected(opts: &HealthOptions, postgres: bool) -> Vec<HealthCheck> {
    match &opts.checks {
        None => ALL
            .iter()
            .copied()
            .filter(|c| postgres || !PG_ONLY.contains(c))
            .collect(),
        Some(list) => {
            let wanted: BTreeSet<HealthCheck> = list.iter().copied().collect();
            ALL.iter().copied().filter(|c| wanted.contains(c)).collect()
        }
    }
}

/// The report when the target cannot be reached: the connection fails, nothing else runs.
pub fn unreachable(opts: &HealthOptions, postgres: bool, error: &str) -> HealthReport {
    let mut results = vec![CheckResult::new(
        HealthCheck::Connection,
        Status::Fail,
        Json::Null,
        error,
    )];
    for c in selected(opts, postgres) {
        if c != HealthCheck::Connection {
            results.push(CheckResult::skip(c, "no connection to the database"));
        }
    }
    HealthReport { results }
}

/// Runs the selected checks.
pub async fn check(db: &mut Db, opts: &HealthOptions) -> HealthReport {
    let postgres = db.is_postgres();
    let checks = selected(opts, postgres);
    // Migration status reads through `db::migrate`, which needs the whole `Db`.
    let mut migrations = if checks.contains(&HealthCheck::MigrationStatus) {
        Some(migration_status(db, opts).await)
    } else {
        None
    };
    let mut results = Vec::new();
    match db {
        Db::Postgres(conn) => {
            let mut pg = Pg {
                conn,
                opts,
                fks: None,
                version_num: 0,
            };
            // The server version decides which catalog columns exist; the connection check
            // reads it whether or not it is shown.
            let connected = pg.connection().await;
            let ok = connected.status != Status::Fail;
            if checks.contains(&HealthCheck::Connection) || !ok {
                results.push(connected);
            }
            for c in checks {
                if c == HealthCheck::Connection {
                    continue;
                }
                results.push(match (ok, c, migrations.take()) {
                    (false, _, _) => CheckResult::skip(c, "no connection to the database"),
                    (true, HealthCheck::MigrationStatus, Some(m)) => m,
                    (true, _, m) => {
                        migrations = m;
                        pg.run(c).await
                    }
                });
            }
        }
        Db::Sqlite(conn) => {
            let mut lite = Lite { conn, opts };
            for c in checks {
                results.push(match (c, migrations.take()) {
                    (HealthCheck::MigrationStatus, Some(m)) => m,
                    (_, m) => {
                        migrations = m;
                        lite.run(c).await
                    }
                });
            }
        }
    }
    HealthReport { results }
}

/// A foreign key: the child columns and the parent columns they reference.
#[derive(Debug, Clone)]
struct ForeignKey {
    name: String,
    table: String,
    columns: Vec<String>,
    parent: String,
    parent_columns: Vec<String>,
    validated: bool,
    /// Quoted `schema.table` forms for SQL.
    table_sql: String,
    parent_sql: String,
}

fn quote(name: &str) -> String {
    crate::db::seed::quote_ident(name)
}

/// `table` for the public schema, `schema.table` otherwise.
fn shown(schema: &str, table: &str) -> String {
    if schema == "public" {
        table.to_owned()
    } else {
        format!("{schema}.{table}")
    }
}

/// Bytes as MiB/GiB for messages.
fn human_bytes(b: i64) -> String {
    let b = b as f64;
    const MIB: f64 = 1024.0 * 1024.0;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / (1024.0 * MIB))
    } else if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else {
        format!("{:.0} KiB", b / 1024.0)
    }
}

/// A check whose query failed: the outcome is unknown, which deserves a look but is not
/// proof of a problem, except for row counts that must be compared with a baseline.
fn errored(check: HealthCheck, e: &sqlx::Error, opts: &HealthOptions) -> CheckResult {
    let status = if check == HealthCheck::RowCounts && opts.baseline.is_some() {
        Status::Fail
    } else {
        Status::Warn
    };
    CheckResult::new(
        check,
        status,
        Json::Null,
        format!("could not run: {}", describe(e)),
    )
}

struct Pg<'a> {
    conn: &'a mut sqlx::PgConnection,
    opts: &'a HealthOptions,
    fks: Option<Vec<ForeignKey>>,
    version_num: i64,
}

impl Pg<'_> {
    /// One query in its own read-only transaction, bounded by the statement and lock timeouts.
    async fn rows(&mut self, sql: &str) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
        let ms = self.opts.statement_timeout.as_millis().max(1);
        let lock_ms = ms.min(5_000);
        let mut tx = self.conn.begin().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {lock_ms}"
        )))
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut *tx)
            .await;
        // Read only: there is nothing to undo, and a broken connection shows on the next query.
        let _ = tx.rollback().await;
        rows
    }

    async fn run(&mut self, c: HealthCheck) -> CheckResult {
        let r = match c {
            HealthCheck::Connection => return self.connection().await,
            HealthCheck::Version => self.version().await,
            HealthCheck::DatabaseSize => self.size().await,
            HealthCheck::RowCounts => self.row_counts().await,
            HealthCheck::Indexes => self.indexes().await,
            HealthCheck::ForeignKeys => self.foreign_keys().await,
            HealthCheck::OrphanedRows => self.orphans().await,
            HealthCheck::Connections => self.connections().await,
            HealthCheck::CacheHitRatio => self.cache().await,
            HealthCheck::LongRunningQueries => self.long_running().await,
            HealthCheck::BlockingLocks => self.blocking().await,
            // Needs the whole `Db`; `check` runs it before the dialect's checks.
            HealthCheck::MigrationStatus => {
                return CheckResult::skip(c, "migration status runs separately");
            }
            HealthCheck::DiskSpace => return self.disk().await,
        };
        r.unwrap_or_else(|e| errored(c, &e, self.opts))
    }

    async fn connection(&mut self) -> CheckResult {
        let c = HealthCheck::Connection;
        let began = Instant::now();
        let rows = self
            .rows("SELECT current_database()::text, current_setting('server_version_num')::int8")
            .await;
        let ms = began.elapsed().as_secs_f64() * 1000.0;
        match rows.as_deref().map(|r| r.first()) {
            Ok(Some(row)) => {
                let db: String = row.try_get(0).unwrap_or_default();
                self.version_num = row.try_get(1).unwrap_or_default();
                graded(
                    c,
                    ms,
                    self.opts,
                    json!(round1(ms)),
                    format!("connected to `{db}` (round trip {} ms)", num(round1(ms))),
                )
                .with("database", db)
                .with("latency_ms", round1(ms))
            }
            Ok(None) => {
                CheckResult::new(c, Status::Fail, Json::Null, "the server answered nothing")
            }
            Err(e) => CheckResult::new(
                c,
                Status::Fail,
                Json::Null,
                format!("the server does not answer: {}", describe(e)),
            ),
        }
    }

    async fn version(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows("SELECT current_setting('server_version')::text, current_setting('server_version_num')::int8")
            .await?;
        let (text, n): (String, i64) = match rows.first() {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (String::new(), 0),
        };
        let major = n / 10_000;
        let text = text.split_whitespace().next().unwrap_or("").to_owned();
        Ok(graded(
            HealthCheck::Version,
            major as f64,
            self.opts,
            json!(format!("PostgreSQL {text}")),
            format!("PostgreSQL {text}"),
        )
        .with("version_num", n)
        .with("major", major))
    }

    async fn size(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows("SELECT pg_database_size(current_database())::int8")
            .await?;
        let bytes: i64 = rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
        Ok(size_result(bytes, self.opts))
    }

    async fn row_counts(&mut self) -> Result<CheckResult, sqlx::Error> {
        let tables = self
            .rows(
                "SELECT n.nspname::text, c.relname::text, c.reltuples::float8, c.relispartition \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
                 ORDER BY 1, 2",
            )
            .await?;
        let mut counts = Map::new();
        let mut partitions = Map::new();
        let mut estimated = Vec::new();
        let mut errors = Map::new();
        let mut total: i64 = 0;
        for t in &tables {
            let (schema, table, estimate, partition): (String, String, f64, bool) =
                (t.try_get(0)?, t.try_get(1)?, t.try_get(2)?, t.try_get(3)?);
            let label = shown(&schema, &table);
            let in_baseline = self.opts.baseline.as_ref().is_some_and(|b| {
                b.contains_key(&label) || b.contains_key(&format!("{schema}.{table}"))
            });
            // A partition's rows are counted with its parent; a baseline (a backup manifest
            // lists partitions) gets them on their own.
            if partition && !in_baseline {
                continue;
            }
            // Large tables are estimated, unless a baseline needs their exact count.
            if !partition && estimate > EXACT_COUNT_LIMIT && !in_baseline {
                let n = estimate as i64;
                total += n;
                counts.insert(label.clone(), json!(n));
                estimated.push(json!(label));
                continue;
            }
            let sql = format!(
                "SELECT count(*)::int8 FROM {}.{}",
                quote(&schema),
                quote(&table)
            );
            match self.rows(&sql).await {
                Ok(r) => {
                    let n: i64 = r.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
                    if partition {
                        partitions.insert(label, json!(n));
                    } else {
                        total += n;
                        counts.insert(label, json!(n));
                    }
                }
                Err(e) => {
                    errors.insert(label, json!(describe(&e)));
                }
            }
        }
        Ok(row_counts_result(
            RowCounts {
                counts,
                partitions,
                estimated,
                errors,
                total,
            },
            self.opts,
        ))
    }

    async fn indexes(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows(
                "SELECT count(*)::int8, \
                        coalesce(array_agg(c.relname::text ORDER BY c.relname) FILTER (WHERE NOT i.indisvalid), '{}') \
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_toast%'",
            )
            .await?;
        let (count, invalid): (i64, Vec<String>) = match rows.first() {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (0, Vec::new()),
        };
        let mut message = format!("found {}", plural(count, "index", "indexes"));
        if !invalid.is_empty() {
            message.push_str(&format!(
                ", {} invalid ({}): a failed `CREATE INDEX CONCURRENTLY` leaves these; drop and rebuild them",
                invalid.len(),
                invalid.join(", ")
            ));
        }
        Ok(graded(
            HealthCheck::Indexes,
            invalid.len() as f64,
            self.opts,
            json!(count),
            message,
        )
        .with("count", count)
        .with("invalid", invalid))
    }

    async fn load_fks(&mut self) -> Result<Vec<ForeignKey>, sqlx::Error> {
        if let Some(f) = &self.fks {
            return Ok(f.clone());
        }
        // Constraints inherited by partitions (conparentid <> 0) repeat their parent's.
        let rows = self
            .rows(
                "SELECT c.conname::text, cn.nspname::text, cl.relname::text, \
                        pn.nspname::text, pl.relname::text, c.convalidated, \
                        ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i) \
                              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i), \
                        ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i) \
                              JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) \
                 FROM pg_constraint c \
                 JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cl.relnamespace \
                 JOIN pg_class pl ON pl.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = pl.relnamespace \
                 WHERE c.contype = 'f' AND c.conparentid = 0 \
                   AND cn.nspname NOT IN ('pg_catalog', 'information_schema') \
                 ORDER BY 2, 3, 1",
            )
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let (name, cs, ct, ps, pt): (String, String, String, String, String) = (
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            );
            out.push(ForeignKey {
                name,
                table: shown(&cs, &ct),
                parent: shown(&ps, &pt),
                table_sql: format!("{}.{}", quote(&cs), quote(&ct)),
                parent_sql: format!("{}.{}", quote(&ps), quote(&pt)),
                validated: r.try_get(5)?,
                columns: r.try_get(6)?,
                parent_columns: r.try_get(7)?,
            });
        }
        self.fks = Some(out.clone());
        Ok(out)
    }

    async fn foreign_keys(&mut self) -> Result<CheckResult, sqlx::Error> {
        let fks = self.load_fks().await?;
        Ok(foreign_keys_result(&fks, self.opts))
    }

    async fn orphans(&mut self) -> Result<CheckResult, sqlx::Error> {
        let fks = self.load_fks().await?;
        let mut found = Vec::new();
        let mut errors = Vec::new();
        for fk in &fks {
            // MATCH SIMPLE: a row with a null in any key column references nothing.
            let not_null: Vec<String> = fk
                .columns
                .iter()
                .map(|c| format!("c.{} IS NOT NULL", quote(c)))
                .collect();
            let join: Vec<String> = fk
                .columns
                .iter()
                .zip(&fk.parent_columns)
                .map(|(c, p)| format!("p.{} = c.{}", quote(p), quote(c)))
                .collect();
            let sql = format!(
                "SELECT count(*)::int8 FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
                fk.table_sql,
                not_null.join(" AND "),
                fk.parent_sql,
                join.join(" AND ")
            );
            match self.rows(&sql).await {
                Ok(r) => {
                    let n: i64 = r.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
                    if n > 0 {
                        found.push((fk.clone(), n));
                    }
                }
                Err(e) => errors
                    .push(json!({"constraint": fk.name, "table": fk.table, "error": describe(&e)})),
            }
        }
        Ok(orphans_result(fks.len(), found, errors, self.opts))
    }

    async fn connections(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows(
                "SELECT count(*)::int8, \
                        count(*) FILTER (WHERE state = 'active')::int8, \
                        count(*) FILTER (WHERE state LIKE 'idle in transaction%')::int8, \
                        current_setting('max_connections')::int8, \
                        current_setting('superuser_reserved_connections')::int8 \
                 FROM pg_stat_activity WHERE backend_type = 'client backend'",
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(CheckResult::skip(
                HealthCheck::Connections,
                "pg_stat_activity returned nothing",
            ));
        };
        let (total, active, idle_tx, max, reserved): (i64, i64, i64, i64, i64) = (
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
        );
        let usable = (max - reserved).max(1);
        let percent = round1(total as f64 * 100.0 / usable as f64);
        Ok(graded(
            HealthCheck::Connections,
            percent,
            self.opts,
            json!(total),
            format!(
                "{total} of {usable} connections in use ({}%), {active} active, {idle_tx} idle in transaction",
                num(percent)
            ),
        )
        .with("total", total)
        .with("active", active)
        .with("idle_in_transaction", idle_tx)
        .with("max_connections", max)
        .with("usable", usable)
        .with("percent", percent))
    }

    async fn cache(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows("SELECT blks_hit::int8, blks_read::int8 FROM pg_stat_database WHERE datname = current_database()")
            .await?;
        let (hit, read): (i64, i64) = match rows.first() {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (0, 0),
        };
        if hit + read < MIN_CACHE_SAMPLE {
            return Ok(CheckResult::skip(
                HealthCheck::CacheHitRatio,
                format!(
                    "too few block reads to judge yet ({} of {MIN_CACHE_SAMPLE} needed)",
                    hit + read
                ),
            )
            .with("blocks_hit", hit)
            .with("blocks_read", read));
        }
        let percent = round1(hit as f64 * 100.0 / (hit + read) as f64);
        Ok(graded(
            HealthCheck::CacheHitRatio,
            percent,
            self.opts,
            json!(percent),
            format!(
                "{}% of block reads served from shared buffers",
                num(percent)
            ),
        )
        .with("percent", percent)
        .with("blocks_hit", hit)
        .with("blocks_read", read))
    }

    async fn long_running(&mut self) -> Result<CheckResult, sqlx::Error> {
        // This database only: other databases on the server are other applications'.
        let rows = self
            .rows(
                "SELECT pid::int8, coalesce(usename::text, ''), coalesce(application_name, '')::text, state::text, \
                        extract(epoch FROM now() - CASE WHEN state = 'active' THEN query_start ELSE state_change END)::float8, \
                        left(query, 200)::text \
                 FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND datname = current_database() \
                   AND pid <> pg_backend_pid() \
                   AND (state = 'active' OR state LIKE 'idle in transaction%') \
                 ORDER BY 5 DESC NULLS LAST",
            )
            .await?;
        let (warn, fail) = thresholds(
            HealthCheck::LongRunningQueries,
            self.opts.thresholds.get(&HealthCheck::LongRunningQueries),
        );
        let floor = warn.or(fail).unwrap_or(f64::INFINITY);
        let mut longest: f64 = 0.0;
        let mut listed = Vec::new();
        for r in &rows {
            let secs: f64 = r.try_get::<Option<f64>, _>(4)?.unwrap_or(0.0).max(0.0);
            longest = longest.max(secs);
            if secs >= floor {
                listed.push(json!({
                    "pid": r.try_get::<i64, _>(0)?,
                    "user": r.try_get::<String, _>(1)?,
                    "application": r.try_get::<String, _>(2)?,
                    "state": r.try_get::<String, _>(3)?,
                    "seconds": round1(secs),
                    "query": r.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
                }));
            }
        }
        let message = match listed.first() {
            None => format!("no queries running longer than {}s", num(floor)),
            Some(q) => format!(
                "{} quer{} running longer than {}s (longest {}s, pid {}: {})",
                listed.len(),
                if listed.len() == 1 { "y" } else { "ies" },
                num(floor),
                num(round1(longest)),
                q["pid"],
                one_line(q["query"].as_str().unwrap_or(""), 80)
            ),
        };
        Ok(graded(
            HealthCheck::LongRunningQueries,
            longest,
            self.opts,
            json!(listed.len()),
            message,
        )
        .with("longest_seconds", round1(longest))
        .with("queries", listed))
    }

    async fn blocking(&mut self) -> Result<CheckResult, sqlx::Error> {
        // pg_locks.waitstart (PostgreSQL 14+) says when the wait began; before that the
        // query's start is the best bound there is.
        let since = if self.version_num >= 140_000 {
            "coalesce((SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted), a.query_start)"
        } else {
            "a.query_start"
        };
        let sql = format!(
            "SELECT a.pid::int8, pg_blocking_pids(a.pid)::int4[], \
                    extract(epoch FROM now() - {since})::float8, left(a.query, 200)::text \
             FROM pg_stat_activity a \
             WHERE a.datname = current_database() AND cardinality(pg_blocking_pids(a.pid)) > 0 \
             ORDER BY 3 DESC NULLS LAST"
        );
        let rows = self.rows(&sql).await?;
        let mut longest: f64 = 0.0;
        let mut blocked = Vec::new();
        for r in &rows {
            let secs = r.try_get::<Option<f64>, _>(2)?.unwrap_or(0.0).max(0.0);
            longest = longest.max(secs);
            blocked.push(json!({
                "pid": r.try_get::<i64, _>(0)?,
                "blocked_by": r.try_get::<Vec<i32>, _>(1)?,
                "seconds": round1(secs),
                "query": r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
            }));
        }
        let message = match blocked.first() {
            None => "no sessions are waiting on locks".to_owned(),
            Some(b) => format!(
                "{} session{} waiting on locks (longest {}s: pid {} blocked by {})",
                blocked.len(),
                if blocked.len() == 1 { "" } else { "s" },
                num(round1(longest)),
                b["pid"],
                b["blocked_by"]
            ),
        };
        Ok(graded(
            HealthCheck::BlockingLocks,
            longest,
            self.opts,
            json!(blocked.len()),
            message,
        )
        .with("longest_seconds", round1(longest))
        .with("blocked", blocked))
    }

    async fn disk(&mut self) -> CheckResult {
        let c = HealthCheck::DiskSpace;
        let rows = self
            .rows(
                "SELECT current_setting('data_directory')::text, \
                        coalesce(host(inet_server_addr()), '')::text, current_setting('port')::text",
            )
            .await;
        let (dir, addr, port): (String, String, String) = match rows.as_deref().map(|r| r.first()) {
            Ok(Some(r)) => (
                r.try_get(0).unwrap_or_default(),
                r.try_get(1).unwrap_or_default(),
                r.try_get(2).unwrap_or_default(),
            ),
            Ok(None) => return disk_skip("the server did not say where its data directory is"),
            Err(e) => {
                return disk_skip(&format!(
                    "not exposed: the server does not show its data directory to this role ({})",
                    describe(e)
                ));
            }
        };
        let local = addr.is_empty() || addr == "::1" || addr.starts_with("127.");
        if !local {
            return disk_skip(&format!(
                "not exposed: the server is remote ({addr}); measure its disk where it runs"
            ));
        }
        // A loopback connection can still reach a server in a container whose paths mean
        // something else here: only the server's own pid file proves the directory is its.
        let dir_path = Path::new(&dir);
        let pid_file = match std::fs::read_to_string(dir_path.join("postmaster.pid")) {
            Ok(t) => t,
            Err(e) => {
                return disk_skip(&format!(
                    "not exposed: cannot confirm `{dir}` is this server's data directory ({e}); run as the server's OS user to measure it"
                ));
            }
        };
        let lines: Vec<&str> = pid_file.lines().collect();
        let same = lines
            .get(1)
            .is_some_and(|d| Path::new(d.trim()) == dir_path)
            && lines.get(3).is_some_and(|p| p.trim() == port.trim());
        if !same {
            return disk_skip(&format!(
                "not exposed: `{dir}` here belongs to another server (its pid file names another directory or port)"
            ));
        }
        disk_result(c, dir_path, self.opts)
    }
}

struct Lite<'a> {
    conn: &'a mut sqlx::SqliteConnection,
    opts: &'a HealthOptions,
}

impl Lite<'_> {
    async fn rows(&mut self, sql: &str) -> Result<Vec<sqlx::sqlite::SqliteRow>, sqlx::Error> {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut *self.conn)
            .await
    }

    async fn tables(&mut self) -> Result<Vec<String>, sqlx::Error> {
        let rows = self
            .rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
            .await?;
        rows.iter().map(|r| r.try_get(0)).collect()
    }

    async fn run(&mut self, c: HealthCheck) -> CheckResult {
        let r = match c {
            HealthCheck::Connection => {
                let began = Instant::now();
                match self.rows("SELECT 1").await {
                    Ok(_) => {
                        let ms = round1(began.elapsed().as_secs_f64() * 1000.0);
                        Ok(graded(
                            c,
                            ms,
                            self.opts,
                            json!(ms),
                            format!("opened the SQLite database (round trip {} ms)", num(ms)),
                        )
                        .with("latency_ms", ms))
                    }
                    Err(e) => Ok(CheckResult::new(
                        c,
                        Status::Fail,
                        Json::Null,
                        format!("the database does not answer: {}", describe(&e)),
                    )),
                }
            }
            HealthCheck::Version => self.rows("SELECT sqlite_version()").await.and_then(|r| {
                let v: String = r.first().map(|r| r.try_get(0)).transpose()?.unwrap_or_default();
                // Thresholds are PostgreSQL major versions; they do not grade SQLite.
                Ok(CheckResult::new(
                    c,
                    Status::Pass,
                    json!(format!("SQLite {v}")),
                    format!("SQLite {v}"),
                ))
            }),
            HealthCheck::DatabaseSize => self
                .rows("SELECT p.page_count * s.page_size FROM pragma_page_count() p, pragma_page_size() s")
                .await
                .and_then(|r| {
                    let bytes: i64 = r.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
                    Ok(size_result(bytes, self.opts))
                }),
            HealthCheck::RowCounts => self.row_counts().await,
            HealthCheck::Indexes => self
                .rows("SELECT count(*) FROM sqlite_master WHERE type = 'index'")
                .await
                .and_then(|r| {
                    let n: i64 = r.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
                    Ok(graded(c, 0.0, self.opts, json!(n), format!("found {}", plural(n, "index", "indexes")))
                        .with("count", n)
                        .with("invalid", Vec::<String>::new()))
                }),
            HealthCheck::ForeignKeys => self.fks().await.map(|f| foreign_keys_result(&f, self.opts)),
            HealthCheck::OrphanedRows => self.orphans().await,
            HealthCheck::MigrationStatus => {
                return CheckResult::skip(c, "migration status runs separately");
            }
            HealthCheck::DiskSpace => return self.disk().await,
            HealthCheck::Connections
            | HealthCheck::CacheHitRatio
            | HealthCheck::LongRunningQueries
            | HealthCheck::BlockingLocks => {
                return CheckResult::skip(
                    c,
                    "not applicable to SQLite: it has no server, sessions or shared buffers",
                );
            }
        };
        r.unwrap_or_else(|e| errored(c, &e, self.opts))
    }

    async fn row_counts(&mut self) -> Result<CheckResult, sqlx::Error> {
        let mut counts = Map::new();
        let mut errors = Map::new();
        let mut total = 0;
        for t in self.tables().await? {
            match self
                .rows(&format!("SELECT count(*) FROM {}", quote(&t)))
                .await
            {
                Ok(r) => {
                    let n: i64 = r.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
                    total += n;
                    counts.insert(t, json!(n));
                }
                Err(e) => {
                    errors.insert(t, json!(describe(&e)));
                }
            }
        }
        Ok(row_counts_result(
            RowCounts {
                counts,
                partitions: Map::new(),
                estimated: Vec::new(),
                errors,
                total,
            },
            self.opts,
        ))
    }

    async fn fks(&mut self) -> Result<Vec<ForeignKey>, sqlx::Error> {
        let rows = self
            .rows(
                "SELECT m.name, f.id, f.\"table\", f.\"from\", coalesce(f.\"to\", '') \
                 FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
                 WHERE m.type = 'table' ORDER BY m.name, f.id, f.seq",
            )
            .await?;
        let mut out: Vec<(String, i64, ForeignKey)> = Vec::new();
        for r in rows {
            let (table, id, parent, from, to): (String, i64, String, String, String) = (
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            );
            match out.iter_mut().find(|(t, i, _)| *t == table && *i == id) {
                Some((_, _, fk)) => {
                    fk.columns.push(from);
                    fk.parent_columns.push(to);
                }
                None => out.push((
                    table.clone(),
                    id,
                    ForeignKey {
                        name: format!("{table}#{id}"),
                        table_sql: quote(&table),
                        parent_sql: quote(&parent),
                        table,
                        parent,
                        columns: vec![from],
                        parent_columns: vec![to],
                        validated: true,
                    },
                )),
            }
        }
        Ok(out.into_iter().map(|(_, _, f)| f).collect())
    }

    async fn orphans(&mut self) -> Result<CheckResult, sqlx::Error> {
        let fks = self.fks().await?;
        let rows = self
            .rows("SELECT \"table\", parent, fkid, count(*) FROM pragma_foreign_key_check GROUP BY 1, 2, 3 ORDER BY 1, 3")
            .await?;
        let mut found = Vec::new();
        for r in rows {
            let (table, parent, fkid, n): (String, String, i64, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            let name = format!("{table}#{fkid}");
            let fk = fks
                .iter()
                .find(|f| f.name == name)
                .cloned()
                .unwrap_or(ForeignKey {
                    name,
                    table_sql: quote(&table),
                    parent_sql: quote(&parent),
                    table,
                    parent,
                    columns: Vec::new(),
                    parent_columns: Vec::new(),
                    validated: true,
                });
            found.push((fk, n));
        }
        Ok(orphans_result(fks.len(), found, Vec::new(), self.opts))
    }

    async fn disk(&mut self) -> CheckResult {
        let file: Option<String> = self
            .rows("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .await
            .ok()
            .and_then(|r| r.first().and_then(|r| r.try_get(0).ok()));
        match file.filter(|f| !f.is_empty()) {
            Some(f) => {
                let dir = Path::new(&f)
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .to_path_buf();
                disk_result(HealthCheck::DiskSpace, &dir, self.opts)
            }
            None => disk_skip("not exposed: the database lives in memory"),
        }
    }
}

/// `1 row`, `2 rows`.
fn plural(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The first `max` characters of `text` on one line.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

fn size_result(bytes: i64, opts: &HealthOptions) -> CheckResult {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    graded(
        HealthCheck::DatabaseSize,
        mib,
        opts,
        json!(bytes),
        human_bytes(bytes),
    )
    .with("bytes", bytes)
    .with("human", human_bytes(bytes))
}

/// What the row count check measured.
struct RowCounts {
    /// Rows per table (partitioned tables with all their partitions).
    counts: Map<String, Json>,
    /// Rows per partition, counted only when a baseline names them.
    partitions: Map<String, Json>,
    /// Tables whose count is the planner's estimate.
    estimated: Vec<Json>,
    /// Tables that could not be counted, with why.
    errors: Map<String, Json>,
    total: i64,
}

fn row_counts_result(measured: RowCounts, opts: &HealthOptions) -> CheckResult {
    let RowCounts {
        counts,
        partitions,
        estimated,
        errors,
        total,
    } = measured;
    let n = counts.len();
    let mut message = format!(
        "counted {} ({})",
        plural(n as i64, "table", "tables"),
        plural(total, "row", "rows")
    );
    if !estimated.is_empty() {
        message.push_str(&format!(
            "; {} estimated from statistics",
            plural(estimated.len() as i64, "large table", "large tables")
        ));
    }
    let mut r = graded(
        HealthCheck::RowCounts,
        total as f64,
        opts,
        json!(total),
        message,
    );
    if !errors.is_empty() {
        r.status = r.status.max(Status::Warn);
        r.message = format!(
            "{}; could not count {}",
            r.message,
            errors.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if let Some(baseline) = &opts.baseline {
        let cmp = compare_counts(baseline, &counts, &partitions, &estimated, &errors);
        if !cmp.lost.is_empty() {
            r.status = Status::Fail;
            r.message = format!(
                "{}; {} fewer rows than the baseline: {}",
                r.message,
                plural(cmp.lost.len() as i64, "table has", "tables have"),
                cmp.lost
                    .iter()
                    .map(|(t, c)| match (c["after"].as_i64(), c.get("error")) {
                        (Some(after), _) => format!("{t} {} -> {after}", c["before"]),
                        (None, Some(_)) => format!("{t} {} -> could not count", c["before"]),
                        (None, None) => format!("{t} {} -> gone", c["before"]),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        } else {
            r.message = format!(
                "{}; no table has fewer rows than the baseline ({} compared)",
                r.message,
                plural(cmp.compared as i64, "table", "tables")
            );
        }
        r = r
            .with("baseline", cmp.changes)
            .with("lost", cmp.lost)
            .with("not_compared", cmp.not_compared);
        if !partitions.is_empty() {
            r = r.with("partitions", partitions);
        }
    }
    r.with("tables", counts)
        .with("estimated", estimated)
        .with("errors", errors)
        .with("total", total)
}

/// How the counts of now compare with a baseline.
struct CountComparison {
    /// Every baseline table: `{before, after}` (`after` is null for a table that is gone).
    changes: Map<String, Json>,
    /// The tables with fewer rows than before, or gone.
    lost: Map<String, Json>,
    /// Tables whose count is an estimate or could not be taken: not judged.
    not_compared: Vec<Json>,
    compared: usize,
}

/// The table a baseline key names, as the checks show it: a backup manifest's `public.T` is `T`.
pub fn baseline_name(key: &str) -> &str {
    key.strip_prefix("public.").unwrap_or(key)
}

/// Compares counts with a baseline, by `baseline_name`.
fn compare_counts(
    baseline: &BTreeMap<String, u64>,
    counts: &Map<String, Json>,
    partitions: &Map<String, Json>,
    estimated: &[Json],
    errors: &Map<String, Json>,
) -> CountComparison {
    let mut out = CountComparison {
        changes: Map::new(),
        lost: Map::new(),
        not_compared: Vec::new(),
        compared: 0,
    };
    for (key, &before) in baseline {
        let table = baseline_name(key);
        if estimated.iter().any(|e| e == table) {
            out.not_compared.push(json!(table));
            continue;
        }
        // A table that could not be counted may have lost rows: it fails the comparison.
        if let Some(why) = errors.get(table) {
            out.lost.insert(
                table.to_owned(),
                json!({"before": before, "after": null, "error": why}),
            );
            continue;
        }
        let after = counts
            .get(table)
            .or_else(|| partitions.get(table))
            .and_then(Json::as_i64);
        let change = json!({"before": before, "after": after});
        out.compared += 1;
        if after.is_none_or(|a| (a.max(0) as u64) < before) {
            out.lost.insert(table.to_owned(), change.clone());
        }
        out.changes.insert(table.to_owned(), change);
    }
    out
}

fn foreign_keys_result(fks: &[ForeignKey], opts: &HealthOptions) -> CheckResult {
    let unvalidated: Vec<String> = fks
        .iter()
        .filter(|f| !f.validated)
        .map(|f| format!("{}.{}", f.table, f.name))
        .collect();
    let mut message = format!(
        "found {}",
        plural(
            fks.len() as i64,
            "foreign key constraint",
            "foreign key constraints"
        )
    );
    if !unvalidated.is_empty() {
        message.push_str(&format!(
            ", {} not validated ({}): rows written before `NOT VALID` are unchecked; run `ALTER TABLE ... VALIDATE CONSTRAINT`",
            unvalidated.len(),
            unvalidated.join(", ")
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

fn orphans_result(
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
            plural(checked as i64, "foreign key", "foreign keys")
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
            parts.join("; ")
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

/// Where the target stands against the project's migrations, read the way the `migrate`
/// action reads them (its history table, its file layouts, Prisma's history).
async fn migration_status(db: &mut Db, opts: &HealthOptions) -> CheckResult {
    let c = HealthCheck::MigrationStatus;
    let dialect = if db.is_postgres() {
        migrate::Dialect::Postgres
    } else {
        migrate::Dialect::Sqlite
    };
    let exists = match history_table_exists(db).await {
        Ok(e) => e,
        Err(e) => {
            return CheckResult::new(
                c,
                Status::Warn,
                Json::Null,
                format!(
                    "could not look for `{}`: {}",
                    migrate::HISTORY_TABLE,
                    describe(&e)
                ),
            );
        }
    };
    // No migrations folder is not a problem of the database: nothing is pending.
    let (set, no_files) = match migrate::locate(&opts.migrations_dir, dialect, &opts.root) {
        Err(e) => (
            migrate::MigrationSet {
                dir: opts.migrations_dir.clone(),
                shown_dir: crate::source::display_path(&opts.migrations_dir),
                migrations: Vec::new(),
            },
            Some(e.to_string()),
        ),
        Ok(_) => match migrate::discover(&opts.migrations_dir, dialect, &opts.root) {
            Ok(set) => (set, None),
            Err(e) => {
                return CheckResult::new(
                    c,
                    Status::Warn,
                    Json::Null,
                    format!("cannot read the migration files: {e}"),
                );
            }
        },
    };
    let status = match migrate::status(db, &set).await {
        Ok(s) => s,
        Err(e) => {
            return CheckResult::new(
                c,
                Status::Warn,
                Json::Null,
                format!("could not read `{}`: {e}", migrate::HISTORY_TABLE),
            );
        }
    };
    let last = status.current_version.as_ref().map(|v| {
        match status.applied.iter().rev().find(|h| &h.version == v) {
            Some(h) if !h.name.is_empty() => format!("{v}_{}", h.name),
            _ => v.clone(),
        }
    });
    let pending: Vec<String> = status
        .pending
        .iter()
        .map(|p| format!("{}_{}", p.version, p.name))
        .collect();
    let drifted: Vec<String> = status
        .drifted
        .iter()
        .map(|d| format!("{}_{}", d.version, d.name))
        .collect();
    let missing: Vec<String> = if no_files.is_some() {
        Vec::new()
    } else {
        status
            .missing
            .iter()
            .map(|m| format!("{}_{}", m.version, m.name))
            .collect()
    };
    let mut message = match (&last, exists) {
        (Some(l), _) => format!("last migration: {l} ({} applied)", status.applied.len()),
        (None, false) if status.applied.is_empty() => format!(
            "no migrations applied (no `{}` table)",
            migrate::HISTORY_TABLE
        ),
        (None, _) => "no migrations applied".to_owned(),
    };
    if !pending.is_empty() {
        message.push_str(&format!(
            "; {} pending in `{}`: {}",
            pending.len(),
            set.shown_dir,
            pending.join(", ")
        ));
    }
    if !drifted.is_empty() {
        message.push_str(&format!(
            "; {} changed since applied: {}",
            drifted.len(),
            drifted.join(", ")
        ));
    }
    if !missing.is_empty() {
        message.push_str(&format!(
            "; {} applied without a file here: {}",
            missing.len(),
            missing.join(", ")
        ));
    }
    let mut r = graded(
        c,
        pending.len() as f64,
        opts,
        last.clone().map_or(Json::Null, Json::String),
        message,
    );
    // A changed migration file makes `migrate apply` refuse: never a plain pass.
    if !drifted.is_empty() {
        r.status = r.status.max(Status::Warn);
    }
    r.with("table_exists", exists)
        .with("applied", status.applied.len())
        .with("last", last.map_or(Json::Null, Json::String))
        .with("pending", pending)
        .with("drifted", drifted)
        .with("missing_files", missing)
        .with("files", set.migrations.len())
        .with("files_note", no_files.map_or(Json::Null, Json::String))
}

async fn history_table_exists(db: &mut Db) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "SELECT count(*) FROM {} WHERE {}",
        if db.is_postgres() {
            "pg_catalog.pg_tables"
        } else {
            "sqlite_master"
        },
        if db.is_postgres() {
            format!(
                "tablename = '{}' AND schemaname = ANY (current_schemas(false))",
                migrate::HISTORY_TABLE
            )
        } else {
            format!("type = 'table' AND name = '{}'", migrate::HISTORY_TABLE)
        }
    );
    let n: i64 = match db {
        Db::Postgres(c) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut *c)
                .await?
        }
        Db::Sqlite(c) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut *c)
                .await?
        }
    };
    Ok(n > 0)
}

fn disk_skip(reason: &str) -> CheckResult {
    CheckResult::skip(HealthCheck::DiskSpace, reason).with("free_percent", Json::Null)
}

/// Free space on the filesystem holding `dir`.
fn disk_result(check: HealthCheck, dir: &Path, opts: &HealthOptions) -> CheckResult {
    match statvfs(dir) {
        Ok((free, total)) if total > 0 => {
            let percent = round1(free as f64 * 100.0 / total as f64);
            graded(
                check,
                percent,
                opts,
                json!(percent),
                format!(
                    "{}% free ({} of {}) at `{}`",
                    num(percent),
                    human_bytes(free as i64),
                    human_bytes(total as i64),
                    dir.display()
                ),
            )
            .with("free_percent", percent)
            .with("free_bytes", free)
            .with("total_bytes", total)
            .with("path", dir.display().to_string())
        }
        Ok(_) => disk_skip(&format!(
            "not exposed: the filesystem at `{}` reports no size",
            dir.display()
        )),
        Err(e) => disk_skip(&format!(
            "not exposed: cannot measure `{}`: {e}",
            dir.display()
        )),
    }
}

/// Bytes available to unprivileged users, and the filesystem's size.
fn statvfs(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("the path holds a NUL byte"))?;
    let mut buf = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `buf` is a writable statvfs; the call writes
    // only into `buf` and we read it only when it reports success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `buf`.
    let s = unsafe { buf.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit targets).
    #[allow(clippy::unnecessary_cast)]
    let (frsize, bavail, blocks) = (s.f_frsize as u64, s.f_bavail as u64, s.f_blocks as u64);
    Ok((bavail.saturating_mul(frsize), blocks.saturating_mul(frsize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> HealthOptions {
        HealthOptions {
            checks: None,
            thresholds: BTreeMap::new(),
            migrations_dir: PathBuf::from("/nonexistent"),
            root: PathBuf::from("/"),
            statement_timeout: Duration::from_secs(30),
            baseline: None,
        }
    }

    #[test]
    fn counts_below_the_baseline_fail_naming_each_table() {
        let mut o = opts();
        o.baseline = Some(BTreeMap::from([
            ("public.User".to_owned(), 10),
            ("public.Plan".to_owned(), 6),
            ("Gone".to_owned(), 1),
            ("Big".to_owned(), 5_000_000),
        ]));
        let counts = Map::from_iter([
            ("User".to_owned(), json!(8)),
            ("Plan".to_owned(), json!(7)),
            ("Big".to_owned(), json!(4_000_000)),
        ]);
        let measured = |estimated: Vec<Json>, errors: Map<String, Json>| RowCounts {
            counts: counts.clone(),
            partitions: Map::from_iter([("Part_2024".to_owned(), json!(3))]),
            estimated,
            errors,
            total: 15,
        };
        let r = row_counts_result(measured(vec![json!("Big")], Map::new()), &o);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.message.ends_with(
                "2 tables have fewer rows than the baseline: Gone 1 -> gone, User 10 -> 8"
            ),
            "{}",
            r.message
        );
        assert_eq!(r.details["lost"]["User"], json!({"before": 10, "after": 8}));
        assert_eq!(
            r.details["baseline"]["Plan"],
            json!({"before": 6, "after": 7})
        );
        // An estimated count is not judged.
        assert_eq!(r.details["not_compared"], json!(["Big"]));

        // A partition (listed by a backup manifest) is compared with its own count.
        o.baseline = Some(BTreeMap::from([
            ("public.Plan".to_owned(), 6),
            ("public.Part_2024".to_owned(), 3),
        ]));
        let r = row_counts_result(measured(vec![], Map::new()), &o);
        assert_eq!(r.status, Status::Pass, "{}", r.message);
        assert!(r.message.ends_with("(2 tables compared)"), "{}", r.message);

        // A baseline table that could not be counted fails: it may have lost rows.
        let r = row_counts_result(
            measured(
                vec![],
                Map::from_iter([("Plan".to_owned(), json!("permission denied"))]),
            ),
            &o,
        );
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.message.ends_with("Plan 6 -> could not count"),
            "{}",
            r.message
        );
    }

    #[test]
    fn grading_follows_direction_and_overrides() {
        let c = HealthCheck::CacheHitRatio;
        assert_eq!(grade(c, 99.0, None).0, Status::Pass);
        assert_eq!(grade(c, 85.0, None).0, Status::Warn);
        assert_eq!(grade(c, 70.0, None).0, Status::Fail);
        let l = HealthCheck::LongRunningQueries;
        assert_eq!(grade(l, 59.9, None).0, Status::Pass);
        assert_eq!(grade(l, 60.0, None).0, Status::Warn);
        let t = Threshold {
            warn: Some(1.0),
            fail: None,
        };
        let (s, why) = grade(l, 2.0, Some(&t));
        assert_eq!(s, Status::Warn);
        assert_eq!(why.unwrap(), "warn at 1s or more");
        // The default fail threshold still applies when only warn is given.
        assert_eq!(grade(l, 301.0, Some(&t)).0, Status::Fail);
    }

    #[test]
    fn the_summary_counts_like_the_guide() {
        let mut r = HealthReport::default();
        for s in [Status::Pass, Status::Pass, Status::Warn, Status::Skip] {
            r.results
                .push(CheckResult::new(HealthCheck::Connection, s, Json::Null, ""));
        }
        assert_eq!(r.status(), Status::Warn);
        assert_eq!(
            r.summary(),
            "health check PASSED with warnings: 3 checks, 2 passed, 1 warning, 0 failed, 1 skipped"
        );
    }

    #[test]
    fn all_leaves_out_server_checks_on_sqlite_but_a_list_keeps_them() {
        let o = opts();
        assert!(!selected(&o, false).contains(&HealthCheck::CacheHitRatio));
        assert_eq!(selected(&o, true).len(), ALL.len());
        let mut listed = opts();
        listed.checks = Some(vec![HealthCheck::BlockingLocks, HealthCheck::Connection]);
        assert_eq!(
            selected(&listed, false),
            vec![HealthCheck::Connection, HealthCheck::BlockingLocks]
        );
    }

    #[test]
    fn an_unreachable_target_fails_the_connection_and_skips_the_rest() {
        let r = unreachable(&opts(), true, "cannot connect to postgres://h/db: refused");
        assert_eq!(r.status(), Status::Fail);
        assert_eq!(r.results.len(), ALL.len());
        assert_eq!(r.results[0].check, HealthCheck::Connection);
        assert_eq!(r.count(Status::Skip), ALL.len() - 1);
        assert_eq!(
            r.results[12].to_json()["message"],
            "no connection to the database"
        );
    }

    #[test]
    fn statvfs_measures_a_real_filesystem() {
        let (free, total) = statvfs(Path::new("/")).unwrap();
        assert!(total > 0 && free <= total);
        assert!(statvfs(Path::new("/no/such/dir")).is_err());
    }
}
