//! The health checks' SQLite queries. SQLite has no server: the checks of sessions, shared
//! buffers and locks do not apply, and the disk measured is the one holding the file.

use super::disk::{disk_result, disk_skip};
use super::grade::{graded, num, round1};
use super::integrity::{ForeignKey, foreign_keys_result, orphans_result};
use super::report::errored;
use super::volume::{RowCounts, row_counts_result, size_result};
use super::{CheckResult, HealthOptions, Status};
use crate::db::describe;
use crate::fmt::{plural, quote_ident as quote};
use crate::playbook::HealthCheck;
use serde_json::{Map, Value as Json, json};
use sqlx::Row;
use std::path::Path;
use std::time::Instant;

/// Runs `checks` on a SQLite connection; `migrations` is the migration status result,
/// measured beforehand.
pub(super) async fn run_checks(
    conn: &mut sqlx::SqliteConnection,
    opts: &HealthOptions,
    checks: Vec<HealthCheck>,
    mut migrations: Option<CheckResult>,
) -> Vec<CheckResult> {
    let mut lite = Lite { conn, opts };
    let mut results = Vec::new();
    for c in checks {
        results.push(match (c, migrations.take()) {
            (HealthCheck::MigrationStatus, Some(m)) => m,
            (_, m) => {
                migrations = m;
                lite.run(c).await
            }
        });
    }
    results
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
            // Reads the backup folder with the whole `Db`; `check` runs it after these.
            HealthCheck::BackupAge => return CheckResult::skip(c, "backup age runs separately"),
            HealthCheck::DiskSpace => return self.disk().await,
            HealthCheck::Connections
            | HealthCheck::CacheHitRatio
            | HealthCheck::LongRunningQueries
            | HealthCheck::BlockingLocks
            | HealthCheck::Deadlocks
            | HealthCheck::SlowStatements
            | HealthCheck::FailedQueries => {
                return CheckResult::skip(
                    c,
                    "not applicable to SQLite: it has no server, sessions or shared buffers",
                );
            }
            HealthCheck::Tls | HealthCheck::Superuser => {
                return CheckResult::skip(
                    c,
                    "not applicable to SQLite: a file has no connections or roles",
                );
            }
            HealthCheck::ReplicationLag | HealthCheck::Tablespaces | HealthCheck::Settings => {
                return CheckResult::skip(
                    c,
                    "not applicable to SQLite: a file has no replicas, tablespaces or server settings",
                );
            }
            HealthCheck::UnusedIndexes | HealthCheck::DeadTuples | HealthCheck::TableSizes => {
                return CheckResult::skip(
                    c,
                    "not applicable to SQLite: it keeps no index usage or tuple statistics",
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
