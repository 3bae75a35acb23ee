//! Restoring a PostgreSQL archive with pg_restore: a client that reads the archive, the
//! archive verified, a pre-restore backup, a data-only archive's tables emptied, then
//! pg_restore in one transaction (or with parallel jobs, which cannot share one).

use super::guard::{check_cancel, exited_ok, explain, guard, run_client};
use super::libpq::LibpqTarget;
use super::list_some;
use super::manifest::{Manifest, read_manifest};
use super::pg_tools::{PG_BIN_ENV, PgTools, find_pg_tools, leading_number};
use super::postgres::{PgServer, backup_postgres, pg_server, pg_tables};
use super::restore::{RestoreRequest, pre_backup_taken, pre_note, pre_request, verify_first};
use super::take::Backup;
use super::verify::Verified;
use crate::db::op::{Op, OpError};
use crate::playbook::BackupMode;
use sqlx::AssertSqlSafe;
use std::collections::BTreeMap;
use std::path::Path;

pub(super) async fn restore_postgres(
    conn: &mut sqlx::PgConnection,
    url: &str,
    manifest_path: &Path,
    pre_dir: &Path,
    req: &RestoreRequest,
    op: &Op<'_>,
) -> Result<(Verified, Option<Backup>), OpError> {
    let server = guard(op, "cannot read the server version", None, pg_server(conn)).await?;
    let tools = find_pg_tools(server.major, op).await?;
    check_client(&tools, &read_manifest(manifest_path)?)?;
    // Nothing has changed yet: a corrupt or mismatched archive stops here.
    let verified = verify_first(manifest_path, Some(&tools), op, "entry", "entries").await?;
    if verified.manifest.database != server.database {
        op.note(&format!(
            "restoring a backup of `{}` into `{}`",
            verified.manifest.database, server.database
        ));
    }
    check_cancel(op)?;
    let pre_backup = if req.pre_backup {
        let taken = backup_postgres(conn, url, &pre_request(pre_dir), op).await;
        Some(pre_backup_taken(taken, op)?)
    } else {
        None
    };
    check_cancel(op)?;
    if verified.manifest.mode == BackupMode::DataOnly {
        empty_tables(conn, &verified.manifest, op).await?;
    }
    let pre_note = pre_note(&pre_backup);
    run_pg_restore(url, &tools, &server, &verified, req.jobs, &pre_note, op).await?;
    Ok((verified, pre_backup))
}

/// Refuses a pg_restore older than the pg_dump that wrote the archive: it cannot read it.
fn check_client(tools: &PgTools, manifest: &Manifest) -> Result<(), OpError> {
    let dump_major = manifest
        .pg_dump_version
        .as_deref()
        .map_or(0, leading_number);
    if tools.major < dump_major {
        return Err(OpError::failed(format!(
            "`{}` is version {} and cannot read an archive written by pg_dump {}; install the PostgreSQL {dump_major} client programs or set `{PG_BIN_ENV}` to their directory",
            tools.pg_restore.display(),
            tools.version,
            manifest.pg_dump_version.as_deref().unwrap_or("?")
        )));
    }
    Ok(())
}

/// A data-only archive brings rows without the DROP/CREATE that --clean would run: empty its
/// tables first, all in one statement, or none if one is missing.
async fn empty_tables(
    conn: &mut sqlx::PgConnection,
    manifest: &Manifest,
    op: &Op<'_>,
) -> Result<(), OpError> {
    let tables = guard(op, "cannot list the tables", None, pg_tables(conn)).await?;
    let present: BTreeMap<&str, &str> = tables
        .iter()
        .map(|t| (t.key.as_str(), t.ident.as_str()))
        .collect();
    let missing: Vec<String> = manifest
        .row_counts
        .keys()
        .filter(|k| !present.contains_key(k.as_str()))
        .map(|k| format!("`{k}`"))
        .collect();
    if !missing.is_empty() {
        return Err(OpError::failed(format!(
            "a data-only archive needs its tables to exist, and these do not: {}",
            list_some(&missing)
        )));
    }
    let idents: Vec<&str> = manifest
        .row_counts
        .keys()
        .filter_map(|k| present.get(k.as_str()).copied())
        .collect();
    if idents.is_empty() {
        return Ok(());
    }
    guard(
        op,
        "cannot empty the tables before the data-only restore",
        None,
        sqlx::query(AssertSqlSafe(format!(
            "TRUNCATE TABLE {}",
            idents.join(", ")
        )))
        .persistent(false)
        .execute(&mut *conn),
    )
    .await?;
    Ok(())
}

/// Runs pg_restore; a failure says what state the database is in and names the pre-restore
/// backup (`pre_note`).
async fn run_pg_restore(
    url: &str,
    tools: &PgTools,
    server: &PgServer,
    verified: &Verified,
    jobs: u32,
    pre_note: &str,
    op: &Op<'_>,
) -> Result<(), OpError> {
    let libpq = LibpqTarget::parse(url);
    let mut argv = vec![
        tools.pg_restore.display().to_string(),
        "--no-password".to_owned(),
        "--no-owner".to_owned(),
        "--exit-on-error".to_owned(),
    ];
    if verified.manifest.mode != BackupMode::DataOnly {
        argv.push("--clean".to_owned());
        argv.push("--if-exists".to_owned());
    }
    // One transaction when there is one job: a failure leaves the database as it was. Parallel
    // jobs cannot share a transaction.
    let atomic = jobs <= 1;
    if atomic {
        argv.push("--single-transaction".to_owned());
    } else {
        argv.push(format!("--jobs={jobs}"));
    }
    argv.push(format!("--dbname={}", libpq.url));
    argv.push(verified.archive.display().to_string());
    op.note(&format!(
        "pg_restore {} into `{}`{}",
        tools.version,
        server.database,
        if atomic {
            " in one transaction".to_owned()
        } else {
            format!(" with {jobs} jobs")
        }
    ));
    op.detail(&format!(
        "{} pg_restore {}",
        op.label, verified.manifest.archive
    ));
    let state = if atomic {
        "the database was left as it was (one transaction)"
    } else {
        "the database may be partly restored (parallel jobs)"
    };
    let wrap = |e: OpError| explain(e, |m| format!("{m}; {state}{pre_note}"));
    let out = run_client(op, argv, libpq.env(), None)
        .await
        .map_err(wrap)?;
    exited_ok(op, &out, "pg_restore").map_err(wrap)
}
