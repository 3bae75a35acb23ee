//! The maintenance actions' payloads (`vacuum`, `reindex`, PostgreSQL) and what a migration
//! does to a session that blocks it (`on_blocked`).

use super::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `VACUUM (ANALYZE)` on PostgreSQL: dead rows made reusable and planner statistics refreshed,
/// one table at a time, without blocking reads or writes. `full: true` rewrites each table
/// under an ACCESS EXCLUSIVE lock (reads and writes wait until it is done) and needs a
/// `confirm` or `approval` gate before the step, in every environment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VacuumAction {
    /// The tables, as SQL names (`orders`, `sales.orders`, `"Order"`); absent or empty: every
    /// table of the database that runbook's role may vacuum.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Also refresh the planner statistics (`VACUUM (ANALYZE)`); default true.
    #[serde(default)]
    pub analyze: Option<bool>,
    /// `VACUUM FULL`: gives the space back to the operating system by rewriting each table
    /// under an exclusive lock. An explicit opt-in; needs a gate before the step.
    #[serde(default)]
    pub full: bool,
}

impl VacuumAction {
    pub fn analyze(&self) -> bool {
        self.analyze.unwrap_or(true)
    }
}

/// `REINDEX ... CONCURRENTLY` on PostgreSQL: indexes rebuilt without blocking writes, outside
/// a transaction, one table or index at a time. `concurrently: false` blocks writes to each
/// table while its indexes are rebuilt and needs a gate before it in a protected environment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReindexAction {
    /// Indexes to rebuild, as SQL names.
    #[serde(default)]
    pub indexes: Vec<String>,
    /// Tables whose indexes are all rebuilt, as SQL names. With neither `indexes` nor
    /// `tables`: every table of the database that runbook's role may reindex.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Rebuild without blocking writes (default true).
    #[serde(default)]
    pub concurrently: Option<bool>,
}

impl ReindexAction {
    pub fn concurrently(&self) -> bool {
        self.concurrently.unwrap_or(true)
    }
}

/// What to do to the session that holds the lock a migration waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BlockerStop {
    // `pg_cancel_backend`: its running statement is cancelled (an idle transaction keeps its
    // locks). `terminate`: `pg_terminate_backend`, its session ends and its transaction rolls
    // back. (Plain comments: a doc comment on a variant turns the schema's `enum` into `oneOf`.)
    Cancel,
    Terminate,
}

impl BlockerStop {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockerStop::Cancel => "cancel",
            BlockerStop::Terminate => "terminate",
        }
    }
}

/// A migration's answer to a session blocking it: after it has blocked the migration for
/// `after` (counted from when runbook first saw it, across lock retries), `cancel` its
/// statement or `terminate` its session. Needs a `confirm` or `approval` gate before the step
/// in a protected environment; the audit names every session stopped.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnBlocked {
    /// `cancel` (the blocker's statement) or `terminate` (its session).
    pub blocker: BlockerStop,
    /// How long a session may block the migration before it is stopped.
    pub after: Duration,
}
