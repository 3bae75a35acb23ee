//! The project config `runbook.yaml`: environments, targets, variables and protections.
//!
//! A target is named, never written down: an environment variable that holds the URL, or a
//! SQLite path. The config has no field that could hold a literal password.

use crate::playbook::{Duration, WindowGate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The file name looked up in the project root.
pub const CONFIG_FILE: &str = "runbook.yaml";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
#[schemars(title = "runbook project config")]
pub struct ConfigDef {
    /// Where playbooks live (default `playbooks`).
    #[serde(default)]
    pub playbooks_dir: Option<String>,
    /// Where migrations live (default `migrations`).
    #[serde(default)]
    pub migrations_dir: Option<String>,
    /// Where seed data lives (default `seeds`).
    #[serde(default)]
    pub seeds_dir: Option<String>,
    /// The environments playbooks run in.
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// Names of environment variables whose values are secrets, redacted everywhere.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Where run state lives (default: SQLite under `.runbook/`).
    #[serde(default)]
    pub state: Option<Target>,
    #[serde(default)]
    pub audit: Option<AuditConfig>,
    /// Who may approve, with the SSH public keys that prove it (for `signed_approvals`).
    #[serde(default)]
    pub approvers: Option<Approvers>,
    /// Playbooks run on a schedule, by name (lowercase letters, digits and `-`): written for
    /// systemd, cron or Kubernetes by `runbook schedule export`.
    #[serde(default)]
    pub schedules: BTreeMap<String, Schedule>,
}

/// A playbook run in an environment at the times a cron expression names.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default)]
    pub description: Option<String>,
    /// The playbook's name (a file in the playbooks folder).
    pub playbook: String,
    /// The environment it runs in.
    pub environment: String,
    /// Five fields, minute hour day-of-month month day-of-week (`0 2 * * *`: every day at
    /// 02:00), or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    pub cron: String,
    /// The IANA time zone the expression is read in (default `UTC`), e.g. `Europe/Berlin`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The playbook's parameters (`--var name=value`): strings, numbers or booleans.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
}

/// One environment: its database and its rules.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    #[serde(default)]
    pub description: Option<String>,
    /// The database playbooks act on (a fleet environment may have only `targets`).
    #[serde(default)]
    pub target: Target,
    /// Variables templates read as `vars.<name>`.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub protections: Protections,
    /// A fleet: the many databases (tenants, shards) of this environment, for
    /// `runbook run --targets SELECTOR`.
    #[serde(default)]
    pub targets: Vec<FleetTarget>,
    /// A YAML file (relative to the project) with more fleet targets, in the same shape.
    #[serde(default)]
    pub targets_file: Option<String>,
    /// Whether `runbook run --target` may replace this environment's `target` (default: no,
    /// so a run never takes one environment's rules to another database by a flag).
    #[serde(default)]
    pub allow_target_override: bool,
}

/// One database of a fleet.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct FleetTarget {
    /// A name unique in the environment, e.g. `tenant-042`.
    pub name: String,
    /// An environment variable that holds its `postgres://` URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// Its URL, when it holds no password (trust or certificate authentication, a pgpass file).
    #[serde(default)]
    pub url: Option<String>,
    /// A SQLite file.
    #[serde(default)]
    pub sqlite: Option<String>,
    /// Labels selectors match, e.g. `{ region: eu, tier: gold }`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A database named by where its address is, never by a literal URL with a password.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// An environment variable that holds a `postgres://` URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// A SQLite database file, relative to the project root.
    #[serde(default)]
    pub sqlite: Option<String>,
}

impl Target {
    /// A description safe to print: the variable's name or the file path.
    pub fn describe(&self) -> String {
        match (&self.url_env, &self.sqlite) {
            (Some(var), _) => format!("${var}"),
            (None, Some(path)) => format!("sqlite:{path}"),
            (None, None) => "no target".to_owned(),
        }
    }
}

/// Rules that keep a run in a protected environment from slipping past people.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Protections {
    /// Destructive steps (restore, revert, DROP) need a confirm or approval gate before them.
    #[serde(default)]
    pub protected: bool,
    /// Approvals each approval gate needs at least.
    #[serde(default)]
    pub approvals: Option<u32>,
    /// Whether the operator may approve their own run (`--approve`); only sensible in dev.
    #[serde(default)]
    pub self_approval: bool,
    /// Approvals older than this do not count.
    #[serde(default)]
    pub approval_expiry: Option<Duration>,
    /// Restore and other destructive steps ask the operator to type the database name.
    #[serde(default)]
    pub confirm_destructive: bool,
    /// Runs are allowed only inside one of these windows.
    #[serde(default)]
    pub windows: Vec<WindowGate>,
    /// Approvals count only when signed (`runbook approve` with an SSH key) by a key listed
    /// under `approvers`, over this run, gate, plan and database.
    #[serde(default)]
    pub signed_approvals: bool,
}

impl Protections {
    /// Protected means destructive steps need a gate before them. Requiring approvals alone
    /// does not make an environment protected: staging often wants a second pair of eyes
    /// without treating every restore as dangerous.
    pub fn is_protected(&self) -> bool {
        self.protected || self.confirm_destructive
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Folder of the JSONL audit chains (default `.runbook/audit`).
    #[serde(default)]
    pub dir: Option<String>,
    /// An environment variable holding a PostgreSQL URL of a central append-only sink.
    #[serde(default)]
    pub sink_url_env: Option<String>,
    /// An environment variable holding an Ed25519 signing key (hex).
    #[serde(default)]
    pub signing_key_env: Option<String>,
    /// A file, relative to the project, holding the Ed25519 public key (64 hex digits, from
    /// `runbook audit keygen`) that verifies the runs' signatures; commit it with the project.
    #[serde(default)]
    pub public_key: Option<String>,
}

impl AuditConfig {
    /// Whether the project signs its runs: it names a signing key or a public key, so
    /// `audit verify` expects every finished run to carry a valid signature.
    pub fn signs(&self) -> bool {
        self.signing_key_env.is_some() || self.public_key.is_some()
    }
}

/// The approvers of the project and their SSH public keys: a file in the `allowed_signers`
/// format of ssh and git, inline keys, or both.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Approvers {
    /// A file, relative to the project, with lines `NAME KEYTYPE BASE64 [COMMENT]` (keys from
    /// `ssh-add -L` or `https://github.com/USER.keys`).
    #[serde(default)]
    pub allowed_signers: Option<String>,
    /// Approvers listed here: a name and one public key line each.
    #[serde(default)]
    pub keys: Vec<ApproverKey>,
}

/// One approver's key, inline.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ApproverKey {
    /// The approver's name, as approvals record it.
    pub name: String,
    /// A public key line: `ssh-ed25519 AAAA... [comment]`.
    pub key: String,
}
