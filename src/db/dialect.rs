//! The one database dialect type. Code that differs per dialect lives in per-dialect files
//! (`postgres.rs`, `sqlite.rs`) beside the concept it serves; this names which one applies.

use super::TargetSpec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    pub fn of(target: &TargetSpec) -> Dialect {
        match target {
            TargetSpec::Postgres(_) => Dialect::Postgres,
            TargetSpec::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The folder under a migrations base that holds this dialect's files.
    pub fn folder(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }

    /// The name people use: `PostgreSQL`, `SQLite`.
    pub fn label(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::Sqlite => "SQLite",
        }
    }

    /// The `provider` of a Prisma `migration_lock.toml`.
    pub fn prisma_provider(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgresql",
            Dialect::Sqlite => "sqlite",
        }
    }
}
