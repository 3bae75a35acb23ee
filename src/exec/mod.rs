//! The executor: turns a validated playbook into a durable run. Steps run in order; each
//! transition is recorded in the state store before the step acts (write-ahead); a failure runs
//! the compensations of completed steps in reverse order, then `on_failure`, then `finally`.
//! `resume` continues a run from its records.

pub mod actions;
pub mod live;

use crate::audit::AuditLog;
pub use crate::cancel::wait_cancel;
use crate::config::ConfigDef;
use crate::db::{Db, TargetSpec};
use crate::exit::Exit;
use crate::lock::{LockError, TargetLock};
use crate::plan;
use crate::playbook::{Action, OutputSource, Step};
use crate::project::{Playbook, Project};
use crate::redact::Redactor;
use crate::run::{self, Event, EventKind, Phase, RunRecord, RunStatus, StepStatus};
use crate::state::{StateSpec, StateStore};
use crate::template;
use crate::ui::{Progress, Ui};
use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Output text kept per stream in outputs and the state store.
const MAX_CAPTURE: usize = 64 * 1024;

/// What `runbook run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub playbook: String,
    pub env: String,
    pub vars: Vec<(String, String)>,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub target: Option<String>,
    pub state: Option<String>,
    pub lock_wait: Duration,
    /// Gates the operator approves up front (`--approve`), where self-approval is allowed.
    pub approve: Vec<String>,
    /// The typed confirmation for `confirm` gates, for runs without a terminal.
    pub confirm: Option<String>,
    /// This run is one target of a fleet run: (fleet id, target name).
    pub fleet: Option<(String, String)>,
}

/// What `runbook resume` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ResumeRequest {
    pub run_id: String,
    pub retry_steps: Vec<String>,
    pub skip_steps: Vec<String>,
    pub vars: Vec<(String, String)>,
    pub target: Option<String>,
    pub state: Option<String>,
    pub lock_wait: Duration,
    pub confirm: Option<String>,
}

/// What `runbook approve` and `runbook reject` were asked to do.
#[derive(Debug, Clone, Default)]
pub struct DecisionRequest {
    pub run_id: String,
    pub gate: String,
    pub approve: bool,
    pub comment: Option<String>,
    pub actor: Option<String>,
    pub state: Option<String>,
    pub target: Option<String>,
    pub confirm: Option<String>,
}

/// A step as the executor schedules it: flattened out of includes, with a qualified id.
#[derive(Debug, Clone)]
struct Unit {
    qid: String,
    local: String,
    scope: usize,
    step: Step,
    phase: Phase,
    ord: i64,
}

/// An included playbook's place among the main units and its own `on_failure` and `finally`
/// steps: `finally` runs once its last unit is done; on a failure inside it, `on_failure` and
/// then `finally` run (innermost include first) before the including playbook's own.
#[derive(Debug, Clone)]
struct IncludeBlock {
    /// Indexes into `Engine::main`: `start..end` are the include's units.
    start: usize,
    end: usize,
    /// The include step's own `when`, evaluated in the including playbook's scope.
    when: Option<String>,
    parent_scope: usize,
    /// The include step's qualified id.
    qid: String,
    on_failure: Vec<Unit>,
    finally: Vec<Unit>,
}

/// The parameters and outputs one playbook (the top one, or an include) sees.
#[derive(Debug, Clone)]
struct Scope {
    playbook: Arc<Playbook>,
    /// `None` until the include's parameters are rendered (when its first step runs).
    params: Option<Map<String, Json>>,
    /// The include's parameter templates and the scope they are rendered in.
    given: Option<(BTreeMap<String, Json>, usize)>,
    steps: Map<String, Json>,
}

/// Why a step did not succeed.
#[derive(Debug)]
pub enum StepError {
    Failed(String),
    Interrupted,
}

pub type StepResult = Result<Map<String, Json>, StepError>;

/// Everything an action needs while it runs.
pub struct ActionCtx<'a> {
    pub root: &'a std::path::Path,
    pub target: Option<&'a TargetSpec>,
    pub db: &'a mut Option<Db>,
    pub cancel: watch::Receiver<bool>,
    pub timeout: Option<Duration>,
    pub redactor: &'a Redactor,
    pub template_ctx: &'a Json,
    pub run_id: &'a str,
    pub step_id: &'a str,
    pub progress: &'a Progress,
    /// Where the project keeps migrations and seed data, and which environment this is.
    pub dirs: &'a ProjectDirs,
    /// Whether a person allowed this run through an `approval` or `confirm` gate before this
    /// step (what lets a rehearsal run on a protected environment).
    pub human_gate_passed: bool,
}

/// Project facts the database actions need.
#[derive(Debug, Clone)]
pub struct ProjectDirs {
    pub migrations: PathBuf,
    pub seeds: PathBuf,
    pub env: String,
    pub protected: bool,
}

impl ActionCtx<'_> {
    /// The target connection, opened on first use.
    pub async fn db(&mut self) -> Result<&mut Db, StepError> {
        if self.db.is_none() {
            let target = self.target.ok_or_else(|| {
                StepError::Failed(
                    "this step needs a database: give the environment a target or pass --target"
                        .to_owned(),
                )
            })?;
            let db = Db::connect(target).await.map_err(|e| {
                StepError::Failed(format!("cannot connect to {}: {e}", target.describe()))
            })?;
            *self.db = Some(db);
        }
        self.db
            .as_mut()
            .ok_or_else(|| StepError::Failed("no database connection".to_owned()))
    }
}

struct Engine<'a> {
    root: PathBuf,
    dirs: ProjectDirs,
    ui: &'a Ui,
    state: StateStore,
    redactor: Redactor,
    run: RunRecord,
    target: Option<TargetSpec>,
    db: Option<Db>,
    env_ctx: Json,
    vars_ctx: Json,
    scopes: Vec<Scope>,
    main: Vec<Unit>,
    comps: Vec<Vec<Unit>>,
    on_failure: Vec<Unit>,
    finally: Vec<Unit>,
    /// Included playbooks, inner ones before the outer ones that contain them.
    blocks: Vec<IncludeBlock>,
    /// Recorded outcome of each (phase, qid), from this run or an earlier attempt of it.
    done: BTreeMap<(Phase, String), StepStatus>,
    cancel: watch::Receiver<bool>,
    progress: Progress,
    failpoint: Option<String>,
    protections: crate::config::Protections,
    plan_hash: String,
    confirm: Option<String>,
    /// The run's audit chain, and the facts every record of it carries.
    audit: Option<AuditLog>,
    audit_meta: Map<String, Json>,
    audit_dir: PathBuf,
    signing_key: Option<String>,
}

/// Resolves where the state store is: `--state`, then the config, then `.runbook/state.db`.
pub fn state_spec(
    root: &std::path::Path,
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
    root: &std::path::Path,
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

/// The redactor for a run: secret params, the config's secret variables, the target password.
fn redactor_for(
    config: Option<&ConfigDef>,
    params: &BTreeMap<String, plan::ParamValue>,
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

fn needs_db(pb: &Playbook) -> bool {
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

/// `runbook run`.
pub async fn run(
    project: &Project,
    playbook: Arc<Playbook>,
    req: RunRequest,
    ui: &Ui,
    cancel: watch::Receiver<bool>,
) -> Exit {
    let config = project.config_def();
    let plan_req = plan::PlanRequest {
        env: &req.env,
        vars: &req.vars,
        target_override: req.target.as_deref(),
    };
    let plan = match plan::build(&playbook, config, &plan_req) {
        Ok(p) => p,
        Err(diags) => {
            for d in &diags {
                ui.error(&d.message, d.hint.as_deref());
            }
            return Exit::Invalid;
        }
    };
    let protections = protections_of(config, &req.env);
    if let Err(code) = check_windows(&protections, &req.env, ui) {
        return code;
    }
    if !req.approve.is_empty() {
        if !protections.self_approval {
            ui.error(
                &format!("`--approve` is refused in environment `{}`: approvals there must come from someone other than the operator", req.env),
                Some("start the run without --approve; it stops at the gate, and an approver runs `runbook approve RUN GATE`"),
            );
            return Exit::Invalid;
        }
        for gate in &req.approve {
            if find_approval_gate(&playbook, gate).is_none() {
                ui.error(
                    &format!("`{}` has no approval gate `{gate}`", playbook.def.name),
                    Some("name the id of a step with `gate: { approval: ... }`"),
                );
                return Exit::Invalid;
            }
        }
    }
    let target = match target_spec(&project.root, config, &req.env, req.target.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            ui.error(
                &e,
                Some("set the variable, or pass --target postgres://... or --target sqlite:FILE"),
            );
            return Exit::Invalid;
        }
    };
    if target.is_none() && needs_db(&playbook) {
        ui.error(
            &format!("`{}` has SQL steps but environment `{}` names no database", playbook.def.name, req.env),
            Some("pass --target postgres://... or --target sqlite:FILE, or define the environment in runbook.yaml"),
        );
        return Exit::Invalid;
    }
    let lookup = |k: &str| std::env::var(k).ok();
    let params = match plan::resolve_params(&playbook.def, &req.vars, &lookup) {
        Ok(p) => p,
        Err(diags) => {
            for d in &diags {
                ui.error(&d.message, d.hint.as_deref());
            }
            return Exit::Invalid;
        }
    };
    let redactor = redactor_for(config, &params, target.as_ref());
    // The redactor is the global one: opening the state store reports through it.
    let state = match open_state(project, req.state.as_deref(), ui).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let operator = run::operator();
    let run_id = run::new_run_id();
    let lock = match take_lock(
        target.as_ref(),
        &run_id,
        &operator,
        req.lock_wait,
        ui,
        &redactor,
    )
    .await
    {
        Ok(l) => l,
        Err(code) => return code,
    };
    // Secrets given with --var are not stored: resume asks for them again.
    let stored_vars: Vec<(String, String)> = req
        .vars
        .iter()
        .filter(|(k, _)| !playbook.def.params.get(k).is_some_and(|p| p.secret))
        .cloned()
        .collect();
    let record = RunRecord {
        id: run_id.clone(),
        playbook: playbook.def.name.clone(),
        file: playbook.source.path.display().to_string(),
        env: req.env.clone(),
        target: target
            .as_ref()
            .map_or_else(|| "(none)".to_owned(), TargetSpec::describe),
        operator: operator.clone(),
        host: run::hostname(),
        pid: i64::from(std::process::id()),
        content_hash: playbook.content_hash(),
        plan_hash: plan.plan_hash.clone(),
        migrations_hash: project.migrations_hash(),
        params: json!(plan.params),
        vars: stored_vars,
        tags: req.tags.clone(),
        skip_tags: req.skip_tags.clone(),
        status: RunStatus::Running,
        started_at: run::now_ms(),
        finished_at: None,
        error: None,
    };
    let started = Event::run(
        EventKind::RunStarted,
        json!({
            "playbook": record.playbook, "env": record.env, "target": record.target, "operator": operator,
            "host": record.host, "content_hash": record.content_hash, "plan_hash": record.plan_hash,
            "params": record.params, "version": env!("CARGO_PKG_VERSION"),
        }),
    );
    let key = target
        .as_ref()
        .map_or_else(|| "(none)".to_owned(), TargetSpec::key);
    let started = Event {
        data: redactor.redact_json(&started.data),
        ..started
    };
    let dir = audit_dir(&project.root, config);
    let server_version = server_version(target.as_ref()).await;
    let meta = audit_meta(
        &record,
        &playbook.source.path,
        target.as_ref(),
        server_version.as_deref(),
    );
    let mut log = match open_audit(&dir, &run_id, config).await {
        Ok(l) => l,
        Err(e) => {
            ui.error(
                &redactor.redact(&e.to_string()),
                Some("fix the audit folder or sink; nothing ran"),
            );
            lock_release(lock).await;
            return Exit::Internal;
        }
    };
    let head = match log
        .append(crate::audit::body_from_event(&meta, &started))
        .await
    {
        Ok(h) => h,
        Err(e) => {
            ui.error(&redactor.redact(&e.to_string()), None);
            lock_release(lock).await;
            return Exit::Internal;
        }
    };
    if let Err(e) = state.create_run(&record, &key, &started, Some(&head)).await {
        ui.error(&redactor.redact(&e.to_string()), None);
        lock_release(lock).await;
        return Exit::Internal;
    }
    if let Some((fleet, name)) = &req.fleet {
        let _ = state
            .fleet_target(fleet, name, Some(&run_id), "running", None)
            .await;
    }
    let _ = crate::audit::index(
        &dir,
        &json!({"run_id": run_id, "playbook": record.playbook, "env": record.env, "operator": record.operator, "started_at": run::format_ms(record.started_at)}),
    );
    for gate in &req.approve {
        let approval = run::Approval {
            gate: gate.clone(),
            actor: operator.clone(),
            decision: "approve".to_owned(),
            comment: Some("approved by the operator with --approve".to_owned()),
            plan_hash: plan.plan_hash.clone(),
            at: run::now_ms(),
        };
        let ev = approval.event();
        let head = match log.append(crate::audit::body_from_event(&meta, &ev)).await {
            Ok(h) => h,
            Err(e) => {
                ui.error(&e.to_string(), None);
                return Exit::Internal;
            }
        };
        if let Err(e) = state.record_approval(&run_id, &approval, Some(&head)).await {
            ui.error(&e.to_string(), None);
            return Exit::Internal;
        }
    }
    let mut engine = Engine::new(
        project, playbook, record, state, redactor, target, params, ui, cancel,
    );
    engine.audit = Some(log);
    engine.audit_meta = meta;
    engine.plan_hash = plan.plan_hash.clone();
    engine.confirm = req.confirm.clone();
    engine.progress.note(&format!(
        "run {run_id}: {} on {} ({})",
        engine.run.playbook, engine.run.env, engine.run.target
    ));
    let exit = engine.execute().await;
    engine.shutdown().await;
    if let Some(l) = lock {
        l.release().await;
    }
    exit
}

/// `runbook resume RUN`.
pub async fn resume(
    project: &Project,
    req: ResumeRequest,
    ui: &Ui,
    cancel: watch::Receiver<bool>,
) -> Exit {
    let config = project.config_def();
    let state = match open_state(project, req.state.as_deref(), ui).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let record = match find_run(&state, &req.run_id, ui).await {
        Some(r) => r,
        None => return Exit::Invalid,
    };
    if record.crashed() == Some(false) {
        ui.error(
            &format!(
                "run {} is still running (process {} on {})",
                record.id, record.pid, record.host
            ),
            Some("wait for it to finish, or press Ctrl-C in its terminal first"),
        );
        return Exit::Locked;
    }
    if !record.status.resumable() {
        ui.error(
            &format!(
                "run {} is {}; only running, interrupted or waiting runs can be resumed",
                record.id,
                record.status.as_str()
            ),
            Some("start a new run with `runbook run`"),
        );
        return Exit::Invalid;
    }
    let path = PathBuf::from(&record.file);
    let playbook = match project.load_playbook(&path) {
        Ok(p) => p,
        Err(diags) => {
            ui.diagnostics(&diags);
            ui.error(
                &format!(
                    "the playbook of run {} no longer validates; nothing ran",
                    record.id
                ),
                None,
            );
            return Exit::Invalid;
        }
    };
    if playbook.content_hash() != record.content_hash {
        ui.error(
            &format!("the playbook `{}` changed since run {} started; resume refuses to mix two versions", record.playbook, record.id),
            Some("restore the playbook as it was, or start a new run"),
        );
        return Exit::Invalid;
    }
    let mut vars = record.vars.clone();
    vars.extend(req.vars.iter().cloned());
    let lookup = |k: &str| std::env::var(k).ok();
    let params = match plan::resolve_params(&playbook.def, &vars, &lookup) {
        Ok(p) => p,
        Err(diags) => {
            for d in &diags {
                ui.error(&d.message, d.hint.as_deref());
            }
            ui.error("resume needs the same parameters as the run; secrets given with --var must be given again", None);
            return Exit::Invalid;
        }
    };
    let target = match target_spec(&project.root, config, &record.env, req.target.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            ui.error(&e, None);
            return Exit::Invalid;
        }
    };
    let redactor = redactor_for(config, &params, target.as_ref());
    let steps = match state.load_steps(&record.id).await {
        Ok(s) => s,
        Err(e) => {
            ui.error(&e.to_string(), None);
            return Exit::Internal;
        }
    };
    // A step that started and never finished has an unknown outcome: a person decides.
    let in_flight: Vec<String> = steps
        .iter()
        .filter(|s| s.status == StepStatus::Running)
        .map(|s| s.step.clone())
        .collect();
    let undecided: Vec<&String> = in_flight
        .iter()
        .filter(|s| !req.retry_steps.contains(s) && !req.skip_steps.contains(s))
        .collect();
    if !undecided.is_empty() {
        let list = undecided
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        ui.error(
            &format!("step {list} of run {} was in flight when the run stopped; its outcome is unknown", record.id),
            Some(&format!(
                "check the target, then resume with --retry-step {0} to run it again or --skip-step {0} if it took effect",
                undecided[0]
            )),
        );
        return Exit::Invalid;
    }
    for s in req.retry_steps.iter().chain(&req.skip_steps) {
        if !in_flight.contains(s) {
            ui.error(
                &format!("step `{s}` was not in flight in run {}", record.id),
                Some("--retry-step and --skip-step name steps whose outcome is unknown; `runbook status RUN` lists them"),
            );
            return Exit::Invalid;
        }
    }
    let lock = match take_lock(
        target.as_ref(),
        &record.id,
        &run::operator(),
        req.lock_wait,
        ui,
        &redactor,
    )
    .await
    {
        Ok(l) => l,
        Err(code) => return code,
    };
    let protections = protections_of(config, &record.env);
    if let Err(code) = check_windows(&protections, &record.env, ui) {
        lock_release(lock).await;
        return code;
    }
    // Approvals bind to the plan: different variables on resume give a different plan.
    let plan_req = plan::PlanRequest {
        env: &record.env,
        vars: &vars,
        target_override: req.target.as_deref(),
    };
    let plan_hash = match plan::build(&playbook, config, &plan_req) {
        Ok(p) => p.plan_hash,
        Err(diags) => {
            for d in &diags {
                ui.error(&d.message, d.hint.as_deref());
            }
            lock_release(lock).await;
            return Exit::Invalid;
        }
    };
    let run_id = record.id.clone();
    let dir = audit_dir(&project.root, config);
    let server_version = server_version(target.as_ref()).await;
    let meta = audit_meta(
        &record,
        &playbook.source.path,
        target.as_ref(),
        server_version.as_deref(),
    );
    let log = match open_audit(&dir, &run_id, config).await {
        Ok(l) => l,
        Err(e) => {
            ui.error(&redactor.redact(&e.to_string()), Some("the audit chain of this run must be intact to continue it; `runbook audit verify RUN` says what is wrong"));
            lock_release(lock).await;
            return Exit::AuditFailed;
        }
    };
    let mut engine = Engine::new(
        project, playbook, record, state, redactor, target, params, ui, cancel,
    );
    engine.audit = Some(log);
    engine.audit_meta = meta;
    engine.plan_hash = plan_hash;
    engine.confirm = req.confirm.clone();
    for s in &steps {
        if s.status != StepStatus::Running {
            engine.restore(s.phase, &s.step, s.status, &s.outputs);
        }
    }
    if let Err(code) = engine
        .record(Event::run(
            EventKind::RunResumed,
            json!({"operator": run::operator(), "host": run::hostname(), "pid": std::process::id()}),
        ))
        .await
    {
        return code;
    }
    for s in steps.iter().filter(|s| s.status == StepStatus::Running) {
        let choice = if req.skip_steps.contains(&s.step) {
            "skip"
        } else {
            "retry"
        };
        let ev = Event::step(
            EventKind::ResumeDecision,
            &s.step,
            s.phase,
            json!({"choice": choice, "operator": run::operator()}),
        );
        if let Err(code) = engine.record(ev).await {
            return code;
        }
        if choice == "skip" {
            let ev = Event::step(
                EventKind::StepSkipped,
                &s.step,
                s.phase,
                json!({"reason": "skipped by the operator on resume"}),
            );
            if let Err(code) = engine.record(ev).await {
                return code;
            }
            engine.restore(s.phase, &s.step, StepStatus::Skipped, &Json::Null);
        }
    }
    engine.progress.note(&format!(
        "resuming run {run_id}: {} on {}",
        engine.run.playbook, engine.run.env
    ));
    let exit = engine.execute().await;
    engine.shutdown().await;
    if let Some(l) = lock {
        l.release().await;
    }
    exit
}

/// The audit folder: the config's `audit.dir`, else `.runbook/audit`.
pub fn audit_dir(root: &std::path::Path, config: Option<&ConfigDef>) -> PathBuf {
    match config
        .and_then(|c| c.audit.as_ref())
        .and_then(|a| a.dir.as_ref())
    {
        Some(d) => root.join(d),
        None => root.join(".runbook").join("audit"),
    }
}

/// The run-signing key, from the environment variable the config names.
fn signing_key(config: Option<&ConfigDef>) -> Option<String> {
    let var = config
        .and_then(|c| c.audit.as_ref())
        .and_then(|a| a.signing_key_env.as_ref())?;
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// Opens a run's audit chain, with the central sink when the config names one.
async fn open_audit(
    dir: &std::path::Path,
    run_id: &str,
    config: Option<&ConfigDef>,
) -> Result<AuditLog, crate::audit::AuditError> {
    let mut log = AuditLog::open(dir, run_id)?;
    if let Some(var) = config
        .and_then(|c| c.audit.as_ref())
        .and_then(|a| a.sink_url_env.as_ref())
    {
        let url = std::env::var(var).map_err(|_| {
            crate::audit::AuditError::Sink(format!("`{var}` (the audit sink) is not set"))
        })?;
        log.set_sink(crate::audit::Sink::connect(&url).await?);
    }
    Ok(log)
}

/// The facts every audit record of a run carries. Never the password: the target is named by
/// host and database.
fn audit_meta(
    record: &RunRecord,
    file: &std::path::Path,
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

/// Opens the state store the flags and config name, reporting failures as exit codes.
pub async fn open_state(
    project: &Project,
    flag: Option<&str>,
    ui: &Ui,
) -> Result<StateStore, Exit> {
    let spec = state_spec(&project.root, project.config_def(), flag).map_err(|e| {
        ui.error(&e, None);
        Exit::Invalid
    })?;
    StateStore::open(&spec).await.map_err(|e| {
        ui.error(
            &crate::redact::global().redact(&e.to_string()),
            Some("check the state store location (--state or `state:` in runbook.yaml)"),
        );
        Exit::Internal
    })
}

async fn lock_release(lock: Option<TargetLock>) {
    if let Some(l) = lock {
        l.release().await;
    }
}

fn protections_of(config: Option<&ConfigDef>, env: &str) -> crate::config::Protections {
    config
        .and_then(|c| c.environments.get(env))
        .map(|e| e.protections.clone())
        .unwrap_or_default()
}

/// An environment with maintenance windows refuses runs outside them, naming the next opening.
fn check_windows(p: &crate::config::Protections, env: &str, ui: &Ui) -> Result<(), Exit> {
    if p.windows.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now();
    let mut next = Vec::new();
    for w in &p.windows {
        match crate::gate::window(w, now) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(when)) => next.push(when),
            Err(e) => {
                ui.error(
                    &format!("a maintenance window of `{env}` is invalid: {e}"),
                    None,
                );
                return Err(Exit::Invalid);
            }
        }
    }
    ui.error(
        &format!("environment `{env}` is outside its maintenance windows; nothing ran"),
        Some(&format!(
            "the next window opens {}",
            next.first().cloned().unwrap_or_default()
        )),
    );
    Err(Exit::Refused)
}

/// The approval gate step with this qualified id (`approve`, or `sub.approve` in an include).
fn find_approval_gate(pb: &Playbook, qid: &str) -> Option<Step> {
    let (head, rest) = match qid.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (qid, None),
    };
    match rest {
        None => pb
            .def
            .steps
            .iter()
            .find(|s| {
                s.id.as_deref() == Some(head)
                    && s.gate.as_ref().is_some_and(|g| g.approval.is_some())
            })
            .cloned(),
        Some(rest) => pb
            .includes
            .get(head)
            .and_then(|child| find_approval_gate(child, rest)),
    }
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

async fn take_lock(
    target: Option<&TargetSpec>,
    run_id: &str,
    operator: &str,
    wait: Duration,
    ui: &Ui,
    redactor: &Redactor,
) -> Result<Option<TargetLock>, Exit> {
    let Some(target) = target else {
        return Ok(None);
    };
    match TargetLock::acquire(target, run_id, operator, wait).await {
        Ok(l) => Ok(Some(l)),
        Err(LockError::Held { holder }) => {
            ui.error(
                &format!(
                    "{} is in use by another run ({holder}); nothing ran",
                    target.describe()
                ),
                Some("wait for that run to finish, or pass --lock-wait 5m to wait for it"),
            );
            Err(Exit::Locked)
        }
        Err(LockError::Failed(e)) => {
            ui.error(
                &redactor.redact(&format!("cannot lock {}: {e}", target.describe())),
                None,
            );
            Err(Exit::Internal)
        }
    }
}

impl<'a> Engine<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        project: &Project,
        playbook: Arc<Playbook>,
        run: RunRecord,
        state: StateStore,
        redactor: Redactor,
        target: Option<TargetSpec>,
        params: BTreeMap<String, plan::ParamValue>,
        ui: &'a Ui,
        cancel: watch::Receiver<bool>,
    ) -> Self {
        let config = project.config_def();
        let env = config.and_then(|c| c.environments.get(&run.env));
        let env_ctx = json!({
            "name": run.env,
            "target": run.target,
            "protected": env.is_some_and(|e| e.protections.is_protected()),
        });
        let vars_ctx = json!(env.map(|e| e.vars.clone()).unwrap_or_default());
        let root_params: Map<String, Json> =
            params.into_iter().map(|(k, v)| (k, v.value)).collect();
        let dirs = ProjectDirs {
            migrations: project.migrations_dir(),
            seeds: project.seeds_dir(),
            env: run.env.clone(),
            protected: env.is_some_and(|e| e.protections.is_protected()),
        };
        let mut engine = Engine {
            root: project.root.clone(),
            ui,
            state,
            redactor,
            run,
            target,
            db: None,
            env_ctx,
            vars_ctx,
            scopes: vec![Scope {
                playbook: playbook.clone(),
                params: Some(root_params),
                given: None,
                steps: Map::new(),
            }],
            main: Vec::new(),
            comps: Vec::new(),
            on_failure: Vec::new(),
            finally: Vec::new(),
            blocks: Vec::new(),
            done: BTreeMap::new(),
            cancel,
            progress: Progress::new(ui),
            failpoint: std::env::var("RUNBOOK_FAILPOINT").ok(),
            protections: env.map(|e| e.protections.clone()).unwrap_or_default(),
            dirs,
            plan_hash: String::new(),
            confirm: None,
            audit: None,
            audit_meta: Map::new(),
            audit_dir: audit_dir(&project.root, config),
            signing_key: signing_key(config),
        };
        let mut ord = 0;
        engine.flatten(&playbook, &playbook.def.steps.clone(), 0, "", &mut ord, &[]);
        engine.on_failure =
            handler_units(&playbook.def.on_failure, Phase::OnFailure, 0, "", &mut ord);
        engine.finally = handler_units(&playbook.def.finally, Phase::Finally, 0, "", &mut ord);
        engine
    }

    /// Flattens steps (and included playbooks' steps) into units, in order.
    fn flatten(
        &mut self,
        pb: &Arc<Playbook>,
        steps: &[Step],
        scope: usize,
        prefix: &str,
        ord: &mut i64,
        inherited_tags: &[String],
    ) {
        for (i, step) in steps.iter().enumerate() {
            let local = step.local_id("step", i);
            let qid = format!("{prefix}{local}");
            if let Some(Action::Include(inc)) = step.action() {
                let Some(child) = pb.includes.get(&local).cloned() else {
                    continue;
                };
                self.scopes.push(Scope {
                    playbook: child.clone(),
                    params: None,
                    given: Some((inc.params.clone(), scope)),
                    steps: Map::new(),
                });
                let child_scope = self.scopes.len() - 1;
                let child_steps = child.def.steps.clone();
                let child_prefix = format!("{qid}.");
                // An include's tags select its steps, like their own.
                let mut tags = inherited_tags.to_vec();
                tags.extend(step.tags.iter().cloned());
                let start = self.main.len();
                self.flatten(&child, &child_steps, child_scope, &child_prefix, ord, &tags);
                let end = self.main.len();
                if end > start {
                    let on_failure = handler_units(
                        &child.def.on_failure,
                        Phase::OnFailure,
                        child_scope,
                        &child_prefix,
                        ord,
                    );
                    let finally = handler_units(
                        &child.def.finally,
                        Phase::Finally,
                        child_scope,
                        &child_prefix,
                        ord,
                    );
                    self.blocks.push(IncludeBlock {
                        start,
                        end,
                        when: step.when.clone(),
                        parent_scope: scope,
                        qid: qid.clone(),
                        on_failure,
                        finally,
                    });
                }
                continue;
            }
            *ord += 1;
            let comps = step
                .rollback
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let clocal = c.local_id(&format!("{local}.rollback"), j);
                    Unit {
                        qid: format!("{prefix}{clocal}"),
                        local: clocal,
                        scope,
                        step: c.clone(),
                        phase: Phase::Rollback,
                        ord: *ord,
                    }
                })
                .collect();
            let mut step = step.clone();
            step.tags.extend(inherited_tags.iter().cloned());
            self.main.push(Unit {
                qid,
                local,
                scope,
                step,
                phase: Phase::Main,
                ord: *ord,
            });
            self.comps.push(comps);
        }
    }

    /// Whether an `approval` or `confirm` gate of the main steps passed before `unit` (for a
    /// compensation, `on_failure` or `finally` step: anywhere in the main steps).
    fn human_gate_passed(&self, unit: &Unit) -> bool {
        let before = self
            .main
            .iter()
            .take_while(|u| unit.phase != Phase::Main || u.qid != unit.qid);
        before.into_iter().any(|u| {
            u.step
                .gate
                .as_ref()
                .is_some_and(|g| g.approval.is_some() || g.confirm.is_some())
                && self.done.get(&(Phase::Main, u.qid.clone())) == Some(&StepStatus::Succeeded)
        })
    }

    /// Takes in a step's recorded outcome (resume).
    fn restore(&mut self, phase: Phase, qid: &str, status: StepStatus, outputs: &Json) {
        self.done.insert((phase, qid.to_owned()), status);
        let unit = self
            .main
            .iter()
            .chain(self.comps.iter().flatten())
            .chain(&self.on_failure)
            .chain(&self.finally)
            .chain(
                self.blocks
                    .iter()
                    .flat_map(|b| b.on_failure.iter().chain(&b.finally)),
            )
            .find(|u| u.qid == qid && u.phase == phase)
            .cloned();
        if let Some(u) = unit {
            let outputs = if outputs.is_object() {
                outputs.clone()
            } else {
                json!({})
            };
            self.scopes[u.scope].steps.insert(
                u.local.clone(),
                json!({"outputs": outputs, "status": status.as_str()}),
            );
        }
    }

    async fn shutdown(&mut self) {
        if let Some(db) = self.db.take() {
            db.close().await;
        }
        if let (Some(log), Some(key)) = (&self.audit, &self.signing_key)
            && let Err(e) = crate::audit::sign(&self.audit_dir, &self.run.id, log.head(), key)
        {
            self.ui.error(
                &e.to_string(),
                Some("the run's audit chain is complete but unsigned"),
            );
        }
        self.state.close().await;
    }

    fn crash_if(&self, point: &str, qid: &str) {
        if self.failpoint.as_deref() == Some(&format!("{point}:{qid}")) {
            // A test hook: die the way a power cut or `kill -9` would, with no cleanup.
            // SAFETY: sending a signal to ourselves.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }

    /// Records an approval or rejection: audit chain first, then the state store.
    async fn record_approval(&mut self, approval: &run::Approval) -> Result<(), Exit> {
        let ev = approval.event();
        let head = match &mut self.audit {
            Some(log) => Some(
                log.append(crate::audit::body_from_event(&self.audit_meta, &ev))
                    .await
                    .map_err(|e| {
                        self.ui.error(&e.to_string(), None);
                        Exit::Internal
                    })?,
            ),
            None => None,
        };
        self.state
            .record_approval(&self.run.id, approval, head.as_ref())
            .await
            .map_err(|e| {
                self.ui.error(&e.to_string(), None);
                Exit::Internal
            })
    }

    async fn record(&mut self, ev: Event) -> Result<(), Exit> {
        let ev = Event {
            data: self.redactor.redact_json(&ev.data),
            ..ev
        };
        // The audit record first (fsynced), then the state store with the new head: a crash in
        // between leaves one record more in the chain than the store knows, never one less.
        let head = match &mut self.audit {
            Some(log) => match log
                .append(crate::audit::body_from_event(&self.audit_meta, &ev))
                .await
            {
                Ok(h) => Some(h),
                Err(e) => {
                    self.ui.error(
                        &self.redactor.redact(&e.to_string()),
                        Some("the run stopped because its audit record could not be written"),
                    );
                    return Err(Exit::Internal);
                }
            },
            None => None,
        };
        self.state
            .record(&self.run.id, &ev, head.as_ref())
            .await
            .map_err(|e| {
                self.ui.error(
                    &self.redactor.redact(&e.to_string()),
                    Some("the run stopped because its state could not be recorded"),
                );
                Exit::Internal
            })
    }

    /// Runs the whole playbook from wherever the records say it is.
    async fn execute(&mut self) -> Exit {
        let mut failure: Option<(String, String)> = None;
        let mut refused = false;
        let mut completed: Vec<usize> = Vec::new();
        // The includes the run is inside, outermost first.
        let mut open: Vec<usize> = Vec::new();
        // Units before this index belong to an include whose `when` is false.
        let mut skip_until = 0;
        let mut skip_reason = String::new();
        'main: for i in 0..self.main.len() {
            // Outer includes come later in `blocks`: entering at the same unit, they open first.
            let entered: Vec<usize> = (0..self.blocks.len())
                .rev()
                .filter(|&b| self.blocks[b].start == i)
                .collect();
            for b in entered {
                if i < skip_until {
                    break;
                }
                match self.include_wanted(b) {
                    Ok(true) => open.push(b),
                    Ok(false) => {
                        skip_until = self.blocks[b].end;
                        skip_reason = format!(
                            "`when: {}` of include {} is false",
                            self.blocks[b].when.as_deref().unwrap_or_default(),
                            self.blocks[b].qid
                        );
                    }
                    Err(msg) => {
                        failure = Some((
                            self.blocks[b].qid.clone(),
                            format!("cannot evaluate `when`: {msg}"),
                        ));
                        break 'main;
                    }
                }
            }
            let unit = self.main[i].clone();
            'unit: {
                if i < skip_until {
                    if !self.done.contains_key(&(Phase::Main, unit.qid.clone()))
                        && let Err(code) = self.skip(&unit, &skip_reason).await
                    {
                        return code;
                    }
                    break 'unit;
                }
                match self.done.get(&(Phase::Main, unit.qid.clone())) {
                    Some(StepStatus::Succeeded) => {
                        completed.push(i);
                        break 'unit;
                    }
                    Some(StepStatus::Skipped) => break 'unit,
                    Some(StepStatus::Failed) if unit.step.continue_on_error => break 'unit,
                    Some(StepStatus::Failed) => {
                        failure = Some((unit.qid.clone(), "failed before the resume".to_owned()));
                        break 'main;
                    }
                    _ => {}
                }
                if !self.selected(&unit) {
                    if let Err(code) = self.skip(&unit, "not selected by --tags/--skip-tags").await
                    {
                        return code;
                    }
                    break 'unit;
                }
                match self.run_unit(&unit).await {
                    Ok(true) => completed.push(i),
                    Ok(false) => {}
                    Err(UnitError::Failed(msg)) if unit.step.continue_on_error => {
                        self.progress.note(&format!(
                            "step {} failed and continue_on_error is set: {msg}",
                            unit.qid
                        ));
                    }
                    Err(UnitError::Failed(msg)) => {
                        failure = Some((unit.qid.clone(), msg));
                        break 'main;
                    }
                    Err(UnitError::Interrupted) => return self.interrupted(&unit.qid).await,
                    Err(UnitError::Fatal(code)) => return code,
                    Err(UnitError::Waiting(msg)) => return self.waiting(&unit.qid, &msg).await,
                    Err(UnitError::Refused(msg)) => {
                        refused = true;
                        failure = Some((unit.qid.clone(), msg));
                        break 'main;
                    }
                }
            }
            // An include whose last step this was: its `finally` steps run now, unless none of
            // its steps ran (all deselected by tags or their own `when`). One that fails fails
            // the run here, like a failed step.
            while let Some(&b) = open.last()
                && self.blocks[b].end == i + 1
            {
                open.pop();
                if !self.block_ran(b) {
                    continue;
                }
                let units = self.blocks[b].finally.clone();
                match self.run_handlers(&units).await {
                    Ok(None) => {}
                    Ok(Some(failed)) => {
                        failure = Some(failed);
                        break 'main;
                    }
                    Err(code) => return code,
                }
            }
        }
        let mut rollback_ok = true;
        let mut finally_ok = true;
        if let Some((step, msg)) = &failure {
            if let Err(code) = self
                .record(Event::run(
                    EventKind::RollbackStarted,
                    json!({"failed_step": step, "error": msg}),
                ))
                .await
            {
                return code;
            }
            let with_comps: Vec<usize> = completed
                .iter()
                .rev()
                .copied()
                .filter(|&i| !self.comps[i].is_empty())
                .collect();
            if !with_comps.is_empty() {
                self.progress.note(&format!(
                    "step {step} failed: rolling back {} completed steps",
                    with_comps.len()
                ));
            }
            for i in with_comps {
                for comp in self.comps[i].clone() {
                    if matches!(
                        self.done.get(&(Phase::Rollback, comp.qid.clone())),
                        Some(StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped)
                    ) {
                        continue;
                    }
                    match self.run_unit(&comp).await {
                        Ok(_) => {}
                        Err(
                            UnitError::Failed(_) | UnitError::Refused(_) | UnitError::Waiting(_),
                        ) => rollback_ok = false,
                        Err(UnitError::Interrupted) => return self.interrupted(&comp.qid).await,
                        Err(UnitError::Fatal(code)) => return code,
                    }
                }
            }
            if let Err(code) = self
                .record(Event::run(
                    EventKind::RollbackFinished,
                    json!({"ok": rollback_ok}),
                ))
                .await
            {
                return code;
            }
            // The includes the failure happened in, innermost first: their `on_failure`, then
            // their `finally`. A failing `on_failure` step does not change the outcome.
            for &b in open.iter().rev() {
                let (on_failure, finally) = (
                    self.blocks[b].on_failure.clone(),
                    self.blocks[b].finally.clone(),
                );
                if let Err(code) = self.run_handlers(&on_failure).await {
                    return code;
                }
                match self.run_handlers(&finally).await {
                    Ok(failed) => finally_ok &= failed.is_none(),
                    Err(code) => return code,
                }
            }
            let units = self.on_failure.clone();
            if let Err(code) = self.run_handlers(&units).await {
                return code;
            }
        }
        let units = self.finally.clone();
        match self.run_handlers(&units).await {
            Ok(failed) => finally_ok &= failed.is_none(),
            Err(code) => return code,
        }
        let (status, exit, error) = match (&failure, rollback_ok, finally_ok) {
            (Some((step, msg)), true, _) if refused => (
                RunStatus::Refused,
                Exit::Refused,
                Some(format!("gate {step} refused the run: {msg}")),
            ),
            (None, _, true) => (RunStatus::Succeeded, Exit::Ok, None),
            (None, _, false) => (
                RunStatus::Failed,
                Exit::RunFailed,
                Some("a finally step failed".to_owned()),
            ),
            (Some((step, msg)), true, _) => (
                RunStatus::Failed,
                Exit::RunFailed,
                Some(format!("step {step} failed: {msg}")),
            ),
            (Some((step, msg)), false, _) => (
                RunStatus::RollbackFailed,
                Exit::RunFailed,
                Some(format!(
                    "step {step} failed: {msg}; a compensation failed too, the target needs attention"
                )),
            ),
        };
        let error = match error {
            Some(e) if failure.is_some() && !finally_ok => {
                Some(format!("{e}; a finally step failed too"))
            }
            other => other,
        };
        if let Err(code) = self
            .record(Event::run(
                EventKind::RunFinished,
                json!({"status": status.as_str(), "exit_code": exit.code(), "error": error}),
            ))
            .await
        {
            return code;
        }
        let outcome = match &error {
            None => format!("run {} succeeded", self.run.id),
            Some(e) => format!(
                "run {} {}: {}",
                self.run.id,
                status.as_str().replace('_', " "),
                self.redactor.redact(e)
            ),
        };
        self.progress.summary(&outcome);
        exit
    }

    /// Whether an include's `when` (if any) holds, in the including playbook's scope.
    fn include_wanted(&mut self, b: usize) -> Result<bool, String> {
        let Some(when) = self.blocks[b].when.clone() else {
            return Ok(true);
        };
        let ctx = self.context(self.blocks[b].parent_scope)?;
        template::eval_bool(&when, &ctx)
    }

    /// Whether any step of an include ran (succeeded or failed, now or before a resume).
    fn block_ran(&self, b: usize) -> bool {
        let block = &self.blocks[b];
        self.main[block.start..block.end].iter().any(|u| {
            matches!(
                self.done.get(&(Phase::Main, u.qid.clone())),
                Some(StepStatus::Succeeded | StepStatus::Failed)
            )
        })
    }

    /// Runs the `on_failure` or `finally` steps not recorded yet, every one of them even after
    /// one fails, and gives the first failure (a step with `continue_on_error` does not count;
    /// one that failed before a resume does).
    async fn run_handlers(&mut self, units: &[Unit]) -> Result<Option<(String, String)>, Exit> {
        let mut first = None;
        for unit in units {
            match self.done.get(&(unit.phase, unit.qid.clone())) {
                Some(StepStatus::Failed) if !unit.step.continue_on_error => {
                    first.get_or_insert((unit.qid.clone(), "failed before the resume".to_owned()));
                    continue;
                }
                Some(_) => continue,
                None => {}
            }
            match self.run_unit(unit).await {
                Ok(_) => {}
                Err(UnitError::Failed(msg) | UnitError::Refused(msg) | UnitError::Waiting(msg)) => {
                    if !unit.step.continue_on_error && first.is_none() {
                        first = Some((unit.qid.clone(), msg));
                    }
                }
                Err(UnitError::Interrupted) => return Err(self.interrupted(&unit.qid).await),
                Err(UnitError::Fatal(code)) => return Err(code),
            }
        }
        Ok(first)
    }

    /// The run stops at a gate: recorded as waiting, the lock is released by the caller, and
    /// `runbook approve` / `resume` continue it.
    async fn waiting(&mut self, gate: &str, msg: &str) -> Exit {
        let _ = self
            .record(Event::run(
                EventKind::RunWaiting,
                json!({"gate": gate, "reason": msg}),
            ))
            .await;
        let id = &self.run.id;
        self.progress.summary(&format!(
            "run {id} is waiting at gate {gate}: {msg}\nnothing past the gate ran; an approver runs `runbook approve {id} {gate}`, then `runbook resume {id}` continues"
        ));
        Exit::WaitingApproval
    }

    /// Records a gate's decision. A gate that decided (passed or refused) is a step that started;
    /// a waiting one has not, so resume evaluates it again.
    async fn record_gate(
        &mut self,
        unit: &Unit,
        rendered: &Json,
        decision: Json,
        started: bool,
    ) -> Result<(), UnitError> {
        if started {
            self.record(Event::step(
                EventKind::StepStarted,
                &unit.qid,
                unit.phase,
                json!({"ord": unit.ord, "attempt": 1, "action": "gate", "args": rendered}),
            ))
            .await
            .map_err(UnitError::Fatal)?;
        }
        self.record(Event::step(
            EventKind::GateDecision,
            &unit.qid,
            unit.phase,
            decision,
        ))
        .await
        .map_err(UnitError::Fatal)
    }

    /// Runs a gate step: records its decision and turns it into the unit's outcome.
    async fn run_gate(&mut self, unit: &Unit, ctx: &Json) -> Result<bool, UnitError> {
        let rendered = match actions::render_args(&unit.step, ctx) {
            Ok(v) => v,
            Err(e) => {
                return self
                    .fail(
                        unit,
                        1,
                        &format!("cannot render the gate: {e}"),
                        false,
                        Duration::ZERO,
                    )
                    .await;
            }
        };
        let gate: crate::playbook::GateAction = match serde_json::from_value(rendered.clone()) {
            Ok(g) => g,
            Err(e) => {
                return self
                    .fail(
                        unit,
                        1,
                        &format!("rendered gate is invalid: {e}"),
                        false,
                        Duration::ZERO,
                    )
                    .await;
            }
        };
        let kind = gate.kinds().first().copied().unwrap_or("gate");
        let began = Instant::now();
        let outcome = self.evaluate_gate(unit, &gate, ctx).await?;
        let operator = self.run.operator.clone();
        let shown = |o: &str, detail: &Json| json!({"kind": kind, "outcome": o, "gate": rendered, "detail": detail, "operator": operator});
        match outcome {
            crate::gate::GateOutcome::Pass(detail) => {
                self.record_gate(unit, &rendered, shown("passed", &detail), true)
                    .await?;
                let mut outputs = Map::new();
                outputs.insert("outcome".to_owned(), json!("passed"));
                outputs.insert(
                    "approvers".to_owned(),
                    detail.get("approvers").cloned().unwrap_or(json!([])),
                );
                outputs.insert(
                    "value".to_owned(),
                    detail.get("value").cloned().unwrap_or(Json::Null),
                );
                self.record(Event::step(
                    EventKind::StepFinished,
                    &unit.qid,
                    unit.phase,
                    json!({"ord": unit.ord, "attempt": 1, "outputs": outputs, "duration_ms": began.elapsed().as_millis() as i64}),
                ))
                .await
                .map_err(UnitError::Fatal)?;
                self.done
                    .insert((unit.phase, unit.qid.clone()), StepStatus::Succeeded);
                self.scopes[unit.scope].steps.insert(
                    unit.local.clone(),
                    json!({"outputs": outputs, "status": "succeeded"}),
                );
                let note = detail
                    .get("note")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.progress
                    .finish(&unit.qid, "gate", "ok", began.elapsed(), &note);
                Ok(true)
            }
            crate::gate::GateOutcome::Wait(msg) => {
                self.record_gate(
                    unit,
                    &rendered,
                    shown("waiting", &json!({"reason": msg})),
                    false,
                )
                .await?;
                self.progress
                    .finish(&unit.qid, "gate", "waiting", began.elapsed(), &msg);
                Err(UnitError::Waiting(msg))
            }
            crate::gate::GateOutcome::Refuse(msg) => {
                self.record_gate(
                    unit,
                    &rendered,
                    shown("refused", &json!({"reason": msg})),
                    true,
                )
                .await?;
                match self.fail(unit, 1, &msg, false, began.elapsed()).await {
                    Err(UnitError::Failed(m)) => Err(UnitError::Refused(m)),
                    other => other,
                }
            }
        }
    }

    async fn evaluate_gate(
        &mut self,
        unit: &Unit,
        gate: &crate::playbook::GateAction,
        ctx: &Json,
    ) -> Result<crate::gate::GateOutcome, UnitError> {
        use crate::gate::{GateOutcome, same_person};
        if let Some(c) = &gate.condition {
            return Ok(match template::eval(&c.expr, ctx) {
                Ok(v) if template::truthy(&v) => {
                    GateOutcome::Pass(json!({"value": v, "note": format!("`{}` holds", c.expr)}))
                }
                Ok(v) => {
                    GateOutcome::Refuse(format!("{} (`{}` is false; value {v})", c.message, c.expr))
                }
                Err(e) => GateOutcome::Refuse(format!("cannot evaluate `{}`: {e}", c.expr)),
            });
        }
        if let Some(w) = &gate.window {
            return Ok(match crate::gate::window(w, chrono::Utc::now()) {
                Ok(Ok(())) => GateOutcome::Pass(json!({"note": "inside the maintenance window"})),
                Ok(Err(next)) => GateOutcome::Refuse(format!(
                    "outside the maintenance window; the next one opens {next}"
                )),
                Err(e) => GateOutcome::Refuse(e),
            });
        }
        if let Some(r) = &gate.require_run {
            let playbook = r
                .playbook
                .clone()
                .unwrap_or_else(|| self.run.playbook.clone());
            let within = r
                .within
                .as_ref()
                .and_then(|d| d.parse())
                .unwrap_or(Duration::from_secs(30 * 86400));
            let since = run::now_ms() - within.as_millis() as i64;
            let same = r.same_migrations.unwrap_or(true);
            let runs = self
                .state
                .successes(&playbook, &r.env, since)
                .await
                .map_err(|e| {
                    self.ui.error(&e.to_string(), None);
                    UnitError::Fatal(Exit::Internal)
                })?;
            let found = runs
                .iter()
                .find(|x| !same || x.migrations_hash == self.run.migrations_hash);
            let within_text = crate::fmt::duration(within);
            return Ok(match found {
                Some(x) => GateOutcome::Pass(
                    json!({"value": x.id, "note": format!("run {} of `{playbook}` succeeded on `{}` at {}", x.id, r.env, run::format_ms(x.started_at))}),
                ),
                None => {
                    let mig = &self.run.migrations_hash[..12.min(self.run.migrations_hash.len())];
                    let why = match runs.first() {
                        Some(latest) if same => format!(
                            "; the latest, run {} at {}, had other migrations ({} instead of {mig})",
                            latest.id,
                            run::format_ms(latest.started_at),
                            &latest.migrations_hash[..12.min(latest.migrations_hash.len())]
                        ),
                        _ => String::new(),
                    };
                    let with = if same {
                        format!(" with these migrations ({mig})")
                    } else {
                        String::new()
                    };
                    GateOutcome::Refuse(format!(
                        "no successful run of `{playbook}` on `{}`{with} in the last {within_text}{why}",
                        r.env
                    ))
                }
            });
        }
        if let Some(c) = &gate.confirm {
            let expected = match &c.expect {
                Some(e) => e.clone(),
                None => self
                    .target
                    .as_ref()
                    .map(TargetSpec::database_name)
                    .unwrap_or_default(),
            };
            if let Some(given) = self.confirm.clone() {
                return Ok(if given.trim() == expected {
                    GateOutcome::Pass(json!({"note": "confirmed with --confirm"}))
                } else {
                    GateOutcome::Refuse(format!(
                        "the confirmation `{}` does not match `{expected}`; nothing was changed past this gate",
                        given.trim()
                    ))
                });
            }
            if crate::gate::interactive() {
                let answer =
                    crate::gate::prompt(&format!("{}\nType `{expected}` to go on: ", c.message))
                        .await
                        .unwrap_or_default();
                return Ok(if answer == expected {
                    GateOutcome::Pass(json!({"note": "confirmed at the terminal"}))
                } else {
                    GateOutcome::Refuse(format!(
                        "the confirmation `{answer}` does not match `{expected}`"
                    ))
                });
            }
            return Ok(GateOutcome::Wait(format!(
                "{} (no terminal: resume with --confirm {expected})",
                c.message
            )));
        }
        let Some(a) = &gate.approval else {
            return Ok(GateOutcome::Refuse("the gate has no kind".to_owned()));
        };
        let required = a
            .required
            .unwrap_or(1)
            .max(self.protections.approvals.unwrap_or(0))
            .max(1) as usize;
        let expiry = a
            .expires
            .as_ref()
            .or(self.protections.approval_expiry.as_ref())
            .and_then(|d| d.parse());
        loop {
            let all = self
                .state
                .approvals(&self.run.id, &unit.qid)
                .await
                .map_err(|e| {
                    self.ui.error(&e.to_string(), None);
                    UnitError::Fatal(Exit::Internal)
                })?;
            let now = run::now_ms();
            let mut approvers: Vec<String> = Vec::new();
            let mut void = 0;
            for x in &all {
                let valid = x.plan_hash == self.plan_hash
                    && expiry.is_none_or(|e| now - x.at <= e.as_millis() as i64)
                    && (self.protections.self_approval
                        || !same_person(&x.actor, &self.run.operator))
                    && a.approvers
                        .as_ref()
                        .is_none_or(|list| list.iter().any(|p| same_person(p, &x.actor)));
                if !valid {
                    void += 1;
                    continue;
                }
                if x.decision == "reject" {
                    let why = x
                        .comment
                        .as_deref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default();
                    return Ok(GateOutcome::Refuse(format!("rejected by {}{why}", x.actor)));
                }
                if !approvers.iter().any(|p| same_person(p, &x.actor)) {
                    approvers.push(x.actor.clone());
                }
            }
            if approvers.len() >= required {
                return Ok(GateOutcome::Pass(
                    json!({"approvers": approvers, "note": format!("approved by {}", approvers.join(", "))}),
                ));
            }
            let voided = if void > 0 {
                format!(
                    "; {void} approvals do not count (expired, self-approval, not a listed approver, or given for another plan)"
                )
            } else {
                String::new()
            };
            let msg = format!(
                "{} ({} of {required} approvals{voided})",
                a.message,
                approvers.len()
            );
            if !crate::gate::interactive() {
                return Ok(GateOutcome::Wait(msg));
            }
            // A person is at the terminal.
            if self.protections.self_approval && approvers.len() + 1 >= required {
                let answer = crate::gate::prompt(&format!(
                    "{msg}\nApprove as {}? [y/N] ",
                    self.run.operator
                ))
                .await
                .unwrap_or_default();
                let decision =
                    if answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes") {
                        "approve"
                    } else {
                        "reject"
                    };
                let approval = run::Approval {
                    gate: unit.qid.clone(),
                    actor: self.run.operator.clone(),
                    decision: decision.to_owned(),
                    comment: Some("answered at the terminal".to_owned()),
                    plan_hash: self.plan_hash.clone(),
                    at: run::now_ms(),
                };
                self.record_approval(&approval)
                    .await
                    .map_err(UnitError::Fatal)?;
                continue;
            }
            self.progress.note(&format!(
                "waiting for approval: {msg}\n  another person runs `runbook approve {} {}` (Ctrl-C to stop waiting; the run can be resumed)",
                self.run.id, unit.qid
            ));
            let mut cancel = self.cancel.clone();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = wait_cancel(&mut cancel) => return Err(UnitError::Interrupted),
            }
        }
    }

    async fn interrupted(&mut self, step: &str) -> Exit {
        let _ = self
            .record(Event::run(EventKind::RunInterrupted, json!({"status": "interrupted", "step": step, "error": format!("interrupted during step {step}")})))
            .await;
        self.progress.summary(&format!(
            "run {} interrupted during step {step}; continue with `runbook resume {}`",
            self.run.id, self.run.id
        ));
        Exit::Interrupted
    }

    fn selected(&self, unit: &Unit) -> bool {
        let tags = &unit.step.tags;
        if !self.run.tags.is_empty() && !tags.iter().any(|t| self.run.tags.contains(t)) {
            return false;
        }
        !tags.iter().any(|t| self.run.skip_tags.contains(t))
    }

    async fn skip(&mut self, unit: &Unit, reason: &str) -> Result<(), Exit> {
        self.record(Event::step(
            EventKind::StepSkipped,
            &unit.qid,
            unit.phase,
            json!({"ord": unit.ord, "reason": reason}),
        ))
        .await?;
        self.done
            .insert((unit.phase, unit.qid.clone()), StepStatus::Skipped);
        self.scopes[unit.scope].steps.insert(
            unit.local.clone(),
            json!({"outputs": {}, "status": "skipped"}),
        );
        let action = unit.step.action().map_or("?", |a| a.key());
        self.progress
            .finish(&unit.qid, action, "skipped", Duration::ZERO, reason);
        Ok(())
    }

    /// The template context of a unit: its scope's params and earlier outputs.
    fn context(&mut self, scope: usize) -> Result<Json, String> {
        self.context_for(scope, None)
    }

    /// The context with only the step outputs `wanted` (all when `None`): copying every earlier
    /// output for every step would make a long playbook quadratic.
    fn context_for(
        &mut self,
        scope: usize,
        wanted: Option<&BTreeSet<String>>,
    ) -> Result<Json, String> {
        self.ensure_params(scope)?;
        let s = &self.scopes[scope];
        let steps: Map<String, Json> = match wanted {
            None => s.steps.clone(),
            Some(ids) => ids
                .iter()
                .filter_map(|id| s.steps.get(id).map(|v| (id.clone(), v.clone())))
                .collect(),
        };
        Ok(json!({
            "params": s.params.clone().unwrap_or_default(),
            "env": self.env_ctx,
            "vars": self.vars_ctx,
            "steps": steps,
            "run": {
                "id": self.run.id, "operator": self.run.operator, "playbook": self.run.playbook,
                "started_at": run::format_ms(self.run.started_at),
            },
        }))
    }

    /// Renders an include's parameters the first time one of its steps runs.
    fn ensure_params(&mut self, scope: usize) -> Result<(), String> {
        if self.scopes[scope].params.is_some() {
            return Ok(());
        }
        let Some((given, parent)) = self.scopes[scope].given.clone() else {
            return Ok(());
        };
        let parent_ctx = self.context(parent)?;
        let def = self.scopes[scope].playbook.def.clone();
        let mut params = Map::new();
        for (name, p) in &def.params {
            let value = match given.get(name) {
                Some(Json::String(s)) if template::is_template(s) => {
                    template::render_native(s, &parent_ctx)?
                }
                Some(v) => v.clone(),
                None => match (&p.from_env, &p.default) {
                    (Some(var), _) if std::env::var(var).is_ok() => {
                        Json::String(std::env::var(var).unwrap_or_default())
                    }
                    (_, Some(d)) => d.clone(),
                    _ => Json::Null,
                },
            };
            if p.secret
                && let Json::String(s) = &value
            {
                self.redactor.add(s);
            }
            params.insert(name.clone(), value);
        }
        self.scopes[scope].params = Some(params);
        Ok(())
    }

    /// Runs one unit with its `when`, retries and timeout. `Ok(true)` when it ran and
    /// succeeded, `Ok(false)` when skipped.
    async fn run_unit(&mut self, unit: &Unit) -> Result<bool, UnitError> {
        let action = unit.step.action().map_or("?", |a| a.key());
        let wanted = referenced_steps(&unit.step);
        let ctx = self
            .context_for(unit.scope, wanted.as_ref())
            .map_err(UnitError::Failed)?;
        if let Some(when) = &unit.step.when {
            match template::eval_bool(when, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    self.skip(unit, &format!("`when: {when}` is false"))
                        .await
                        .map_err(UnitError::Fatal)?;
                    return Ok(false);
                }
                Err(e) => {
                    return self
                        .fail(
                            unit,
                            1,
                            &format!("cannot evaluate `when`: {e}"),
                            false,
                            Duration::ZERO,
                        )
                        .await;
                }
            }
        }
        if unit.step.gate.is_some() {
            return self.run_gate(unit, &ctx).await;
        }
        let retry = unit.step.retry.clone();
        let attempts = retry.as_ref().map_or(1, |r| r.attempts.max(1));
        let mut delay = retry
            .as_ref()
            .and_then(|r| r.delay.as_ref())
            .and_then(|d| d.parse())
            .unwrap_or(Duration::from_secs(1));
        let max_delay = retry
            .as_ref()
            .and_then(|r| r.max_delay.as_ref())
            .and_then(|d| d.parse())
            .unwrap_or(Duration::from_secs(3600));
        let backoff = retry.as_ref().and_then(|r| r.backoff).unwrap_or(1.0);
        let timeout = unit.step.timeout.as_ref().and_then(|d| d.parse());
        for attempt in 1..=attempts {
            let rendered = match actions::render_args(&unit.step, &ctx) {
                Ok(v) => v,
                Err(e) => {
                    return self
                        .fail(
                            unit,
                            attempt,
                            &format!("cannot render arguments: {e}"),
                            false,
                            Duration::ZERO,
                        )
                        .await;
                }
            };
            self.record(Event::step(
                EventKind::StepStarted,
                &unit.qid,
                unit.phase,
                json!({"ord": unit.ord, "attempt": attempt, "action": action, "args": rendered}),
            ))
            .await
            .map_err(UnitError::Fatal)?;
            // Rendered arguments may hold secrets; the tracing writer redacts them.
            tracing::debug!(step = %unit.qid, args = %rendered, "step arguments");
            self.crash_if("started", &unit.qid);
            self.progress.start(&unit.qid, action, attempt);
            let began = Instant::now();
            let result = {
                let human_gate_passed = self.human_gate_passed(unit);
                let mut actx = ActionCtx {
                    root: &self.root,
                    target: self.target.as_ref(),
                    db: &mut self.db,
                    cancel: self.cancel.clone(),
                    timeout,
                    redactor: &self.redactor,
                    template_ctx: &ctx,
                    run_id: &self.run.id,
                    step_id: &unit.qid,
                    progress: &self.progress,
                    dirs: &self.dirs,
                    human_gate_passed,
                };
                actions::execute(&unit.step, &rendered, &mut actx).await
            };
            let took = began.elapsed();
            self.crash_if("acted", &unit.qid);
            match result {
                Ok(mut outputs) => {
                    if let Err(e) = extract_outputs(&unit.step, &mut outputs) {
                        return self.fail(unit, attempt, &e, false, took).await;
                    }
                    let shown = self.redactor.redact_json(&Json::Object(outputs.clone()));
                    self.record(Event::step(
                        EventKind::StepFinished,
                        &unit.qid,
                        unit.phase,
                        json!({"ord": unit.ord, "attempt": attempt, "outputs": shown, "duration_ms": took.as_millis() as i64}),
                    ))
                    .await
                    .map_err(UnitError::Fatal)?;
                    self.crash_if("finished", &unit.qid);
                    self.done
                        .insert((unit.phase, unit.qid.clone()), StepStatus::Succeeded);
                    self.scopes[unit.scope].steps.insert(
                        unit.local.clone(),
                        json!({"outputs": outputs, "status": "succeeded"}),
                    );
                    self.progress.finish(&unit.qid, action, "ok", took, "");
                    return Ok(true);
                }
                Err(StepError::Interrupted) => {
                    self.progress
                        .finish(&unit.qid, action, "interrupted", took, "");
                    return Err(UnitError::Interrupted);
                }
                Err(StepError::Failed(msg)) => {
                    let will_retry = attempt < attempts;
                    if !will_retry {
                        return self.fail(unit, attempt, &msg, false, took).await;
                    }
                    let shown = self.redactor.redact(&msg);
                    self.record(Event::step(
                        EventKind::StepFailed,
                        &unit.qid,
                        unit.phase,
                        json!({"ord": unit.ord, "attempt": attempt, "error": shown, "will_retry": true, "duration_ms": took.as_millis() as i64}),
                    ))
                    .await
                    .map_err(UnitError::Fatal)?;
                    self.progress.finish(
                        &unit.qid,
                        action,
                        "failed",
                        took,
                        &format!("{shown}; retrying in {:.1}s", delay.as_secs_f64()),
                    );
                    let mut cancel = self.cancel.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = wait_cancel(&mut cancel) => return Err(UnitError::Interrupted),
                    }
                    delay = Duration::from_secs_f64(
                        (delay.as_secs_f64() * backoff).min(max_delay.as_secs_f64()),
                    );
                }
            }
        }
        Err(UnitError::Failed("no attempt ran".to_owned()))
    }

    async fn fail(
        &mut self,
        unit: &Unit,
        attempt: u32,
        msg: &str,
        will_retry: bool,
        took: Duration,
    ) -> Result<bool, UnitError> {
        let shown = self.redactor.redact(msg);
        self.record(Event::step(
            EventKind::StepFailed,
            &unit.qid,
            unit.phase,
            json!({"ord": unit.ord, "attempt": attempt, "error": shown, "will_retry": will_retry, "duration_ms": took.as_millis() as i64}),
        ))
        .await
        .map_err(UnitError::Fatal)?;
        self.done
            .insert((unit.phase, unit.qid.clone()), StepStatus::Failed);
        self.scopes[unit.scope].steps.insert(
            unit.local.clone(),
            json!({"outputs": {}, "status": "failed"}),
        );
        let action = unit.step.action().map_or("?", |a| a.key());
        self.progress
            .finish(&unit.qid, action, "failed", took, &shown);
        Err(UnitError::Failed(shown))
    }
}

/// The ids of the steps a step's templates and expressions read (`steps.<id>...`), or `None`
/// when one reads `steps` as a whole and all must be given.
fn referenced_steps(step: &Step) -> Option<BTreeSet<String>> {
    let mut vars = BTreeSet::new();
    let mut exprs: Vec<&str> = step.when.iter().map(String::as_str).collect();
    if let Some(w) = &step.wait_for {
        exprs.push(&w.until);
    }
    if let Some(c) = step.gate.as_ref().and_then(|g| g.condition.as_ref()) {
        exprs.push(&c.expr);
    }
    for e in exprs {
        vars.extend(template::expression_vars(e).ok()?);
    }
    let mut strings = Vec::new();
    let raw = match step.action() {
        Some(Action::Shell(a)) => serde_json::to_value(a).ok(),
        Some(Action::Sql(a)) => serde_json::to_value(a).ok(),
        Some(Action::Log(a)) => serde_json::to_value(a).ok(),
        Some(Action::WaitFor(a)) => serde_json::to_value(a).ok(),
        _ => None,
    };
    match raw {
        Some(v) => collect_templates(&v, &mut strings),
        None => return None,
    }
    for t in strings {
        vars.extend(template::template_vars(&t).ok()?);
    }
    let mut ids = BTreeSet::new();
    for v in vars {
        let mut parts = v.split('.');
        if parts.next() == Some("steps") {
            ids.insert(parts.next()?.to_owned());
        }
    }
    Some(ids)
}

fn collect_templates(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::String(s) if template::is_template(s) => out.push(s.clone()),
        Json::Array(a) => a.iter().for_each(|x| collect_templates(x, out)),
        Json::Object(m) => m.values().for_each(|x| collect_templates(x, out)),
        _ => {}
    }
}

/// The units of an `on_failure` or `finally` block, ids prefixed like their playbook's steps.
fn handler_units(
    steps: &[Step],
    phase: Phase,
    scope: usize,
    prefix: &str,
    ord: &mut i64,
) -> Vec<Unit> {
    let block = match phase {
        Phase::OnFailure => "on_failure",
        _ => "finally",
    };
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            *ord += 1;
            let local = s.local_id(block, i);
            Unit {
                qid: format!("{prefix}{local}"),
                local,
                scope,
                step: s.clone(),
                phase,
                ord: *ord,
            }
        })
        .collect()
}

#[derive(Debug)]
enum UnitError {
    Failed(String),
    Interrupted,
    Fatal(Exit),
    /// A gate stopped the run until a decision is recorded.
    Waiting(String),
    /// A gate refused the run: it is rolled back and ends `refused`.
    Refused(String),
}

/// `runbook approve` / `runbook reject`: records the decision of an identity on a gate of a
/// waiting run. A rejection then ends the run, with its rollback.
pub async fn decide(
    project: &Project,
    req: DecisionRequest,
    ui: &Ui,
    cancel: watch::Receiver<bool>,
) -> Exit {
    let config = project.config_def();
    let state = match open_state(project, req.state.as_deref(), ui).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(record) = find_run(&state, &req.run_id, ui).await else {
        return Exit::Invalid;
    };
    if !matches!(
        record.status,
        RunStatus::WaitingApproval | RunStatus::Running | RunStatus::Interrupted
    ) {
        ui.error(
            &format!(
                "run {} is {}; there is nothing to approve",
                record.id,
                record.status.as_str()
            ),
            None,
        );
        return Exit::Invalid;
    }
    let playbook = match project.load_playbook(std::path::Path::new(&record.file)) {
        Ok(p) => p,
        Err(_) => {
            ui.error(
                &format!("the playbook of run {} no longer validates", record.id),
                None,
            );
            return Exit::Invalid;
        }
    };
    if playbook.content_hash() != record.content_hash {
        ui.error(
            &format!("the playbook `{}` changed since run {} started; an approval now would approve something else", record.playbook, record.id),
            Some("start a new run of the changed playbook and approve that one"),
        );
        return Exit::Invalid;
    }
    let Some(step) = find_approval_gate(&playbook, &req.gate) else {
        ui.error(
            &format!("run {} has no approval gate `{}`", record.id, req.gate),
            Some("`runbook status RUN` lists the steps; approval gates are steps with `gate: { approval: ... }`"),
        );
        return Exit::Invalid;
    };
    let actor = req.actor.clone().unwrap_or_else(run::operator);
    let protections = protections_of(config, &record.env);
    if !protections.self_approval && crate::gate::same_person(&actor, &record.operator) {
        ui.error(
            &format!("{actor} started run {} and cannot approve it in environment `{}`", record.id, record.env),
            Some("another person approves; self-approval is allowed only where the environment says `self_approval: true`"),
        );
        return Exit::Refused;
    }
    let approval_gate = step.gate.as_ref().and_then(|g| g.approval.clone());
    if let Some(list) = approval_gate.as_ref().and_then(|a| a.approvers.clone())
        && !list.iter().any(|p| crate::gate::same_person(p, &actor))
    {
        ui.error(
            &format!("{actor} is not an approver of gate `{}`", req.gate),
            Some(&format!("approvers: {}", list.join(", "))),
        );
        return Exit::Refused;
    }
    let decision = if req.approve { "approve" } else { "reject" };
    let approval = run::Approval {
        gate: req.gate.clone(),
        actor: actor.clone(),
        decision: decision.to_owned(),
        comment: req.comment.clone(),
        plan_hash: record.plan_hash.clone(),
        at: run::now_ms(),
    };
    let dir = audit_dir(&project.root, config);
    let meta = audit_meta(&record, std::path::Path::new(&record.file), None, None);
    let head = match AuditLog::open(&dir, &record.id) {
        Ok(mut log) => match log
            .append(crate::audit::body_from_event(&meta, &approval.event()))
            .await
        {
            Ok(h) => h,
            Err(e) => {
                ui.error(&e.to_string(), None);
                return Exit::Internal;
            }
        },
        Err(e) => {
            ui.error(
                &e.to_string(),
                Some("`runbook audit verify RUN` says what is wrong with the run's audit chain"),
            );
            return Exit::AuditFailed;
        }
    };
    if let Err(e) = state
        .record_approval(&record.id, &approval, Some(&head))
        .await
    {
        ui.error(&e.to_string(), None);
        return Exit::Internal;
    }
    let raw = approval_gate.map(|a| a.message).unwrap_or_default();
    let shown_ctx = json!({
        "env": {"name": record.env, "target": record.target},
        "params": record.params,
        "vars": config.and_then(|c| c.environments.get(&record.env)).map(|e| json!(e.vars)).unwrap_or(json!({})),
    });
    let message = template::render(&raw, &shown_ctx).unwrap_or(raw);
    ui.note(&format!(
        "{} gate `{}` of run {} ({} on {}, {}) as {actor}\n  the gate says: {message}",
        if req.approve { "approved" } else { "rejected" },
        req.gate,
        record.id,
        record.playbook,
        record.env,
        record.target
    ));
    if req.approve {
        ui.note(&format!(
            "`runbook resume {}` continues the run once the gate has its approvals",
            record.id
        ));
        state.close().await;
        return Exit::Ok;
    }
    state.close().await;
    // A rejection ends the run now: resume it so the gate refuses and the rollback runs.
    let resume_req = ResumeRequest {
        run_id: record.id.clone(),
        target: req.target.clone(),
        state: req.state.clone(),
        confirm: req.confirm.clone(),
        ..Default::default()
    };
    resume(project, resume_req, ui, cancel).await
}

/// Adds the step's declared `outputs:` (regex or JSON path over stdout, stderr or rows).
fn extract_outputs(step: &Step, outputs: &mut Map<String, Json>) -> Result<(), String> {
    for (name, spec) in &step.outputs {
        let default = if step.sql.is_some() {
            OutputSource::Rows
        } else {
            OutputSource::Stdout
        };
        let source = match spec.from.unwrap_or(default) {
            OutputSource::Stdout => outputs.get("stdout").cloned().unwrap_or(Json::Null),
            OutputSource::Stderr => outputs.get("stderr").cloned().unwrap_or(Json::Null),
            OutputSource::Rows => outputs.get("rows").cloned().unwrap_or(Json::Null),
        };
        let mut value = source;
        if let Some(path) = &spec.json {
            let parsed = match &value {
                Json::String(s) => serde_json::from_str(s)
                    .map_err(|e| format!("output `{name}`: the text is not JSON: {e}"))?,
                other => other.clone(),
            };
            value = json_path(&parsed, path)
                .ok_or_else(|| format!("output `{name}`: `{path}` is not in the JSON"))?;
        }
        if let Some(re) = &spec.regex {
            let re = regex::Regex::new(re).map_err(|e| format!("output `{name}`: {e}"))?;
            let text = match &value {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            let caps = re.captures(&text).ok_or_else(|| {
                format!("output `{name}`: the regex `{}` did not match", re.as_str())
            })?;
            let m = caps
                .get(1)
                .or_else(|| caps.get(0))
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default();
            value = m
                .parse::<i64>()
                .map(Json::from)
                .or_else(|_| m.parse::<f64>().map(Json::from))
                .unwrap_or(Json::String(m));
        }
        outputs.insert(name.clone(), value);
    }
    Ok(())
}

/// `items.0.name` into a JSON value.
fn json_path(v: &Json, path: &str) -> Option<Json> {
    let mut cur = v;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = match cur {
            Json::Object(m) => m.get(seg)?,
            Json::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur.clone())
}

/// Truncates captured text to [`MAX_CAPTURE`] bytes on a character boundary.
pub fn cap(text: &str) -> String {
    if text.len() <= MAX_CAPTURE {
        return text.to_owned();
    }
    let mut end = MAX_CAPTURE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... {} more bytes]", &text[..end], text.len() - end)
}
