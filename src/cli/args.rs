//! The command-line arguments: `Cli`, its `Command`s and their options (clap derive).
//!
//! The larger commands keep their options in an `Args` struct so that each command's
//! handler takes one value; the help text is the variant's doc comment, as before.

use crate::plan;
use crate::ui::ColorChoice;
use clap::{Args, Parser, Subcommand, ValueEnum};
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
    /// GitHub Actions workflow commands (`::error file=...`), shown on the pull request's lines
    Github,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum StatusFormat {
    Text,
    Json,
    /// The Prometheus text exposition format
    Prometheus,
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
        /// instead of the project's `audit.public_key`
        #[arg(long)]
        key: Option<String>,
        /// Accept signatures left unchecked where the project signs but no public key is known
        #[arg(long)]
        skip_signatures: bool,
        /// Accept verifying the chains alone when the state store cannot give their recorded
        /// heads (lost, unreadable, unreachable, or it does not know the run): truncation is then
        /// not checked
        #[arg(long)]
        chain_only: bool,
        /// Output: `text` for people, `json` for programs (see the README's JSON section)
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// The state store: a postgres:// URL or sqlite:FILE (default: the config's
        /// `state`, else .runbook/state.db)
        #[arg(long)]
        state: Option<String>,
    },
    /// Runs with audit chains
    List {
        /// Output: `text` for people, `json` for programs (see the README's JSON section)
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// The state store: a postgres:// URL or sqlite:FILE (default: the config's
        /// `state`, else .runbook/state.db)
        #[arg(long)]
        state: Option<String>,
    },
    /// A run's timeline: steps, durations, gates and approvers, rollbacks
    Show {
        /// Run id (a unique prefix is enough)
        run: String,
        /// The state store: a postgres:// URL or sqlite:FILE (default: the config's
        /// `state`, else .runbook/state.db)
        #[arg(long)]
        state: Option<String>,
    },
    /// The records, as JSON or CSV
    Export {
        /// Run id (a unique prefix is enough); omit with --all
        run: Option<String>,
        /// Every run's records
        #[arg(long)]
        all: bool,
        /// `json` (an array of the records) or `csv`
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// The state store: a postgres:// URL or sqlite:FILE (default: the config's
        /// `state`, else .runbook/state.db)
        #[arg(long)]
        state: Option<String>,
    },
    /// One self-contained HTML file for auditors
    Report {
        /// Run id (a unique prefix is enough)
        run: String,
        /// The HTML file to write
        #[arg(long, short)]
        output: PathBuf,
        /// The state store: a postgres:// URL or sqlite:FILE (default: the config's
        /// `state`, else .runbook/state.db)
        #[arg(long)]
        state: Option<String>,
    },
    /// Print the SQL an administrator runs, as the role that will own the sink's table, to set
    /// up the PostgreSQL audit sink: the table, its append-only triggers, and INSERT and SELECT
    /// only for the writer role runbook connects as
    SinkSetup {
        /// The role runbook connects to the sink as (never the table's owner)
        #[arg(long)]
        writer: String,
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
        /// Output: `human` diagnostics, a `json` report, `junit` XML for CI, or `github`
        /// workflow commands
        #[arg(long, value_enum, default_value_t = ValidateFormat::Human)]
        format: ValidateFormat,
        /// Also lint the PostgreSQL migrations (squawk, against an empty schema: no database)
        #[arg(long)]
        migrations: bool,
    },
    /// Show what a run would do, changing nothing: it connects
    /// read-only to the target for pending migrations and the database's identity (the plan
    /// hash a run records) unless --offline
    Plan(PlanArgs),
    /// Run a playbook against an environment's database
    Run(RunArgs),
    /// Continue an interrupted or crashed run from its checkpoints
    Resume(ResumeArgs),
    /// Approve a gate of a waiting run (then `runbook resume RUN` continues it)
    Approve(ApproveArgs),
    /// Reject a gate of a waiting run: the run ends, and its rollback runs
    Reject(RejectArgs),
    /// End a run waiting at an approval gate, with a reason: recorded, then its rollback runs
    /// (the operator may cancel their own run)
    Cancel(CancelArgs),
    /// The auditor's tools: verify, list, show, export, report, keygen
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Recent runs
    Runs {
        /// Output: `text` for people, `json` for programs (see the README's JSON section)
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// How many runs
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// The state store: a postgres:// URL or sqlite:FILE (default: the config's
        /// `state`, else .runbook/state.db)
        #[arg(long)]
        state: Option<String>,
    },
    /// Each step of a run: state, attempts, outputs (secrets masked)
    Status {
        /// Run id (a unique prefix is enough)
        run: String,
        /// Output: `text` for people, `json` for programs (see the README's JSON section),
        /// `prometheus`: the run's outcome and its health steps' results as metrics
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
        /// The state store: a postgres:// URL or sqlite:FILE (default: the config's
        /// `state`, else .runbook/state.db)
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
        /// Output: `text` for people, `json` for programs (see the README's JSON section)
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// The schedules of runbook.yaml: their next times, and the files systemd, cron or
    /// Kubernetes run them from
    Schedule {
        #[command(subcommand)]
        cmd: ScheduleCmd,
    },
    /// Print a shell completion script (e.g. `runbook completions bash >
    /// ~/.local/share/bash-completion/completions/runbook`)
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff: `runbook man | man -l -`), or write one page per command into
    /// a folder with --out
    Man {
        /// The folder to write runbook.1 and runbook-COMMAND.1 into (e.g. /usr/local/share/man/man1)
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print the JSON Schema of playbooks (of runbook.yaml with --config, of a command's JSON
    /// output with --output)
    Schema {
        /// The schema of runbook.yaml instead of the playbooks'
        #[arg(long, conflicts_with = "output")]
        config: bool,
        /// The schema of a command's JSON output instead
        #[arg(long, value_enum, value_name = "COMMAND")]
        output: Option<crate::views::Doc>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCmd {
    /// Each schedule with its next times, in its time zone
    List {
        /// How many next times
        #[arg(long, default_value_t = 3)]
        count: usize,
        /// Count from this instant (RFC 3339, e.g. 2026-03-28T00:00:00Z) instead of now
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Output: `text` for people, `json` for programs
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Write the schedules for a scheduler: systemd timer and service units, crontab lines, or
    /// Kubernetes CronJob manifests
    Export(ExportArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SchedulerKind {
    Systemd,
    Cron,
    Kubernetes,
}

// The arguments of `runbook schedule export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The scheduler
    #[arg(long)]
    pub to: SchedulerKind,
    /// Write the files into this folder (default: print them)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The runbook binary the units and lines start (default: this one)
    #[arg(long, value_name = "PATH")]
    pub runbook: Option<PathBuf>,
    /// systemd and cron: a file of NAME=value lines the runs read (the target's URL, secrets)
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Each run writes its outcome as Prometheus metrics to DIR/runbook-NAME.prom (node_exporter's
    /// textfile collector folder)
    #[arg(long, value_name = "DIR")]
    pub textfile_dir: Option<PathBuf>,
    /// kubernetes: the image the pods run (runbook, with the project as working directory)
    #[arg(long)]
    pub image: Option<String>,
    /// kubernetes: a Secret whose keys become the run's environment
    #[arg(long)]
    pub secret: Option<String>,
    /// kubernetes: the namespace of the CronJobs
    #[arg(long)]
    pub namespace: Option<String>,
}

// The arguments of `runbook plan` (the variant's doc comment is its help).
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Playbook name or path
    pub playbook: String,
    /// Environment from runbook.yaml
    #[arg(long, short = 'e')]
    pub env: String,
    /// Set a parameter: --var name=value
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = plan::parse_var)]
    pub vars: Vec<(String, String)>,
    /// Plan without connecting to the target (for CI: touches no database; the plan hash is
    /// then not the one a run records)
    #[arg(long)]
    pub offline: bool,
    /// Also rehearse pending migrations in a transaction that is rolled back
    #[arg(long, conflicts_with = "offline")]
    pub rehearse: bool,
    /// A target URL or sqlite: path shown in place of the environment's
    #[arg(long)]
    pub target: Option<String>,
    /// Output: `text` for people, `json` for programs
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

// The arguments of `runbook run` (the variant's doc comment is its help).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Playbook name or path
    pub playbook: String,
    /// Environment from runbook.yaml
    #[arg(long, short = 'e', default_value = "dev")]
    pub env: String,
    /// Set a parameter: --var name=value
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = plan::parse_var)]
    pub vars: Vec<(String, String)>,
    /// Run only steps with one of these tags
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Skip steps with one of these tags
    #[arg(long, value_delimiter = ',')]
    pub skip_tags: Vec<String>,
    /// The database: a postgres:// URL or sqlite:FILE (overrides the environment's)
    #[arg(long)]
    pub target: Option<String>,
    /// The state store: a postgres:// URL or sqlite:FILE (default .runbook/state.db)
    #[arg(long)]
    pub state: Option<String>,
    /// How long to wait for another run to release the target (e.g. 30s)
    #[arg(long, default_value = "0s", value_parser = parse_wait)]
    pub lock_wait: std::time::Duration,
    /// Approve this approval gate as the operator (only where the environment allows self-approval)
    #[arg(long, value_name = "GATE")]
    pub approve: Vec<String>,
    /// The text a `confirm` gate asks for (the database name), for runs without a terminal
    #[arg(long, value_name = "TEXT")]
    pub confirm: Option<String>,
    /// Outside the environment's maintenance windows: run anyway as a recorded emergency, after
    /// the environment's approvals (gate `emergency`), giving the reason
    #[arg(long, value_name = "REASON", conflicts_with = "targets")]
    pub emergency: Option<String>,
    /// Your SSH private key file: you are recorded as the operator by it when it is listed among
    /// the approvers, and it signs `--approve` where approvals must be signed (default: ssh-agent)
    #[arg(long, value_name = "FILE")]
    pub key: Option<std::path::PathBuf>,
    /// Run across the environment's fleet targets: `all`, names (`tenant-*`), `label=value`
    #[arg(long, value_name = "SELECTOR")]
    pub targets: Option<String>,
    /// With --targets: how many targets run at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// With --targets: the first N targets must succeed before the rest start
    #[arg(long, default_value_t = 0)]
    pub canary: usize,
    /// With --targets: start no new target after this many failures (`3`) or this share (`10%`)
    #[arg(long, value_parser = crate::fleet::parse_stop_after)]
    pub stop_after: Option<crate::fleet::StopAfter>,
    /// Write the run's outcome as Prometheus metrics to this file when it ends (replaced
    /// atomically; for node_exporter's textfile collector)
    #[arg(long, value_name = "FILE", conflicts_with = "targets")]
    pub textfile: Option<PathBuf>,
    /// Read the target URL from this environment variable (how fleets hand targets to runs)
    #[arg(long, value_name = "VAR", hide = true)]
    pub target_env: Option<String>,
    #[arg(long, hide = true)]
    pub fleet: Option<String>,
    #[arg(long, hide = true)]
    pub fleet_target: Option<String>,
}

// The arguments of `runbook resume` (the variant's doc comment is its help).
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Run id (a unique prefix is enough)
    pub run: String,
    /// Run this in-flight step again
    #[arg(long = "retry-step", value_name = "STEP")]
    pub retry_steps: Vec<String>,
    /// Treat this in-flight step as done and go on
    #[arg(long = "skip-step", value_name = "STEP")]
    pub skip_steps: Vec<String>,
    /// Parameters again (secrets given with --var are not stored)
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = plan::parse_var)]
    pub vars: Vec<(String, String)>,
    /// The database, if the run was started with --target (refused unless it is the one the
    /// run started on)
    #[arg(long)]
    pub target: Option<String>,
    /// The state store: a postgres:// URL or sqlite:FILE (default: the config's `state`, else
    /// .runbook/state.db)
    #[arg(long)]
    pub state: Option<String>,
    /// How long to wait for another run to release the target (e.g. 30s)
    #[arg(long, default_value = "0s", value_parser = parse_wait)]
    pub lock_wait: std::time::Duration,
    /// The text a `confirm` gate asks for (the database name)
    #[arg(long, value_name = "TEXT")]
    pub confirm: Option<String>,
    /// Your SSH private key file, to sign an answer at the terminal where approvals must be
    /// signed (default: ssh-agent)
    #[arg(long, value_name = "FILE")]
    pub key: Option<std::path::PathBuf>,
    /// For a fleet run: how many targets run at once (default: as the fleet run started)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: Option<u16>,
    /// For a fleet run: the first N resumed targets must succeed before the others start
    #[arg(long)]
    pub canary: Option<usize>,
    /// For a fleet run: start no new target after this many failures (`3`) or this share
    /// (`10%`) of the resumed ones (default: as the fleet run started)
    #[arg(long, value_parser = crate::fleet::parse_stop_after)]
    pub stop_after: Option<crate::fleet::StopAfter>,
    #[arg(long, value_name = "VAR", hide = true)]
    pub target_env: Option<String>,
}

// The arguments of `runbook approve` (the variant's doc comment is its help).
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Run id (a unique prefix is enough)
    pub run: String,
    /// The gate's step id
    pub gate: String,
    /// Why, recorded with the decision in the audit chain
    #[arg(long)]
    pub comment: Option<String>,
    /// Who approves (default: RUNBOOK_ACTOR, then the OS user); where approvals must be signed,
    /// the signing key says who approves and a different --actor is refused
    #[arg(long)]
    pub actor: Option<String>,
    /// The SSH private key file that signs the approval (default: a listed key in ssh-agent)
    #[arg(long, value_name = "FILE")]
    pub key: Option<std::path::PathBuf>,
    /// The state store: a postgres:// URL or sqlite:FILE (default: the config's `state`, else
    /// .runbook/state.db)
    #[arg(long)]
    pub state: Option<String>,
    /// The database the approval is for (a URL or `sqlite:PATH`); refused unless it is the one
    /// the run started on
    #[arg(long)]
    pub target: Option<String>,
    /// Record without asking at a terminal (what is recorded is shown all the same)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

// The arguments of `runbook cancel` (the variant's doc comment is its help).
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Run id (a unique prefix is enough)
    pub run: String,
    /// Why the run is cancelled: recorded in the audit log and shown by `runbook status`
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Who cancels (default: RUNBOOK_ACTOR, then the OS user)
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    /// The state store (a URL or `sqlite:PATH`; default: the config's, else .runbook/state.db)
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,
    /// The database, if the run was given one with --target
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Record without asking at a terminal (what is recorded is shown all the same)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

// The arguments of `runbook reject` (the variant's doc comment is its help).
#[derive(Debug, Args)]
pub struct RejectArgs {
    /// Run id (a unique prefix is enough)
    pub run: String,
    /// The gate's step id
    pub gate: String,
    /// Why, recorded with the decision in the audit chain
    #[arg(long)]
    pub comment: Option<String>,
    /// Who rejects (default: RUNBOOK_ACTOR, then the OS user); where approvals must be signed,
    /// the signing key says who rejects and a different --actor is refused
    #[arg(long)]
    pub actor: Option<String>,
    /// The SSH private key file that signs the rejection (default: a listed key in ssh-agent)
    #[arg(long, value_name = "FILE")]
    pub key: Option<std::path::PathBuf>,
    /// The state store: a postgres:// URL or sqlite:FILE (default: the config's `state`, else
    /// .runbook/state.db)
    #[arg(long)]
    pub state: Option<String>,
    /// The database, if the run was given one with --target
    #[arg(long)]
    pub target: Option<String>,
    /// Record without asking at a terminal (what is recorded is shown all the same)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Parses `--lock-wait`: a playbook duration such as `30s` or `5m`.
fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    crate::playbook::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration like `30s` or `5m`"))
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every subcommand says what it does and every argument a person can give says what it
    /// means: `--help` is never blank.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.is_hide_set() {
                return;
            }
            if cmd.get_about().is_none() && !path.is_empty() {
                missing.push(format!("`runbook{path}` has no about"));
            }
            for arg in cmd.get_arguments() {
                if arg.is_hide_set() || arg.get_help().is_some() {
                    continue;
                }
                missing.push(format!("`runbook{path}` argument `{}`", arg.get_id()));
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "", &mut missing);
        assert!(missing.is_empty(), "no help text:\n{}", missing.join("\n"));
    }

    /// `plan` connects to the target unless `--offline`: its help must not say otherwise.
    #[test]
    fn plan_help_says_it_connects() {
        let cmd = Cli::command();
        let plan = cmd.find_subcommand("plan").unwrap();
        let about = plan.get_about().unwrap().to_string();
        assert!(!about.contains("without touching a database"), "{about}");
        assert!(about.contains("--offline"), "{about}");
    }
}
