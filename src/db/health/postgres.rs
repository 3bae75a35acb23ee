//! The health checks' PostgreSQL queries: each in its own read-only transaction with a
//! statement and a lock timeout, but for the checks that read the tables and their keys, which
//! share one snapshot where the row and orphan counts run set-based (`snapshot.rs`). The checks of the server's activity are in `activity.rs`.

use super::disk::{DiskSource, command_result, disk_result, disk_unknown, limit_result};
use super::grade::{graded, num, round1};
use super::integrity::{ForeignKey, foreign_keys_result, orphans_result};
use super::report::errored;
use super::volume::{RowCounts, row_counts_result, size_result};
use super::{CheckResult, HealthOptions, Status};
use crate::db::describe;
use crate::fmt::{list_some, plural, quote_ident as quote};
use crate::playbook::HealthCheck;
use serde_json::{Map, Value as Json, json};
use sqlx::{Connection, Row};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Tables estimated to hold more rows than this are not counted exactly: `count(*)` reads the
/// whole table, which on a large production table takes minutes.
const EXACT_COUNT_LIMIT: f64 = 1_000_000.0;

/// Runs `checks` on a PostgreSQL connection; `migrations` is the migration status result,
/// measured beforehand. Nothing but the connection check runs when the server does not
/// answer.
pub(super) async fn run_checks(
    conn: &mut sqlx::PgConnection,
    opts: &HealthOptions,
    checks: Vec<HealthCheck>,
    mut migrations: Option<CheckResult>,
) -> Vec<CheckResult> {
    let mut pg = Pg::on(conn, opts);
    let mut results = Vec::new();
    // The server version decides which catalog columns exist; the connection check reads it
    // whether or not it is shown.
    let connected = pg.connection().await;
    let ok = connected.status != Status::Fail;
    if checks.contains(&HealthCheck::Connection) || !ok {
        results.push(connected);
    }
    // Each check's result in its place: the helper may measure the size checks out of turn.
    let mut slots: Vec<Option<CheckResult>> = checks.iter().map(|_| None).collect();
    let early = if ok { side_at(&checks, opts) } else { None };
    // Size checks held back for the helper that it did not measure: run once the snapshot
    // has ended.
    let mut later = Vec::new();
    for (i, &c) in checks.iter().enumerate() {
        // A size check before `row_counts` waits for the helper `row_counts` may open.
        let waits = early.is_some_and(|at| i < at && SIDE.contains(&c));
        if c == HealthCheck::Connection || slots[i].is_some() || waits {
            continue;
        }
        // The checks that read the tables share one snapshot; the others each their own.
        if !SNAPSHOT.contains(&c) {
            pg.end_snapshot().await;
            // The helper's connection (out of its transaction since the snapshot ended)
            // stays open only for `table_sizes` after a split of `row_counts`, and only
            // until it has run.
            if pg.split.is_none() || !checks[i..].contains(&HealthCheck::TableSizes) {
                pg.close_helper().await;
            }
            for j in std::mem::take(&mut later) {
                slots[j] = Some(pg.run(checks[j]).await);
            }
        } else if ok {
            // Not had: each of them opens its own transaction, and says why it failed.
            let _ = pg.begin_snapshot().await;
        }
        slots[i] = Some(match (ok, c) {
            (false, _) => CheckResult::skip(c, "no connection to the database"),
            (true, HealthCheck::MigrationStatus) => match migrations.take() {
                Some(m) => m,
                None => pg.run(c).await,
            },
            (true, _) => pg.run(c).await,
        });
        if early == Some(i) {
            later = pg.side_checks(&checks, &mut slots, i).await;
        }
    }
    pg.end_snapshot().await;
    pg.close_helper().await;
    for j in later {
        slots[j] = Some(pg.run(checks[j]).await);
    }
    results.extend(slots.into_iter().flatten());
    results
}

/// The checks that read sizes from the server's files (`pg_database_size`,
/// `pg_tablespace_size`: a walk of every file, the longest single queries on a large
/// database or server, taking no table's lock), which the helper measures while the checks'
/// connection reads the catalog (`side.rs`).
pub(super) const SIDE: &[HealthCheck] = &[HealthCheck::DatabaseSize, HealthCheck::Tablespaces];

/// Where the helper may take the size checks: right after `row_counts` (which opens it when
/// it splits the counts), when a catalog read of the snapshot follows for the checks'
/// connection to make meanwhile and a size check is asked for; `None` otherwise.
fn side_at(checks: &[HealthCheck], opts: &HealthOptions) -> Option<usize> {
    let at = checks.iter().position(|&c| c == HealthCheck::RowCounts)?;
    let catalog = matches!(
        checks.get(at + 1),
        Some(HealthCheck::Indexes | HealthCheck::ForeignKeys)
    );
    (opts.url.is_some() && catalog && checks.iter().any(|c| SIDE.contains(c))).then_some(at)
}

/// The checks that read the tables and their keys, in one snapshot.
const SNAPSHOT: &[HealthCheck] = &[
    HealthCheck::RowCounts,
    HealthCheck::Indexes,
    HealthCheck::ForeignKeys,
    HealthCheck::OrphanedRows,
];

/// The statement timeout of each query and its lock timeout (at most 5 s), in milliseconds.
pub(super) fn timeouts(opts: &HealthOptions) -> (u128, u128) {
    let ms = opts.statement_timeout.as_millis().max(1);
    (ms, ms.min(5_000))
}

/// `SET LOCAL` of the statement and lock timeouts (`timeouts`), for a transaction's start.
pub(super) fn set_timeouts(opts: &HealthOptions) -> String {
    let (ms, lock_ms) = timeouts(opts);
    format!("SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {lock_ms}")
}

/// One query on `conn` in its own read-only transaction, bounded by the statement and lock
/// timeouts, with `binds` bound to `$1`, `$2`... as text.
pub(super) async fn own_rows(
    conn: &mut sqlx::PgConnection,
    opts: &HealthOptions,
    sql: &str,
    binds: &[String],
) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET TRANSACTION READ ONLY; {}",
        set_timeouts(opts)
    )))
    .execute(&mut *tx)
    .await?;
    let rows = bound(sql, binds).fetch_all(&mut *tx).await;
    // Read only: there is nothing to undo, and a broken connection shows on the next query.
    let _ = tx.rollback().await;
    rows
}

/// `sql` with `binds` bound to `$1`, `$2`... as text.
fn bound<'q>(
    sql: &str,
    binds: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for b in binds {
        query = query.bind(b.as_str());
    }
    query
}

/// Each foreign key's count of the rows whose key is set and has no parent row.
fn orphan_queries(fks: &[ForeignKey]) -> Vec<String> {
    fks.iter()
        .map(|fk| {
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
            format!(
                "SELECT count(*)::int8 FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
                fk.table_sql,
                not_null.join(" AND "),
                fk.parent_sql,
                join.join(" AND ")
            )
        })
        .collect()
}

/// The orphaned rows check from each foreign key's count (`orphan_queries`, in order).
pub(super) fn orphans_counted(
    fks: &[ForeignKey],
    counted: Vec<Result<i64, sqlx::Error>>,
    opts: &HealthOptions,
) -> CheckResult {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (fk, n) in fks.iter().zip(counted) {
        match n {
            Ok(n) if n > 0 => found.push((fk.clone(), n)),
            Ok(_) => {}
            Err(e) => errors
                .push(json!({"constraint": fk.name, "table": fk.table, "error": describe(&e)})),
        }
    }
    orphans_result(fks.len(), found, errors, opts)
}

/// `table` for the public schema, `schema.table` otherwise.
fn shown(schema: &str, table: &str) -> String {
    if schema == "public" {
        table.to_owned()
    } else {
        format!("{schema}.{table}")
    }
}

pub(super) struct Pg<'a> {
    pub(super) conn: &'a mut sqlx::PgConnection,
    pub opts: &'a HealthOptions,
    fks: Option<Vec<ForeignKey>>,
    /// `server_version_num`, read by the connection check.
    pub version_num: i64,
    /// Whether the shared snapshot (`snapshot.rs`) is open on the connection.
    pub(super) in_snapshot: bool,
    /// The shared snapshot's identifier, exported for a helper (`helper.rs`); `None` when it
    /// could not be, or a helper could not be had in it.
    pub(super) snapshot_id: Option<String>,
    /// The helper counting in the shared snapshot, once opened; its connection stays open
    /// after the snapshot, for `table_sizes`, until `close_helper`.
    pub(super) helper: Option<super::helper::Helper>,
    /// The server processes of the helpers this run opened, which the activity checks leave
    /// out.
    pub(super) helper_pids: Vec<i32>,
    /// Where the helper's part of `row_counts`' tables begins (schema, table): each
    /// connection has opened the tables of its part, so `table_sizes` sizes them there.
    pub(super) split: Option<(String, String)>,
    /// Set by `counts_in_snapshot` (not by the orphan counts `side.rs` shares): where the
    /// helper's part of that list began (it took from the back: `shared.rs`); `None` when it
    /// counted none of it.
    pub(super) helper_from: Option<usize>,
}

impl<'a> Pg<'a> {
    /// The checks on `conn`, outside any snapshot, with no helper.
    pub(super) fn on(conn: &'a mut sqlx::PgConnection, opts: &'a HealthOptions) -> Pg<'a> {
        Pg {
            conn,
            opts,
            fks: None,
            version_num: 0,
            in_snapshot: false,
            snapshot_id: None,
            helper: None,
            helper_pids: Vec::new(),
            split: None,
            helper_from: None,
        }
    }
}

impl Pg<'_> {
    /// One query in its own read-only transaction, bounded by the statement and lock timeouts,
    /// or in the shared snapshot when it is open.
    pub async fn rows(&mut self, sql: &str) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
        if self.in_snapshot {
            return self.rows_in_snapshot(sql).await;
        }
        own_rows(self.conn, self.opts, sql, &[]).await
    }

    pub(super) async fn run(&mut self, c: HealthCheck) -> CheckResult {
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
            // Reads the backup folder with the whole `Db`; `check` runs it after these.
            HealthCheck::BackupAge => return CheckResult::skip(c, "backup age runs separately"),
            HealthCheck::DiskSpace => return self.disk().await,
            HealthCheck::Tls => self.tls().await,
            HealthCheck::Superuser => self.superuser().await,
            HealthCheck::Deadlocks => self.deadlocks().await,
            HealthCheck::SlowStatements => self.slow_statements().await,
            HealthCheck::UnusedIndexes => self.unused_indexes().await,
            HealthCheck::DeadTuples => self.dead_tuples().await,
            HealthCheck::TableSizes => self.table_sizes().await,
            HealthCheck::ReplicationLag => self.replication_lag().await,
            HealthCheck::Tablespaces => self.tablespaces().await,
            HealthCheck::Settings => self.settings().await,
            HealthCheck::FailedQueries => self.failed_queries().await,
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

    /// A size check (`SIDE`) with its error, for the helper to leave it to the checks'
    /// connection when it fails; any other check as `run` gives it.
    pub(super) async fn side(&mut self, c: HealthCheck) -> Result<CheckResult, sqlx::Error> {
        match c {
            HealthCheck::DatabaseSize => self.size().await,
            HealthCheck::Tablespaces => self.tablespaces().await,
            other => Ok(self.run(other).await),
        }
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
        // The tables counted exactly: their label, whether a partition, and the query.
        let mut counted = Vec::new();
        let mut queries = Vec::new();
        // Each counted table's schema and name, in the order counted.
        let mut names = Vec::new();
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
            queries.push(format!(
                "SELECT count(*)::int8 FROM {}.{}",
                quote(&schema),
                quote(&table)
            ));
            counted.push((label, partition));
            names.push((schema, table));
        }
        let numbers = self.counts(&queries).await?;
        if self.helper.is_some() {
            // `counts` shared the list with the helper, which counted it from `helper_from`.
            self.split = self.helper_from.and_then(|i| names.get(i).cloned());
        }
        for ((label, partition), n) in counted.into_iter().zip(numbers) {
            match n {
                Ok(n) if partition => {
                    partitions.insert(label, json!(n));
                }
                Ok(n) => {
                    total += n;
                    counts.insert(label, json!(n));
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
                list_some(&invalid)
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
        let counted = self.counts(&orphan_queries(&fks)).await?;
        Ok(orphans_counted(&fks, counted, self.opts))
    }

    /// The foreign keys (read once, `foreign_keys`' list) and their orphan counts' statements,
    /// for counting elsewhere (`shared.rs`).
    pub(super) async fn orphan_list(
        &mut self,
    ) -> Result<(Vec<ForeignKey>, Vec<String>), sqlx::Error> {
        let fks = self.load_fks().await?;
        let queries = orphan_queries(&fks);
        Ok((fks, queries))
    }

    async fn disk(&mut self) -> CheckResult {
        if let Some(source) = self.opts.disk.clone() {
            return self.disk_from(source).await;
        }
        match self.local_data_dir().await {
            Ok(Ok(dir)) => disk_result(HealthCheck::DiskSpace, &dir, self.opts),
            Ok(Err(why)) => disk_unknown(&why),
            Err(e) => {
                errored(HealthCheck::DiskSpace, &e, self.opts).with("free_percent", Json::Null)
            }
        }
    }

    /// The server's data directory as a path on this machine, when runbook runs beside the
    /// server, may read the setting, and the server's own pid file there proves the path means
    /// the same here; otherwise why it cannot be known (`Ok(Err(why))`).
    pub(super) async fn local_data_dir(&mut self) -> Result<Result<PathBuf, String>, sqlx::Error> {
        let rows = self
            .rows(
                "SELECT current_user::text, coalesce(host(inet_server_addr()), '')::text, \
                        current_setting('port')::text",
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(Err("the server did not say who and where it is".to_owned()));
        };
        let (role, addr, port): (String, String, String) = (
            r.try_get(0).unwrap_or_default(),
            r.try_get(1).unwrap_or_default(),
            r.try_get(2).unwrap_or_default(),
        );
        let local = addr.is_empty() || addr == "::1" || addr.starts_with("127.");
        if !local {
            return Ok(Err(format!(
                "the server is remote ({addr}): its file system cannot be read from here"
            )));
        }
        // `data_directory` is shown only to superusers and members of pg_read_all_settings.
        let dir: String = match self
            .rows("SELECT current_setting('data_directory')::text")
            .await
        {
            Ok(r) => match r.first().and_then(|r| r.try_get(0).ok()) {
                Some(d) => d,
                None => {
                    return Ok(Err(
                        "the server did not say where its data directory is".to_owned()
                    ));
                }
            },
            Err(e) => {
                let denied =
                    matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42501"));
                let why = if denied {
                    "it needs pg_read_all_settings or superuser".to_owned()
                } else {
                    describe(&e)
                };
                return Ok(Err(format!(
                    "role `{role}` may not read the data directory ({why})"
                )));
            }
        };
        // A loopback connection can still reach a server in a container whose paths mean
        // something else here: only the server's own pid file proves the directory is its.
        let dir_path = PathBuf::from(&dir);
        let pid_file = match std::fs::read_to_string(dir_path.join("postmaster.pid")) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Err(format!(
                    "cannot confirm `{dir}` is this server's data directory ({e}); run as the server's OS user to measure it"
                )));
            }
        };
        let lines: Vec<&str> = pid_file.lines().collect();
        let same = lines
            .get(1)
            .is_some_and(|d| Path::new(d.trim()) == dir_path)
            && lines.get(3).is_some_and(|p| p.trim() == port.trim());
        if !same {
            return Ok(Err(format!(
                "`{dir}` here belongs to another server (its pid file names another directory or port)"
            )));
        }
        Ok(Ok(dir_path))
    }

    /// Free disk from where the environment says the figure comes from.
    async fn disk_from(&mut self, source: DiskSource) -> CheckResult {
        match source {
            DiskSource::Command { command, figure } => command_result(&command, figure, self.opts),
            DiskSource::Limit(limit) => {
                let used = self
                    .rows("SELECT pg_database_size(current_database())::int8")
                    .await
                    .map(|r| r.first().and_then(|r| r.try_get::<i64, _>(0).ok()));
                match used {
                    Ok(Some(used)) => {
                        limit_result(u64::try_from(used).unwrap_or(0), limit, self.opts)
                    }
                    Ok(None) => disk_unknown("the server did not say how large the database is"),
                    Err(e) => errored(HealthCheck::DiskSpace, &e, self.opts)
                        .with("free_percent", Json::Null),
                }
            }
        }
    }
}
