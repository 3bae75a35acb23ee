//! A run's outcome as metrics, labelled with its playbook and environment: the outcome (one
//! series per possible outcome), its exit code, whether it succeeded, and when it started and
//! ended. A textfile holds the last run of one schedule, so these say "the last run".

use super::Family;

/// Every outcome a run can end with, as the exit codes say (`src/exit.rs`).
const OUTCOMES: [(&str, i32); 8] = [
    ("succeeded", 0),
    ("failed", 1),
    ("invalid", 2),
    ("waiting", 3),
    ("locked", 4),
    ("interrupted", 5),
    ("audit_failed", 6),
    ("refused", 7),
];

/// What the families say of one run.
#[derive(Debug, Clone)]
pub struct RunFacts<'a> {
    pub playbook: &'a str,
    pub environment: &'a str,
    /// `None` while the run is still going.
    pub exit_code: Option<i32>,
    pub started_secs: f64,
    pub finished_secs: Option<f64>,
}

pub fn families(run: &RunFacts<'_>) -> Vec<Family> {
    let labels = || {
        vec![
            ("playbook", run.playbook.to_owned()),
            ("environment", run.environment.to_owned()),
        ]
    };
    let with = |k: &'static str, v: &str| {
        let mut l = labels();
        l.push((k, v.to_owned()));
        l
    };
    let mut outcome = Family::new(
        "runbook_run_last_outcome",
        "The last run's outcome: 1 for the outcome it had, 0 for the others.",
    );
    let known = OUTCOMES.iter().any(|(_, c)| Some(*c) == run.exit_code);
    for (name, code) in OUTCOMES {
        outcome.push(
            with("outcome", name),
            f64::from(u8::from(Some(code) == run.exit_code)),
        );
    }
    outcome.push(
        with("outcome", "internal_error"),
        f64::from(u8::from(!known && run.exit_code.is_some())),
    );
    outcome.push(
        with("outcome", "running"),
        f64::from(u8::from(run.exit_code.is_none())),
    );
    let mut code = Family::new(
        "runbook_run_last_exit_code",
        "The last run's exit code (0 ok, 1 failed, 2 invalid, 3 waiting, 4 locked, 5 interrupted, 6 audit, 7 refused, 70 internal).",
    );
    if let Some(c) = run.exit_code {
        code.push(labels(), f64::from(c));
    }
    let mut success = Family::new(
        "runbook_run_last_success",
        "Whether the last run succeeded (1) or not (0).",
    );
    success.push(labels(), f64::from(u8::from(run.exit_code == Some(0))));
    let mut started = Family::new(
        "runbook_run_last_start_timestamp_seconds",
        "When the last run started, in seconds since the epoch.",
    );
    started.push(labels(), run.started_secs);
    let mut finished = Family::new(
        "runbook_run_last_end_timestamp_seconds",
        "When the last run ended, in seconds since the epoch.",
    );
    let mut took = Family::new(
        "runbook_run_last_duration_seconds",
        "How long the last run took, in seconds.",
    );
    if let Some(end) = run.finished_secs {
        finished.push(labels(), end);
        took.push(labels(), (end - run.started_secs).max(0.0));
    }
    vec![outcome, code, success, started, finished, took]
}
