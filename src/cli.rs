//! Command-line arguments and the dispatch to each command.
//!
//! Raw arguments (clap) are resolved into a project and a command here; the commands
//! themselves live in the modules of their pipeline phase.

use crate::diagnostic::{self, Diagnostic};
use crate::exit::Exit;
use crate::plan::{self, PlanRequest};
use crate::project::{self, Project};
use crate::report::{FileResult, ValidationReport};
use crate::schema::{self, SchemaKind};
use crate::ui::{ColorChoice, Ui};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "runbook",
    version,
    about = "Executes declarative YAML playbooks for database production operations"
)]
pub struct Cli {
    /// Change to DIR before doing anything (like `git -C`); the project is the nearest folder
    /// at or above the working directory with a runbook.yaml or playbooks/
    #[arg(short = 'C', long = "project", global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Print only data and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// When to colour diagnostics
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ValidateFormat {
    Human,
    Json,
    Junit,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate playbooks (default: runbook.yaml and every playbook in playbooks/)
    Validate {
        /// Playbook files or names
        paths: Vec<String>,
        #[arg(long, value_enum, default_value_t = ValidateFormat::Human)]
        format: ValidateFormat,
    },
    /// Show what a run would do, without touching a database or starting a process
    Plan {
        /// Playbook name or path
        playbook: String,
        /// Environment from runbook.yaml
        #[arg(long, short = 'e')]
        env: String,
        /// Set a parameter: --var name=value
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = plan::parse_var)]
        vars: Vec<(String, String)>,
        /// Plan without connecting to the target (the only mode until connected plans land)
        #[arg(long)]
        offline: bool,
        /// A target URL or sqlite: path shown in place of the environment's
        #[arg(long)]
        target: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// List the playbooks with their descriptions
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Print the JSON Schema of playbooks (or of runbook.yaml with --config)
    Schema {
        #[arg(long)]
        config: bool,
    },
}

/// Parses arguments, runs the command and returns its exit code.
pub fn main() -> Exit {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
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
    match cli.command {
        Command::Validate { paths, format } => validate(&ui, &root, &paths, format),
        Command::Plan {
            playbook,
            env,
            vars,
            offline: _,
            target,
            format,
        } => plan_cmd(
            &ui,
            &root,
            &playbook,
            &env,
            &vars,
            target.as_deref(),
            format,
        ),
        Command::List { format } => list(&ui, &root, format),
        Command::Schema { config } => {
            ui.data(&schema::schema_text(if config {
                SchemaKind::Config
            } else {
                SchemaKind::Playbook
            }));
            Exit::Ok
        }
    }
}

/// Opens the project, reporting an invalid config; commands that act need a valid one.
fn open(ui: &Ui, root: &std::path::Path) -> Option<Project> {
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

fn validate(ui: &Ui, root: &std::path::Path, paths: &[String], format: ValidateFormat) -> Exit {
    let mut files = Vec::new();
    // The config first: playbooks are validated against it when it is valid.
    let config_path = root.join(crate::config::CONFIG_FILE);
    let mut project = Project {
        root: root.to_path_buf(),
        config: None,
    };
    if config_path.is_file() {
        match project::load_config(&config_path) {
            Ok(config) => {
                files.push(FileResult {
                    file: config.source.display_path(),
                    kind: "config",
                    name: None,
                    valid: true,
                    diagnostics: Vec::new(),
                });
                project.config = Some(config);
            }
            Err(diags) => files.push(FileResult {
                file: crate::source::display_path(&config_path),
                kind: "config",
                name: None,
                valid: false,
                diagnostics: diags,
            }),
        }
    }
    let targets: Vec<PathBuf> = if paths.is_empty() {
        project.playbook_files()
    } else {
        let mut out = Vec::new();
        for p in paths {
            match project.resolve(p) {
                Ok(path) => out.push(path),
                Err(d) => files.push(FileResult {
                    file: p.clone(),
                    kind: "playbook",
                    name: None,
                    valid: false,
                    diagnostics: vec![d.in_file(p.clone())],
                }),
            }
        }
        out
    };
    if targets.is_empty() && files.iter().all(|f| f.kind == "config") && paths.is_empty() {
        ui.error(
            &format!(
                "no playbooks found in `{}`",
                crate::source::display_path(&project.playbooks_dir())
            ),
            Some("give playbook paths, or run in a project folder with a playbooks/ folder"),
        );
        return Exit::Invalid;
    }
    for path in targets {
        let shown = crate::source::display_path(&path);
        match project.load_playbook(&path) {
            Ok(pb) => files.push(FileResult {
                file: shown,
                kind: "playbook",
                name: Some(pb.def.name.clone()),
                valid: true,
                diagnostics: Vec::new(),
            }),
            Err(mut diags) => {
                diagnostic::sort(&mut diags);
                diags.dedup_by(|a, b| {
                    a.file == b.file
                        && a.line == b.line
                        && a.column == b.column
                        && a.message == b.message
                });
                let valid = !diags.iter().any(Diagnostic::is_error);
                files.push(FileResult {
                    file: shown,
                    kind: "playbook",
                    name: None,
                    valid,
                    diagnostics: diags,
                });
            }
        }
    }
    let report = ValidationReport::new(files);
    match format {
        ValidateFormat::Json => ui.data(&report.to_json()),
        ValidateFormat::Junit => ui.data(&report.to_junit()),
        ValidateFormat::Human => {
            for f in &report.files {
                ui.diagnostics(&f.diagnostics);
            }
            let invalid = report.files.iter().filter(|f| !f.valid).count();
            if report.valid {
                let playbooks = report.files.iter().filter(|f| f.kind == "playbook").count();
                let config = if report.files.iter().any(|f| f.kind == "config") {
                    "runbook.yaml and "
                } else {
                    ""
                };
                ui.note(&format!("ok: {config}{playbooks} playbooks valid"));
            } else {
                let errors = if report.errors == 1 {
                    "1 error".to_owned()
                } else {
                    format!("{} errors", report.errors)
                };
                let verb = if invalid == 1 { "is" } else { "are" };
                ui.error(
                    &format!(
                        "{invalid} of {} files {verb} invalid ({errors})",
                        report.files.len()
                    ),
                    None,
                );
            }
        }
    }
    if report.valid {
        Exit::Ok
    } else {
        Exit::Invalid
    }
}

fn load(ui: &Ui, project: &Project, name: &str) -> Option<std::sync::Arc<project::Playbook>> {
    let path = match project.resolve(name) {
        Ok(p) => p,
        Err(d) => {
            ui.error(&d.message, d.hint.as_deref());
            return None;
        }
    };
    match project.load_playbook(&path) {
        Ok(pb) => Some(pb),
        Err(mut diags) => {
            diagnostic::sort(&mut diags);
            diags.dedup_by(|a, b| {
                a.file == b.file
                    && a.line == b.line
                    && a.column == b.column
                    && a.message == b.message
            });
            ui.diagnostics(&diags);
            let errors = diags.iter().filter(|d| d.is_error()).count();
            let errors = if errors == 1 {
                "1 error".to_owned()
            } else {
                format!("{errors} errors")
            };
            ui.error(
                &format!("`{name}` is invalid ({errors}); nothing ran"),
                None,
            );
            None
        }
    }
}

fn plan_cmd(
    ui: &Ui,
    root: &std::path::Path,
    name: &str,
    env: &str,
    vars: &[(String, String)],
    target: Option<&str>,
    format: OutputFormat,
) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(playbook) = load(ui, &project, name) else {
        return Exit::Invalid;
    };
    let req = PlanRequest {
        env,
        vars,
        target_override: target,
    };
    match plan::build(&playbook, project.config_def(), &req) {
        Ok(plan) => {
            match format {
                OutputFormat::Text => ui.data(&plan::render_text(&plan)),
                OutputFormat::Json => {
                    ui.data(&serde_json::to_string_pretty(&plan).unwrap_or_default())
                }
            }
            Exit::Ok
        }
        Err(diags) => {
            for d in &diags {
                ui.error(&d.message, d.hint.as_deref());
            }
            Exit::Invalid
        }
    }
}

fn list(ui: &Ui, root: &std::path::Path, format: OutputFormat) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let mut rows = Vec::new();
    let mut invalid = 0;
    for path in project.playbook_files() {
        match project.load_playbook(&path) {
            Ok(pb) => rows.push(serde_json::json!({
                "name": pb.def.name,
                "description": pb.def.description.clone().unwrap_or_default(),
                "file": crate::source::display_path(&path),
                "steps": pb.def.steps.len(),
            })),
            Err(_) => {
                invalid += 1;
                rows.push(serde_json::json!({
                    "name": path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
                    "description": "(invalid: run `runbook validate`)",
                    "file": crate::source::display_path(&path),
                    "steps": null,
                }));
            }
        }
    }
    match format {
        OutputFormat::Json => ui.data(&serde_json::to_string_pretty(&rows).unwrap_or_default()),
        OutputFormat::Text => {
            let width = rows
                .iter()
                .filter_map(|r| r["name"].as_str())
                .map(str::len)
                .max()
                .unwrap_or(4);
            let mut text = String::new();
            for r in &rows {
                text.push_str(&format!(
                    "{:<width$}  {}\n",
                    r["name"].as_str().unwrap_or_default(),
                    r["description"].as_str().unwrap_or_default()
                ));
            }
            if rows.is_empty() {
                ui.note("no playbooks");
                return Exit::Ok;
            }
            ui.data(&text);
        }
    }
    if invalid > 0 { Exit::Invalid } else { Exit::Ok }
}
