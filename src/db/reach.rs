//! Whether a failure to reach a database is the user's environment rather than runbook's: the
//! server is not there or refused the connection, refused the user or the password, or does
//! not hold the database. Such a failure is said plainly with a hint (and exits 8,
//! `Exit::Environment`), never as an internal error.

use std::io::ErrorKind;

/// Why a connection failed, in words an operator acts on.
#[derive(Debug, Clone)]
pub struct ConnectError {
    /// What failed, without the server's source position (`at line 334`).
    pub message: String,
    /// What to check, when the failure is the user's environment; `None` otherwise.
    pub hint: Option<&'static str>,
}

impl ConnectError {
    /// Whether the failure is the user's environment (it has a hint).
    pub fn is_environment(&self) -> bool {
        self.hint.is_some()
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<&sqlx::Error> for ConnectError {
    fn from(e: &sqlx::Error) -> ConnectError {
        ConnectError {
            message: message(e),
            hint: hint(e),
        }
    }
}

impl From<String> for ConnectError {
    /// A failure that is not a connection's (no hint).
    fn from(message: String) -> ConnectError {
        ConnectError {
            message,
            hint: None,
        }
    }
}

impl From<sqlx::Error> for ConnectError {
    fn from(e: sqlx::Error) -> ConnectError {
        ConnectError::from(&e)
    }
}

fn message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => "the server refused the connection".to_owned(),
            ErrorKind::NotFound => "no server listens on that socket".to_owned(),
            ErrorKind::TimedOut => "the server did not answer in time".to_owned(),
            _ => format!("cannot connect: {}", plain_io(io)),
        },
        sqlx::Error::Tls(t) => format!("TLS failed: {t}"),
        other => super::describe(other),
    }
}

/// An I/O error without its `(os error N)` suffix.
fn plain_io(io: &std::io::Error) -> String {
    let text = io.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

fn hint(e: &sqlx::Error) -> Option<&'static str> {
    const SERVER: &str =
        "check that the database server is running and that the URL's host and port are right";
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => Some(SERVER),
        sqlx::Error::Tls(_) => Some("check the server's TLS setup and the URL's `sslmode`"),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // invalid_password, invalid_authorization_specification
            Some("28P01" | "28000") => Some(
                "check the user and password in the URL (or the environment variable that holds it)",
            ),
            // invalid_catalog_name: the database does not exist.
            Some("3D000") => Some("check the database name in the URL; create the database first"),
            // too_many_connections, cannot_connect_now (starting up or shutting down)
            Some("53300" | "57P03") => {
                Some("the server does not accept connections now; try again")
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_the_environment_without_the_os_error_number() {
        let e = sqlx::Error::Io(std::io::Error::from(ErrorKind::ConnectionRefused));
        let c = ConnectError::from(&e);
        assert!(c.is_environment());
        assert_eq!(c.message, "the server refused the connection");
    }

    #[test]
    fn a_decode_error_is_not_the_environment() {
        let c = ConnectError::from(&sqlx::Error::RowNotFound);
        assert!(!c.is_environment());
    }
}
