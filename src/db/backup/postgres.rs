//! PostgreSQL backups: the catalog queries (server, user tables, exact row counts), pg_dump
//! inside an exported snapshot, and the check of an archive with `pg_restore --list`.

use super::files::place;
use super::guard::{exited_ok, explain, guard, run_client};
use super::hash::{ArchiveSum, seal_archive};
use super::libpq::LibpqTarget;
use super::manifest::{ArchiveFormat, Manifest};
use super::names::Names;
use super::pg_tools::{
    PG_BIN_ENV, PgPaths, PgTools, find_pg_tools, leading_number, locate_pg_tools, pg_tools_version,
};
use super::take::{Archive, Backup, BackupRequest, Began, finish};
use super::{STATE_TABLE_PREFIX, STATE_TABLES, is_state_table};
use crate::db::Dialect;
use crate::db::op::{Op, OpError};
use crate::fmt::list_some;
use crate::playbook::{BackupFormat, BackupMode};
use sqlx::{AssertSqlSafe, Connection, Row};
use std::collections::BTreeMap;
use std::path::Path;

/// The server a backup or restore talks to.
#[derive(Clone)]
pub(super) struct PgServer {
    pub(super) major: u32,
    pub(super) version: String,
    pub(super) database: String,
}

/// The server a connection is on: its version and the connection's database.
pub(super) async fn pg_server(conn: &mut sqlx::PgConnection) -> Result<PgServer, sqlx::Error> {
    let row = sqlx::query(AssertSqlSafe(format!("SELECT {PG_SERVER}")))
        .fetch_one(conn)
        .await?;
    server_at(&row, 0)
}

/// The server's version number, version and database, as [`server_at`] reads them.
const PG_SERVER: &str = "current_setting('server_version_num')::int4, current_setting('server_version'), current_database()::text";

/// The server of a row holding [`PG_SERVER`]'s columns from column `at`.
fn server_at(row: &sqlx::postgres::PgRow, at: usize) -> Result<PgServer, sqlx::Error> {
    let num: i32 = row.try_get(at)?;
    let full: String = row.try_get(at + 1)?;
    Ok(PgServer {
        major: u32::try_from(num / 10_000).unwrap_or(0),
        version: full.split_whitespace().next().unwrap_or(&full).to_owned(),
        database: row.try_get(at + 2)?,
    })
}

/// A user table: its key in row counts (`schema.table`) and its quoted name for SQL, quoted by
/// the server (`format('%I.%I')`).
pub(super) struct PgTable {
    pub(super) key: String,
    pub(super) ident: String,
}

/// Plain tables (partitions included, partitioned parents not: their rows are their
/// partitions'), outside system schemas, not owned by an extension (pg_dump does not dump
/// those), not runbook's own.
const PG_TABLES: &str = "SELECT n.nspname::text || '.' || c.relname::text, format('%I.%I', n.nspname, c.relname), c.relname::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1";

pub(super) async fn pg_tables(conn: &mut sqlx::PgConnection) -> Result<Vec<PgTable>, sqlx::Error> {
    let rows = sqlx::query(PG_TABLES).fetch_all(conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get(2)?;
        if !is_state_table(&name) {
            out.push(PgTable {
                key: row.try_get(0)?,
                ident: row.try_get(1)?,
            });
        }
    }
    Ok(out)
}

/// Exact counts, `SELECT count(*)` per table (fine for now; a sampled estimate would not do
/// for comparing a restore with its backup).
pub(super) async fn pg_counts(
    conn: &mut sqlx::PgConnection,
    tables: &[PgTable],
) -> Result<BTreeMap<String, u64>, sqlx::Error> {
    let mut counts = BTreeMap::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {}", t.ident)))
            .persistent(false)
            .fetch_one(&mut *conn)
            .await?;
        counts.insert(t.key.clone(), u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

fn archive_format(format: BackupFormat) -> ArchiveFormat {
    match format {
        BackupFormat::Custom => ArchiveFormat::Custom,
        BackupFormat::Directory => ArchiveFormat::Directory,
    }
}

/// Backs up a PostgreSQL database with pg_dump: checks the request, opens the snapshot, dumps
/// it while the client's version is read and the rows are counted, then writes the manifest.
pub(super) async fn backup_postgres(
    conn: &mut sqlx::PgConnection,
    url: &str,
    req: &BackupRequest,
    op: &Op<'_>,
) -> Result<Backup, OpError> {
    if req.jobs > 1 && req.format != BackupFormat::Directory {
        return Err(OpError::failed(
            "`jobs` needs `format: directory`: pg_dump writes a custom archive with one job",
        ));
    }
    let began = Began::now();
    let snapshot = open_snapshot(conn, op).await?;
    // The programs are found now (no process runs); their version is read while they dump.
    let paths = locate_pg_tools(snapshot.server.major)?;
    let format = archive_format(req.format);
    let names = Names::new(
        &req.dir,
        &snapshot.server.database,
        began.created,
        op,
        req.purpose,
        format,
    )?;
    let server = snapshot.server.clone();
    let written = write_postgres(snapshot, url, req, op, &names, paths).await;
    let (
        Written {
            sum: (sha256, size, files),
            row_counts,
            toc,
        },
        tools,
    ) = names.or_remove(written)?;
    let archive = Archive {
        dialect: Dialect::Postgres,
        database: server.database.clone(),
        format,
        mode: req.mode,
        sha256,
        size,
        files,
        server_version: server.version.clone(),
        pg_dump_version: Some(tools.version.clone()),
        row_counts,
        toc,
    };
    finish(names, archive, &began, req, Some(&tools), op).await
}

/// The transaction whose snapshot pg_dump dumps: repeatable read, read only, its snapshot
/// exported (the tables are listed and counted in it once pg_dump has started), and the server
/// it is on.
struct Snapshot<'c> {
    tx: sqlx::Transaction<'c, sqlx::Postgres>,
    id: String,
    server: PgServer,
}

async fn open_snapshot<'c>(
    conn: &'c mut sqlx::PgConnection,
    op: &Op<'_>,
) -> Result<Snapshot<'c>, OpError> {
    let mut tx = guard(
        op,
        "cannot start the snapshot transaction",
        None,
        conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
    )
    .await?;
    // The transaction idles while pg_dump starts; the server must not end it before pg_dump
    // has imported the snapshot. Its counting runs beside pg_dump and needs only to end before
    // it (a small part of its time): one process, no parallel workers taking pg_dump's cores,
    // and no JIT compiling a plain count (its cost passes `jit_above_cost` from about 4M rows,
    // and compiling then costs more than it saves on one scan). `jit` is set only where it
    // exists (PostgreSQL 11 and later): `current_setting(.., true)` is NULL elsewhere and the
    // CASE then never calls `set_config`. One round trip with the export and the server's
    // version and database.
    // Under the step's deadline its statements (the counts) are ended by the server when the
    // time is spent: a count waiting behind another session's lock would otherwise hold the
    // rollback (which waits for the statement it abandoned) for as long as the lock is held.
    let deadline = match op.left()? {
        Some(left) => format!(
            "SET LOCAL statement_timeout = {}; ",
            left.as_millis().max(1)
        ),
        None => String::new(),
    };
    let sql = format!(
        "{deadline}SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL max_parallel_workers_per_gather = 0;
         SELECT pg_export_snapshot(), {PG_SERVER},
                CASE WHEN current_setting('jit', true) IS NOT NULL THEN set_config('jit', 'off', true) END"
    );
    let export = async {
        let row = sqlx::raw_sql(AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await?;
        Ok::<_, sqlx::Error>((row.try_get::<String, _>(0)?, server_at(&row, 1)?))
    };
    let (id, server) = guard(op, "cannot export a snapshot", None, export).await?;
    Ok(Snapshot { tx, id, server })
}

/// The user tables and their exact row counts, in the snapshot's transaction.
async fn list_and_count(tx: &mut sqlx::PgConnection) -> Result<BTreeMap<String, u64>, sqlx::Error> {
    let tables = pg_tables(&mut *tx).await?;
    pg_counts(tx, &tables).await
}

/// The client programs' version, refused when older than the server: an older pg_dump cannot
/// dump a newer server reliably (and refuses to).
async fn checked_tools(paths: PgPaths, server: &PgServer, op: &Op<'_>) -> Result<PgTools, OpError> {
    let tools = pg_tools_version(paths, op).await?;
    if tools.major < server.major {
        return Err(OpError::failed(format!(
            "`{}` is version {}, older than the server (PostgreSQL {}): an older pg_dump cannot dump a newer server reliably; install the PostgreSQL {} client programs or set `{PG_BIN_ENV}` to their directory",
            tools.pg_dump.display(),
            tools.version,
            server.version,
            server.major
        )));
    }
    Ok(tools)
}

/// Dumps into `names.partial` inside the exported snapshot while listing the tables and
/// counting their rows in that snapshot and reading the client's version (a client older than
/// the server stops the dump as soon as that is known, and the backup fails), then seals the
/// archive and lists its table of contents ([`seal_and_list`]) and renames it into place.
async fn write_postgres(
    snapshot: Snapshot<'_>,
    url: &str,
    req: &BackupRequest,
    op: &Op<'_>,
    names: &Names,
    paths: PgPaths,
) -> Result<(Written, PgTools), OpError> {
    let libpq = LibpqTarget::parse(url);
    let Snapshot { mut tx, id, server } = snapshot;
    let argv = dump_argv(
        req,
        &paths.pg_dump,
        server.major,
        &names.partial,
        &id,
        &libpq,
    );
    op.note(&format!(
        "pg_dump of `{}` (PostgreSQL {}) to {}",
        server.database,
        server.version,
        names.archive.display()
    ));
    // Listing and counting run alongside pg_dump, in the exporting transaction itself: its
    // snapshot is the one pg_dump imports, so the counts are the archive's exactly. The
    // transaction stays open until both are done, which also keeps the snapshot importable for
    // pg_dump. The client's version is read first beside pg_dump (started after it, which it
    // must not delay), then the counting begins: a refusal ends the dump (its process is
    // killed) with no statement of the snapshot's in flight, and it is the error given, also
    // when pg_dump failed on its own.
    let dump =
        async { Ok::<_, OpError>(run_client(op, argv, libpq.env(), Some(&names.partial)).await) };
    let checked_then_counted = async {
        let tools = checked_tools(paths, &server, op).await?;
        let counted = guard(op, "cannot count rows", None, list_and_count(&mut tx)).await;
        Ok((tools, counted))
    };
    let (out, (tools, counted)) = match tokio::try_join!(dump, checked_then_counted) {
        Ok(done) => done,
        Err(e) => {
            let _ = tx.rollback().await;
            return Err(e);
        }
    };
    let dumped = out.and_then(|out| exited_ok(op, &out, "pg_dump"));
    let row_counts = match dumped.and(counted) {
        Ok(counts) => counts,
        Err(e) => {
            let _ = tx.rollback().await;
            return Err(e);
        }
    };
    let (sum, toc) = seal_and_list(names, req, &tools, tx, op).await?;
    place(&names.partial, &names.archive)?;
    Ok((
        Written {
            sum,
            row_counts,
            toc,
        },
        tools,
    ))
}

/// Hashes the new archive as it syncs it and, when the backup is to be verified, reads its
/// table of contents with `pg_restore --list` at the same time: the listing reads the archive
/// pg_dump closed, as the hashing does, and none waits for another (the verification checks
/// the listing against the manifest once it is written). The snapshot is read only: nothing to
/// commit, and its end waits for neither.
async fn seal_and_list(
    names: &Names,
    req: &BackupRequest,
    tools: &PgTools,
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
    op: &Op<'_>,
) -> Result<(ArchiveSum, Option<String>), OpError> {
    let listing = async {
        if !req.verify {
            return Ok(None);
        }
        read_toc(&names.partial, &tools.pg_restore, op)
            .await
            .map(Some)
            .map_err(|e| explain(e, |m| format!("the new backup failed verification: {m}")))
    };
    let (sum, toc, _) = tokio::join!(
        seal_archive(&names.partial, archive_format(req.format), op),
        listing,
        tx.rollback()
    );
    Ok((sum?, toc?))
}

/// What [`write_postgres`] wrote: the archive's sum, the row counts, and its table of contents
/// when it was read for verification.
struct Written {
    sum: ArchiveSum,
    row_counts: BTreeMap<String, u64>,
    toc: Option<String>,
}

/// pg_dump's arguments: the format, the partial name, the snapshot, the mode, the jobs, and
/// runbook's own tables left out.
fn dump_argv(
    req: &BackupRequest,
    pg_dump: &Path,
    server_major: u32,
    partial: &Path,
    snapshot: &str,
    libpq: &LibpqTarget,
) -> Vec<String> {
    let mut argv = vec![
        pg_dump.display().to_string(),
        format!("--format={}", archive_format(req.format).as_str()),
        format!("--file={}", partial.display()),
        "--no-password".to_owned(),
        format!("--snapshot={snapshot}"),
    ];
    // The archive is synced as runbook hashes it, not by pg_dump before it exits. pg_dump has
    // `--no-sync` from version 10; its version is read while it runs, but a pg_dump that can
    // dump a server of 10 or later is itself 10 or later (an older one refuses the server, and
    // its version is the error given). For an older server pg_dump syncs as it always has.
    if server_major >= 10 {
        argv.push("--no-sync".to_owned());
    }
    match req.mode {
        BackupMode::Full => {}
        BackupMode::SchemaOnly => argv.push("--schema-only".to_owned()),
        BackupMode::DataOnly => argv.push("--data-only".to_owned()),
    }
    if req.format == BackupFormat::Directory && req.jobs > 1 {
        argv.push(format!("--jobs={}", req.jobs));
    }
    for t in STATE_TABLES {
        argv.push(format!("--exclude-table=*.{t}"));
    }
    argv.push(format!("--exclude-table=*.{STATE_TABLE_PREFIX}*"));
    argv.push(format!("--dbname={}", libpq.url));
    argv
}

/// Reads a verified-by-hash archive with `pg_restore --list` and checks its table of contents
/// against the manifest; returns the number of entries and the listing (a restore reads it to
/// leave out what it keeps). Finds the client programs that match
/// the archive's pg_dump when none are given.
pub(super) async fn list_archive(
    archive: &Path,
    manifest: &Manifest,
    tools: Option<&PgTools>,
    op: &Op<'_>,
) -> Result<(usize, String), OpError> {
    let found;
    let tools = match tools {
        Some(t) => t,
        None => {
            let major = manifest
                .pg_dump_version
                .as_deref()
                .map_or(0, leading_number);
            found = find_pg_tools(major, op).await?;
            &found
        }
    };
    let toc = read_toc(archive, &tools.pg_restore, op).await?;
    let entries = checked_toc(archive, &toc, manifest)?;
    Ok((entries, toc))
}

/// An archive's table of contents as `pg_restore --list` prints it.
pub(super) async fn read_toc(
    archive: &Path,
    pg_restore: &Path,
    op: &Op<'_>,
) -> Result<String, OpError> {
    let out = run_client(
        op,
        vec![
            pg_restore.display().to_string(),
            "--list".to_owned(),
            archive.display().to_string(),
        ],
        BTreeMap::new(),
        None,
    )
    .await?;
    exited_ok(op, &out, "pg_restore --list")?;
    Ok(out.stdout)
}

/// The number of entries of `toc` (`archive`'s listing), checked against the manifest.
pub(super) fn checked_toc(
    archive: &Path,
    toc: &str,
    manifest: &Manifest,
) -> Result<usize, OpError> {
    check_toc(toc, manifest).map_err(|e| {
        OpError::failed(format!(
            "{} does not match its manifest: {e}",
            archive.display()
        ))
    })
}

/// Checks `pg_restore --list` output against the manifest: a data entry for every table in a
/// full or data-only archive, a table entry for every table and no data in a schema-only one.
/// Returns the number of entries.
fn check_toc(list: &str, manifest: &Manifest) -> Result<usize, String> {
    // Entry lines: `3351; 0 16385 TABLE DATA public a postgres`; names are printed unquoted.
    let entries: Vec<&str> = list
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest))
        .collect();
    let after = |kind: &str| -> Vec<&str> {
        entries
            .iter()
            .filter_map(|e| {
                // Skip the catalog oid and the object oid.
                let mut it = e.splitn(3, ' ');
                it.next()?;
                it.next()?;
                it.next()?.strip_prefix(kind)
            })
            .collect()
    };
    let data = after("TABLE DATA ");
    let tables: Vec<&str> = after("TABLE ")
        .into_iter()
        .filter(|r| !r.starts_with("DATA "))
        .collect();
    // A key `schema.table` may hold dots in either part: try every split.
    let listed = |rows: &[&str], key: &str| {
        key.match_indices('.').any(|(i, _)| {
            let prefix = format!("{} {} ", &key[..i], &key[i + 1..]);
            rows.iter().any(|r| r.starts_with(&prefix))
        })
    };
    let mut missing = Vec::new();
    match manifest.mode {
        BackupMode::Full | BackupMode::DataOnly => {
            for key in manifest.row_counts.keys() {
                if !listed(&data, key) {
                    missing.push(format!("no data for `{key}`"));
                }
            }
        }
        BackupMode::SchemaOnly => {
            if !data.is_empty() {
                return Err(format!(
                    "a schema-only archive holds {} data entries",
                    data.len()
                ));
            }
            for key in manifest.row_counts.keys() {
                if !listed(&tables, key) {
                    missing.push(format!("no table `{key}`"));
                }
            }
        }
    }
    if manifest.mode == BackupMode::DataOnly && !tables.is_empty() {
        return Err(format!(
            "a data-only archive holds {} table definitions",
            tables.len()
        ));
    }
    if !missing.is_empty() {
        return Err(list_some(&missing));
    }
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::backup::manifest::Purpose;
    use std::path::PathBuf;

    fn argv(major: u32) -> Vec<String> {
        let req = BackupRequest {
            dir: PathBuf::from("/backups"),
            mode: BackupMode::Full,
            format: BackupFormat::Directory,
            jobs: 2,
            verify: true,
            purpose: Purpose::Backup,
        };
        let libpq = LibpqTarget::parse("postgres://u@h/db");
        dump_argv(
            &req,
            Path::new("/pg/bin/pg_dump"),
            major,
            Path::new("/backups/.a.partial"),
            "00000003-1",
            &libpq,
        )
    }

    /// pg_dump leaves the syncing to runbook, which syncs the archive as it hashes it; for a
    /// server older than 10 it is not asked to (a pg_dump older than 10 has no `--no-sync`,
    /// and one for such a server may be).
    #[test]
    fn pg_dump_leaves_the_sync_to_runbook_where_it_can() {
        let new = argv(15);
        assert!(new.contains(&"--no-sync".to_owned()), "{new:?}");
        assert!(new.contains(&"--jobs=2".to_owned()), "{new:?}");
        assert!(new.contains(&"--snapshot=00000003-1".to_owned()), "{new:?}");
        assert!(
            new.last()
                .is_some_and(|a| a.starts_with("--dbname=postgres://u@h/db"))
        );
        let old = argv(9);
        assert!(!old.contains(&"--no-sync".to_owned()), "{old:?}");
    }
}
