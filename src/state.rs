//! The state store: runs, their steps and their events, in SQLite under `.runbook/` by default
//! or in a shared PostgreSQL database, so operators and CI runners share run history.
//!
//! Every event is written in one transaction with the step or run row it changes and the line
//! of its audit record, and that transaction is durable (SQLite `synchronous=FULL`, PostgreSQL
//! commit) before the action it announces starts: a crash leaves a record that says what may
//! have happened. It is the run's one fsync per event: the audit chain is written without one,
//! and what a system crash took from it is written back from the lines kept here.

use crate::run::{Event, Phase, RunRecord, RunStatus, StepRecord, StepStatus};
use crate::state_write as write;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};
use std::path::Path;
use std::str::FromStr;

pub use crate::state_fleets::{FleetRecord, FleetTarget};
pub use crate::state_sqlite::Durable;

/// Where the state store is.
#[derive(Debug, Clone)]
pub enum StateSpec {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("state store: cannot create `{path}`: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("state store: {0}")]
    Corrupt(String),
    #[error("state store: {0}")]
    Write(#[from] rusqlite::Error),
    #[error("state store: cannot fsync its write-ahead log: {0}")]
    Sync(std::io::Error),
}

#[derive(Debug, Clone)]
pub struct StateStore {
    pub(crate) pool: AnyPool,
    /// The connection the store writes events on, held while it is open; which kind it is
    /// says which database the store is.
    writes: Writes,
    /// A `Durable::WithNext` commit was made and no `Now` commit or `sync` followed it.
    unflushed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Where a store's writes go: on PostgreSQL a connection of the pool, held; on SQLite a
/// connection of its own, stepped on the caller's thread (`state_sqlite.rs`).
#[derive(Debug, Clone)]
enum Writes {
    Postgres(write::Writer),
    Sqlite(crate::state_sqlite::Writer),
}

impl StateStore {
    pub async fn open(spec: &StateSpec) -> Result<Self, StateError> {
        sqlx::any::install_default_drivers();
        let (url, writes) = match spec {
            StateSpec::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StateError::Folder {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                // WAL with synchronous=FULL: each commit is fsynced before it returns.
                let writes = Writes::Sqlite(crate::state_sqlite::Writer::new(path));
                (format!("sqlite://{}?mode=rwc", path.display()), writes)
            }
            // One connection first: the pool would retry until its timeout and then say only
            // that it timed out, not that the password was wrong.
            StateSpec::Postgres(url) => Self::probe(url)
                .await
                .map(|()| (url.clone(), Writes::Postgres(write::Writer::default())))?,
        };
        let postgres = matches!(writes, Writes::Postgres(_));
        let opts = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if postgres { 4 } else { 1 })
            // The pool pings a connection before each use, one round trip per event more:
            // only one idle for a while is asked whether it still answers (a step can take
            // minutes, and a server or a firewall may have dropped it meanwhile).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > write::IDLE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if !postgres {
                        // WAL with synchronous=FULL: each commit is fsynced before it returns.
                        sqlx::query("PRAGMA busy_timeout=10000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA journal_mode=WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous=FULL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        crate::state_layout::migrate(&pool, postgres).await?;
        Ok(StateStore {
            pool,
            writes,
            unflushed: std::sync::Arc::default(),
        })
    }

    /// Whether a PostgreSQL store answers, asked once: opening retries until the pool's
    /// timeout, long for a question an auditor waits on.
    pub async fn probe(url: &str) -> Result<(), StateError> {
        use sqlx::Connection;
        sqlx::PgConnection::connect(url).await?.close().await?;
        Ok(())
    }

    /// The default store of a project: `.runbook/state.db`.
    pub fn default_spec(root: &Path) -> StateSpec {
        StateSpec::Sqlite(root.join(".runbook").join("state.db"))
    }

    /// A write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`):
    /// a deferred transaction that reads and then writes fails at once with "database is
    /// locked" when another process wrote in between, and the busy timeout cannot help it.
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        if self.is_postgres() {
            self.pool.begin().await
        } else {
            self.pool.begin_with("BEGIN IMMEDIATE").await
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.writes, Writes::Postgres(_))
    }

    /// Records a new run and its `run_started` event: on PostgreSQL in one statement (the run
    /// in a CTE), on SQLite in one transaction.
    pub async fn create_run(
        &self,
        run: &RunRecord,
        target_key: &str,
        event: &Event,
        audit: Option<&crate::audit::Written>,
    ) -> Result<(), StateError> {
        let at = crate::run::now_ms();
        let mut params = run_params(run, target_key);
        params.extend(write::event_params(at, event, audit));
        params.push(write::line_param(audit));
        // The run's eighteen values (`$1` to `$18`), then its first event's.
        static SQL: std::sync::LazyLock<(String, Vec<String>)> =
            std::sync::LazyLock::new(|| row_and_event(RUN_INSERT, 19));
        self.write((&SQL.0, &SQL.1), params).await
    }

    /// Appends an event and applies it to the step and run rows, durably and as a whole: on
    /// PostgreSQL one statement (one round trip, `state_write.rs`), on SQLite one transaction.
    pub async fn record(
        &self,
        run_id: &str,
        event: &Event,
        audit: Option<&crate::audit::Written>,
    ) -> Result<(), StateError> {
        self.record_as(run_id, event, audit, Durable::Now).await
    }

    /// [`StateStore::record`], its commit as durable as `durable` says: on SQLite (in WAL mode)
    /// `synchronous=NORMAL` for a `WithNext` commit, on PostgreSQL `synchronous_commit = off`
    /// for its statement; either is flushed by the next `Now` commit or by `sync`.
    pub async fn record_as(
        &self,
        run_id: &str,
        event: &Event,
        audit: Option<&crate::audit::Written>,
        durable: Durable,
    ) -> Result<(), StateError> {
        let at = crate::run::now_ms();
        let effects = write::Effects::of(event);
        match &self.writes {
            Writes::Postgres(writer) => {
                write::record_postgres(
                    (writer, &self.pool),
                    run_id,
                    (event, &effects),
                    audit,
                    (at, durable),
                )
                .await?;
            }
            Writes::Sqlite(writer) => {
                let (statements, params) =
                    crate::state_sqlite::record(run_id, (event, &effects), audit, at);
                writer.execute_as(statements, &params, durable).await?;
            }
        }
        self.unflushed.store(
            durable == Durable::WithNext,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    }

    /// Puts on the disk the commits `Durable::WithNext` left unflushed, if any since the last
    /// `Now` commit: on SQLite the write-ahead log fsynced; on PostgreSQL a synchronous commit
    /// that writes (an update of the store's version row to itself: a commit that wrote nothing
    /// would not wait for the flush), which the server flushes with every commit before it.
    pub async fn sync(&self) -> Result<(), StateError> {
        use std::sync::atomic::Ordering;
        if !self.unflushed.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.sync_now().await?;
        self.unflushed.store(false, Ordering::Relaxed);
        Ok(())
    }

    async fn sync_now(&self) -> Result<(), StateError> {
        match &self.writes {
            Writes::Postgres(_) => {
                sqlx::query("UPDATE runbook_meta SET value = value WHERE key = 'state_version'")
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
            Writes::Sqlite(writer) => writer.sync().map_err(StateError::Sync),
        }
    }

    /// One write on the store's writer: on PostgreSQL the one statement `pg`, on SQLite the
    /// statements `lite` in one transaction, both reading `params` (`$n`).
    async fn write(
        &self,
        (pg, lite): (&str, &[impl AsRef<str>]),
        params: Vec<write::Param>,
    ) -> Result<(), StateError> {
        match &self.writes {
            Writes::Postgres(writer) => {
                let q = write::bind(sqlx::query(sqlx::AssertSqlSafe(pg)), params);
                writer.execute(&self.pool, q).await?;
            }
            Writes::Sqlite(writer) => writer.execute(lite, &params).await?,
        }
        Ok(())
    }

    pub async fn load_run(&self, id: &str) -> Result<Option<RunRecord>, StateError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{RUN_COLUMNS} WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| run_from(&r)).transpose()
    }

    /// Recent runs, newest first. On SQLite they are read on this thread (a listing of many
    /// runs through the pool's worker would hand each row over on its own).
    pub async fn list_runs(&self, limit: i64) -> Result<Vec<RunRecord>, StateError> {
        let sql = format!("{RUN_COLUMNS} ORDER BY started_at DESC, id DESC LIMIT $1");
        if let Writes::Sqlite(writer) = &self.writes {
            return writer
                .read(|conn| {
                    let mut stmt = conn.prepare(&sql)?;
                    let mut rows = stmt.query([limit])?;
                    let mut runs = Vec::new();
                    while let Some(row) = rows.next()? {
                        runs.push(run_from(row));
                    }
                    Ok(runs)
                })?
                .into_iter()
                .collect();
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run_from).collect()
    }

    /// Runs whose id starts with `prefix`, so a unique prefix names a run.
    pub async fn find_runs(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let rows = sqlx::query("SELECT id FROM runbook_runs WHERE id LIKE $1 ORDER BY id LIMIT 10")
            .bind(format!("{}%", prefix.replace(['%', '_'], "")))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect())
    }

    pub async fn load_steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StateError> {
        let rows = sqlx::query(
            "SELECT step, phase, status, attempts, started_at, finished_at, outputs, error, db_change
             FROM runbook_steps WHERE run_id = $1 ORDER BY COALESCE(started_at, finished_at, 0), ord",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let phase: String = r.try_get(1)?;
                let status: String = r.try_get(2)?;
                let outputs: String = r.try_get(6)?;
                let change: Option<String> = r.try_get(8)?;
                Ok(StepRecord {
                    step: r.try_get(0)?,
                    phase: Phase::parse(&phase)
                        .ok_or_else(|| StateError::Corrupt(format!("phase `{phase}`")))?,
                    status: StepStatus::parse(&status)
                        .ok_or_else(|| StateError::Corrupt(format!("status `{status}`")))?,
                    attempts: r.try_get(3)?,
                    started_at: r.try_get(4)?,
                    finished_at: r.try_get(5)?,
                    outputs: serde_json::from_str(&outputs).unwrap_or(serde_json::Value::Null),
                    error: r.try_get(7)?,
                    change: change.and_then(|c| serde_json::from_str(&c).ok()),
                })
            })
            .collect()
    }

    /// The events of a run in order.
    pub async fn load_events(
        &self,
        run_id: &str,
    ) -> Result<Vec<(i64, i64, String, Option<String>, serde_json::Value)>, StateError> {
        let rows = sqlx::query(
            "SELECT seq, at, kind, step, data FROM runbook_events WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let data: String = r.try_get(4)?;
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    serde_json::from_str(&data).unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// The running run on a target, if any (to name the holder of a lock).
    pub async fn running_on(&self, target_key: &str) -> Result<Option<RunRecord>, StateError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUN_COLUMNS} WHERE target_key = $1 AND status = 'running' ORDER BY started_at DESC LIMIT 1"
        )))
        .bind(target_key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| run_from(&r)).transpose()
    }

    /// Records an approval or rejection of a gate with its event: on PostgreSQL in one
    /// statement, on SQLite in one transaction.
    pub async fn record_approval(
        &self,
        run_id: &str,
        a: &crate::run::Approval,
        audit: Option<&crate::audit::Written>,
    ) -> Result<(), StateError> {
        const INSERT: &str = "INSERT INTO runbook_approvals (run_id, gate, actor, decision, comment, plan_hash, at, signed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let at = crate::run::now_ms();
        let event = a.event();
        let mut params: Vec<write::Param> = vec![
            run_id.into(),
            a.gate.clone().into(),
            a.actor.clone().into(),
            a.decision.clone().into(),
            a.comment.clone().into(),
            a.plan_hash.clone().into(),
            a.at.into(),
            a.signed
                .as_ref()
                .map(|x| serde_json::json!(x).to_string())
                .into(),
        ];
        params.extend(write::event_params(at, &event, audit));
        params.push(write::line_param(audit));
        // The approval's eight values (`$1` to `$8`), then its event's.
        static SQL: std::sync::LazyLock<(String, Vec<String>)> =
            std::sync::LazyLock::new(|| row_and_event(INSERT, 9));
        self.write((&SQL.0, &SQL.1), params).await
    }

    /// The audit chain head the state store recorded for a run.
    pub async fn audit_head(&self, run_id: &str) -> Result<Option<crate::audit::Head>, StateError> {
        let row = sqlx::query(
            "SELECT audit_seq, audit_hash FROM runbook_events WHERE run_id = $1 AND audit_seq IS NOT NULL
             ORDER BY audit_seq DESC LIMIT 1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => {
                let seq: i64 = r.try_get(0)?;
                let hash: String = r.try_get(1)?;
                (seq > 0).then_some(crate::audit::Head { seq, hash })
            }
            None => None,
        })
    }

    /// The audit lines the store holds of a run's records after record `after`, in order:
    /// what a chain cut short by a system crash lacks (`audit::write_back`).
    pub async fn audit_lines(
        &self,
        run_id: &str,
        after: i64,
    ) -> Result<Vec<(i64, String)>, StateError> {
        let rows = sqlx::query(
            "SELECT audit_seq, audit_line FROM runbook_events
             WHERE run_id = $1 AND audit_seq > $2 AND audit_line IS NOT NULL ORDER BY audit_seq",
        )
        .bind(run_id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Notes that the run's audit chain was fsynced through record `seq`: a chain with fewer
    /// records was cut short afterwards, which no crash does, so it is not written back.
    pub async fn chain_synced(&self, run_id: &str, seq: i64) -> Result<(), StateError> {
        // On the writer's connection, as every other write of the store.
        const SQL: &str =
            "UPDATE runbook_runs SET audit_synced = $2 WHERE id = $1 AND audit_synced < $2";
        self.write((SQL, &[SQL]), vec![run_id.into(), seq.into()])
            .await
    }

    /// The last record the run's audit chain is known to have been fsynced through.
    pub async fn audit_synced(&self, run_id: &str) -> Result<i64, StateError> {
        let row = sqlx::query("SELECT audit_synced FROM runbook_runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => 0,
        })
    }

    /// The approvals and rejections of one gate of a run, oldest first.
    pub async fn approvals(
        &self,
        run_id: &str,
        gate: &str,
    ) -> Result<Vec<crate::run::Approval>, StateError> {
        let rows = sqlx::query(
            "SELECT gate, actor, decision, comment, plan_hash, at, signed FROM runbook_approvals WHERE run_id = $1 AND gate = $2 ORDER BY at",
        )
        .bind(run_id)
        .bind(gate)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::run::Approval {
                    gate: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    decision: r.try_get(2)?,
                    comment: r.try_get(3)?,
                    plan_hash: r.try_get(4)?,
                    at: r.try_get(5)?,
                    signed: r
                        .try_get::<Option<String>, _>(6)?
                        .and_then(|t| serde_json::from_str(&t).ok()),
                })
            })
            .collect()
    }

    /// The latest successful run of `playbook` on `env` started after `since` (ms).
    pub async fn last_success(
        &self,
        playbook: &str,
        env: &str,
        since: i64,
    ) -> Result<Option<RunRecord>, StateError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUN_COLUMNS} WHERE playbook = $1 AND env = $2 AND status = 'succeeded' AND started_at >= $3 ORDER BY started_at DESC LIMIT 1"
        )))
        .bind(playbook)
        .bind(env)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| run_from(&r)).transpose()
    }

    /// Successful runs of `playbook` on `env` since `since`, newest first (to explain an unmet
    /// requirement).
    pub async fn successes(
        &self,
        playbook: &str,
        env: &str,
        since: i64,
    ) -> Result<Vec<RunRecord>, StateError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUN_COLUMNS} WHERE playbook = $1 AND env = $2 AND status = 'succeeded' AND started_at >= $3 ORDER BY started_at DESC LIMIT 20"
        )))
        .bind(playbook)
        .bind(env)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from).collect()
    }

    /// Closes the writer and the pool. On SQLite the pool goes first, so a writer's connection,
    /// when a write opened one, is the file's last and does not checkpoint on closing
    /// (`state_sqlite::open`); a store that only read closes with its pool's connection last,
    /// which checkpoints what the runs before left in the WAL.
    pub async fn close(&self) {
        match &self.writes {
            Writes::Postgres(writer) => {
                writer.close().await;
                self.pool.close().await;
            }
            Writes::Sqlite(writer) => {
                self.pool.close().await;
                writer.close();
            }
        }
    }
}

/// A row's `insert` and the insert of its event, whose values start at `$first` (its audit line
/// seven after): on PostgreSQL one statement (the row in a CTE), on SQLite the two statements
/// of one transaction.
fn row_and_event(insert: &str, first: usize) -> (String, Vec<String>) {
    let event = write::event_insert(first, first + 7);
    (
        format!("WITH r AS ({insert}) {event}"),
        vec![insert.to_owned(), event],
    )
}

const RUN_COLUMNS: &str = "SELECT id, playbook, file, env, target, operator, host, content_hash, plan_hash, params, vars, tags,
    status, started_at, finished_at, error, pid, migrations_hash, pid_start FROM runbook_runs";

/// A row of `RUN_COLUMNS` as either driver gives it: the pool's (`AnyRow`) or, for the run
/// listing on SQLite, its own connection's (`rusqlite::Row`, `Writer::read`).
trait RunColumns {
    fn text(&self, i: usize) -> Result<String, StateError>;
    fn int(&self, i: usize) -> Result<i64, StateError>;
    fn text_or_null(&self, i: usize) -> Result<Option<String>, StateError>;
    fn int_or_null(&self, i: usize) -> Result<Option<i64>, StateError>;
}

impl RunColumns for sqlx::any::AnyRow {
    fn text(&self, i: usize) -> Result<String, StateError> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StateError> {
        Ok(self.try_get(i)?)
    }
    fn text_or_null(&self, i: usize) -> Result<Option<String>, StateError> {
        Ok(self.try_get(i)?)
    }
    fn int_or_null(&self, i: usize) -> Result<Option<i64>, StateError> {
        Ok(self.try_get(i)?)
    }
}

impl RunColumns for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, StateError> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StateError> {
        Ok(self.get(i)?)
    }
    fn text_or_null(&self, i: usize) -> Result<Option<String>, StateError> {
        Ok(self.get(i)?)
    }
    fn int_or_null(&self, i: usize) -> Result<Option<i64>, StateError> {
        Ok(self.get(i)?)
    }
}

fn run_from(r: &impl RunColumns) -> Result<RunRecord, StateError> {
    let status = r.text(12)?;
    let params = r.text(9)?;
    let vars = r.text(10)?;
    let tags = r.text(11)?;
    let tags: serde_json::Value = serde_json::from_str(&tags).unwrap_or_default();
    let list = |k: &str| -> Vec<String> {
        tags.get(k)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    };
    Ok(RunRecord {
        id: r.text(0)?,
        playbook: r.text(1)?,
        file: r.text(2)?,
        env: r.text(3)?,
        target: r.text(4)?,
        operator: r.text(5)?,
        host: r.text(6)?,
        content_hash: r.text(7)?,
        plan_hash: r.text(8)?,
        params: serde_json::from_str(&params).unwrap_or_default(),
        vars: serde_json::from_str(&vars).unwrap_or_default(),
        tags: list("tags"),
        skip_tags: list("skip_tags"),
        status: RunStatus::parse(&status)
            .ok_or_else(|| StateError::Corrupt(format!("run status `{status}`")))?,
        started_at: r.int(13)?,
        finished_at: r.int_or_null(14)?,
        error: r.text_or_null(15)?,
        pid: r.int(16)?,
        migrations_hash: r.text(17)?,
        pid_start: r.int(18)?,
    })
}

/// The `INSERT` of a new run: `$1` its id, `$2` to `$18` its fields (see `run_params`).
const RUN_INSERT: &str = "INSERT INTO runbook_runs (id, playbook, file, env, target, target_key, operator, host, pid, content_hash,
     plan_hash, params, vars, tags, status, started_at, finished_at, error, migrations_hash, pid_start)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL, NULL, $17, $18)";

/// A new run's eighteen values for `RUN_INSERT`.
fn run_params(run: &RunRecord, target_key: &str) -> Vec<write::Param> {
    vec![
        run.id.clone().into(),
        run.playbook.clone().into(),
        run.file.clone().into(),
        run.env.clone().into(),
        run.target.clone().into(),
        target_key.into(),
        run.operator.clone().into(),
        run.host.clone().into(),
        run.pid.into(),
        run.content_hash.clone().into(),
        run.plan_hash.clone().into(),
        run.params.to_string().into(),
        serde_json::to_string(&run.vars).unwrap_or_default().into(),
        serde_json::json!({"tags": run.tags, "skip_tags": run.skip_tags})
            .to_string()
            .into(),
        run.status.as_str().into(),
        run.started_at.into(),
        run.migrations_hash.clone().into(),
        run.pid_start.into(),
    ]
}
