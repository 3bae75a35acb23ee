//! What the commands share: opening the project, loading a playbook, the async runtime,
//! tracing, the Ctrl-C channel and the state store.

use crate::diagnostic::{self, Diagnostic};
use crate::exec;
use crate::exit::Exit;
use crate::project::{Playbook, Project};
use crate::state::StateStore;
use crate::ui::Ui;
use std::path::Path;
use std::sync::Arc;

/// Opens the project, reporting an invalid config; commands that act need a valid one.
pub(super) fn open(ui: &Ui, root: &Path) -> Option<Project> {
    match Project::open(root) {
        Ok(p) => Some(p),
        Err(diags) => {
            ui.diagnostics(&diags);
            ui.error(
                "runbook.yaml is invalid",
                Some("fix the config first; `runbook validate` lists every problem"),
            );
            None
        }
    }
}

/// Sorts diagnostics by position and drops repeats: an included file reached twice
/// reports each problem once.
pub(super) fn sorted_unique(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostic::sort(&mut diags);
    diags.dedup_by(|a, b| {
        a.file == b.file && a.line == b.line && a.column == b.column && a.message == b.message
    });
    diags
}

/// Resolves and loads a playbook for a command that acts; an invalid one is reported with
/// all its diagnostics and nothing runs.
pub(super) fn load(ui: &Ui, project: &Project, name: &str) -> Option<Arc<Playbook>> {
    let path = match project.resolve(name) {
        Ok(p) => p,
        Err(d) => {
            ui.error(&d.message, d.hint.as_deref());
            return None;
        }
    };
    match project.load_playbook(&path) {
        Ok(pb) => Some(pb),
        Err(diags) => {
            let diags = sorted_unique(diags);
            ui.diagnostics(&diags);
            let errors = diags.iter().filter(|d| d.is_error()).count();
            let errors = crate::fmt::plural(errors, "error", "errors");
            ui.error(
                &format!("`{name}` is invalid ({errors}); nothing ran"),
                None,
            );
            None
        }
    }
}

/// A single-threaded runtime: runs are sequential, and two cores build faster than they wait.
/// Runs a command's async part on the runtime; without a runtime the command cannot run.
pub(super) fn block_on(ui: &Ui, fut: impl Future<Output = Exit>) -> Exit {
    match runtime(ui) {
        Some(rt) => {
            let exit = rt.block_on(fut);
            // The command's work is done and the process exits next: the runtime's idle
            // blocking threads are not woken and joined (a wake on the other core can take
            // milliseconds here). What the pool may still hold ends with the process: reads
            // of the terminal and HTTP requests run on threads of their own, and a run's git
            // read is waited for where it is dropped (`exec::start`).
            rt.shutdown_background();
            exit
        }
        None => Exit::Internal,
    }
}

pub(super) fn runtime(ui: &Ui) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            ui.error(&format!("cannot start the async runtime: {e}"), None);
            None
        }
    }
}

/// Debug logging to stderr for commands that act, through the redactor.
pub(super) fn init_tracing(verbose: bool) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| verbose.then(|| "runbook=debug".to_owned()));
    if let Some(filter) = filter {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(|| crate::ui::RedactingWriter)
            .with_ansi(false)
            .try_init();
    }
}

/// Ctrl-C (or SIGTERM, SIGHUP): the first stops the running step and marks the run
/// interrupted; the second exits at once.
pub(super) fn interrupt_channel(ui: &Ui) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let ui = ui.clone();
    tokio::spawn(async move {
        let Ok(mut signals) = crate::cancel::StopSignals::new() else {
            return;
        };
        let first = signals.next().await;
        let _ = tx.send(true);
        ui.urgent(&match first {
            "SIGINT" => {
                "interrupting: stopping the current step (Ctrl-C again to exit at once)".to_owned()
            }
            other => format!("interrupting ({other}): stopping the current step"),
        });
        signals.next().await;
        std::process::exit(Exit::Interrupted.code());
    });
    rx
}

/// Opens the state store named by `--state` or the config; the executor reports failures,
/// and the error is the exit code for them.
pub(super) async fn open_state(
    ui: &Ui,
    project: &Project,
    flag: Option<&str>,
) -> Result<StateStore, Exit> {
    exec::open_state(project, flag, ui)
        .await
        .map_err(Exit::from)
}
