//! A step: its id and options, its one action (one optional field per action key), retries
//! and output extraction.

use super::{
    Action, BackupAction, CopyAction, Duration, FindBackupAction, GateAction, HealthAction,
    HttpAction, IncludeAction, LogAction, MigrateAction, ReindexAction, RestoreAction, SeedAction,
    ShellAction, SqlAction, VacuumAction, WaitForAction,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A step: an id, exactly one action, and options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the playbook; later templates read `steps.<id>.outputs`.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub id: Option<String>,
    /// A human title shown in plans and progress.
    #[serde(default)]
    pub name: Option<String>,
    /// A template expression; the step is skipped when it is false.
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub retry: Option<Retry>,
    /// The step fails (and its child processes are killed) after this long.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// A failure of this step is recorded but does not fail the run.
    #[serde(default)]
    pub continue_on_error: bool,
    /// Compensations run in reverse step order when a later step fails.
    #[serde(default)]
    pub rollback: Vec<Step>,
    /// When this step's `rollback` runs after a later failure: `always` (the default), or
    /// `changed`: only when a step that ran after this one changed the target database (a
    /// migration that rolled back in its transaction, or a seed whose transaction rolled back,
    /// changed nothing; when runbook cannot tell, the step changed it).
    #[serde(default)]
    pub rollback_when: Option<RollbackWhen>,
    /// Named values extracted from the action's result.
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputSpec>,
    /// Tags select steps with `--tags` and `--skip-tags`.
    #[serde(default)]
    pub tags: Vec<String>,

    #[serde(default)]
    pub shell: Option<ShellAction>,
    #[serde(default)]
    pub sql: Option<SqlAction>,
    #[serde(default)]
    pub migrate: Option<MigrateAction>,
    #[serde(default)]
    pub backup: Option<BackupAction>,
    #[serde(default)]
    pub restore: Option<RestoreAction>,
    #[serde(default)]
    pub find_backup: Option<FindBackupAction>,
    #[serde(default)]
    pub seed: Option<SeedAction>,
    #[serde(default)]
    pub health: Option<HealthAction>,
    #[serde(default)]
    pub gate: Option<GateAction>,
    #[serde(default)]
    pub log: Option<LogAction>,
    #[serde(default)]
    pub wait_for: Option<WaitForAction>,
    #[serde(default)]
    pub include: Option<IncludeAction>,
    #[serde(default)]
    pub copy: Option<CopyAction>,
    #[serde(default)]
    pub http: Option<HttpAction>,
    #[serde(default)]
    pub vacuum: Option<VacuumAction>,
    #[serde(default)]
    pub reindex: Option<ReindexAction>,
}

impl Step {
    /// The id the step goes by in its block: its own, else `<block>-N` (`step-2`,
    /// `on_failure-1`, `deploy.rollback-1` for a compensation of `deploy`). The executor
    /// records steps by it and the plan shows it, so the two always agree.
    pub fn local_id(&self, block: &str, index: usize) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| format!("{block}-{}", index + 1))
    }

    /// Every action present on the step; a valid step has exactly one.
    pub fn actions(&self) -> Vec<Action<'_>> {
        let mut out = Vec::with_capacity(1);
        if let Some(a) = &self.shell {
            out.push(Action::Shell(a));
        }
        if let Some(a) = &self.sql {
            out.push(Action::Sql(a));
        }
        if let Some(a) = &self.migrate {
            out.push(Action::Migrate(a));
        }
        if let Some(a) = &self.backup {
            out.push(Action::Backup(a));
        }
        if let Some(a) = &self.restore {
            out.push(Action::Restore(a));
        }
        if let Some(a) = &self.find_backup {
            out.push(Action::FindBackup(a));
        }
        if let Some(a) = &self.seed {
            out.push(Action::Seed(a));
        }
        if let Some(a) = &self.health {
            out.push(Action::Health(a));
        }
        if let Some(a) = &self.gate {
            out.push(Action::Gate(a));
        }
        if let Some(a) = &self.log {
            out.push(Action::Log(a));
        }
        if let Some(a) = &self.wait_for {
            out.push(Action::WaitFor(a));
        }
        if let Some(a) = &self.include {
            out.push(Action::Include(a));
        }
        if let Some(a) = &self.copy {
            out.push(Action::Copy(a));
        }
        if let Some(a) = &self.http {
            out.push(Action::Http(a));
        }
        if let Some(a) = &self.vacuum {
            out.push(Action::Vacuum(a));
        }
        if let Some(a) = &self.reindex {
            out.push(Action::Reindex(a));
        }
        out
    }

    /// The step's one action. Validation guarantees there is exactly one.
    pub fn action(&self) -> Option<Action<'_>> {
        self.actions().into_iter().next()
    }

    /// The id, or a stand-in for unnamed compensation steps.
    pub fn id_or<'a>(&'a self, fallback: &'a str) -> &'a str {
        self.id.as_deref().unwrap_or(fallback)
    }
}

/// When a step's compensations run after a later step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RollbackWhen {
    /// Whatever ran after the step.
    #[default]
    Always,
    /// Only when a step that ran after it changed the target database.
    Changed,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Total attempts including the first.
    #[schemars(range(min = 1, max = 100))]
    pub attempts: u32,
    /// Wait before the second attempt.
    #[serde(default)]
    pub delay: Option<Duration>,
    /// Each further wait is the previous one times this factor.
    #[serde(default)]
    #[schemars(range(min = 1.0, max = 10.0))]
    pub backoff: Option<f64>,
    /// No wait is longer than this.
    #[serde(default)]
    pub max_delay: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputSource {
    Stdout,
    Stderr,
    Rows,
}

/// How to extract a named output from the action's result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// What to read: `stdout` (default for shell), `stderr`, or `rows` (default for sql).
    #[serde(default)]
    pub from: Option<OutputSource>,
    /// A regular expression; the output is its first capture group (or the whole match).
    #[serde(default)]
    pub regex: Option<String>,
    /// A dotted path into the JSON parsed from the source, e.g. `items.0.name`.
    #[serde(default)]
    pub json: Option<String>,
}
