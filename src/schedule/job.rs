//! What a scheduled run is: its timing and the `runbook` arguments that start it, shared by
//! every export and by `runbook schedule list`.

use super::{Cadence, CadenceError};
use crate::config::{ConfigDef, Schedule};

/// One schedule of the config, ready to write out.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub description: Option<String>,
    pub playbook: String,
    pub environment: String,
    pub cadence: Cadence,
    /// runbook's arguments: `run PLAYBOOK --env ENV --var NAME=VALUE...`.
    pub args: Vec<String>,
    /// The environment variables the run reads: the target's URL variable and the secrets.
    pub needs: Vec<String>,
}

impl Job {
    /// Every schedule of a config (already validated), by name.
    pub fn all(def: &ConfigDef) -> Result<Vec<Job>, String> {
        def.schedules
            .iter()
            .map(|(name, s)| Job::new(def, name, s))
            .collect()
    }

    fn new(def: &ConfigDef, name: &str, s: &Schedule) -> Result<Job, String> {
        let cadence = Cadence::parse(&s.cron, s.time_zone.as_deref()).map_err(|e| match e {
            CadenceError::Cron(m) | CadenceError::Zone(m) => format!("schedule `{name}`: {m}"),
        })?;
        let mut args = vec![
            "run".to_owned(),
            s.playbook.clone(),
            "--env".to_owned(),
            s.environment.clone(),
        ];
        for (var, value) in &s.vars {
            args.push("--var".to_owned());
            args.push(format!("{var}={}", var_text(value)));
        }
        let mut needs = Vec::new();
        if let Some(var) = def
            .environments
            .get(&s.environment)
            .and_then(|e| e.target.url_env.clone())
        {
            needs.push(var);
        }
        let state = def.state.as_ref().and_then(|t| t.url_env.clone());
        for var in def.secrets.iter().cloned().chain(state) {
            if !needs.contains(&var) {
                needs.push(var);
            }
        }
        Ok(Job {
            name: name.to_owned(),
            description: s.description.clone(),
            playbook: s.playbook.clone(),
            environment: s.environment.clone(),
            cadence,
            args,
            needs,
        })
    }

    /// A one-line description: the config's, or what runs where.
    pub fn title(&self) -> String {
        self.description.clone().unwrap_or_else(|| {
            format!(
                "runbook: {} on {} ({})",
                self.playbook, self.environment, self.name
            )
        })
    }
}

/// A scalar var as `--var` takes it (validation refuses lists and maps).
pub fn var_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
