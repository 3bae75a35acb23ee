//! Restoring a PostgreSQL archive exactly: a client that reads the archive, the archive
//! verified, what cannot be restored refused, a pre-restore backup; then, in one transaction,
//! every object of the database dropped (`clear`; a data-only archive's tables emptied instead)
//! and the archive's script run. psql runs that transaction: `BEGIN`, the clearing statement,
//! the script pg_restore writes, and `COMMIT` only once pg_restore has exited cleanly, so that
//! a failure anywhere leaves the database as it was. Parallel jobs cannot share a transaction:
//! with more than one, the clearing commits first and pg_restore runs its jobs.

use super::clear::{Kept, clear_sql, filter_toc, plan_clear};
use super::guard::{check_cancel, exited_ok, explain, guard, run_client, run_fed_clients};
use super::libpq::LibpqTarget;
use super::manifest::{Manifest, read_manifest};
use super::pg_tools::{PG_BIN_ENV, PgTools, find_pg_tools, leading_number};
use super::postgres::{PgServer, backup_postgres, pg_server, pg_tables};
use super::restore::{RestoreRequest, pre_backup_taken, pre_note, pre_request, verify_first};
use super::take::Backup;
use super::verify::Verified;
use crate::db::op::{Op, OpError};
use crate::fmt::list_some;
use crate::playbook::BackupMode;
use crate::process::ProcessOutput;
use sqlx::AssertSqlSafe;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    let (kept, toc) = if verified.manifest.mode == BackupMode::DataOnly {
        (Kept::default(), None)
    } else {
        // The listing verification read: no second `pg_restore --list`.
        let kept = plan_clear(conn, &toc_extensions(&verified.toc), op).await?;
        let toc = filter_toc(&verified.toc, &kept);
        (kept, toc)
    };
    check_cancel(op)?;
    let pre_backup = if req.pre_backup {
        let taken = backup_postgres(conn, url, &pre_request(pre_dir), op).await;
        Some(pre_backup_taken(taken, op)?)
    } else {
        None
    };
    check_cancel(op)?;
    let first = match verified.manifest.mode {
        BackupMode::DataOnly => empty_tables(conn, &verified.manifest, op).await?,
        _ => clear_sql(&kept),
    };
    let restore = PgRestore {
        url,
        tools: &tools,
        server: &server,
        verified: &verified,
        toc: toc.as_deref(),
        pre_note: pre_note(&pre_backup),
    };
    if req.jobs <= 1 {
        restore.in_one_transaction(&first, op).await?;
    } else {
        restore.in_parallel(conn, &first, req.jobs, op).await?;
    }
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

/// A data-only archive brings rows into tables that exist: the statement that empties them
/// all first (run in the restore's transaction), refused if one is missing.
async fn empty_tables(
    conn: &mut sqlx::PgConnection,
    manifest: &Manifest,
    op: &Op<'_>,
) -> Result<String, OpError> {
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
        return Ok(String::new());
    }
    Ok(format!("TRUNCATE TABLE {}", idents.join(", ")))
}

/// The extensions an archive creates: its `EXTENSION - name` entries.
fn toc_extensions(list: &str) -> Vec<String> {
    list.lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| l.split(" EXTENSION - ").nth(1))
        .map(|name| name.trim().to_owned())
        .collect()
}

/// One pg_restore of a verified archive into the target.
struct PgRestore<'a> {
    url: &'a str,
    tools: &'a PgTools,
    server: &'a PgServer,
    verified: &'a Verified,
    /// The table of contents to restore when some entries are left out (see `clear`).
    toc: Option<&'a str>,
    /// The end of a failure message naming the pre-restore backup.
    pre_note: String,
}

impl PgRestore<'_> {
    /// `BEGIN`, `first` (the clearing or the emptying), the archive's script, then `COMMIT` once
    /// pg_restore has exited with 0: psql stops at the first error and its connection ends
    /// with the transaction open, which PostgreSQL rolls back.
    async fn in_one_transaction(&self, first: &str, op: &Op<'_>) -> Result<(), OpError> {
        let libpq = LibpqTarget::parse(self.url);
        let list = ListFile::write(self.toc, op)?;
        // `--single-transaction`: without it pg_restore wraps large objects in a `BEGIN` and
        // `COMMIT` of their own, and that `COMMIT` would commit the clearing and half the
        // restore. Its script then begins with `BEGIN` (a no-op inside ours) and ends with
        // `COMMIT`, which is withheld and written back only once pg_restore exited with 0.
        let mut producer = vec![
            self.tools.pg_restore.display().to_string(),
            "--no-owner".to_owned(),
            "--single-transaction".to_owned(),
            "--file=-".to_owned(),
        ];
        if let Some(l) = &list {
            producer.push(format!("--use-list={}", l.path.display()));
        }
        producer.push(self.verified.archive.display().to_string());
        let consumer = vec![
            self.tools.psql.display().to_string(),
            "--no-psqlrc".to_owned(),
            "--quiet".to_owned(),
            "--no-password".to_owned(),
            "--set=ON_ERROR_STOP=1".to_owned(),
            "--output=/dev/null".to_owned(),
            format!("--dbname={}", libpq.url),
        ];
        op.note(&format!(
            "pg_restore {} into `{}` in one transaction, {}",
            self.tools.version,
            self.server.database,
            self.first_step()
        ));
        op.detail(&format!(
            "{} pg_restore {}",
            op.label, self.verified.manifest.archive
        ));
        // `error`: the script's own `BEGIN` inside ours would warn.
        let head = format!("SET client_min_messages = error;\nBEGIN;\n{first};\n");
        let ends = (head, "\nCOMMIT;\n", Some("\nCOMMIT;\n"));
        let out = run_fed_clients(op, producer, consumer, libpq.env(), ends)
            .await
            .map_err(|e| self.untouched(e))?;
        drop(list);
        if out.producer.code != Some(0) {
            return Err(self.untouched(failure(op, &out.producer, "pg_restore")));
        }
        if out.consumer.code != Some(0) {
            return Err(self.untouched(failure(op, &out.consumer, "psql")));
        }
        if !out.tail_written {
            return Err(self.untouched(OpError::failed(
                "pg_restore's script did not end with its `COMMIT`, so runbook did not commit it",
            )));
        }
        Ok(())
    }

    /// Clears the database in a transaction of its own, then runs pg_restore with `jobs`
    /// parallel jobs: a failure after the clearing leaves the database partly restored.
    async fn in_parallel(
        &self,
        conn: &mut sqlx::PgConnection,
        first: &str,
        jobs: u32,
        op: &Op<'_>,
    ) -> Result<(), OpError> {
        use sqlx::Connection;
        let libpq = LibpqTarget::parse(self.url);
        // Written before the clearing commits: failing after it would leave an empty database.
        let list = ListFile::write(self.toc, op)?;
        let mut tx = guard(op, "cannot begin the clearing", None, conn.begin()).await?;
        if !first.is_empty() {
            guard(
                op,
                "cannot clear the database before the restore",
                None,
                sqlx::query(AssertSqlSafe(first.to_owned()))
                    .persistent(false)
                    .execute(&mut *tx),
            )
            .await
            .map_err(|e| self.untouched(e))?;
        }
        guard(op, "cannot commit the clearing", None, tx.commit()).await?;
        let mut argv = vec![
            self.tools.pg_restore.display().to_string(),
            "--no-password".to_owned(),
            "--no-owner".to_owned(),
            "--exit-on-error".to_owned(),
            format!("--jobs={jobs}"),
        ];
        if let Some(l) = &list {
            argv.push(format!("--use-list={}", l.path.display()));
        }
        argv.push(format!("--dbname={}", libpq.url));
        argv.push(self.verified.archive.display().to_string());
        op.note(&format!(
            "pg_restore {} into `{}` with {jobs} jobs, {}",
            self.tools.version,
            self.server.database,
            self.first_step()
        ));
        op.detail(&format!(
            "{} pg_restore {}",
            op.label, self.verified.manifest.archive
        ));
        let partly = |e: OpError| {
            explain(e, |m| {
                format!(
                    "{m}; the database was cleared and may be partly restored (parallel jobs){}",
                    self.pre_note
                )
            })
        };
        let out = run_client(op, argv, libpq.env(), None)
            .await
            .map_err(partly)?;
        exited_ok(op, &out, "pg_restore").map_err(partly)
    }

    /// What happens before the archive's script runs, as the note says it.
    fn first_step(&self) -> &'static str {
        if self.verified.manifest.mode == BackupMode::DataOnly {
            "the archive's tables emptied first"
        } else {
            "every object not in the archive dropped first"
        }
    }

    /// A failure before anything was committed.
    fn untouched(&self, e: OpError) -> OpError {
        explain(e, |m| {
            format!(
                "{m}; the database was left as it was (one transaction){}",
                self.pre_note
            )
        })
    }
}

/// The error of a client program that did not exit with 0, quoting its errors: psql's
/// `psql:<stdin>:12: ERROR: ...` lines lose their position prefix, which names a line of a
/// script nobody sees, and a failure of the clearing says which drop failed and what to do.
fn failure(op: &Op<'_>, out: &ProcessOutput, what: &str) -> OpError {
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .map(|l| match l.strip_prefix("psql:") {
            Some(rest) => rest.splitn(3, ':').nth(2).unwrap_or(rest).trim_start(),
            None => l,
        })
        .filter(|l| !l.starts_with("PL/pgSQL function inline_code_block"))
        .collect();
    let drop = lines.iter().find_map(|l| {
        l.strip_prefix("CONTEXT:")
            .and_then(|c| c.trim().strip_prefix("SQL statement \""))
            .and_then(|c| c.strip_suffix('"'))
            .filter(|c| c.starts_with("DROP ") || c.contains("lo_unlink"))
    });
    if let (Some(drop), Some(error)) = (drop, lines.iter().find(|l| l.starts_with("ERROR:"))) {
        let error = error.trim_start_matches("ERROR:").trim();
        // Ownership is the usual cause; a lock or a timeout is said as it is.
        let hint = if error.starts_with("must be owner") || error.starts_with("permission denied") {
            "; runbook's role may drop only what it owns: restore as a role that owns it, or ask its owner to drop it"
        } else {
            ""
        };
        return OpError::Failed(op.redactor.redact(&format!(
            "cannot remove what the archive does not hold: `{drop}` failed ({error}){hint}"
        )));
    }
    let cleaned = ProcessOutput {
        code: out.code,
        stdout: String::new(),
        stderr: lines.join("\n"),
    };
    match exited_ok(op, &cleaned, what) {
        Err(e) => e,
        Ok(()) => OpError::failed(format!("`{what}` failed")),
    }
}

/// A table-of-contents file for `pg_restore --use-list`, removed when dropped.
struct ListFile {
    path: PathBuf,
}

impl ListFile {
    /// A new file of our own (never one someone placed there first: it decides what is
    /// restored), readable by us only.
    fn write(toc: Option<&str>, op: &Op<'_>) -> Result<Option<ListFile>, OpError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let Some(toc) = toc else { return Ok(None) };
        let mut nonce = [0u8; 8];
        let _ = getrandom::fill(&mut nonce);
        let path = std::env::temp_dir().join(format!(
            "runbook-restore-{}-{}-{}.list",
            std::process::id(),
            op.step_id.replace(['/', '.'], "-"),
            hex::encode(nonce)
        ));
        let failed =
            |e: std::io::Error| OpError::failed(format!("cannot write {}: {e}", path.display()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(failed)?;
        let list = ListFile { path: path.clone() };
        file.write_all(toc.as_bytes()).map_err(failed)?;
        Ok(Some(list))
    }
}

impl Drop for ListFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
