//! `TargetSpec`: a target database as the config or `--target` names it (a `postgres://` URL
//! or a `sqlite:` path), with the forms safe to print and the key locks and history use.

use std::path::PathBuf;

/// A target database, resolved from the environment's config or `--target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Postgres(String),
    Sqlite(PathBuf),
}

impl TargetSpec {
    /// Parses `postgres://...` / `postgresql://...` or `sqlite:PATH` / `sqlite://PATH`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(TargetSpec::Postgres(text.to_owned()));
        }
        if let Some(path) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err("`sqlite:` needs a file path, like `sqlite:dev.db`".to_owned());
            }
            return Ok(TargetSpec::Sqlite(PathBuf::from(path)));
        }
        Err("a target is a `postgres://` URL or a `sqlite:` path".to_owned())
    }

    /// A form safe to print: the password masked.
    pub fn describe(&self) -> String {
        match self {
            TargetSpec::Postgres(url) => crate::dburl::redact(url),
            TargetSpec::Sqlite(path) => format!("sqlite:{}", crate::source::display_path(path)),
        }
    }

    /// A stable key naming the target (for locks and run history), without secrets.
    pub fn key(&self) -> String {
        match self {
            // Without the user: two users of the same database are the same target.
            TargetSpec::Postgres(url) => crate::dburl::key(url),
            TargetSpec::Sqlite(path) => {
                let abs = std::fs::canonicalize(path)
                    .unwrap_or_else(|_| std::path::absolute(path).unwrap_or(path.clone()));
                format!("sqlite:{}", abs.display())
            }
        }
    }

    /// The database name users type to confirm (`confirm` gates): the PostgreSQL database or
    /// the SQLite file name.
    pub fn database_name(&self) -> String {
        match self {
            TargetSpec::Postgres(url) => crate::dburl::database(url),
            TargetSpec::Sqlite(path) => path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}
