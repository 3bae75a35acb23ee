//! Which database a target is, whatever its URL or path says: PostgreSQL's cluster (its system
//! identifier, the same on every connection route to it) and the database's name and oid; a
//! SQLite file by the path it resolves to. A run records it at its start and continues only on
//! the same database.

use super::TargetSpec;
use super::reach::ConnectError;
use sqlx::{Connection, Row};
use std::path::{Path, PathBuf};

/// What a run learns of its target at its start, on one brief connection.
pub struct Probe {
    /// Which database it is, in words (`identity`).
    pub identity: String,
    /// The server's version (PostgreSQL's `server_version`); `None` for SQLite, which is asked
    /// on its own connection.
    pub server_version: Option<String>,
    /// The connection it was read on, when asked to keep it (PostgreSQL): a run's first step
    /// that needs the database uses it rather than connecting again.
    pub conn: Option<super::Db>,
}

/// The identity of `target`, in words (`PostgreSQL cluster 7714571821063639548, database
/// `app` (oid 16384)`, `SQLite file /srv/app.db`). Connects to a PostgreSQL target briefly.
pub async fn identity(target: &TargetSpec) -> Result<String, ConnectError> {
    probe(target, false).await.map(|p| p.identity)
}

/// The identity of `target` and its server's version, read on the same connection; `keep`
/// keeps that connection open in the answer (PostgreSQL), else it is closed.
pub async fn probe(target: &TargetSpec, keep: bool) -> Result<Probe, ConnectError> {
    match target {
        TargetSpec::Postgres(url) => {
            let mut conn = super::Db::connect_postgres(url).await?;
            let found = postgres_identity(&mut conn).await;
            let conn = if keep && found.is_ok() {
                Some(super::Db::Postgres(conn))
            } else {
                let _ = conn.close().await;
                None
            };
            let (identity, version) = found?;
            Ok(Probe {
                identity,
                server_version: Some(version),
                conn,
            })
        }
        TargetSpec::Sqlite(path) => sqlite_file(path)
            .map(|f| Probe {
                identity: format!("SQLite file {}", f.display()),
                server_version: None,
                conn: None,
            })
            .map_err(|e| ConnectError {
                message: format!("{}: {e}", path.display()),
                hint: None,
            }),
    }
}

/// The cluster's system identifier (readable by any role through `pg_control_system()`; a
/// server that hides it is named by host and port instead) and the database's name and oid;
/// with the server's version. One round trip where the identifier can be read (as text: a
/// statement the connection prepares takes two the first time).
async fn postgres_identity(conn: &mut sqlx::PgConnection) -> Result<(String, String), sqlx::Error> {
    const DATABASE: &str = "current_database()::text, (SELECT oid::int8 FROM pg_database WHERE datname = current_database()), current_setting('server_version')";
    let all = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SELECT {DATABASE}, (SELECT system_identifier::text FROM pg_control_system())"
    )))
    .fetch_one(&mut *conn)
    .await;
    let (db, system) = match all {
        // A server that gives no identifier is named as one that hides it.
        Ok(row) => {
            let id: Option<String> = row.try_get(3)?;
            (row, id)
        }
        // Refused (the server revoked the function): the rest without it.
        Err(_) => {
            let row = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SELECT {DATABASE}")))
                .fetch_one(&mut *conn)
                .await?;
            (row, None)
        }
    };
    let (name, oid, version): (String, i64, String) =
        (db.try_get(0)?, db.try_get(1)?, db.try_get(2)?);
    let cluster = match system {
        Some(id) => format!("PostgreSQL cluster {id}"),
        None => {
            // Without the system identifier: the server's port (a local socket has no address,
            // but two clusters on one host never share a port) and its cluster name.
            let at = sqlx::query(
                "SELECT coalesce(host(inet_server_addr()), 'local socket'), current_setting('port'), current_setting('cluster_name')",
            )
            .fetch_one(&mut *conn)
            .await?;
            let (host, port, cluster): (String, String, String) =
                (at.try_get(0)?, at.try_get(1)?, at.try_get(2)?);
            format!("PostgreSQL server {host} port {port} (cluster name `{cluster}`)")
        }
    };
    Ok((format!("{cluster}, database `{name}` (oid {oid})"), version))
}

/// The file a SQLite path resolves to: through symlinks and `..`; a database not created yet
/// through its folder (created here, as opening the database would) and any symlink naming
/// it, bounded like the kernel's own limit against a loop.
pub fn sqlite_file(db: &Path) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(db) {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut path = db.to_path_buf();
            for _ in 0..40 {
                let Ok(to) = std::fs::read_link(&path) else {
                    break;
                };
                path = path.parent().map_or(to.clone(), |dir| dir.join(&to));
            }
            let name = path.file_name().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a database file name")
            })?;
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            Ok(std::fs::canonicalize(dir)?.join(name))
        }
        Err(e) => Err(e),
    }
}
