//! Command-line arguments and the dispatch to each command.
//!
//! Raw arguments (clap) are resolved into a project and a command here; the commands
//! themselves live in the modules of their pipeline phase.

use crate::diagnostic::{self, Diagnostic};
use crate::exec;
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
    /// Debug logging to stderr (RUST_LOG overrides)
    #[arg(short, long, global = true)]
    pub verbose: bool,
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
pub enum AuditCmd {
    /// Recompute hashes, links and sequence; detect edited, deleted, inserted, reordered or
    /// truncated records (exit 6) and name the first bad one
    Verify {
        /// Run id (a unique prefix is enough); omit with --all
        run: Option<String>,
        /// Every run in the state store and the audit folder
        #[arg(long)]
        all: bool,
        /// Check each run's signature with this Ed25519 public key (hex, or a file holding it)
        #[arg(long)]
        key: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        #[arg(long)]
        state: Option<String>,
    },
    /// Runs with audit chains
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        #[arg(long)]
        state: Option<String>,
    },
    /// A run's timeline: steps, durations, gates and approvers, rollbacks
    Show {
        run: String,
        #[arg(long)]
        state: Option<String>,
    },
    /// The records, as JSON or CSV
    Export {
        run: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        #[arg(long)]
        state: Option<String>,
    },
    /// One self-contained HTML file for auditors
    Report {
        run: String,
        #[arg(long, short)]
        output: PathBuf,
        #[arg(long)]
        state: Option<String>,
    },
    /// Make an Ed25519 key pair for signing runs (`audit.signing_key_env` in runbook.yaml)
    Keygen {
        /// Folder for `runbook-audit.key` (mode 600) and `runbook-audit.pub`
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExportFormat {
    Json,
    Csv,
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
        /// Plan without connecting to the target (for CI: touches no database)
        #[arg(long)]
        offline: bool,
        /// Also rehearse pending migrations in a transaction that is rolled back
        #[arg(long, conflicts_with = "offline")]
        rehearse: bool,
        /// A target URL or sqlite: path shown in place of the environment's
        #[arg(long)]
        target: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Run a playbook against an environment's database
    Run {
        /// Playbook name or path
        playbook: String,
        /// Environment from runbook.yaml
        #[arg(long, short = 'e', default_value = "dev")]
        env: String,
        /// Set a parameter: --var name=value
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = plan::parse_var)]
        vars: Vec<(String, String)>,
        /// Run only steps with one of these tags
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Skip steps with one of these tags
        #[arg(long, value_delimiter = ',')]
        skip_tags: Vec<String>,
        /// The database: a postgres:// URL or sqlite:FILE (overrides the environment's)
        #[arg(long)]
        target: Option<String>,
        /// The state store: a postgres:// URL or sqlite:FILE (default .runbook/state.db)
        #[arg(long)]
        state: Option<String>,
        /// How long to wait for another run to release the target (e.g. 30s)
        #[arg(long, default_value = "0s", value_parser = parse_wait)]
        lock_wait: std::time::Duration,
        /// Approve this approval gate as the operator (only where the environment allows self-approval)
        #[arg(long, value_name = "GATE")]
        approve: Vec<String>,
        /// The text a `confirm` gate asks for (the database name), for runs without a terminal
        #[arg(long, value_name = "TEXT")]
        confirm: Option<String>,
        /// Run across the environment's fleet targets: `all`, names (`tenant-*`), `label=value`
        #[arg(long, value_name = "SELECTOR")]
        targets: Option<String>,
        /// With --targets: how many targets run at once
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
        /// With --targets: the first N targets must succeed before the rest start
        #[arg(long, default_value_t = 0)]
        canary: usize,
        /// With --targets: start no new target after this many failures (`3`) or this share (`10%`)
        #[arg(long, value_parser = crate::fleet::parse_stop_after)]
        stop_after: Option<crate::fleet::StopAfter>,
        /// Read the target URL from this environment variable (how fleets hand targets to runs)
        #[arg(long, value_name = "VAR", hide = true)]
        target_env: Option<String>,
        #[arg(long, hide = true)]
        fleet: Option<String>,
        #[arg(long, hide = true)]
        fleet_target: Option<String>,
    },
    /// Continue an interrupted or crashed run from its checkpoints
    Resume {
        /// Run id (a unique prefix is enough)
        run: String,
        /// Run this in-flight step again
        #[arg(long = "retry-step", value_name = "STEP")]
        retry_steps: Vec<String>,
        /// Treat this in-flight step as done and go on
        #[arg(long = "skip-step", value_name = "STEP")]
        skip_steps: Vec<String>,
        /// Parameters again (secrets given with --var are not stored)
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = plan::parse_var)]
        vars: Vec<(String, String)>,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value = "0s", value_parser = parse_wait)]
        lock_wait: std::time::Duration,
        /// The text a `confirm` gate asks for (the database name)
        #[arg(long, value_name = "TEXT")]
        confirm: Option<String>,
        /// For a fleet run: how many targets run at once (default: as the fleet run started)
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: Option<u16>,
        /// For a fleet run: the first N resumed targets must succeed before the others start
        #[arg(long)]
        canary: Option<usize>,
        /// For a fleet run: start no new target after this many failures (`3`) or this share
        /// (`10%`) of the resumed ones (default: as the fleet run started)
        #[arg(long, value_parser = crate::fleet::parse_stop_after)]
        stop_after: Option<crate::fleet::StopAfter>,
        #[arg(long, value_name = "VAR", hide = true)]
        target_env: Option<String>,
    },
    /// Approve a gate of a waiting run (then `runbook resume RUN` continues it)
    Approve {
        /// Run id (a unique prefix is enough)
        run: String,
        /// The gate's step id
        gate: String,
        #[arg(long)]
        comment: Option<String>,
        /// Who approves (default: RUNBOOK_ACTOR, then the OS user)
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        state: Option<String>,
    },
    /// Reject a gate of a waiting run: the run ends, and its rollback runs
    Reject {
        /// Run id (a unique prefix is enough)
        run: String,
        /// The gate's step id
        gate: String,
        #[arg(long)]
        comment: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        state: Option<String>,
        /// The database, if the run was given one with --target
        #[arg(long)]
        target: Option<String>,
    },
    /// The auditor's tools: verify, list, show, export, report, keygen
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Recent runs
    Runs {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// How many runs
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        state: Option<String>,
    },
    /// Each step of a run: state, attempts, outputs (secrets masked)
    Status {
        /// Run id (a unique prefix is enough)
        run: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        #[arg(long)]
        state: Option<String>,
    },
    /// Create a new project: runbook.yaml, an example playbook, and the folders
    Init {
        /// Where (default: the current folder)
        #[arg(default_value = ".")]
        dir: PathBuf,
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
            offline,
            rehearse,
            target,
            format,
        } => plan_cmd(
            &ui,
            &root,
            &playbook,
            &env,
            &vars,
            (offline, rehearse),
            target.as_deref(),
            format,
        ),
        Command::List { format } => list(&ui, &root, format),
        Command::Run {
            playbook,
            env,
            vars,
            tags,
            skip_tags,
            target,
            state,
            lock_wait,
            approve,
            confirm,
            targets,
            concurrency,
            canary,
            stop_after,
            target_env,
            fleet,
            fleet_target,
        } => {
            let target = match (target, target_env) {
                (Some(t), _) => Some(t),
                (None, Some(var)) => std::env::var(&var).ok(),
                (None, None) => None,
            };
            let req = exec::RunRequest {
                playbook,
                env,
                vars,
                tags,
                skip_tags,
                target,
                state,
                lock_wait,
                approve,
                confirm,
                fleet: fleet.zip(fleet_target),
            };
            match targets {
                Some(selector) => {
                    let opts = crate::fleet::FleetOptions {
                        concurrency: usize::from(concurrency),
                        canary,
                        stop_after,
                    };
                    fleet_cmd(&ui, &root, req, &selector, &opts)
                }
                None => run_cmd(&ui, &root, req, cli.verbose),
            }
        }
        Command::Resume {
            run,
            retry_steps,
            skip_steps,
            vars,
            target,
            state,
            lock_wait,
            confirm,
            concurrency,
            canary,
            stop_after,
            target_env,
        } => {
            let target = match (target, target_env) {
                (Some(t), _) => Some(t),
                (None, Some(var)) => std::env::var(&var).ok(),
                (None, None) => None,
            };
            let req = exec::ResumeRequest {
                run_id: run,
                retry_steps,
                skip_steps,
                vars,
                target,
                state,
                lock_wait,
                confirm,
            };
            if req.run_id.starts_with("fleet-") {
                let given = (concurrency.map(usize::from), canary, stop_after);
                fleet_resume_cmd(&ui, &root, req, given)
            } else {
                resume_cmd(&ui, &root, req, cli.verbose)
            }
        }
        Command::Approve {
            run,
            gate,
            comment,
            actor,
            state,
        } => {
            let req = exec::DecisionRequest {
                run_id: run,
                gate,
                approve: true,
                comment,
                actor,
                state,
                ..Default::default()
            };
            decision_cmd(&ui, &root, req, cli.verbose)
        }
        Command::Reject {
            run,
            gate,
            comment,
            actor,
            state,
            target,
        } => {
            let req = exec::DecisionRequest {
                run_id: run,
                gate,
                approve: false,
                comment,
                actor,
                state,
                target,
                confirm: None,
            };
            decision_cmd(&ui, &root, req, cli.verbose)
        }
        Command::Runs {
            format,
            limit,
            state,
        } => runs_cmd(&ui, &root, format, limit, state.as_deref()),
        Command::Audit { cmd } => audit_cmd(&ui, &root, cmd),
        Command::Init { dir } => match crate::init::scaffold(&dir) {
            Ok(files) => {
                ui.note(&format!(
                    "created {} in {}\nnext: `runbook -C {} validate`, then `runbook -C {} run example --env dev --approve approve`",
                    files.join(", "),
                    dir.display(),
                    dir.display(),
                    dir.display()
                ));
                Exit::Ok
            }
            Err(e) => {
                ui.error(&e, Some("run `runbook init` in an empty folder, or name a new one: `runbook init my-project`"));
                Exit::Invalid
            }
        },
        Command::Status { run, format, state } => {
            status_cmd(&ui, &root, &run, format, state.as_deref())
        }
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

#[allow(clippy::too_many_arguments)]
fn plan_cmd(
    ui: &Ui,
    root: &std::path::Path,
    name: &str,
    env: &str,
    vars: &[(String, String)],
    (offline, rehearse): (bool, bool),
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
            // The offline plan is complete on its own; a connected plan adds what only the
            // database knows, through a read-only connection (execute-phase code).
            let live = if offline {
                None
            } else {
                match live_part(ui, &project, &playbook, &plan, env, target, rehearse) {
                    Ok(l) => l,
                    Err(code) => return code,
                }
            };
            match format {
                OutputFormat::Text => {
                    let mut text = plan::render_text(&plan);
                    if let Some(l) = &live {
                        text.push_str(&l.text);
                    }
                    ui.data(&text)
                }
                OutputFormat::Json => match &live {
                    None => ui.data(&serde_json::to_string_pretty(&plan).unwrap_or_default()),
                    Some(l) => {
                        let mut v = serde_json::to_value(&plan).unwrap_or_default();
                        if let serde_json::Value::Object(m) = &mut v {
                            m.insert("live".to_owned(), l.json.clone());
                        }
                        ui.data(&serde_json::to_string_pretty(&v).unwrap_or_default())
                    }
                },
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

fn live_part(
    ui: &Ui,
    project: &Project,
    playbook: &project::Playbook,
    plan: &plan::Plan,
    env: &str,
    target: Option<&str>,
    rehearse: bool,
) -> Result<Option<exec::live::Live>, Exit> {
    let config = project.config_def();
    let spec = match exec::target_spec(&project.root, config, env, target) {
        Ok(Some(t)) => t,
        Ok(None) => {
            ui.note("no target for this environment: the plan is offline");
            return Ok(None);
        }
        Err(e) => {
            ui.error(
                &e,
                Some("set the variable, pass --target, or plan with --offline"),
            );
            return Err(Exit::Invalid);
        }
    };
    let protected = config
        .and_then(|c| c.environments.get(env))
        .is_some_and(|e| e.protections.is_protected());
    let vars = config
        .and_then(|c| c.environments.get(env))
        .map(|e| serde_json::json!(e.vars))
        .unwrap_or(serde_json::json!({}));
    let ctx = serde_json::json!({"params": plan.params, "env": {"name": env, "target": plan.target, "protected": protected}, "vars": vars});
    let Some(rt) = runtime(ui) else {
        return Err(Exit::Internal);
    };
    let migrations = project.migrations_dir();
    match rt.block_on(exec::live::inspect(
        playbook,
        &spec,
        &project.root,
        &migrations,
        protected,
        rehearse,
        &ctx,
    )) {
        Ok(l) => Ok(Some(l)),
        Err(e) => {
            ui.error(
                &crate::redact::global().redact(&format!(
                    "cannot connect to {} for a connected plan: {e}",
                    spec.describe()
                )),
                Some("plan with --offline to see the plan without the database"),
            );
            Err(Exit::Invalid)
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

fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    crate::playbook::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration like `30s` or `5m`"))
}

/// A single-threaded runtime: runs are sequential, and two cores build faster than they wait.
fn runtime(ui: &Ui) -> Option<tokio::runtime::Runtime> {
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

fn init_tracing(verbose: bool) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| verbose.then(|| "runbook=debug".to_owned()));
    if let Some(filter) = filter {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(|| crate::redact::RedactingWriter)
            .with_ansi(false)
            .try_init();
    }
}

/// Ctrl-C: the first stops the running step and marks the run interrupted; the second exits
/// at once.
fn interrupt_channel() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"interrupting: stopping the current step (Ctrl-C again to exit at once)\n",
            );
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(Exit::Interrupted.code());
            }
        }
    });
    rx
}

fn run_cmd(ui: &Ui, root: &std::path::Path, req: exec::RunRequest, verbose: bool) -> Exit {
    init_tracing(verbose);
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(playbook) = load(ui, &project, &req.playbook) else {
        return Exit::Invalid;
    };
    let Some(rt) = runtime(ui) else {
        return Exit::Internal;
    };
    rt.block_on(async {
        let cancel = interrupt_channel();
        exec::run(&project, playbook, req, ui, cancel).await
    })
}

fn resume_cmd(ui: &Ui, root: &std::path::Path, req: exec::ResumeRequest, verbose: bool) -> Exit {
    init_tracing(verbose);
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(rt) = runtime(ui) else {
        return Exit::Internal;
    };
    rt.block_on(async {
        let cancel = interrupt_channel();
        exec::resume(&project, req, ui, cancel).await
    })
}

async fn open_state(
    ui: &Ui,
    project: &Project,
    flag: Option<&str>,
) -> Option<crate::state::StateStore> {
    exec::open_state(project, flag, ui).await.ok()
}

fn runs_cmd(
    ui: &Ui,
    root: &std::path::Path,
    format: OutputFormat,
    limit: i64,
    state: Option<&str>,
) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(rt) = runtime(ui) else {
        return Exit::Internal;
    };
    rt.block_on(async {
        let Some(store) = open_state(ui, &project, state).await else {
            return Exit::Internal;
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
            OutputFormat::Json => {
                let rows: Vec<serde_json::Value> = runs
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "id": r.id, "playbook": r.playbook, "env": r.env, "target": r.target,
                            "operator": r.operator, "status": r.shown_status(),
                            "started_at": crate::run::format_ms(r.started_at),
                            "duration_ms": r.finished_at.map(|f| f - r.started_at),
                            "error": r.error,
                        })
                    })
                    .collect();
                ui.data(&serde_json::to_string_pretty(&rows).unwrap_or_default());
            }
            OutputFormat::Text => {
                if runs.is_empty() {
                    ui.note("no runs yet");
                    return Exit::Ok;
                }
                let mut out = format!(
                    "{:<23}  {:<16}  {:<10}  {:<12}  {:<16}  {:<20}  {}\n",
                    "run", "playbook", "env", "operator", "status", "started", "duration"
                );
                for r in &runs {
                    let dur = r.finished_at.map_or("-".to_owned(), |f| {
                        format!("{:.1}s", (f - r.started_at) as f64 / 1000.0)
                    });
                    out.push_str(&format!(
                        "{:<23}  {:<16}  {:<10}  {:<12}  {:<16}  {:<20}  {}\n",
                        r.id,
                        r.playbook,
                        r.env,
                        r.operator,
                        r.status.as_str(),
                        crate::run::format_ms(r.started_at),
                        dur
                    ));
                }
                ui.data(&out);
            }
        }
        Exit::Ok
    })
}

fn status_cmd(
    ui: &Ui,
    root: &std::path::Path,
    id: &str,
    format: OutputFormat,
    state: Option<&str>,
) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(rt) = runtime(ui) else {
        return Exit::Internal;
    };
    rt.block_on(async {
        let Some(store) = open_state(ui, &project, state).await else { return Exit::Internal };
        let Some(run) = exec::find_run(&store, id, ui).await else {
            return Exit::Invalid;
        };
        let steps = store.load_steps(&run.id).await.unwrap_or_default();
        let events = store.load_events(&run.id).await.unwrap_or_default();
        store.close().await;
        match format {
            OutputFormat::Json => {
                let events: Vec<serde_json::Value> = events
                    .into_iter()
                    .map(|(seq, at, kind, step, data)| {
                        serde_json::json!({"seq": seq, "at": crate::run::format_ms(at), "kind": kind, "step": step, "data": data})
                    })
                    .collect();
                let v = serde_json::json!({ "run": run, "steps": steps, "events": events });
                ui.data(&serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            OutputFormat::Text => {
                let mut out = format!(
                    "run       {}\nplaybook  {} ({})\nenv       {} ({})\noperator  {}@{}\nstatus    {}\nstarted   {}\n",
                    run.id, run.playbook, run.file, run.env, run.target, run.operator, run.host, run.shown_status(),
                    crate::run::format_ms(run.started_at)
                );
                if let Some(e) = &run.error {
                    out.push_str(&format!("error     {e}\n"));
                }
                out.push('\n');
                let w = steps.iter().map(|s| s.step.len()).max().unwrap_or(4).max(4);
                out.push_str(&format!("{:<w$}  {:<10}  {:<9}  {:>8}  {:>8}  {}\n", "step", "phase", "status", "attempts", "time", "outputs"));
                for s in &steps {
                    let time = match (s.started_at, s.finished_at) {
                        (Some(a), Some(b)) => format!("{:.1}s", (b - a).max(0) as f64 / 1000.0),
                        _ => "-".to_owned(),
                    };
                    let mut outputs = s.outputs.to_string();
                    if outputs.chars().count() > 80 {
                        outputs = format!("{}...", outputs.chars().take(80).collect::<String>());
                    }
                    let status = if s.status == crate::run::StepStatus::Running && (run.status != crate::run::RunStatus::Running || run.crashed() == Some(true)) {
                        "unknown".to_owned()
                    } else {
                        s.status.as_str().to_owned()
                    };
                    out.push_str(&format!(
                        "{:<w$}  {:<10}  {:<9}  {:>8}  {:>8}  {}\n",
                        s.step, s.phase.as_str(), status, s.attempts, time, s.error.as_deref().map_or(outputs, |e| format!("error: {e}"))
                    ));
                }
                ui.data(&out);
            }
        }
        Exit::Ok
    })
}

fn decision_cmd(
    ui: &Ui,
    root: &std::path::Path,
    req: exec::DecisionRequest,
    verbose: bool,
) -> Exit {
    init_tracing(verbose);
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(rt) = runtime(ui) else {
        return Exit::Internal;
    };
    rt.block_on(async {
        let cancel = interrupt_channel();
        exec::decide(&project, req, ui, cancel).await
    })
}

/// Resolves which runs an audit command is about: one (by id or unique prefix) or all.
async fn audit_runs(
    ui: &Ui,
    store: &crate::state::StateStore,
    dir: &std::path::Path,
    run: Option<&str>,
    all: bool,
) -> Result<Vec<String>, Exit> {
    let chains = crate::auditor::chains(dir);
    match (run, all) {
        (Some(id), _) => {
            let mut matches: Vec<String> = store.find_runs(id).await.unwrap_or_default();
            for c in chains.iter().filter(|c| c.starts_with(id)) {
                if !matches.contains(c) {
                    matches.push(c.clone());
                }
            }
            match matches.len() {
                1 => Ok(matches),
                0 => {
                    ui.error(
                        &format!("no run `{id}` in the state store or the audit folder"),
                        Some("`runbook audit list` lists the runs"),
                    );
                    Err(Exit::Invalid)
                }
                _ => {
                    ui.error(
                        &format!("`{id}` names several runs: {}", matches.join(", ")),
                        Some("give more of the run id"),
                    );
                    Err(Exit::Invalid)
                }
            }
        }
        (None, true) => {
            let mut ids: Vec<String> = store
                .list_runs(i64::MAX)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.id)
                .collect();
            ids.reverse();
            for c in chains {
                if !ids.contains(&c) {
                    ids.push(c);
                }
            }
            Ok(ids)
        }
        (None, false) => {
            ui.error("name a run, or pass --all", None);
            Err(Exit::Invalid)
        }
    }
}

fn audit_cmd(ui: &Ui, root: &std::path::Path, cmd: AuditCmd) -> Exit {
    if let AuditCmd::Keygen { out } = &cmd {
        return match crate::audit::keygen() {
            Ok((secret, public)) => {
                let key = out.join("runbook-audit.key");
                let publ = out.join("runbook-audit.pub");
                let write_secret = || -> std::io::Result<()> {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&key)?;
                    f.write_all(format!("{secret}\n").as_bytes())?;
                    std::fs::write(&publ, format!("{public}\n"))
                };
                match write_secret() {
                    Ok(()) => {
                        ui.note(&format!(
                            "wrote {} (secret, mode 600) and {}\nput the secret in the variable named by `audit.signing_key_env`; auditors verify with `runbook audit verify --all --key {}`",
                            key.display(),
                            publ.display(),
                            publ.display()
                        ));
                        Exit::Ok
                    }
                    Err(e) => {
                        ui.error(
                            &format!("cannot write the key files: {e}"),
                            Some("an existing key is never overwritten; choose another --out"),
                        );
                        Exit::Invalid
                    }
                }
            }
            Err(e) => {
                ui.error(&e.to_string(), None);
                Exit::Internal
            }
        };
    }
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(rt) = runtime(ui) else {
        return Exit::Internal;
    };
    let dir = exec::audit_dir(&project.root, project.config_def());
    rt.block_on(async {
        let state_flag = match &cmd {
            AuditCmd::Verify { state, .. } | AuditCmd::List { state, .. } | AuditCmd::Show { state, .. } | AuditCmd::Export { state, .. } | AuditCmd::Report { state, .. } => state.clone(),
            AuditCmd::Keygen { .. } => None,
        };
        let Some(store) = open_state(ui, &project, state_flag.as_deref()).await else { return Exit::Internal };
        let verdict = |id: String, key: Option<String>| {
            let store = &store;
            let dir = &dir;
            async move {
                let head = store.audit_head(&id).await.ok().flatten();
                crate::auditor::verify_run(dir, &id, head.as_ref(), key.as_deref())
            }
        };
        let exit = match cmd {
            AuditCmd::Verify { run, all, key, format, .. } => {
                let key = key.map(|k| std::fs::read_to_string(&k).map(|t| t.trim().to_owned()).unwrap_or(k));
                let ids = match audit_runs(ui, &store, &dir, run.as_deref(), all).await {
                    Ok(ids) => ids,
                    Err(code) => return code,
                };
                let mut verdicts = Vec::new();
                for id in ids {
                    verdicts.push(verdict(id, key.clone()).await);
                }
                let failed = verdicts.iter().filter(|v| v.failed()).count();
                match format {
                    OutputFormat::Json => {
                        let rows: Vec<serde_json::Value> = verdicts
                            .iter()
                            .map(|v| {
                                serde_json::json!({
                                    "run_id": v.run_id, "records": v.records, "head": v.head, "verified": !v.failed(),
                                    "torn": matches!(v.problem, Some(crate::audit::Problem::Torn { .. })),
                                    "first_bad_seq": v.problem.as_ref().filter(|p| p.is_tampering()).map(|p| p.seq()),
                                    "problem": v.problem.as_ref().map(|p| p.describe()),
                                    "signature": v.signature.as_ref().map(|s| s.as_ref().map(|_| "valid").unwrap_or_else(|e| e.as_str())),
                                })
                            })
                            .collect();
                        ui.data(&serde_json::to_string_pretty(&rows).unwrap_or_default());
                    }
                    OutputFormat::Text => {
                        let mut text = String::new();
                        for v in &verdicts {
                            text.push_str(&format!("{}  {}\n", v.run_id, v.summary()));
                        }
                        ui.data(&text);
                        if failed > 0 {
                            ui.error(&format!("{failed} of {} audit logs failed verification", verdicts.len()), Some("the first bad record of each is named above"));
                        } else {
                            ui.note(&format!("{} audit logs verified", verdicts.len()));
                        }
                    }
                }
                if failed > 0 { Exit::AuditFailed } else { Exit::Ok }
            }
            AuditCmd::List { format, .. } => {
                let ids = match audit_runs(ui, &store, &dir, None, true).await {
                    Ok(ids) => ids,
                    Err(code) => return code,
                };
                let mut rows = Vec::new();
                for id in ids {
                    let v = verdict(id, None).await;
                    let head = crate::auditor::header(&v.entries);
                    let get = |k: &str| head.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone()).unwrap_or_default();
                    rows.push(serde_json::json!({
                        "run_id": v.run_id, "records": v.records, "verified": !v.failed(),
                        "playbook": get("playbook").split(' ').next().unwrap_or_default(), "environment": get("environment"),
                        "operator": get("operator"), "started": get("started"), "status": get("status"),
                    }));
                }
                match format {
                    OutputFormat::Json => ui.data(&serde_json::to_string_pretty(&rows).unwrap_or_default()),
                    OutputFormat::Text => {
                        let mut text = format!("{:<23}  {:<16}  {:<11}  {:>7}  {:<8}  {}\n", "run", "playbook", "env", "records", "audit", "status");
                        for r in &rows {
                            text.push_str(&format!(
                                "{:<23}  {:<16}  {:<11}  {:>7}  {:<8}  {}\n",
                                r["run_id"].as_str().unwrap_or_default(),
                                r["playbook"].as_str().unwrap_or_default(),
                                r["environment"].as_str().unwrap_or_default(),
                                r["records"].as_u64().unwrap_or(0),
                                if r["verified"] == true { "ok" } else { "FAILED" },
                                r["status"].as_str().unwrap_or_default()
                            ));
                        }
                        ui.data(&text);
                    }
                }
                Exit::Ok
            }
            AuditCmd::Show { run, .. } => {
                let ids = match audit_runs(ui, &store, &dir, Some(&run), false).await {
                    Ok(ids) => ids,
                    Err(code) => return code,
                };
                let v = verdict(ids[0].clone(), None).await;
                ui.data(&crate::auditor::show(&v));
                if v.failed() { Exit::AuditFailed } else { Exit::Ok }
            }
            AuditCmd::Export { run, all, format, .. } => {
                let ids = match audit_runs(ui, &store, &dir, run.as_deref(), all).await {
                    Ok(ids) => ids,
                    Err(code) => return code,
                };
                let mut verdicts = Vec::new();
                for id in ids {
                    verdicts.push(verdict(id, None).await);
                }
                match format {
                    ExportFormat::Json => {
                        let records: Vec<serde_json::Value> = verdicts.iter().flat_map(|v| v.entries.iter().cloned().map(serde_json::Value::Object)).collect();
                        ui.data(&serde_json::to_string_pretty(&records).unwrap_or_default());
                    }
                    ExportFormat::Csv => ui.data(&crate::auditor::csv(&verdicts)),
                }
                if verdicts.iter().any(|v| v.failed()) {
                    ui.error("some exported logs failed verification; `runbook audit verify` says where", None);
                    Exit::AuditFailed
                } else {
                    Exit::Ok
                }
            }
            AuditCmd::Report { run, output, .. } => {
                let ids = match audit_runs(ui, &store, &dir, Some(&run), false).await {
                    Ok(ids) => ids,
                    Err(code) => return code,
                };
                let v = verdict(ids[0].clone(), None).await;
                match std::fs::write(&output, crate::auditor::html(&v)) {
                    Ok(()) => {
                        ui.note(&format!("wrote {} ({})", output.display(), v.summary()));
                        Exit::Ok
                    }
                    Err(e) => {
                        ui.error(&format!("cannot write `{}`: {e}", output.display()), None);
                        Exit::Invalid
                    }
                }
            }
            AuditCmd::Keygen { .. } => Exit::Ok,
        };
        store.close().await;
        exit
    })
}

fn child_args(
    root: &std::path::Path,
    state: Option<&str>,
    vars: &[(String, String)],
    approve: &[String],
    lock_wait: std::time::Duration,
) -> crate::fleet::ChildArgs {
    crate::fleet::ChildArgs {
        root: root.display().to_string(),
        state: state.map(str::to_owned),
        vars: vars.to_vec(),
        approve: approve.to_vec(),
        lock_wait: format!("{}ms", lock_wait.as_millis()),
    }
}

/// The exit code of a fleet run or resume.
fn fleet_exit(outcome: crate::fleet::FleetOutcome) -> Exit {
    use crate::fleet::FleetOutcome as F;
    match outcome {
        F::Succeeded => Exit::Ok,
        F::Failed => Exit::RunFailed,
        F::Waiting => Exit::WaitingApproval,
        F::Interrupted => Exit::Interrupted,
        F::Invalid => Exit::Invalid,
        F::StoreFailed => Exit::Internal,
    }
}

fn fleet_cmd(
    ui: &Ui,
    root: &std::path::Path,
    req: exec::RunRequest,
    selector: &str,
    opts: &crate::fleet::FleetOptions,
) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    // Validate once here, not twenty times in the children.
    let Some(_) = load(ui, &project, &req.playbook) else {
        return Exit::Invalid;
    };
    let Some(config) = project.config_def() else {
        ui.error(
            "fleets are defined in runbook.yaml, and there is none",
            Some("list the targets under `environments.<env>.targets`"),
        );
        return Exit::Invalid;
    };
    let Some(rt) = runtime(ui) else {
        return Exit::Internal;
    };
    rt.block_on(async {
        let Some(store) = open_state(ui, &project, req.state.as_deref()).await else {
            return Exit::Internal;
        };
        let child = child_args(
            &project.root,
            req.state.as_deref(),
            &req.vars,
            &req.approve,
            req.lock_wait,
        );
        let outcome = crate::fleet::run(
            ui,
            &store,
            &project.root,
            config,
            &req.playbook,
            &req.env,
            selector,
            opts,
            &child,
        )
        .await;
        store.close().await;
        fleet_exit(outcome)
    })
}

fn fleet_resume_cmd(
    ui: &Ui,
    root: &std::path::Path,
    req: exec::ResumeRequest,
    (concurrency, canary, stop_after): (
        Option<usize>,
        Option<usize>,
        Option<crate::fleet::StopAfter>,
    ),
) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let Some(config) = project.config_def() else {
        ui.error(
            "fleets are defined in runbook.yaml, and there is none",
            None,
        );
        return Exit::Invalid;
    };
    let Some(rt) = runtime(ui) else {
        return Exit::Internal;
    };
    rt.block_on(async {
        let Some(store) = open_state(ui, &project, req.state.as_deref()).await else {
            return Exit::Internal;
        };
        let fleet = match store.load_fleet(&req.run_id).await {
            Ok(Some(f)) => f,
            _ => {
                ui.error(
                    &format!("no fleet run `{}` in the state store", req.run_id),
                    None,
                );
                return Exit::Invalid;
            }
        };
        let vars: Vec<(String, String)> =
            serde_json::from_value(fleet.options["vars"].clone()).unwrap_or_default();
        let approve: Vec<String> =
            serde_json::from_value(fleet.options["approve"].clone()).unwrap_or_default();
        let child = child_args(
            &project.root,
            req.state.as_deref(),
            &vars,
            &approve,
            req.lock_wait,
        );
        let opts =
            crate::fleet::FleetOptions::resumed(&fleet.options, concurrency, canary, stop_after);
        let outcome =
            crate::fleet::resume(ui, &store, &project.root, config, fleet, &opts, &child).await;
        store.close().await;
        fleet_exit(outcome)
    })
}
