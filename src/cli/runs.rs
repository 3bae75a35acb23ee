//! `runbook runs` and `runbook status`: recent runs, and one run's steps, from the state
//! store.

use super::args::{OutputFormat, StatusFormat};
use super::runtime::{block_on, open, open_state};
use crate::exec;
use crate::exit::Exit;
use crate::run::{RunRecord, RunStatus, StepRecord, StepStatus, format_ms};
use crate::table::{
    self,
    Align::{Left, Right},
};
use crate::ui::Ui;
use crate::views;
use std::path::Path;

pub(super) fn runs_cmd(
    ui: &Ui,
    root: &Path,
    format: OutputFormat,
    limit: i64,
    state: Option<&str>,
) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    block_on(ui, async {
        let store = match open_state(ui, &project, state).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        let runs = match store.list_runs(limit).await {
            Ok(r) => r,
            Err(e) => {
                ui.error(&e.to_string(), None);
                return Exit::Internal;
            }
        };
        store.close().await;
        match format {
            OutputFormat::Json => ui.data(&views::to_text(&views::RunsDoc::new(&runs))),
            OutputFormat::Text => {
                if runs.is_empty() {
                    ui.note("no runs yet");
                    return Exit::Ok;
                }
                ui.data(&runs_text(&runs));
            }
        }
        Exit::Ok
    })
}

/// The runs as a table, newest first.
fn runs_text(runs: &[RunRecord]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let dur = r.finished_at.map_or("-".to_owned(), |f| {
                format!("{:.1}s", (f - r.started_at) as f64 / 1000.0)
            });
            vec![
                r.id.clone(),
                r.playbook.clone(),
                r.env.clone(),
                r.operator.clone(),
                r.shown_status().to_string(),
                format_ms(r.started_at),
                dur,
            ]
        })
        .collect();
    table::render(
        &[
            "run", "playbook", "env", "operator", "status", "started", "duration",
        ],
        &[Left, Left, Left, Left, Left, Left, Right],
        &rows,
    )
}

pub(super) fn status_cmd(
    ui: &Ui,
    root: &Path,
    id: &str,
    format: StatusFormat,
    state: Option<&str>,
) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    block_on(ui, async {
        let store = match open_state(ui, &project, state).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        if id.starts_with("fleet-") {
            let format = match format {
                StatusFormat::Json => OutputFormat::Json,
                StatusFormat::Text => OutputFormat::Text,
                StatusFormat::Prometheus => {
                    ui.error(
                        "a fleet's status has no Prometheus form",
                        Some("ask each target's run: `runbook status RUN --format prometheus`"),
                    );
                    store.close().await;
                    return Exit::Invalid;
                }
            };
            let code = super::fleet_status::fleet_status(ui, &store, id, format).await;
            store.close().await;
            return code;
        }
        let Some(run) = exec::find_run(&store, id, ui).await else {
            return Exit::Invalid;
        };
        let steps = store.load_steps(&run.id).await.unwrap_or_default();
        let events = store.load_events(&run.id).await.unwrap_or_default();
        let mut waiting = exec::status_lines(&store, &run).await;
        waiting.extend(exec::waiting_lines(&project, &store, &run).await);
        store.close().await;
        match format {
            StatusFormat::Json => ui.data(&views::to_text(&views::StatusDoc::new(
                &run, &steps, events,
            ))),
            StatusFormat::Text => ui.data(&status_text(&run, &steps, &waiting)),
            StatusFormat::Prometheus => ui.data(&status_metrics(&run, &steps)),
        }
        Exit::Ok
    })
}

/// The run's outcome and the results of its health steps that recorded them (a failed health
/// step records none: its `metrics_file` holds them) as Prometheus metrics.
fn status_metrics(run: &RunRecord, steps: &[StepRecord]) -> String {
    use crate::metrics;
    let exit_code = match run.status {
        RunStatus::Running => None,
        RunStatus::Succeeded => Some(Exit::Ok),
        RunStatus::Failed | RunStatus::RollbackFailed => Some(Exit::RunFailed),
        RunStatus::WaitingApproval => Some(Exit::WaitingApproval),
        RunStatus::Interrupted => Some(Exit::Interrupted),
        RunStatus::Refused => Some(Exit::Refused),
    };
    let facts = metrics::run::RunFacts {
        playbook: &run.playbook,
        environment: &run.env,
        exit_code: exit_code.map(Exit::code),
        started_secs: run.started_at as f64 / 1000.0,
        finished_secs: run.finished_at.map(|t| t as f64 / 1000.0),
    };
    let mut families = metrics::run::families(&facts);
    // Health steps in order; a later one's checks replace an earlier one's of the same name.
    let mut checks = serde_json::Map::new();
    let mut at = 0i64;
    for s in steps {
        if let Some(c) = s.outputs.get("checks").and_then(|c| c.as_object())
            && s.outputs.get("passed").is_some()
        {
            checks.extend(c.clone());
            at = at.max(s.finished_at.unwrap_or(run.started_at));
        }
    }
    if !checks.is_empty() {
        families.extend(metrics::health::families(
            &checks,
            &run.env,
            at as f64 / 1000.0,
        ));
    }
    metrics::render(&families)
}

/// The run's header (with, for a run waiting at an approval gate, the gate, its approvals and
/// who may still approve), then one line per step. A step still marked running in a run that
/// is no longer running (or crashed) has an unknown outcome and is shown so.
fn status_text(run: &RunRecord, steps: &[StepRecord], waiting: &[String]) -> String {
    let mut out = format!(
        "run       {}\nplaybook  {} ({})\nenv       {} ({})\noperator  {}@{}\nstatus    {}\nstarted   {}\n",
        run.id,
        run.playbook,
        run.file,
        run.env,
        run.target,
        run.operator,
        run.host,
        run.shown_status(),
        format_ms(run.started_at)
    );
    if let Some(e) = &run.error {
        out.push_str(&format!("error     {e}\n"));
    }
    for line in waiting {
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            let time = match (s.started_at, s.finished_at) {
                (Some(a), Some(b)) => format!("{:.1}s", (b - a).max(0) as f64 / 1000.0),
                _ => "-".to_owned(),
            };
            let mut outputs = s.outputs.to_string();
            if outputs.chars().count() > 80 {
                outputs = format!("{}...", outputs.chars().take(80).collect::<String>());
            }
            let status = if s.status == StepStatus::Running
                && (run.status != RunStatus::Running || run.crashed() == Some(true))
            {
                "unknown".to_owned()
            } else {
                s.status.as_str().to_owned()
            };
            vec![
                s.step.clone(),
                s.phase.as_str().to_owned(),
                status,
                s.attempts.to_string(),
                time,
                s.error
                    .as_deref()
                    .map_or(outputs, |e| format!("error: {e}")),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &["step", "phase", "status", "attempts", "time", "outputs"],
        &[Left, Left, Left, Right, Right, Left],
        &rows,
    ));
    out
}
