//! Session setup shared by `run`, `resume` and `approve`/`reject`: where the state store and
//! the target are, the run's redactor, the environment's protections, the run a prefix names,
//! and the target lock. A [`Session`] is what a run holds while it runs.

use super::ExecError;
use super::emergency::Emergency;
use super::journal::Journal;
use super::protections::Effective;
use crate::cancel::wait_cancel;
use crate::config::ConfigDef;
use crate::db::TargetSpec;
use crate::db::reach::ConnectError;
use crate::lock::{LockError, TargetLock};
use crate::plan::ParamValue;
use crate::project::{Playbook, Project};
use crate::redact::Redactor;
use crate::run::RunRecord;
use crate::state::{StateError, StateSpec, StateStore};
use crate::ui::Ui;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;

/// What a run holds while it runs: the state store, the target, the redactor, the audit
/// journal, the target lock, the typed confirmation the operator gave for `confirm` gates, and
/// the rules it runs under.
pub(super) struct Session<'a> {
    pub state: StateStore,
    pub target: Option<TargetSpec>,
    pub redactor: Redactor,
    pub journal: Journal<'a>,
    pub lock: Option<TargetLock>,
    pub confirm: Option<String>,
    pub guard: Guard,
}

/// The rules a run is under, decided at its start and recorded in `run_started`: its
/// protections (`exec/protections.rs`) and, for an emergency run, the emergency
/// (`exec/emergency.rs`).
#[derive(Debug, Clone, Default)]
pub(super) struct Guard {
    pub protections: Effective,
    pub emergency: Option<Emergency>,
}

impl<'a> Session<'a> {
    /// What a run holds once it has its state store, target, journal and lock; `confirm` is
    /// the `--confirm` text given.
    pub fn new(
        state: StateStore,
        target: Option<TargetSpec>,
        redactor: Redactor,
        journal: Journal<'a>,
        lock: Option<TargetLock>,
        confirm: Option<String>,
        guard: Guard,
    ) -> Session<'a> {
        Session {
            state,
            target,
            redactor,
            journal,
            lock,
            confirm,
            guard,
        }
    }
}

/// Resolves where the state store is: `--state`, then the config, then `.runbook/state.db`.
pub fn state_spec(
    root: &Path,
    config: Option<&ConfigDef>,
    flag: Option<&str>,
) -> Result<StateSpec, String> {
    if let Some(text) = flag {
        return match TargetSpec::parse(text)? {
            TargetSpec::Postgres(url) => Ok(StateSpec::Postgres(url)),
            TargetSpec::Sqlite(path) => Ok(StateSpec::Sqlite(path)),
        };
    }
    if let Some(state) = config.and_then(|c| c.state.as_ref()) {
        if let Some(var) = &state.url_env {
            let url = std::env::var(var)
                .map_err(|_| format!("the state store is `${var}`, which is not set"))?;
            return Ok(StateSpec::Postgres(url));
        }
        if let Some(path) = &state.sqlite {
            return Ok(StateSpec::Sqlite(root.join(path)));
        }
    }
    Ok(StateStore::default_spec(root))
}

/// Resolves the target: `--target`, else the environment's.
pub fn target_spec(
    root: &Path,
    config: Option<&ConfigDef>,
    env: &str,
    flag: Option<&str>,
) -> Result<Option<TargetSpec>, String> {
    if let Some(text) = flag {
        return TargetSpec::parse(text).map(|t| match t {
            TargetSpec::Sqlite(p) if p.is_relative() => Some(TargetSpec::Sqlite(root.join(p))),
            other => Some(other),
        });
    }
    let Some(env) = config.and_then(|c| c.environments.get(env)) else {
        return Ok(None);
    };
    if let Some(var) = &env.target.url_env {
        let url = std::env::var(var).map_err(|_| {
            format!("environment variable `{var}` (the target of this environment) is not set")
        })?;
        return TargetSpec::parse(&url)
            .map(Some)
            .map_err(|e| format!("`{var}`: {e}"));
    }
    if let Some(path) = &env.target.sqlite {
        return Ok(Some(TargetSpec::Sqlite(root.join(path))));
    }
    Ok(None)
}

/// Opens the state store the flags and config name, reporting failures.
pub async fn open_state(
    project: &Project,
    flag: Option<&str>,
    ui: &Ui,
) -> Result<StateStore, ExecError> {
    let spec = state_spec_of(project, flag, ui)?;
    StateStore::open(&spec)
        .await
        .map_err(|e| state_failed(&spec, &e, ui))
}

/// The state store the flags and config name, reporting a bad one.
pub(super) fn state_spec_of(
    project: &Project,
    flag: Option<&str>,
    ui: &Ui,
) -> Result<StateSpec, ExecError> {
    state_spec(&project.root, project.config_def(), flag).map_err(|e| {
        ui.error(&e, None);
        ExecError::Invalid
    })
}

/// Reports a state store that did not open.
pub(super) fn state_failed(spec: &StateSpec, e: &StateError, ui: &Ui) -> ExecError {
    let reach = match e {
        StateError::Db(db) => Some(ConnectError::from(db)).filter(ConnectError::is_environment),
        _ => None,
    };
    if let Some(reach) = reach {
        let at = match spec {
            StateSpec::Postgres(url) => crate::dburl::redact(url),
            StateSpec::Sqlite(path) => path.display().to_string(),
        };
        ui.error(
            &crate::redact::global()
                .redact(&format!("cannot connect to the state store {at}: {reach}")),
            reach.hint,
        );
        return ExecError::Environment;
    }
    ui.error(
        &crate::redact::global().redact(&e.to_string()),
        Some("check the state store location (--state or `state:` in runbook.yaml)"),
    );
    ExecError::Internal
}

/// The run a full id or a unique prefix names; reports when none or several match.
pub async fn find_run(state: &StateStore, id: &str, ui: &Ui) -> Option<RunRecord> {
    if let Ok(Some(r)) = state.load_run(id).await {
        return Some(r);
    }
    match state.find_runs(id).await {
        Ok(ids) if ids.len() == 1 => state.load_run(&ids[0]).await.ok().flatten(),
        Ok(ids) if ids.len() > 1 => {
            ui.error(
                &format!("`{id}` names several runs: {}", ids.join(", ")),
                Some("give more of the run id"),
            );
            None
        }
        _ => {
            ui.error(
                &format!("no run `{id}` in the state store"),
                Some("`runbook runs` lists recent runs"),
            );
            None
        }
    }
}

/// The redactor for a run: secret params, the config's secret variables, the target password.
pub(super) fn redactor_for(
    config: Option<&ConfigDef>,
    params: &BTreeMap<String, ParamValue>,
    target: Option<&TargetSpec>,
) -> Redactor {
    let r = Redactor::new();
    for p in params.values().filter(|p| p.secret) {
        match &p.value {
            Json::String(s) => r.add(s),
            Json::Null => {}
            other => r.add(&other.to_string()),
        }
    }
    for var in config.map(|c| c.secrets.as_slice()).unwrap_or_default() {
        if let Ok(v) = std::env::var(var) {
            // A connection URL is a secret for its password; the host and database name are
            // what operators and auditors need to see.
            if v.contains("://") {
                r.add_url(&v);
            } else {
                r.add(&v);
            }
        }
    }
    if let Some(TargetSpec::Postgres(url)) = target {
        r.add_url(url);
    }
    r
}

/// Whether any step of the playbook (or of its includes) needs a database connection.
pub(super) fn needs_db(pb: &Playbook) -> bool {
    let all = pb
        .def
        .steps
        .iter()
        .chain(&pb.def.on_failure)
        .chain(&pb.def.finally);
    all.flat_map(|s| std::iter::once(s).chain(s.rollback.iter()))
        .any(|s| {
            s.sql.is_some()
                || s.migrate.is_some()
                || s.backup.is_some()
                || s.restore.is_some()
                || s.seed.is_some()
                || s.health.is_some()
                || s.copy.is_some()
                || s.wait_for.as_ref().is_some_and(|w| w.sql.is_some())
        })
        || pb.includes.values().any(|i| needs_db(i))
}

/// Takes the target's run lock (none without a target), naming the holder when it is taken,
/// first on `pre` when the lock's connection was opened beforehand. With `--lock-wait`, says
/// whom it waits for before waiting; Ctrl-C (`cancel`) stops the wait, and nothing runs.
pub(super) async fn take_lock(
    target: Option<&TargetSpec>,
    (run_id, operator): (&str, &str),
    wait: Duration,
    (ui, redactor): (&Ui, &Redactor),
    pre: Option<crate::lock::Preconnected>,
    cancel: &watch::Receiver<bool>,
) -> Result<Option<TargetLock>, ExecError> {
    let Some(target) = target else {
        return Ok(None);
    };
    let first = TargetLock::acquire_on(target, run_id, operator, Duration::ZERO, pre).await;
    let taken = match first {
        Err(LockError::Held { holder }) if !wait.is_zero() => {
            ui.note(&format!(
                "{} is in use by another run ({holder}); waiting up to {} for it",
                target.describe(),
                crate::fmt::duration(wait)
            ));
            let mut stop = cancel.clone();
            tokio::select! {
                taken = TargetLock::acquire(target, run_id, operator, wait) => taken,
                _ = wait_cancel(&mut stop) => {
                    ui.error(
                        &format!("stopped waiting for {} (interrupted); nothing ran", target.describe()),
                        Some("run it again once the other run has finished"),
                    );
                    return Err(ExecError::Locked);
                }
            }
        }
        other => other,
    };
    match taken {
        Ok(l) => Ok(Some(l)),
        Err(LockError::Held { holder }) => {
            ui.error(
                &format!(
                    "{} is in use by another run ({holder}); nothing ran",
                    target.describe()
                ),
                Some("wait for that run to finish, or pass --lock-wait 5m to wait for it"),
            );
            Err(ExecError::Locked)
        }
        Err(LockError::Unreachable(e)) => {
            ui.error(
                &redactor.redact(&format!("cannot connect to {}: {e}", target.describe())),
                e.hint,
            );
            Err(ExecError::Environment)
        }
        Err(LockError::Failed(e)) => {
            ui.error(
                &redactor.redact(&format!(
                    "cannot take the run lock on {}: {e}",
                    target.describe()
                )),
                None,
            );
            Err(ExecError::Internal)
        }
    }
}

/// Releases the target lock, if one was taken.
pub(super) async fn release_lock(lock: Option<TargetLock>) {
    if let Some(l) = lock {
        l.release().await;
    }
}
