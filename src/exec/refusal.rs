//! Every refused attempt is an audit record. A `runbook run` (or `resume`) refused before
//! anything ran (a closed maintenance window, `--approve` or `--target` refused) gets a short
//! audit chain of its own under a new run id: one `run_refused` record with who, when, the
//! playbook, the environment, the target and the reason, listed in the audit index, so
//! `runbook audit show ID` shows it and `runbook audit verify --all` verifies it. It has no
//! state store record: nothing ran, so there is no run to resume or list in `runbook runs`.

use super::ExecError;
use super::journal::Journal;
use crate::project::Project;
use crate::redact::Redactor;
use crate::run::{self, Event, EventKind, RunRecord, RunStatus};
use crate::ui::Ui;
use serde_json::json;

/// Why an attempt is refused, what to do instead, and how the command ends.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    pub reason: String,
    pub hint: String,
    pub error: ExecError,
}

impl Refusal {
    /// Refused by a rule (exit 7): a closed window, the environment's approvals.
    pub fn refused(reason: String, hint: String) -> Refusal {
        Refusal {
            reason,
            hint,
            error: ExecError::Refused,
        }
    }

    /// Refused as invalid input (exit 2): a flag the environment does not accept.
    pub fn invalid(reason: String, hint: String) -> Refusal {
        Refusal {
            reason,
            hint,
            error: ExecError::Invalid,
        }
    }
}

/// What was attempted: the command, the playbook, the environment and the target.
pub(super) struct Attempt<'a> {
    pub project: &'a Project,
    /// `run`, or `resume RUN`.
    pub command: String,
    pub playbook: &'a str,
    pub file: &'a str,
    pub env: &'a str,
    /// The target as it may be shown (a URL's password masked), or `no target`.
    pub target: String,
}

impl Attempt<'_> {
    /// Records the refusal in the audit log and reports it; gives the error the command ends
    /// with. A refusal whose record cannot be written is still a refusal, and says so.
    pub async fn refuse(&self, r: Refusal, ui: &Ui) -> ExecError {
        let redactor = crate::redact::global();
        let (reason, hint) = (redactor.redact(&r.reason), redactor.redact(&r.hint));
        match self.record(&reason, &hint, redactor.clone(), ui).await {
            Ok(id) => ui.error(
                &reason,
                Some(&format!(
                    "{hint}\nthis refused attempt is recorded in the audit log as {id} (`runbook audit show {id}`)"
                )),
            ),
            Err(e) => ui.error(
                &reason,
                Some(&format!(
                    "{hint}\nthe refused attempt could not be recorded in the audit log: {e}"
                )),
            ),
        }
        r.error
    }

    /// Writes the attempt's one-record chain and indexes it; gives its id.
    async fn record(
        &self,
        reason: &str,
        hint: &str,
        redactor: Redactor,
        ui: &Ui,
    ) -> Result<String, String> {
        let config = self.project.config_def();
        let record = RunRecord {
            id: run::new_run_id(),
            playbook: self.playbook.to_owned(),
            file: self.file.to_owned(),
            env: self.env.to_owned(),
            target: self.target.clone(),
            operator: run::operator(),
            host: run::hostname(),
            pid: i64::from(std::process::id()),
            pid_start: run::own_start_time(),
            content_hash: String::new(),
            plan_hash: String::new(),
            migrations_hash: String::new(),
            params: json!({}),
            vars: Vec::new(),
            tags: Vec::new(),
            skip_tags: Vec::new(),
            status: RunStatus::Refused,
            started_at: run::now_ms(),
            finished_at: None,
            error: Some(reason.to_owned()),
        };
        let mut journal =
            Journal::open_for_decision(&self.project.root, config, &record, None, redactor, ui)
                .map_err(|e| e.to_string())?
                .signing_as_configured(config);
        let ev = Event::run(
            EventKind::RunRefused,
            json!({
                "attempt": self.command, "reason": reason, "hint": hint, "env": self.env,
                "target": self.target, "operator": record.operator, "host": record.host,
            }),
        );
        journal
            .append_only(ev)
            .await
            .map_err(|_| "see the error above".to_owned())?;
        journal.index(&record);
        // A refusal's one record is its whole chain: signed now, as a run is when it stops.
        journal.sign();
        Ok(record.id)
    }
}
