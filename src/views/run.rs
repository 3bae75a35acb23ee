//! Runs, their steps and events as `runs` and `status` print them.

use super::{SCHEMA_VERSION, time};
use crate::run::{Change, Phase, RunRecord, StepRecord, StepStatus};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value as Json;

/// One run, the same in `runs` and `status`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunView {
    pub run_id: String,
    /// The playbook's `name`.
    pub playbook: String,
    /// The playbook's file as the run read it.
    pub file: String,
    pub environment: String,
    /// The database as shown (a URL's password masked), or `no target`.
    pub target: String,
    pub operator: String,
    pub host: String,
    /// The process that runs (or ran) it.
    pub pid: i64,
    /// `running`, `succeeded`, `failed`, `rollback_failed`, `waiting_approval`, `interrupted`,
    /// `refused`, or `crashed` (a `running` run whose process is gone).
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    /// sha256 of the playbook's content.
    pub content_hash: String,
    /// The plan hash approvals bind to.
    pub plan_hash: String,
    /// sha256 over the migration files.
    pub migrations_hash: String,
    /// Parameter values, secrets masked.
    pub params: Json,
    /// `--var` values as given (secrets are not stored), as `[name, value]` pairs.
    pub vars: Vec<(String, String)>,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
}

impl From<&RunRecord> for RunView {
    fn from(r: &RunRecord) -> Self {
        RunView {
            run_id: r.id.clone(),
            playbook: r.playbook.clone(),
            file: r.file.clone(),
            environment: r.env.clone(),
            target: r.target.clone(),
            operator: r.operator.clone(),
            host: r.host.clone(),
            pid: r.pid,
            status: r.shown_status().to_owned(),
            started_at: time(r.started_at),
            finished_at: r.finished_at.map(time),
            duration_ms: r.finished_at.map(|f| (f - r.started_at).max(0)),
            error: r.error.clone(),
            content_hash: r.content_hash.clone(),
            plan_hash: r.plan_hash.clone(),
            migrations_hash: r.migrations_hash.clone(),
            params: r.params.clone(),
            vars: r.vars.clone(),
            tags: r.tags.clone(),
            skip_tags: r.skip_tags.clone(),
        }
    }
}

/// One step of a run as the state store keeps it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepView {
    /// The step's id (`include.step` inside an include).
    pub step: String,
    pub phase: Phase,
    pub status: StepStatus,
    pub attempts: i64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    /// The step's outputs, secrets masked.
    pub outputs: Json,
    pub error: Option<String>,
    /// Whether it changed the target, and why (`null`: not recorded).
    pub change: Option<Change>,
}

impl From<&StepRecord> for StepView {
    fn from(s: &StepRecord) -> Self {
        StepView {
            step: s.step.clone(),
            phase: s.phase,
            status: s.status,
            attempts: s.attempts,
            started_at: s.started_at.map(time),
            finished_at: s.finished_at.map(time),
            duration_ms: s.started_at.zip(s.finished_at).map(|(a, b)| (b - a).max(0)),
            outputs: s.outputs.clone(),
            error: s.error.clone(),
            change: s.change.clone(),
        }
    }
}

/// One event of a run, as its audit record's sequence number and kind.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EventView {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub step: Option<String>,
    pub data: Json,
}

/// `runbook runs --format json`: the recent runs, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunsDoc {
    pub schema_version: u32,
    pub runs: Vec<RunView>,
}

impl RunsDoc {
    pub fn new(runs: &[RunRecord]) -> Self {
        RunsDoc {
            schema_version: SCHEMA_VERSION,
            runs: runs.iter().map(RunView::from).collect(),
        }
    }
}

/// `runbook status RUN --format json`: a run, its steps and its events.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StatusDoc {
    pub schema_version: u32,
    pub run: RunView,
    pub steps: Vec<StepView>,
    pub events: Vec<EventView>,
}

impl StatusDoc {
    pub fn new(
        run: &RunRecord,
        steps: &[StepRecord],
        events: Vec<(i64, i64, String, Option<String>, Json)>,
    ) -> Self {
        StatusDoc {
            schema_version: SCHEMA_VERSION,
            run: RunView::from(run),
            steps: steps.iter().map(StepView::from).collect(),
            events: events
                .into_iter()
                .map(|(seq, at, kind, step, data)| EventView {
                    seq,
                    at: time(at),
                    kind,
                    step,
                    data,
                })
                .collect(),
        }
    }
}
