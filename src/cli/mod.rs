//! Command-line entry: parses the arguments and dispatches to each command.
//!
//! Raw arguments (clap, `args`) are resolved into a project and a command here; each command
//! group has its own file, and the work itself lives in the modules of its pipeline phase.
//! This is the only place that turns results into exit codes.

mod args;
mod audit;
mod audit_heads;
mod decision;
mod docs;
mod fleet;
mod fleet_status;
mod init;
mod plan;
mod run;
mod runs;
mod runtime;
mod schedule;
mod validate;

pub use args::{
    ApproveArgs, AuditCmd, CancelArgs, Cli, Command, ExportFormat, OutputFormat, PlanArgs,
    RejectArgs, ResumeArgs, RunArgs, ValidateFormat,
};

use crate::exit::Exit;
use crate::project::Project;
use crate::ui::Ui;
use clap::Parser;
use std::path::{Path, PathBuf};

/// Parses arguments, runs the command and returns its exit code.
pub fn main() -> Exit {
    if crate::watchdog::asked() {
        crate::watchdog::serve();
        return Exit::Ok;
    }
    // Whatever this command starts is stopped if runbook dies (SIGKILL included).
    crate::process::supervise();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            Ui::clap_error(&e);
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Exit::Ok
                }
                _ => Exit::Invalid,
            };
        }
    };
    let ui = Ui::new(cli.color, cli.quiet);
    if let Some(dir) = &cli.project
        && let Err(e) = std::env::set_current_dir(dir)
    {
        ui.error(
            &format!("cannot change to `{}`: {e}", dir.display()),
            Some("give an existing project folder with -C"),
        );
        return Exit::Invalid;
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let root = Project::discover(&cwd);
    dispatch(&ui, &root, cli.command, cli.verbose)
}

/// Runs one command in the project at `root`.
fn dispatch(ui: &Ui, root: &Path, command: Command, verbose: bool) -> Exit {
    match command {
        Command::Validate {
            paths,
            format,
            migrations,
        } => validate::validate(ui, root, &paths, format, migrations),
        Command::Plan(args) => plan::plan_cmd(ui, root, &args),
        Command::List { format } => validate::list(ui, root, format),
        Command::Run(args) => run::run(ui, root, args, verbose),
        Command::Resume(args) => run::resume(ui, root, args, verbose),
        Command::Approve(args) => decision::approve(ui, root, args, verbose),
        Command::Reject(args) => decision::reject(ui, root, args, verbose),
        Command::Cancel(args) => decision::cancel(ui, root, args, verbose),
        Command::Runs {
            format,
            limit,
            state,
        } => runs::runs_cmd(ui, root, format, limit, state.as_deref()),
        Command::Audit { cmd } => audit::audit_cmd(ui, root, cmd),
        Command::Init { dir } => init::init(ui, &dir),
        Command::Status { run, format, state } => {
            runs::status_cmd(ui, root, &run, format, state.as_deref())
        }
        Command::Schema { config, output } => validate::schema(ui, config, output),
        Command::Completions { shell } => docs::completions(ui, shell),
        Command::Man { out } => docs::man(ui, out.as_deref()),
        Command::Schedule { cmd } => schedule::schedule_cmd(ui, root, cmd),
    }
}
