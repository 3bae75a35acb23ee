//! `AuditError`, the one error type of writing the audit log.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("audit log `{0}` is damaged: {1}")]
    Damaged(String, String),
    #[error(
        "audit log `{0}` is closed: the run ended with its final record, and nothing is added after it"
    )]
    Sealed(String),
    #[error("audit sink: {0}")]
    Sink(String),
    #[error("audit signing key: {0}")]
    Key(String),
}

/// Turns an IO error on `path` into an `AuditError` that names the file.
pub(super) fn io(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}
