//! SQLite to PostgreSQL in one step: schema translation, COPY streaming, indexes and keys
//! after the load, verification by row counts and content checksums on both sides.
//!
//! The source is opened read-only inside one read transaction, so every pass over it (type
//! checks, the load, the checksum of a re-run) sees the same snapshot.
//!
//! Types. Each column gets a PostgreSQL type from its declared type, the way SQLite derives
//! affinity, and is then held to it value by value while the rows stream: a value that does
//! not fit (text in an INTEGER column, a DATETIME that does not parse, a 2 in a BOOLEAN) stops
//! that table's load, the table's values are inspected in full, and the load starts again with
//! types chosen from what is really there. Clean databases (the usual Prisma file) are read
//! once; messy ones cost one extra pass and never a crash. Columns without a declared type are
//! always inspected first. Every decision is reported, and every value that could not be kept
//! exactly (text with NUL bytes or invalid UTF-8, a number written into a text column of mixed
//! values) is reported with its row.
//!
//! Loading. One PostgreSQL transaction per table: create the table, COPY the rows (binary
//! format, `FREEZE` since the table is new in the transaction, 256 KiB chunks), add the
//! primary key and indexes, move the identity sequence past the highest key, read the table
//! back with `COPY ... TO STDOUT` and compare its checksum with the source's, record it as
//! done in `runbook_copy_progress`, commit. A table is therefore either absent or complete and
//! verified; a failed table is recorded as failed and the next run loads it again, while
//! tables recorded as done with an unchanged source are skipped. Two lanes, each with its own
//! connection, take the tables largest first, one streaming while the other finishes, both
//! reading the one source connection (one snapshot). Foreign keys are added once every table is in place.
//!
//! Checksums. Each row's values are put in a canonical form for their column's type (integers
//! and floats by value, timestamps as microseconds, JSON with sorted keys, numerics without
//! insignificant zeros), hashed (MurmurHash3, 128 bits), and the row hashes are added modulo
//! 2^128: the sum does not depend on row order and counts duplicate rows.
//!
//! The files: `schema` reads the source's tables, `types` and `stats` choose each column's
//! PostgreSQL type, `plan` holds a table's choices, `scan` is the raw SQLite reader, `encode`
//! writes each value (with `binary` for PostgreSQL's binary forms, `datetime` and `json` for
//! their canonical forms), `ddl` and `defaults` build the statements, `load` is one table's
//! transaction, `keys` adds indexes and keys, `checksum` compares both sides, `progress` is
//! `runbook_copy_progress`, `target` is the PostgreSQL session, `table` decides per table,
//! `report` is what the copy tells, `limits` keeps declared lengths and precisions, `sqltext`
//! carries index and CHECK SQL over.
//!
//! `into: existing` (`into/`) is the other mode: the target's migrations made the tables, and
//! each value is converted to its existing column's type, exactly or not at all.

mod binary;
mod checksum;
mod datetime;
mod ddl;
mod defaults;
mod encode;
mod foreign;
mod into;
mod json;
mod keys;
mod limits;
mod load;
mod pghash;
mod plan;
mod progress;
mod report;
mod scan;
mod schema;
mod server_sum;
mod sqltext;
mod stats;
mod table;
mod target;
mod types;

pub use progress::PROGRESS_TABLE;
pub use report::{Decision, Inexact, InexactValue, Report, TableOutcome, write_report};

use crate::db::op::{Op, OpError};
use ddl::MAX_IDENT;
use schema::SrcTable;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// What to copy.
#[derive(Debug, Clone)]
pub struct Request {
    /// The SQLite database file.
    pub source: PathBuf,
    /// Only these tables (default: all).
    pub tables: Option<Vec<String>>,
    /// Drop the selected tables in the target first (`into_existing`: empty them).
    pub replace: bool,
    /// Copy into the target's existing tables instead of creating them.
    pub into_existing: bool,
    /// The IANA zone of date-time text without an offset (default UTC).
    pub time_zone: Option<String>,
    /// `into_existing`: source columns left out, as `Table.column`.
    pub ignore: Vec<String>,
    /// `into_existing`: source `Table` or `Table.column` to the target's name.
    pub map: BTreeMap<String, String>,
    /// Own tables: indexes and constraints that may be left out when they cannot be
    /// translated (names, or `all`).
    pub allow_skip: Vec<String>,
    /// `into_existing`: the unit of integer date-times (default milliseconds, refusing
    /// integers that could be either).
    pub epoch: Option<crate::playbook::CopyEpoch>,
    /// The target's URL, for a second connection that loads tables alongside the first (own
    /// tables); without it, one connection.
    pub target_url: Option<String>,
}

/// Migration histories: the target's come from applying its migrations, never from a copy.
const HISTORIES: &[&str] = &["_prisma_migrations", "_sqlx_migrations"];

/// Whether a source table is runbook's own or a migration history, never copied as data.
fn bookkeeping(name: &str) -> bool {
    name.starts_with("runbook_") || HISTORIES.contains(&name)
}

/// Copies the SQLite database into PostgreSQL. Per-table failures are in the report (the
/// caller fails the step on them); errors that stop everything are `Err`.
pub async fn copy(pg: &mut PgConnection, req: &Request, op: &Op<'_>) -> Result<Report, OpError> {
    let started = Instant::now();
    check_options(req)?;
    let mut src = schema::open_source(&req.source).await?;
    let (all_tables, mut decisions) = schema::read_schema(&mut src).await.map_err(db_error)?;
    let selected = select_tables(&all_tables, req.tables.as_deref(), &mut decisions)?;
    check_selection(&selected)?;
    if selected.is_empty() {
        note(op, "the source has no tables to copy");
    }
    target::setup_session(pg).await?;
    let result = if req.into_existing {
        into::copy_into(pg, &mut src, req, op, &selected, &mut decisions)
            .await
            .map(|t| (t, Vec::new()))
    } else {
        let mut second = match &req.target_url {
            Some(url) if selected.len() > 1 => second_connection(url, op).await,
            _ => None,
        };
        let shared = scan::Source::new(src);
        let r = table::copy_tables(
            pg,
            second.as_mut(),
            &shared,
            req,
            op,
            &selected,
            &mut decisions,
        )
        .await;
        if let Some(c) = second {
            let _ = sqlx::Connection::close(c).await;
        }
        match shared.into_inner().await {
            Ok(c) => src = c,
            Err(e) => {
                target::reset_session(pg).await;
                return Err(r.err().unwrap_or(e));
            }
        }
        r
    };
    target::reset_session(pg).await;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut src).await;
    let (tables, inexact) = result?;
    let rows: u64 = tables
        .iter()
        .filter(|t| t.status == "copied")
        .map(|t| t.rows)
        .sum();
    let seconds = started.elapsed().as_secs_f64();
    Ok(Report {
        source: req.source.display().to_string(),
        tables,
        decisions,
        inexact,
        rows,
        seconds,
        rows_per_second: per_second(rows, seconds),
    })
}

/// A second connection to the target, set up like the first; `None` (one connection, with a
/// note) when the server does not give one.
async fn second_connection(url: &str, op: &Op<'_>) -> Option<PgConnection> {
    let spec = crate::db::TargetSpec::Postgres(url.to_owned());
    let mut c = match crate::db::Db::connect(&spec).await {
        Ok(crate::db::Db::Postgres(c)) => c,
        Ok(_) => return None,
        Err(e) => {
            note(
                op,
                &format!(
                    "tables load one at a time: a second connection was refused ({})",
                    describe(&e)
                ),
            );
            return None;
        }
    };
    target::setup_session(&mut c).await.ok().map(|()| c)
}

/// The zone of date-time text without an offset: `None` for UTC.
fn source_zone(req: &Request) -> Result<Option<chrono_tz::Tz>, OpError> {
    match req.time_zone.as_deref() {
        None | Some("UTC") => Ok(None),
        Some(tz) => tz.parse().map(Some).map_err(|_| {
            OpError::Failed(format!(
                "`time_zone: {tz}` is not a time zone of the IANA database (e.g. Europe/Berlin)"
            ))
        }),
    }
}

/// `map` and `ignore` name target tables and columns, which only `into: existing` has;
/// `allow_skip` names what copy translates, which only its own tables have.
fn check_options(req: &Request) -> Result<(), OpError> {
    if !req.into_existing && (!req.map.is_empty() || !req.ignore.is_empty()) {
        return Err(OpError::Failed(
            "`map` and `ignore` apply to `into: existing`; copy into its own tables keeps \
             every source table and column"
                .to_owned(),
        ));
    }
    if !req.into_existing && req.epoch.is_some() {
        return Err(OpError::Failed(
            "`epoch` applies to `into: existing`; copy into its own tables keeps integer \
             date-times as milliseconds and inspects columns whose integers look like seconds"
                .to_owned(),
        ));
    }
    if req.into_existing && !req.allow_skip.is_empty() {
        return Err(OpError::Failed(
            "`allow_skip` applies to copy into its own tables; `into: existing` creates no \
             index or constraint"
                .to_owned(),
        ));
    }
    source_zone(req).map(|_| ())
}

/// Rows per second, rounded; 0 before any time has passed.
fn per_second(rows: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        (rows as f64 / seconds).round()
    } else {
        0.0
    }
}

/// Refuses a selection the target cannot take: names longer than PostgreSQL keeps.
fn check_selection(selected: &[&SrcTable]) -> Result<(), OpError> {
    for t in selected {
        let long = std::iter::once(&t.name)
            .chain(t.columns.iter().map(|c| &c.name))
            .find(|n| n.len() > MAX_IDENT);
        if let Some(n) = long {
            return Err(OpError::Failed(format!(
                "`{n}` (table `{}`) is longer than PostgreSQL's 63-byte limit for names",
                t.name
            )));
        }
    }
    Ok(())
}

/// The tables `tables:` names, in its order; all of them without it. runbook's own tables
/// and migration histories are never copied.
fn select_tables<'a>(
    all: &'a [SrcTable],
    wanted: Option<&[String]>,
    decisions: &mut Vec<Decision>,
) -> Result<Vec<&'a SrcTable>, OpError> {
    let Some(wanted) = wanted else {
        for t in all.iter().filter(|t| bookkeeping(&t.name)) {
            decisions.push(Decision {
                table: t.name.clone(),
                column: None,
                what: "table".to_owned(),
                from: "table".to_owned(),
                to: "not copied".to_owned(),
                reason: "runbook's own table or a migration history: the target's come from \
                         applying its migrations"
                    .to_owned(),
            });
        }
        return Ok(all.iter().filter(|t| !bookkeeping(&t.name)).collect());
    };
    let mut out = Vec::new();
    for name in wanted {
        if bookkeeping(name) {
            return Err(OpError::Failed(format!(
                "`{name}` is runbook's own table or a migration history, never copied as data: \
                 the target's comes from applying its migrations"
            )));
        }
        match all.iter().find(|t| &t.name == name) {
            Some(t) => out.push(t),
            None => {
                let hint =
                    crate::diagnostic::did_you_mean(name, all.iter().map(|t| t.name.as_str()))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                return Err(OpError::Failed(format!(
                    "the source has no table `{name}`{hint}"
                )));
            }
        }
    }
    Ok(out)
}

/// The database's message with PostgreSQL's detail and the SQLSTATE. `db::describe` leaves
/// the detail out; the copy's messages have always named it (which row broke a key).
fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => {
            let mut msg = db.message().to_owned();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                && let Some(detail) = pg.detail()
            {
                msg.push_str(&format!(" ({detail})"));
            }
            match db.code() {
                Some(code) => format!("{msg} (SQLSTATE {code})"),
                None => msg,
            }
        }
        other => other.to_string(),
    }
}

/// A sqlx error as the copy reports it.
fn db_error(e: sqlx::Error) -> OpError {
    OpError::Failed(describe(&e))
}

/// A status line under the step's label, e.g. `migrate (copy): ...`.
fn note(op: &Op<'_>, text: &str) {
    op.note(&format!("{}: {text}", op.label));
}

/// The spinner's detail under the step's label.
fn detail(op: &Op<'_>, text: &str) {
    op.detail(&format!("{}: {text}", op.label));
}
