//! `runbook run`: everything that can refuse a run is checked before the target is locked
//! (the plan, `--target`, the target and the protections of its database, maintenance windows
//! and the emergency path, `--approve`); a refusal by a rule is an audit record. Then the run
//! is recorded as started (audit chain, state store, with its protections and any emergency)
//! and the engine runs it.

use super::emergency::{self, GATE};
use super::engine::Engine;
use super::journal::Journal;
use super::protections::{self, Effective};
use super::refusal::{Attempt, Refusal};
use super::same_target::identity_of;
use super::session::{
    Guard, Session, needs_db, redactor_for, release_lock, state_failed, state_spec_of, take_lock,
    target_spec,
};
use super::signing;
use super::units::find_approval_gate;
use super::windows::{self, Admit};
use super::{ExecError, Outcome, RunRequest};
use crate::approval::{SigningKey, operator_key};
use crate::config::Protections;
use crate::db::{Db, TargetSpec};
use crate::plan::{self, Plan};
use crate::project::{Playbook, Project};
use crate::redact::Redactor;
use crate::run::{self, Approval, Event, EventKind, RunRecord, RunStatus};
use crate::signers::{Signer, Signers};
use crate::state::StateStore;
use crate::ui::Ui;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::watch;

/// `runbook run`.
pub async fn run(
    project: &Project,
    playbook: Arc<Playbook>,
    req: RunRequest,
    ui: &Ui,
    cancel: watch::Receiver<bool>,
) -> Result<Outcome, ExecError> {
    let operator = run::operator();
    let run_id = run::new_run_id();
    let Checked {
        plan,
        target,
        identity,
        server_version,
        conn,
        guard,
        state,
        lock_conn,
        git,
    } = check(project, &playbook, &req, ui, (&run_id, &operator)).await?;
    // The rules the run is held to (its database's environment's, when that is another).
    let protections = guard.protections.rules.clone();
    let (approve_key, operator_key) = keys(project, &req, &protections, ui)?;
    let redactor = redactor_for(project.config_def(), &plan.values, target.as_ref());
    let lock = take_lock(
        target.as_ref(),
        (&run_id, &operator),
        req.lock_wait,
        (ui, &redactor),
        lock_conn,
        &cancel,
    )
    .await?;
    let record = new_record(
        project,
        &playbook,
        &req,
        &plan,
        target.as_ref(),
        run_id,
        &operator,
    );
    let started = begin(
        project,
        (
            &playbook,
            &plan,
            identity.as_deref(),
            &guard,
            operator_key.as_ref(),
        ),
        (&record, git),
        &state,
        (target.as_ref(), server_version.as_deref()),
        &redactor,
        ui,
    );
    let mut journal = match started.await {
        Ok(j) => j,
        Err(e) => {
            release_lock(lock).await;
            return Err(e);
        }
    };
    if let Some((fleet, name)) = &req.fleet {
        let _ = state
            .fleet_target(fleet, name, Some(&record.id), ("running", None, None))
            .await;
    }
    journal.index(&record);
    let own = OwnApprovals {
        operator: &operator,
        key: approve_key.as_ref(),
        protections: &protections,
        identity: identity.as_deref(),
    };
    own.record(&mut journal, &state, &req.approve, &record, &plan, ui)
        .await?;
    let emergency = guard.emergency.clone();
    let session = Session::new(
        state,
        target,
        redactor,
        journal,
        lock,
        req.confirm.clone(),
        guard,
    );
    let mut engine = Engine::new(project, playbook, plan, record, session, ui, cancel);
    engine.db = conn;
    engine.key = req.key.clone();
    engine.progress.note(&format!(
        "run {}: {} on {} ({})",
        engine.run.id, engine.run.playbook, engine.run.env, engine.run.target
    ));
    if let Some(e) = emergency {
        engine.progress.note(&format!(
            "run {} is an EMERGENCY run ({}): {}; it waits at gate `{GATE}` for {} before its first step",
            engine.run.id,
            e.outside,
            e.reason,
            crate::fmt::plural(e.approvals, "approval", "approvals")
        ));
    }
    engine.run_to_end().await
}

/// What the checks before the lock decided: the plan (its hash bound to the rules), the
/// target, the database it is, and the rules the run is under.
struct Checked {
    plan: Plan,
    target: Option<TargetSpec>,
    identity: Option<String>,
    /// The server's version, read with the identity (for the audit records).
    server_version: Option<String>,
    /// The connection they were read on, for the first step that needs the database.
    conn: Option<Db>,
    guard: Guard,
    /// The state store, opened while the target was read.
    state: StateStore,
    /// The connection the run lock will be taken on, opened while the target was read.
    lock_conn: Option<crate::lock::Preconnected>,
    /// The git state of the run's files (`audit::git_state`), being read meanwhile.
    git: GitState,
}

/// The keys of the operator: the one that signs `--approve` where approvals must be signed
/// (found before anything is locked or recorded), and their listed key, by which they are
/// known, so their own approval is told by the key whatever name it comes under.
fn keys(
    project: &Project,
    req: &RunRequest,
    protections: &Protections,
    ui: &Ui,
) -> Result<(Option<SigningKey>, Option<Signer>), ExecError> {
    let signers = Signers::load(&project.root, project.config_def());
    // `--approve` where approvals must be signed: signed with the operator's listed key, found
    // before anything is locked or recorded.
    let approve_key = if protections.signed_approvals && !req.approve.is_empty() {
        let key = signing::approver_key(&req.env, &signers, req.key.as_deref(), None);
        Some(key.map_err(|e| {
            ui.error(&e.message, Some(&e.hint));
            ExecError::Refused
        })?)
    } else {
        None
    };
    let operator_key = signers
        .as_ref()
        .ok()
        .and_then(|s| operator_key(s, req.key.as_deref()));
    Ok((approve_key, operator_key))
}

/// `--approve GATE`: the operator's own approvals, signed with their key where approvals must
/// be signed.
struct OwnApprovals<'a> {
    operator: &'a str,
    key: Option<&'a SigningKey>,
    protections: &'a Protections,
    identity: Option<&'a str>,
}

impl OwnApprovals<'_> {
    async fn record(
        &self,
        journal: &mut Journal<'_>,
        state: &StateStore,
        gates: &[String],
        record: &RunRecord,
        plan: &Plan,
        ui: &Ui,
    ) -> Result<(), ExecError> {
        for gate in gates {
            let comment = "approved by the operator with --approve";
            let mut approval = Approval {
                gate: gate.clone(),
                actor: self.operator.to_owned(),
                decision: "approve".to_owned(),
                comment: Some(comment.to_owned()),
                plan_hash: plan.plan_hash.clone(),
                at: run::now_ms(),
                signed: None,
            };
            if let Some(key) = self.key {
                let d = signing::Decision {
                    run_id: &record.id,
                    gate,
                    decision: "approve",
                    plan_hash: &plan.plan_hash,
                    target: self.identity,
                    expiry: signing::expiry_of(None, self.protections),
                    comment: Some(comment),
                };
                approval.actor = key.signer.principal().to_owned();
                approval.signed = Some(signing::sign(key, &d).map_err(|e| {
                    ui.error(&e, None);
                    ExecError::Refused
                })?);
            }
            journal.approval(state, &approval).await?;
        }
        Ok(())
    }
}

/// Everything that can refuse the run before it takes the target: the plan, `--target`, the
/// target, the protections of its database, the maintenance windows and `--approve`. A refusal
/// by a rule is recorded in the audit log (`exec/refusal.rs`).
async fn check(
    project: &Project,
    playbook: &Playbook,
    req: &RunRequest,
    ui: &Ui,
    (run_id, operator): (&str, &str),
) -> Result<Checked, ExecError> {
    let config = project.config_def();
    let plan_req = plan::PlanRequest {
        env: &req.env,
        vars: &req.vars,
        target_override: req.target.as_deref(),
        inputs: project.input_digests(),
    };
    let mut plan = plan::build(playbook, config, &plan_req).map_err(|diags| {
        for d in &diags {
            ui.error(&d.message, d.hint.as_deref());
        }
        ExecError::Invalid
    })?;
    let file = playbook.source.path.display().to_string();
    let attempt = Attempt {
        project,
        command: "run".to_owned(),
        playbook: &playbook.def.name,
        file: &file,
        env: &req.env,
        target: attempted_target(config, req),
    };
    let fleet = req.fleet.is_some();
    if let Err(r) = protections::check_override(config, &req.env, req.target.as_deref(), fleet) {
        return Err(attempt.refuse(r, ui).await);
    }
    let target =
        target_spec(&project.root, config, &req.env, req.target.as_deref()).map_err(|e| {
            ui.error(
                &e,
                Some("set the variable, or pass --target postgres://... or --target sqlite:FILE"),
            );
            ExecError::Invalid
        })?;
    if target.is_none() && needs_db(playbook) {
        ui.error(
            &format!("`{}` has SQL steps but environment `{}` names no database", playbook.def.name, req.env),
            Some("pass --target postgres://... or --target sqlite:FILE, or define the environment in runbook.yaml"),
        );
        return Err(ExecError::Invalid);
    }
    // The database this run is bound to (resume and approve continue it on that one only),
    // and whose protections it runs under. Meanwhile, each waiting on its own IO, the state
    // store opens and so does the connection the run lock will be taken on (taken only once
    // every check has passed; a refused run drops it). A state store that did not open is
    // reported once the checks have passed, so a refusal is still the refusal.
    let spec = state_spec_of(project, req.state.as_deref(), ui)?;
    // The git state of the files the run runs from (three git processes in a repository) is
    // read in the blocking pool from here on; the run's first record waits for it. Started
    // only once the run's input is valid: a refusal after this point waits for it as it
    // drops it (`GitState`).
    let git = GitState::read(playbook.source.path.clone(), inputs_of(project, playbook));
    let (probe, state, lock_conn) = tokio::join!(
        identity_of(target.as_ref(), true, ui),
        StateStore::open(&spec),
        crate::lock::preconnect(target.as_ref(), run_id, operator),
    );
    let probe = probe?;
    let (identity, server_version, conn) = match probe {
        Some(p) => (Some(p.identity), p.server_version, p.conn),
        None => (None, None, None),
    };
    let eff = protections::effective(
        &project.root,
        config,
        &req.env,
        target.as_ref(),
        identity.as_deref(),
    )
    .await;
    if eff.borrowed {
        ui.note(&format!(
            "the target is `{0}`'s database: `{0}`'s protections apply (not `{1}`'s)",
            eff.source, req.env
        ));
    }
    let guard = match admit(playbook, req, eff, ui) {
        Ok(g) => g,
        Err(r) => return Err(attempt.refuse(r, ui).await),
    };
    // The redactor is the global one: the state store's failure reports through it.
    let state = state.map_err(|e| state_failed(&spec, &e, ui))?;
    // The plan is bound to the database and to the rules the run is held to.
    plan.protections = guard.protections.rules.clone();
    plan.seal(identity.as_deref());
    emergency::bind(&mut plan, guard.emergency.as_ref(), &guard.protections);
    Ok(Checked {
        plan,
        target,
        identity,
        server_version,
        conn,
        guard,
        state,
        lock_conn,
        git,
    })
}

/// The rules' verdict on the run: the maintenance windows (open, a playbook that changes
/// nothing, or an emergency), `--approve`, and destructive steps under borrowed protections.
fn admit(playbook: &Playbook, req: &RunRequest, eff: Effective, ui: &Ui) -> Result<Guard, Refusal> {
    let now = chrono::Utc::now();
    let (admitted, note) = windows::admit(playbook, &eff, &req.env, req.emergency.as_deref(), now)?;
    if let Some(note) = note {
        ui.note(&note);
    }
    let emergency = match admitted {
        Admit::Emergency(e) => Some(e),
        Admit::Open | Admit::ReadOnly => None,
    };
    if emergency.is_some() && emergency::clashes(playbook) {
        return Err(Refusal::invalid(
            format!(
                "`{}` has a step `{GATE}`, the id of the emergency approval gate",
                playbook.def.name
            ),
            format!(
                "rename that step to run `{}` as an emergency",
                playbook.def.name
            ),
        ));
    }
    if !req.approve.is_empty() {
        if !eff.rules.self_approval {
            return Err(Refusal::invalid(
                format!("`--approve` is refused in environment `{}`: approvals there must come from someone other than the operator", eff.source),
                "start the run without --approve; it stops at the gate, and an approver runs `runbook approve RUN GATE`".to_owned(),
            ));
        }
        let known = |g: &String| {
            (emergency.is_some() && g == GATE) || find_approval_gate(playbook, g).is_some()
        };
        if let Some(gate) = req.approve.iter().find(|g| !known(g)) {
            return Err(Refusal::invalid(
                format!("`{}` has no approval gate `{gate}`", playbook.def.name),
                "name the id of a step with `gate: { approval: ... }`".to_owned(),
            ));
        }
    }
    // Validation checked destructive steps against the environments the playbook names, not
    // against the database it turned out to act on; an emergency gate guards every step.
    if eff.borrowed
        && emergency.is_none()
        && let Some(step) = protections::unguarded_destructive(playbook, &eff.rules)
    {
        return Err(Refusal::refused(
            format!(
                "step `{step}` of `{}` is destructive and no approval or confirm gate comes before it; `{}`'s database needs one",
                playbook.def.name, eff.source
            ),
            format!(
                "add a gate before it, or run it with `--env {}`",
                eff.source
            ),
        ));
    }
    Ok(Guard {
        protections: eff,
        emergency,
    })
}

/// The target an attempt names, as it may be shown: `--target` with its password masked, or
/// the environment's.
fn attempted_target(config: Option<&crate::config::ConfigDef>, req: &RunRequest) -> String {
    match (
        &req.target,
        config.and_then(|c| c.environments.get(&req.env)),
    ) {
        (Some(t), _) => crate::dburl::redact(t),
        (None, Some(e)) => e.target.describe(),
        (None, None) => "no target".to_owned(),
    }
}

/// The new run's record. Secrets given with --var are not stored: resume asks for them again.
fn new_record(
    project: &Project,
    playbook: &Playbook,
    req: &RunRequest,
    plan: &Plan,
    target: Option<&TargetSpec>,
    run_id: String,
    operator: &str,
) -> RunRecord {
    let stored_vars: Vec<(String, String)> = req
        .vars
        .iter()
        .filter(|(k, _)| !playbook.def.params.get(k).is_some_and(|p| p.secret))
        .cloned()
        .collect();
    RunRecord {
        id: run_id,
        playbook: playbook.def.name.clone(),
        file: playbook.source.path.display().to_string(),
        env: req.env.clone(),
        target: target.map_or_else(|| "no target".to_owned(), TargetSpec::describe),
        operator: operator.to_owned(),
        host: run::hostname(),
        pid: i64::from(std::process::id()),
        pid_start: run::own_start_time(),
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
    }
}

/// Opens the run's audit chain and records the run as started in it and in the state store,
/// with the digests of the files the plan may apply (resume names what changed since).
async fn begin<'a>(
    project: &Project,
    (playbook, plan, identity, guard, operator_key): (
        &Playbook,
        &Plan,
        Option<&str>,
        &Guard,
        Option<&Signer>,
    ),
    (record, git): (&RunRecord, GitState),
    state: &StateStore,
    (target, server_version): (Option<&TargetSpec>, Option<&str>),
    redactor: &Redactor,
    ui: &'a Ui,
) -> Result<Journal<'a>, ExecError> {
    let config = project.config_def();
    let file = &playbook.source.path;
    let opened = Journal::open(
        &project.root,
        config,
        record,
        None,
        file,
        (target, server_version),
        redactor.clone(),
        ui,
    );
    let mut journal = opened.await.map_err(|e| {
        ui.error(
            &redactor.redact(&e.to_string()),
            Some("fix the audit folder or sink; nothing ran"),
        );
        ExecError::Internal
    })?;
    let git = git.value().await;
    let started = Event::run(
        EventKind::RunStarted,
        json!({
            "playbook": record.playbook, "env": record.env, "target": record.target, "operator": record.operator,
            "host": record.host, "content_hash": record.content_hash, "plan_hash": record.plan_hash,
            "params": record.params, "inputs": plan.inputs, "target_identity": identity, "version": env!("CARGO_PKG_VERSION"),
            "protections": guard.protections.to_json(), "emergency": guard.emergency,
            "operator_key": operator_key.map(|k| json!({"principal": k.principal(), "fingerprint": k.fingerprint})),
            "config": config_digest(project), "migrations_hash": record.migrations_hash,
            "git": git,
        }),
    );
    let key = target.map_or_else(|| "(none)".to_owned(), TargetSpec::key);
    journal.start(state, record, &key, started).await?;
    Ok(journal)
}

/// `runbook.yaml` and the sha256 of its bytes (as read now; of the text it was loaded from if
/// it cannot be read again), for the run's first record; `null` without a config.
fn config_digest(project: &Project) -> serde_json::Value {
    use sha2::{Digest, Sha256};
    let Some(config) = &project.config else {
        return serde_json::Value::Null;
    };
    let path = &config.source.path;
    let bytes = std::fs::read(path).unwrap_or_else(|_| config.source.text.clone().into_bytes());
    let shown = path.strip_prefix(&project.root).unwrap_or(path);
    json!({"file": shown.display().to_string(), "sha256": hex::encode(Sha256::digest(&bytes))})
}

/// The git state of a run's files, read in the runtime's blocking pool while the run is
/// checked. A run that stops before its first record drops it unread: dropping waits for the
/// read to end, so the git processes it runs end before runbook does (the runtime does not
/// wait for its blocking pool at exit).
struct GitState(Option<tokio::task::JoinHandle<Option<serde_json::Value>>>);

impl GitState {
    fn read(file: std::path::PathBuf, inputs: Vec<std::path::PathBuf>) -> GitState {
        GitState(Some(tokio::task::spawn_blocking(move || {
            crate::audit::git_state(&file, &inputs)
        })))
    }

    /// What git said; a git that could not be asked (the task panicked) is no git state, as a
    /// failed git is.
    async fn value(mut self) -> Option<serde_json::Value> {
        self.0.take()?.await.ok().flatten()
    }
}

impl Drop for GitState {
    fn drop(&mut self) {
        if let Some(read) = self.0.take() {
            while !read.is_finished() {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

/// The files a run runs from, which git must have committed for the run's tree to be clean:
/// the playbook and those it includes, the migrations and seeds folders, `runbook.yaml`.
fn inputs_of(project: &Project, playbook: &Playbook) -> Vec<std::path::PathBuf> {
    fn files(p: &Playbook, out: &mut Vec<std::path::PathBuf>) {
        out.push(p.source.path.clone());
        for inc in p.includes.values() {
            files(inc, out);
        }
    }
    let mut out = Vec::new();
    files(playbook, &mut out);
    out.push(project.migrations_dir());
    out.push(project.seeds_dir());
    out.push(project.root.join(crate::config::CONFIG_FILE));
    out
}
