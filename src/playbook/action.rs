//! `Action`: a borrowed view of a step's one action, with what each action produces and
//! whether it destroys data.

use super::{
    BackupAction, CopyAction, FindBackupAction, GateAction, HealthAction, HttpAction,
    IncludeAction, LogAction, MigrateAction, MigrateOp, ReindexAction, RestoreAction, SeedAction,
    ShellAction, SqlAction, VacuumAction, WaitForAction,
};

/// The names of the action keys, in the order the model declares them.
pub const ACTION_KEYS: &[&str] = &[
    "shell",
    "sql",
    "migrate",
    "backup",
    "restore",
    "find_backup",
    "seed",
    "health",
    "gate",
    "log",
    "wait_for",
    "include",
    "copy",
    "http",
    "vacuum",
    "reindex",
];

/// A borrowed view of a step's one action.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    Shell(&'a ShellAction),
    Sql(&'a SqlAction),
    Migrate(&'a MigrateAction),
    Backup(&'a BackupAction),
    Restore(&'a RestoreAction),
    FindBackup(&'a FindBackupAction),
    Seed(&'a SeedAction),
    Health(&'a HealthAction),
    Gate(&'a GateAction),
    Log(&'a LogAction),
    WaitFor(&'a WaitForAction),
    Include(&'a IncludeAction),
    Copy(&'a CopyAction),
    Http(&'a HttpAction),
    Vacuum(&'a VacuumAction),
    Reindex(&'a ReindexAction),
}

impl Action<'_> {
    /// The action's payload as JSON, as the playbook wrote it (nulls included).
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        match *self {
            Action::Shell(a) => serde_json::to_value(a),
            Action::Sql(a) => serde_json::to_value(a),
            Action::Log(a) => serde_json::to_value(a),
            Action::WaitFor(a) => serde_json::to_value(a),
            Action::Migrate(a) => serde_json::to_value(a),
            Action::Backup(a) => serde_json::to_value(a),
            Action::Restore(a) => serde_json::to_value(a),
            Action::FindBackup(a) => serde_json::to_value(a),
            Action::Seed(a) => serde_json::to_value(a),
            Action::Health(a) => serde_json::to_value(a),
            Action::Gate(a) => serde_json::to_value(a),
            Action::Include(a) => serde_json::to_value(a),
            Action::Copy(a) => serde_json::to_value(a),
            Action::Http(a) => serde_json::to_value(a),
            Action::Vacuum(a) => serde_json::to_value(a),
            Action::Reindex(a) => serde_json::to_value(a),
        }
    }
}

impl Action<'_> {
    pub fn key(&self) -> &'static str {
        match self {
            Action::Shell(_) => "shell",
            Action::Sql(_) => "sql",
            Action::Migrate(_) => "migrate",
            Action::Backup(_) => "backup",
            Action::Restore(_) => "restore",
            Action::FindBackup(_) => "find_backup",
            Action::Seed(_) => "seed",
            Action::Health(_) => "health",
            Action::Gate(_) => "gate",
            Action::Log(_) => "log",
            Action::WaitFor(_) => "wait_for",
            Action::Include(_) => "include",
            Action::Copy(_) => "copy",
            Action::Http(_) => "http",
            Action::Vacuum(_) => "vacuum",
            Action::Reindex(_) => "reindex",
        }
    }
}

impl Action<'_> {
    /// The outputs an action produces, readable as `steps.<id>.outputs.<name>`. `None` means
    /// any name (an include passes on whatever the included playbook produces).
    pub fn outputs(&self) -> Option<&'static [&'static str]> {
        Some(match self {
            Action::Shell(_) => &["stdout", "stderr", "exit_code", "json"],
            Action::Sql(_) => &["rows", "row", "scalar", "row_count", "rows_affected"],
            Action::Migrate(_) => &[
                "pending",
                "applied",
                "drifted",
                "missing",
                "current_version",
                "reverted",
                "marked",
                "findings",
                "errors",
                "warnings",
                "results",
                "locks",
                "count",
                "blocked_by",
                "stopped",
                "index_progress",
            ],
            Action::Backup(_) => &[
                "path",
                "manifest",
                "sha256",
                "size",
                "format",
                "server_version",
                "row_counts",
            ],
            Action::Restore(_) => &[
                "path",
                "sha256",
                "size",
                "pre_backup",
                "pre_backup_sha256",
                "row_counts",
                "tables",
            ],
            Action::FindBackup(_) => &[
                "path",
                "manifest",
                "database",
                "time",
                "size",
                "sha256",
                "row_counts",
                "summary",
            ],
            Action::Seed(_) => &["inserted", "updated", "unchanged", "tables"],
            Action::Health(_) => &["status", "passed", "warnings", "failed", "checks"],
            Action::Gate(_) => &["outcome", "approvers", "value"],
            Action::Log(_) => &["message"],
            Action::WaitFor(_) => &["result", "attempts"],
            Action::Http(_) => &["status", "body", "json", "duration_ms"],
            Action::Vacuum(_) => &["tables", "count", "duration_ms"],
            Action::Reindex(_) => &["tables", "indexes", "count", "duration_ms"],
            Action::Include(_) => return None,
            Action::Copy(_) => &[
                "tables",
                "rows",
                "rows_per_second",
                "decisions",
                "inexact",
                "report",
            ],
        })
    }

    /// Whether the action destroys data or schema: restore, migrate revert, or SQL that drops
    /// or truncates; or rewrites what the migration history says (migrate resolve), which
    /// decides what the next apply runs or skips; or stops other sessions (a migration's
    /// `on_blocked`); or locks tables against writes for a rebuild (`vacuum` with `full`,
    /// `reindex` not concurrently). In a protected environment such a step needs a gate
    /// before it.
    pub fn is_destructive(&self) -> bool {
        match self {
            Action::Restore(_) => true,
            Action::Vacuum(v) => v.full,
            Action::Reindex(r) => !r.concurrently(),
            Action::Migrate(m) => {
                matches!(m.action, MigrateOp::Revert | MigrateOp::Resolve) || m.on_blocked.is_some()
            }
            Action::Sql(s) => sql_is_destructive(&s.query),
            _ => false,
        }
    }
}

/// Whether SQL text drops or truncates something (comments and string literals ignored).
pub fn sql_is_destructive(query: &str) -> bool {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let Some(re) = RE
        .get_or_init(|| regex::Regex::new(r"(?i)\b(drop|truncate)\b").ok())
        .as_ref()
    else {
        return false;
    };
    let mut code = String::with_capacity(query.len());
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
                code.push(' ');
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                code.push(' ');
            }
            c => code.push(c),
        }
    }
    re.is_match(&code)
}
