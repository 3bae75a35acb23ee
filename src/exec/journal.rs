//! The journal: the one place a run's events are written. Each event is redacted, written to
//! the run's audit chain (no fsync), then committed to the state store with the chain's new
//! head and the record's line: that commit is the one durable write of the event (write-ahead;
//! a step's verdict is on the disk with the next commit, `durable`). The chain is fsynced when
//! the run stops: before the commit of the record it stops on, which notes in the store how far
//! the chain is durable. A process crash in between leaves one record more in the chain than
//! the store knows, never one less; a system crash may take the chain's unsynced tail, which
//! the store's lines give back (`audit::write_back`, before the chain is opened again).
//!
//! Test hooks (`RUNBOOK_FAILPOINT`, like the executor's): `written:EVENT:STEP` kills the
//! process after the record of that event (`run` for a run event) is written to the chain and
//! before the store commits it; `lost:EVENT:STEP` after the commit, with the chain first cut
//! back to what was last fsynced, as a power cut would leave it (after a verdict's commit a
//! power cut could take that commit too, which no hook shows: the step reads as in flight).

use super::ExecError;
use crate::audit::{AuditError, AuditLog, Head, Written};
use crate::config::ConfigDef;
use crate::db::{Db, TargetSpec};
use crate::redact::Redactor;
use crate::run::{self, Approval, Event, EventKind, RunRecord};
use crate::state::{Durable, StateStore};
use crate::ui::Ui;
use serde_json::{Map, Value as Json, json};
use std::path::{Path, PathBuf};

/// A run's audit chain, the facts every record of it carries, and where failures are told.
pub(super) struct Journal<'a> {
    log: AuditLog,
    meta: Map<String, Json>,
    dir: PathBuf,
    run_id: String,
    redactor: Redactor,
    signing: Signing,
    ui: &'a Ui,
    failpoint: Option<String>,
    /// The record the state store last noted the chain as fsynced through.
    noted: i64,
}

/// Whether and with what this journal signs its chain's head when the run stops.
#[derive(Clone)]
enum Signing {
    /// The project does not sign, or this journal never signs (approve, reject).
    Off,
    /// The Ed25519 secret key (hex) from the variable the config names.
    Key(String),
    /// The config names a variable that is not set: the run's chain stays unsigned.
    Unset(String),
}

impl<'a> Journal<'a> {
    /// Opens the audit chain of a run that runs in this process: with the central sink when the
    /// config names one, and the target's server version in every record (`known` when the
    /// caller read it already, else asked here). `expected` is the
    /// head the state store recorded for a run that already has records (a resumed one): a
    /// chain cut short before it is refused.
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        root: &Path,
        config: Option<&ConfigDef>,
        record: &RunRecord,
        expected: Option<&Head>,
        file: &Path,
        (target, known): (Option<&TargetSpec>, Option<&str>),
        redactor: Redactor,
        ui: &'a Ui,
    ) -> Result<Journal<'a>, AuditError> {
        let dir = audit_dir(root, config);
        let server_version = match known {
            Some(v) => Some(v.to_owned()),
            None => server_version(target).await,
        };
        let meta = audit_meta(record, file, target, server_version.as_deref());
        let log = open_audit(&dir, &record.id, expected, config).await?;
        let signing = signing(config);
        Ok(Journal::on(log, meta, dir, record, redactor, signing, ui))
    }

    /// Opens the audit chain of a run that `runbook approve` or `reject` decides on: the local
    /// chain only, and never signed from here (the run signs it when it ends). `expected` is
    /// the head the state store recorded: a chain cut short before it is refused.
    pub fn open_for_decision(
        root: &Path,
        config: Option<&ConfigDef>,
        record: &RunRecord,
        expected: Option<&Head>,
        redactor: Redactor,
        ui: &'a Ui,
    ) -> Result<Journal<'a>, AuditError> {
        let dir = audit_dir(root, config);
        let meta = audit_meta(record, Path::new(&record.file), None, None);
        let log = AuditLog::open_expecting(&dir, &record.id, expected)?;
        Ok(Journal::on(
            log,
            meta,
            dir,
            record,
            redactor,
            Signing::Off,
            ui,
        ))
    }

    /// This journal signs with the project's key when it stops, as a run's does: for a
    /// refusal, whose one record is its whole chain.
    pub fn signing_as_configured(mut self, config: Option<&ConfigDef>) -> Self {
        self.signing = signing(config);
        self
    }

    /// The journal of `record` on its open chain `log` in `dir`, every record carrying `meta`.
    fn on(
        log: AuditLog,
        meta: Map<String, Json>,
        dir: PathBuf,
        record: &RunRecord,
        redactor: Redactor,
        signing: Signing,
        ui: &'a Ui,
    ) -> Journal<'a> {
        Journal {
            log,
            meta,
            dir,
            run_id: record.id.clone(),
            redactor,
            signing,
            ui,
            failpoint: std::env::var("RUNBOOK_FAILPOINT").ok(),
            noted: 0,
        }
    }

    /// Records a new run with its `run_started` event.
    pub async fn start(
        &mut self,
        state: &StateStore,
        record: &RunRecord,
        target_key: &str,
        ev: Event,
    ) -> Result<(), ExecError> {
        let ev = self.redacted(ev);
        let written = self.write(&ev, None).await?;
        state
            .create_run(record, target_key, &ev, Some(&written))
            .await
            .map_err(|e| self.report(&e, None))?;
        self.committed(&ev);
        Ok(())
    }

    /// Appends an event to the chain only: a refused attempt has no state store record.
    pub async fn append_only(&mut self, ev: Event) -> Result<(), ExecError> {
        let ev = self.redacted(ev);
        self.write(&ev, None).await?;
        self.log.sync().map_err(|e| self.report(&e, None))
    }

    /// Records one event of a running run. The record a run stops on (finished, interrupted,
    /// waiting at a gate) is fsynced in the chain before the store commits it, and that commit
    /// notes the chain as durable through it (`Written::synced`): the note then needs no
    /// commit of its own when the run stops (`sync`). A step's verdict is committed without an
    /// fsync of its own (`durable`).
    pub async fn record(&mut self, state: &StateStore, ev: Event) -> Result<(), ExecError> {
        let ev = self.redacted(ev);
        let mut written = self
            .write(
                &ev,
                Some("the run stopped because its audit record could not be written"),
            )
            .await?;
        if matches!(
            ev.kind,
            EventKind::RunFinished | EventKind::RunInterrupted | EventKind::RunWaiting
        ) {
            written.synced = self.sync_chain();
        }
        state
            .record_as(&self.run_id, &ev, Some(&written), durable(ev.kind))
            .await
            .map_err(|e| {
                self.report(
                    &e,
                    Some("the run stopped because its state could not be recorded"),
                )
            })?;
        if written.synced {
            self.noted = written.head.seq;
        }
        self.committed(&ev);
        Ok(())
    }

    /// Records an approval or rejection of a gate. The actor and the comment are what a person
    /// typed, so they are redacted like any other event data.
    pub async fn approval(
        &mut self,
        state: &StateStore,
        approval: &Approval,
    ) -> Result<(), ExecError> {
        let approval = Approval {
            actor: self.redactor.redact(&approval.actor),
            comment: approval.comment.as_deref().map(|c| self.redactor.redact(c)),
            ..approval.clone()
        };
        let ev = approval.event();
        let written = self.write(&ev, None).await?;
        state
            .record_approval(&self.run_id, &approval, Some(&written))
            .await
            .map_err(|e| self.report(&e, None))?;
        self.committed(&ev);
        Ok(())
    }

    /// Puts on the disk the step verdicts committed without an fsync (`durable`): before the run
    /// waits for anything but the next step (a gate's prompt or window).
    pub async fn settle(&self, state: &StateStore) -> Result<(), ExecError> {
        state.sync().await.map_err(|e| {
            self.report(
                &e,
                Some("the run stopped because its state could not be made durable"),
            )
        })
    }

    /// Makes the chain's records durable, and notes in the store how far: when the run stops,
    /// and before a decision's process ends. Until then the state store's lines are the durable
    /// copy; a chain later found shorter than noted here was cut, not crashed, and is not
    /// written back.
    pub async fn sync(&mut self, state: &StateStore) {
        // The run's last record is fsynced with its commit unless the run stopped on an error.
        if let Err(e) = state.sync().await {
            tracing::warn!("{e}");
        }
        if !self.sync_chain() {
            return;
        }
        let seq = self.log.head().seq;
        if seq <= self.noted {
            // The run's last commit noted it.
            return;
        }
        match state.chain_synced(&self.run_id, seq).await {
            Ok(()) => self.noted = seq,
            Err(e) => tracing::warn!("cannot note the audit chain's durable head: {e}"),
        }
    }

    /// Fsyncs the chain's records (and its folder entry); whether it could.
    fn sync_chain(&mut self) -> bool {
        match self.log.sync() {
            Ok(()) => true,
            Err(e) => {
                self.ui.error(
                    &e.to_string(),
                    Some("the state store holds the records; `runbook resume` writes back what a crash takes from the chain"),
                );
                false
            }
        }
    }

    /// What this run's audit chain records of its database, operator key and approvals.
    pub fn chain_facts(&self) -> Result<crate::audit::ChainFacts, String> {
        crate::audit::chain_facts(&self.dir, &self.run_id)
    }

    /// Adds the run to the audit folder's index, for `runbook audit` listings.
    pub fn index(&self, record: &RunRecord) {
        let _ = crate::audit::index(
            &self.dir,
            &json!({"run_id": record.id, "playbook": record.playbook, "env": record.env, "operator": record.operator, "started_at": run::format_ms(record.started_at)}),
        );
    }

    /// Signs the chain's head when the config names a signing key: each time a run stops
    /// (finished, waiting, interrupted), so `audit verify` finds a finished run signed over
    /// its last record (`audit::trust` says what it expects of an unfinished one). A project
    /// that signs without its key set is told its chain stays unsigned.
    pub fn sign(&self) {
        match &self.signing {
            Signing::Off => {}
            Signing::Key(key) => {
                if let Err(e) = crate::audit::sign(&self.dir, &self.run_id, self.log.head(), key) {
                    self.ui.error(
                        &e.to_string(),
                        Some("the run's audit chain is complete but unsigned: `runbook audit verify` will fail it"),
                    );
                }
            }
            Signing::Unset(var) => self.ui.error(
                &format!("the project signs its runs but `{var}` (`audit.signing_key_env`) is not set: this run's audit chain is unsigned"),
                Some("`runbook audit verify` will fail it; set the variable to the secret key `runbook audit keygen` wrote"),
            ),
        }
    }

    fn redacted(&self, mut ev: Event) -> Event {
        self.redactor.redact_json_mut(&mut ev.data);
        ev
    }

    /// Writes the record of `ev` to the chain (no fsync: the store's commit is the durable
    /// one).
    async fn write(&mut self, ev: &Event, hint: Option<&str>) -> Result<Written, ExecError> {
        let body = crate::audit::body_from_event(&self.meta, ev);
        match self.log.write(body).await {
            Ok(written) => {
                self.crash_if("written", ev);
                Ok(written)
            }
            Err(e) => Err(self.report(&e, hint)),
        }
    }

    /// After the store committed `ev`: the `lost` test hook.
    fn committed(&self, ev: &Event) {
        if self.hooked("lost", ev) {
            self.log.lose_unsynced();
            kill_self();
        }
    }

    /// The `written` test hook.
    fn crash_if(&self, point: &str, ev: &Event) {
        if self.hooked(point, ev) {
            kill_self();
        }
    }

    /// Whether `RUNBOOK_FAILPOINT` names `point` at `ev`.
    fn hooked(&self, point: &str, ev: &Event) -> bool {
        self.failpoint.as_deref().is_some_and(|f| {
            f == format!(
                "{point}:{}:{}",
                ev.kind.as_str(),
                ev.step.as_deref().unwrap_or("run")
            )
        })
    }

    fn report(&self, e: &dyn std::fmt::Display, hint: Option<&str>) -> ExecError {
        self.ui.error(&self.redactor.redact(&e.to_string()), hint);
        ExecError::Internal
    }
}

/// How durable the store's commit of an event must be when it returns. A step's verdict
/// (`step_finished`, `step_skipped`) is committed without an fsync: a process that dies keeps
/// it (the operating system has it), and the next step's `step_started`, whose commit is
/// fsynced before that step acts, puts it on the disk with it, as does any other record (they
/// are all fsynced) and `settle` before a wait. So the write-ahead order holds with one fsync
/// per step: the start durable before the step acts, the verdict durable before the next step
/// starts. What a power cut may take is the last verdict before it, when no later commit was
/// fsynced: resume then asks about that step, as about one in flight.
fn durable(kind: EventKind) -> Durable {
    match kind {
        EventKind::StepFinished | EventKind::StepSkipped => Durable::WithNext,
        _ => Durable::Now,
    }
}

/// Dies the way `kill -9` or a power cut would, with no cleanup (the failpoints).
fn kill_self() {
    // SAFETY: sending a signal to ourselves.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

/// The audit folder: the config's `audit.dir`, else `.runbook/audit`.
pub fn audit_dir(root: &Path, config: Option<&ConfigDef>) -> PathBuf {
    match config
        .and_then(|c| c.audit.as_ref())
        .and_then(|a| a.dir.as_ref())
    {
        Some(d) => root.join(d),
        None => root.join(".runbook").join("audit"),
    }
}

/// The run-signing key, from the environment variable the config names.
fn signing(config: Option<&ConfigDef>) -> Signing {
    let Some(var) = config
        .and_then(|c| c.audit.as_ref())
        .and_then(|a| a.signing_key_env.as_ref())
    else {
        return Signing::Off;
    };
    match std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
        Some(key) => Signing::Key(key),
        None => Signing::Unset(var.clone()),
    }
}

/// Opens a run's audit chain, with the central sink when the config names one.
async fn open_audit(
    dir: &Path,
    run_id: &str,
    expected: Option<&Head>,
    config: Option<&ConfigDef>,
) -> Result<AuditLog, AuditError> {
    let mut log = AuditLog::open_expecting(dir, run_id, expected)?;
    if let Some(var) = config
        .and_then(|c| c.audit.as_ref())
        .and_then(|a| a.sink_url_env.as_ref())
    {
        let url = std::env::var(var)
            .map_err(|_| AuditError::Sink(format!("`{var}` (the audit sink) is not set")))?;
        log.set_sink(crate::audit::Sink::connect(&url).await?);
    }
    Ok(log)
}

/// The facts every audit record of a run carries. Never the password: the target is named by
/// host and database.
fn audit_meta(
    record: &RunRecord,
    file: &Path,
    target: Option<&TargetSpec>,
    server_version: Option<&str>,
) -> Map<String, Json> {
    let target = match target {
        Some(TargetSpec::Postgres(url)) => {
            let host = url
                .split("://")
                .nth(1)
                .and_then(|r| r.split(['/', '?']).next())
                .map(|a| a.rsplit_once('@').map_or(a, |(_, h)| h).to_owned())
                .unwrap_or_default();
            json!({"kind": "postgres", "host": host, "database": target.map(TargetSpec::database_name), "server_version": server_version})
        }
        Some(TargetSpec::Sqlite(path)) => {
            json!({"kind": "sqlite", "host": run::hostname(), "database": path.display().to_string(), "server_version": server_version})
        }
        None => Json::Null,
    };
    let mut m = Map::new();
    m.insert("playbook".into(), json!({"name": record.playbook, "file": record.file, "sha256": record.content_hash, "git_commit": crate::audit::git_commit(file)}));
    m.insert("env".into(), json!(record.env));
    m.insert("target".into(), target);
    m.insert("operator".into(), json!(record.operator));
    m.insert("host".into(), json!(record.host));
    m.insert("tool_version".into(), json!(env!("CARGO_PKG_VERSION")));
    m
}

/// The server's version, for the audit record; `None` when it cannot be asked.
async fn server_version(target: Option<&TargetSpec>) -> Option<String> {
    let target = target?;
    let mut db = Db::connect(target).await.ok()?;
    let q = if db.is_postgres() {
        "SHOW server_version"
    } else {
        "SELECT 'SQLite ' || sqlite_version()"
    };
    let r = db.execute(q, &[], false).await.ok();
    db.close().await;
    let r = r?;
    r.rows
        .first()
        .and_then(|row| r.columns.first().and_then(|c| row.get(c)))
        .and_then(Json::as_str)
        .map(str::to_owned)
}
