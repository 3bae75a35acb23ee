//! Finding the PostgreSQL client programs (pg_dump, pg_restore, psql): `RUNBOOK_PG_BIN`, else
//! the installed version that matches the server's major (else the newest), else `PATH`; and
//! their version.

use super::guard::{exited_ok, explain, run_client};
use crate::db::op::{Op, OpError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A directory holding `pg_dump`, `pg_restore` and `psql`, searched before the installed
/// versions.
pub const PG_BIN_ENV: &str = "RUNBOOK_PG_BIN";

/// The client programs a folder must hold to be used.
const CLIENTS: [&str; 3] = ["pg_dump", "pg_restore", "psql"];

/// Debian's layout of installed PostgreSQL versions: `/usr/lib/postgresql/<version>/bin`.
const PG_LIB_DIR: &str = "/usr/lib/postgresql";

/// The client programs used for a server, and their version.
#[derive(Debug, Clone)]
pub struct PgTools {
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    /// Runs a restore's script in one transaction of its own making (see `restore_postgres`).
    pub psql: PathBuf,
    /// As `pg_dump --version` prints it, e.g. `15.4`.
    pub version: String,
    pub major: u32,
}

/// Finds pg_dump, pg_restore and psql: in `RUNBOOK_PG_BIN` if set, else the installed version whose
/// major is `prefer_major` (else the newest) under `/usr/lib/postgresql`, else on `PATH`; and
/// their version (`pg_dump --version`).
pub async fn find_pg_tools(prefer_major: u32, op: &Op<'_>) -> Result<PgTools, OpError> {
    let paths = locate_pg_tools(prefer_major)?;
    pg_tools_version(paths, op).await
}

/// Where pg_dump, pg_restore and psql are, found as [`find_pg_tools`] finds them, before their
/// version is asked: no process runs.
#[derive(Debug, Clone)]
pub struct PgPaths {
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    pub psql: PathBuf,
    /// The major the programs were looked for, for the hint when they are missing.
    prefer_major: u32,
}

/// The folder [`find_pg_tools`] takes the client programs from, without running them.
pub fn locate_pg_tools(prefer_major: u32) -> Result<PgPaths, OpError> {
    let dir = match std::env::var_os(PG_BIN_ENV).filter(|d| !d.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if CLIENTS.iter().any(|c| !dir.join(c).is_file()) {
                return Err(OpError::failed(format!(
                    "`{PG_BIN_ENV}` is {} but it does not hold all of `pg_dump`, `pg_restore` and `psql`",
                    dir.display()
                )));
            }
            Some(dir)
        }
        None => installed_bin_dir(Path::new(PG_LIB_DIR), prefer_major),
    };
    let program = |name: &str| match &dir {
        Some(d) => d.join(name),
        None => PathBuf::from(name),
    };
    Ok(PgPaths {
        pg_dump: program("pg_dump"),
        pg_restore: program("pg_restore"),
        psql: program("psql"),
        prefer_major,
    })
}

/// The client programs at `paths` with their version, as `pg_dump --version` prints it.
pub async fn pg_tools_version(paths: PgPaths, op: &Op<'_>) -> Result<PgTools, OpError> {
    let PgPaths {
        pg_dump,
        pg_restore,
        psql,
        prefer_major,
    } = paths;
    let hint = format!(
        "install the PostgreSQL {prefer_major} client programs or set `{PG_BIN_ENV}` to their directory"
    );
    let out = run_client(
        op,
        vec![pg_dump.display().to_string(), "--version".to_owned()],
        BTreeMap::new(),
        None,
    )
    .await
    .map_err(|e| explain(e, |m| format!("{m}; {hint}")))?;
    exited_ok(op, &out, "pg_dump --version")?;
    let version = client_version(&out.stdout).ok_or_else(|| {
        OpError::failed(format!(
            "cannot read the version of `{}` from `{}`",
            pg_dump.display(),
            out.stdout.trim()
        ))
    })?;
    Ok(PgTools {
        major: leading_number(&version),
        version,
        pg_dump,
        pg_restore,
        psql,
    })
}

/// The `bin` folder of the installed PostgreSQL whose major version is `prefer_major`, else of
/// the newest one; `None` when none is installed under `root`. The same major is preferred
/// because that pg_dump writes what the server's own pg_restore reads.
pub fn installed_bin_dir(root: &Path, prefer_major: u32) -> Option<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            CLIENTS
                .iter()
                .all(|c| bin.join(c).is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found
        .iter()
        .rev()
        .find(|(v, _)| v.first() == Some(&prefer_major))
    {
        return Some(bin.clone());
    }
    found.pop().map(|(_, bin)| bin)
}

/// `15.4` out of `pg_dump (PostgreSQL) 15.4 (Debian 15.4-1)`.
fn client_version(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_owned)
}

/// The leading digits of a version (`15` of `15.4`, `17` of `17beta1`), 0 if none.
pub(super) fn leading_number(version: &str) -> u32 {
    version
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}
