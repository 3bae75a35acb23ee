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
//! Loading. One PostgreSQL transaction per table: create the table, COPY the rows (text
//! format, ~1 MiB chunks), add the primary key and indexes, move the identity sequence past the
//! highest key, read the table back with `COPY ... TO STDOUT` and compare its checksum with the
//! source's, record it as done in `runbook_copy_progress`, commit. A table is therefore either
//! absent or complete and verified; a failed table is recorded as failed and the next run loads
//! it again, while tables recorded as done with an unchanged source are skipped. Foreign keys
//! are added once every table is in place.
//!
//! Checksums. Each row's values are put in a canonical form for their column's type (integers
//! and floats by value, timestamps as microseconds, JSON with sorted keys, numerics without
//! insignificant zeros), hashed (MurmurHash3, 128 bits), and the row hashes are added modulo
//! 2^128: the sum does not depend on row order and counts duplicate rows.

use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::{Value as Json, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, PgConnection, Row};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Bytes of COPY data sent in one message.
const CHUNK: usize = 1 << 20;

/// The table in the target that records which tables were copied, so a re-run skips them.
pub const PROGRESS_TABLE: &str = "runbook_copy_progress";

/// Values of one kind of inexact conversion kept per column in the report.
const MAX_INEXACT_VALUES: usize = 10_000;

/// Characters of a value shown in the report.
const MAX_SHOWN: usize = 200;

/// PostgreSQL identifiers longer than this are truncated by the server.
const MAX_IDENT: usize = 63;

/// What to copy.
#[derive(Debug, Clone)]
pub struct Request {
    /// The SQLite database file.
    pub source: PathBuf,
    /// Only these tables (default: all).
    pub tables: Option<Vec<String>>,
    /// Drop the selected tables in the target first.
    pub replace: bool,
}

/// How the copy reports progress and learns it should stop.
pub struct Hooks<'a> {
    pub cancel: watch::Receiver<bool>,
    pub progress: &'a crate::ui::Progress,
    /// Prefix of progress lines, e.g. `migrate (copy)`.
    pub label: String,
}

impl Hooks<'_> {
    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    fn note(&self, text: &str) {
        self.progress.note(&format!("{}: {text}", self.label));
    }

    fn detail(&self, text: &str) {
        self.progress.detail(&format!("{}: {text}", self.label));
    }
}

/// Why the copy stopped.
#[derive(Debug)]
pub enum CopyError {
    Interrupted,
    Failed(String),
}

impl From<sqlx::Error> for CopyError {
    fn from(e: sqlx::Error) -> Self {
        CopyError::Failed(describe(&e))
    }
}

/// What the copy did: per table, every type decision, every value not kept exactly.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub tables: Vec<TableOutcome>,
    pub decisions: Vec<Decision>,
    pub inexact: Vec<Inexact>,
    /// Rows loaded by this run (skipped tables not counted).
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
}

impl Report {
    pub fn failed(&self) -> Vec<&TableOutcome> {
        self.tables
            .iter()
            .filter(|t| t.status == "failed")
            .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TableOutcome {
    pub table: String,
    /// `copied`, `skipped` (done before, source unchanged) or `failed`.
    pub status: String,
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// The content checksum both sides agreed on.
    pub checksum: Option<String>,
    pub error: Option<String>,
}

/// One choice the copy made: a column's type, a default, an index, a key.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Decision {
    pub table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `type`, `default`, `primary_key`, `index`, `unique`, `foreign_key`, `sequence`,
    /// `constraint`, `view`, `trigger`, `table`.
    pub what: String,
    /// What SQLite had.
    pub from: String,
    /// What PostgreSQL got; `not carried over` when nothing.
    pub to: String,
    pub reason: String,
}

/// Values of one column that could not be kept exactly, for one reason.
#[derive(Debug, Clone, Serialize)]
pub struct Inexact {
    pub table: String,
    pub column: String,
    pub reason: String,
    pub count: u64,
    /// The first values (up to 10,000): their row, the source value, what was stored.
    pub values: Vec<InexactValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InexactValue {
    /// The primary key values, or the row's position in the source when there is none.
    pub row: Json,
    pub value: String,
    pub stored: String,
}

// ---------------------------------------------------------------------------------------------
// The source schema

#[derive(Debug, Clone)]
struct SrcTable {
    name: String,
    sql: String,
    columns: Vec<SrcColumn>,
    /// Columns of the primary key, in key order.
    pk: Vec<usize>,
    rowid_alias: Option<usize>,
    autoincrement: bool,
    /// `sqlite_sequence`'s value for an AUTOINCREMENT table.
    sequence: Option<i64>,
    indexes: Vec<SrcIndex>,
    fks: Vec<SrcFk>,
}

#[derive(Debug, Clone)]
struct SrcColumn {
    name: String,
    declared: String,
    notnull: bool,
    default: Option<String>,
    generated: bool,
}

#[derive(Debug, Clone)]
struct SrcIndex {
    name: String,
    unique: bool,
    /// `c` (CREATE INDEX), `u` (UNIQUE constraint), `pk`.
    origin: String,
    partial: bool,
    /// `None` for an expression part.
    columns: Vec<Option<(String, bool, String)>>,
    sql: Option<String>,
}

#[derive(Debug, Clone)]
struct SrcFk {
    parent: String,
    from: Vec<String>,
    to: Vec<Option<String>>,
    on_update: String,
    on_delete: String,
}

fn qi(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn ql(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

async fn open_source(path: &Path) -> Result<SqliteConnection, CopyError> {
    if !path.is_file() {
        return Err(CopyError::Failed(format!(
            "the source `{}` does not exist or is not a file",
            path.display()
        )));
    }
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        .row_buffer_size(1024)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = opts.connect().await.map_err(|e| {
        CopyError::Failed(format!(
            "cannot open the source `{}`: {}",
            path.display(),
            describe(&e)
        ))
    })?;
    // One read transaction for the whole copy: every pass reads the same snapshot. The first
    // read below (the schema) starts it.
    sqlx::raw_sql("BEGIN").execute(&mut conn).await?;
    Ok(conn)
}

async fn read_schema(
    conn: &mut SqliteConnection,
) -> Result<(Vec<SrcTable>, Vec<Decision>), CopyError> {
    let rows = sqlx::query(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
    )
    .fetch_all(&mut *conn)
    .await?;
    let has_sequence: bool =
        sqlx::query_scalar("SELECT count(*) > 0 FROM sqlite_master WHERE name = 'sqlite_sequence'")
            .fetch_one(&mut *conn)
            .await?;
    let mut tables = Vec::new();
    let mut notes = Vec::new();
    for row in rows {
        let kind: String = row.try_get(0)?;
        let name: String = row.try_get(1)?;
        let tbl: String = row.try_get(2)?;
        let sql: String = row.try_get(3)?;
        match kind.as_str() {
            "table" if is_virtual(&sql) => notes.push(Decision {
                table: name,
                column: None,
                what: "table".to_owned(),
                from: "virtual table".to_owned(),
                to: "not carried over".to_owned(),
                reason: "virtual tables (FTS, R-tree, ...) have no PostgreSQL equivalent"
                    .to_owned(),
            }),
            "table" => tables.push(read_table(conn, name, sql, has_sequence).await?),
            "view" | "trigger" => notes.push(Decision {
                table: tbl,
                column: None,
                what: kind.clone(),
                from: name,
                to: "not carried over".to_owned(),
                reason: format!("{kind}s are SQLite SQL; recreate them for PostgreSQL"),
            }),
            _ => {}
        }
    }
    Ok((tables, notes))
}

fn is_virtual(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(str::to_ascii_uppercase)
        .collect();
    words.get(1).is_some_and(|w| w == "VIRTUAL")
}

async fn read_table(
    conn: &mut SqliteConnection,
    name: String,
    sql: String,
    has_sequence: bool,
) -> Result<SrcTable, CopyError> {
    let cols = sqlx::query(
        "SELECT name, coalesce(type, ''), \"notnull\", dflt_value, pk, hidden \
         FROM pragma_table_xinfo(?1) ORDER BY cid",
    )
    .bind(&name)
    .fetch_all(&mut *conn)
    .await?;
    let mut columns = Vec::new();
    let mut pk_order = Vec::new();
    for c in cols {
        let hidden: i64 = c.try_get(5)?;
        // 1: a hidden column of a virtual table; 2 and 3: generated columns, copied as values.
        if hidden == 1 {
            continue;
        }
        let pk: i64 = c.try_get(4)?;
        if pk > 0 {
            pk_order.push((pk, columns.len()));
        }
        columns.push(SrcColumn {
            name: c.try_get(0)?,
            declared: c.try_get(1)?,
            notnull: c.try_get::<i64, _>(2)? != 0,
            default: c.try_get(3)?,
            generated: hidden >= 2,
        });
    }
    pk_order.sort();
    let pk: Vec<usize> = pk_order.into_iter().map(|(_, i)| i).collect();
    let without_rowid = sql
        .rsplit(')')
        .next()
        .is_some_and(|tail| tail.to_ascii_uppercase().contains("WITHOUT"));
    // SQLite's rule: a single-column primary key declared exactly `INTEGER` is the rowid.
    let rowid_alias = match pk.as_slice() {
        [i] if !without_rowid && columns[*i].declared.eq_ignore_ascii_case("INTEGER") => Some(*i),
        _ => None,
    };
    let autoincrement = rowid_alias.is_some() && has_word(&sql, "AUTOINCREMENT");
    let sequence = if autoincrement && has_sequence {
        sqlx::query_scalar::<_, i64>("SELECT seq FROM sqlite_sequence WHERE name = ?1")
            .bind(&name)
            .fetch_optional(&mut *conn)
            .await?
    } else {
        None
    };

    let mut indexes = Vec::new();
    let list = sqlx::query(
        "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1) ORDER BY seq DESC",
    )
    .bind(&name)
    .fetch_all(&mut *conn)
    .await?;
    for ix in list {
        let ix_name: String = ix.try_get(0)?;
        let parts = sqlx::query(
            "SELECT cid, name, \"desc\", coll FROM pragma_index_xinfo(?1) WHERE key = 1 \
             ORDER BY seqno",
        )
        .bind(&ix_name)
        .fetch_all(&mut *conn)
        .await?;
        let mut columns = Vec::new();
        for p in parts {
            let cid: i64 = p.try_get(0)?;
            if cid < 0 {
                columns.push(None);
            } else {
                columns.push(Some((
                    p.try_get::<String, _>(1)?,
                    p.try_get::<i64, _>(2)? != 0,
                    p.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                )));
            }
        }
        let sql: Option<String> =
            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1")
                .bind(&ix_name)
                .fetch_optional(&mut *conn)
                .await?
                .flatten();
        indexes.push(SrcIndex {
            name: ix_name,
            unique: ix.try_get::<i64, _>(1)? != 0,
            origin: ix.try_get(2)?,
            partial: ix.try_get::<i64, _>(3)? != 0,
            columns,
            sql,
        });
    }

    let fk_rows = sqlx::query(
        "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete \
         FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
    )
    .bind(&name)
    .fetch_all(&mut *conn)
    .await?;
    let mut fks: Vec<(i64, SrcFk)> = Vec::new();
    for f in fk_rows {
        let id: i64 = f.try_get(0)?;
        let from: String = f.try_get(2)?;
        let to: Option<String> = f.try_get(3)?;
        match fks.last_mut() {
            Some((last, fk)) if *last == id => {
                fk.from.push(from);
                fk.to.push(to);
            }
            _ => fks.push((
                id,
                SrcFk {
                    parent: f.try_get(1)?,
                    from: vec![from],
                    to: vec![to],
                    on_update: f.try_get(4)?,
                    on_delete: f.try_get(5)?,
                },
            )),
        }
    }
    Ok(SrcTable {
        name,
        sql,
        columns,
        pk,
        rowid_alias,
        autoincrement,
        sequence,
        indexes,
        fks: fks.into_iter().map(|(_, f)| f).collect(),
    })
}

/// Whether `word` appears in `sql` as a keyword outside quotes and comments.
fn has_word(sql: &str, word: &str) -> bool {
    let code = strip_literals(sql).to_ascii_uppercase();
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == word)
}

/// SQL text with string literals, quoted identifiers and comments blanked out.
fn strip_literals(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                for d in chars.by_ref() {
                    if d == close {
                        break;
                    }
                }
                out.push(' ');
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                out.push(' ');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                out.push(' ');
            }
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Types

/// The PostgreSQL type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Identity,
    BigInt,
    Double,
    Numeric,
    Bool,
    Text,
    Bytea,
    Timestamptz,
    Date,
    Jsonb,
}

impl Kind {
    fn ddl(self) -> &'static str {
        match self {
            Kind::Identity => "bigint GENERATED BY DEFAULT AS IDENTITY",
            other => other.name(),
        }
    }

    /// The name `format_type` shows.
    fn name(self) -> &'static str {
        match self {
            Kind::Identity | Kind::BigInt => "bigint",
            Kind::Double => "double precision",
            Kind::Numeric => "numeric",
            Kind::Bool => "boolean",
            Kind::Text => "text",
            Kind::Bytea => "bytea",
            Kind::Timestamptz => "timestamp with time zone",
            Kind::Date => "date",
            Kind::Jsonb => "jsonb",
        }
    }
}

/// SQLite's column affinity, from the declared type (section 3.1 of "Datatypes In SQLite").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

fn affinity(declared: &str) -> Affinity {
    let u = declared.to_ascii_uppercase();
    if u.contains("INT") {
        Affinity::Integer
    } else if u.contains("CHAR") || u.contains("CLOB") || u.contains("TEXT") {
        Affinity::Text
    } else if u.contains("BLOB") || u.trim().is_empty() {
        Affinity::Blob
    } else if u.contains("REAL") || u.contains("FLOA") || u.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// What the declared type asks for beyond its affinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Bool,
    DateTime,
    Date,
    Json,
    Decimal,
    Plain,
}

fn family(declared: &str) -> Family {
    let u = declared.to_ascii_uppercase();
    if u.contains("BOOL") {
        Family::Bool
    } else if u.contains("DATETIME") || u.contains("TIMESTAMP") {
        Family::DateTime
    } else if u.contains("DATE") {
        Family::Date
    } else if u.contains("JSON") {
        Family::Json
    } else if u.contains("NUMERIC") || u.contains("DECIMAL") {
        Family::Decimal
    } else {
        Family::Plain
    }
}

/// The type a column gets before its values are seen, when the declared type decides it.
fn declared_kind(col: &SrcColumn, rowid_alias: bool) -> Option<Kind> {
    if rowid_alias {
        return Some(Kind::Identity);
    }
    match family(&col.declared) {
        Family::Bool => return Some(Kind::Bool),
        Family::DateTime => return Some(Kind::Timestamptz),
        Family::Date => return Some(Kind::Date),
        Family::Json => return Some(Kind::Jsonb),
        Family::Decimal => return Some(Kind::Numeric),
        Family::Plain => {}
    }
    match affinity(&col.declared) {
        Affinity::Integer => Some(Kind::BigInt),
        Affinity::Text => Some(Kind::Text),
        Affinity::Real => Some(Kind::Double),
        Affinity::Blob if !col.declared.trim().is_empty() => Some(Kind::Bytea),
        // No declared type, or an unknown one (`STRING`, `MONEY`): the values decide.
        Affinity::Blob | Affinity::Numeric => None,
    }
}

/// What one pass saw in a column.
#[derive(Debug, Clone, Default)]
struct Stats {
    nulls: u64,
    ints: u64,
    reals: u64,
    texts: u64,
    blobs: u64,
    int_min: Option<i64>,
    int_max: Option<i64>,
    /// Integers other than 0 and 1.
    non_bool: u64,
    /// Integers beyond 2^53, which a double cannot hold exactly.
    wide_ints: u64,
    /// Texts that are not ISO 8601 timestamps / dates / JSON, with the first of each.
    not_timestamp: u64,
    not_timestamp_example: Option<String>,
    not_date: u64,
    not_json: u64,
    not_json_example: Option<String>,
    /// Non-finite reals (not JSON numbers).
    non_finite: u64,
    /// Blobs that are not UTF-8 text without NUL bytes.
    binary_blobs: u64,
}

impl Stats {
    fn classes(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (n, name) in [
            (self.ints, "integer"),
            (self.reals, "real"),
            (self.texts, "text"),
            (self.blobs, "blob"),
        ] {
            if n > 0 {
                out.push(name);
            }
        }
        out
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (n, name) in [
            (self.ints, "integer"),
            (self.reals, "real"),
            (self.texts, "text"),
            (self.blobs, "blob"),
            (self.nulls, "null"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {name}"));
            }
        }
        if parts.is_empty() {
            "no values".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// Integer timestamps that look like seconds since 1970 rather than milliseconds: all of
    /// them before 1973-03-03 when read as milliseconds.
    fn ints_look_like_seconds(&self) -> bool {
        self.ints > 0
            && self.int_min.is_some_and(|m| m > 0)
            && self.int_max.is_some_and(|m| m < 100_000_000_000)
    }
}

/// The first millisecond of year 1 and the last of year 9999.
const MIN_MS: i64 = -62_135_596_800_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// A column's type chosen from its values, with the reason.
fn decide(col: &SrcColumn, rowid_alias: bool, s: &Stats) -> (Kind, bool, String) {
    let seen = s.describe();
    if rowid_alias {
        return (
            Kind::Identity,
            false,
            "INTEGER PRIMARY KEY (the rowid): identity column".to_owned(),
        );
    }
    let only = |classes: &[&str]| s.classes().iter().all(|c| classes.contains(c));
    let aff = affinity(&col.declared);
    match family(&col.declared) {
        Family::Bool if only(&["integer"]) && s.non_bool == 0 => {
            return (Kind::Bool, false, format!("every value is 0 or 1 ({seen})"));
        }
        Family::DateTime | Family::Date
            if only(&["integer", "text"])
                && s.not_timestamp == 0
                && !s.ints_look_like_seconds()
                && s.int_min.is_none_or(|m| m >= MIN_MS)
                && s.int_max.is_none_or(|m| m <= MAX_MS) =>
        {
            if family(&col.declared) == Family::Date && s.ints == 0 && s.not_date == 0 {
                return (
                    Kind::Date,
                    false,
                    format!("every value is an ISO 8601 date ({seen})"),
                );
            }
            return (
                Kind::Timestamptz,
                false,
                format!(
                    "every value is ISO 8601 text (read as UTC when it has no zone) or integer \
                     milliseconds since 1970 ({seen})"
                ),
            );
        }
        Family::Json
            if only(&["integer", "real", "text"]) && s.not_json == 0 && s.non_finite == 0 =>
        {
            return (
                Kind::Jsonb,
                false,
                format!("every value parses as JSON ({seen})"),
            );
        }
        _ => {}
    }
    let why_not = match family(&col.declared) {
        Family::Bool => format!("not every value is 0 or 1 ({seen}); "),
        Family::DateTime | Family::Date => {
            if s.ints_look_like_seconds() && s.not_timestamp == 0 {
                format!("its integers look like seconds since 1970, not milliseconds ({seen}); ")
            } else {
                let ex = s
                    .not_timestamp_example
                    .as_deref()
                    .map(|e| format!(", e.g. {}", shown(e)))
                    .unwrap_or_default();
                format!(
                    "not every value is an ISO 8601 timestamp or integer milliseconds ({seen}{ex}); "
                )
            }
        }
        Family::Json => {
            let ex = s
                .not_json_example
                .as_deref()
                .map(|e| format!(", e.g. {}", shown(e)))
                .unwrap_or_default();
            format!(
                "not every value is JSON without duplicate keys or NUL characters ({seen}{ex}); "
            )
        }
        _ => String::new(),
    };
    let classes = s.classes();
    let (kind, lenient, why) = match classes.as_slice() {
        [] => match (aff, family(&col.declared)) {
            (_, Family::Decimal) => (Kind::Numeric, false, "declared NUMERIC/DECIMAL"),
            (Affinity::Integer, _) => (Kind::BigInt, false, "INTEGER affinity"),
            (Affinity::Real, _) => (Kind::Double, false, "REAL affinity"),
            (Affinity::Blob, _) if !col.declared.trim().is_empty() => {
                (Kind::Bytea, false, "declared BLOB")
            }
            _ => (Kind::Text, false, "no values to go by"),
        },
        ["integer"] if family(&col.declared) == Family::Decimal => {
            (Kind::Numeric, false, "declared NUMERIC/DECIMAL")
        }
        ["integer"] => (Kind::BigInt, false, "every value is an integer"),
        ["real"] if family(&col.declared) == Family::Decimal => {
            (Kind::Numeric, false, "declared NUMERIC/DECIMAL")
        }
        ["real"] => (Kind::Double, false, "every value is a real"),
        ["integer", "real"] if aff == Affinity::Real && s.wide_ints == 0 => (
            Kind::Double,
            false,
            "integers and reals, every integer exact as a double",
        ),
        ["integer", "real"] => (
            Kind::Numeric,
            false,
            "integers and reals: numeric keeps both exactly",
        ),
        ["text"] => (Kind::Text, false, "every value is text"),
        ["blob"] => (Kind::Bytea, false, "every value is a blob"),
        _ if s.binary_blobs > 0 => (
            Kind::Bytea,
            true,
            "mixed storage classes with binary blobs: bytea keeps every value's bytes; \
             numbers and text are stored as their text's bytes",
        ),
        _ => (
            Kind::Text,
            true,
            "mixed storage classes: text keeps every value; numbers are stored as their \
             decimal text and blobs as UTF-8 text",
        ),
    };
    (kind, lenient, format!("{why_not}{why} ({seen})"))
}

/// One column of a table as it is loaded.
#[derive(Debug, Clone)]
struct ColPlan {
    kind: Kind,
    /// Values of other storage classes are converted (a column of mixed classes).
    lenient: bool,
    /// The column's type was chosen from its declared type only, before any value was seen.
    optimistic: bool,
}

/// Why a value did not fit its column's type; the table is then inspected and loaded again.
#[derive(Debug)]
struct Misfit {
    column: String,
    what: String,
}

// ---------------------------------------------------------------------------------------------
// Values

#[derive(Debug, Clone, Copy)]
enum Val<'r> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'r [u8]),
    Blob(&'r [u8]),
}

/// A query stepped on this thread through the connection's raw SQLite handle.
///
/// sqlx hands rows from its worker thread one by one through a channel, copying every value;
/// at a million rows that hand-off costs more than the rest of the copy. Here the statement
/// runs directly on the connection, which the lock guard keeps from the worker meanwhile.
struct Scan<'c> {
    handle: sqlx::sqlite::LockedSqliteHandle<'c>,
    stmt: std::ptr::NonNull<libsqlite3_sys::sqlite3_stmt>,
    columns: usize,
}

impl<'c> Scan<'c> {
    async fn new(conn: &'c mut SqliteConnection, sql: &str) -> Result<Scan<'c>, CopyError> {
        let mut handle = conn.lock_handle().await?;
        let db = handle.as_raw_handle().as_ptr();
        let len = std::ffi::c_int::try_from(sql.len())
            .map_err(|_| CopyError::Failed("query too long".to_owned()))?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `db` is the open connection, held exclusively through `handle`; the SQL
        // pointer and length describe a live `&str`; `stmt` is written by SQLite.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_prepare_v2(
                db,
                sql.as_ptr().cast(),
                len,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        let Some(stmt) = std::ptr::NonNull::new(stmt).filter(|_| rc == libsqlite3_sys::SQLITE_OK)
        else {
            return Err(CopyError::Failed(format!(
                "reading the source: {}",
                errmsg(db)
            )));
        };
        // SAFETY: `stmt` was just prepared and is not finalized until drop.
        let columns = unsafe { libsqlite3_sys::sqlite3_column_count(stmt.as_ptr()) };
        Ok(Scan {
            handle,
            stmt,
            columns: usize::try_from(columns).unwrap_or(0),
        })
    }

    /// Steps to the next row; `false` at the end. Values of the previous row are gone after
    /// this, which the `&mut self` borrow enforces.
    fn next(&mut self) -> Result<bool, CopyError> {
        // SAFETY: the statement is live and only used through `self`.
        match unsafe { libsqlite3_sys::sqlite3_step(self.stmt.as_ptr()) } {
            libsqlite3_sys::SQLITE_ROW => Ok(true),
            libsqlite3_sys::SQLITE_DONE => Ok(false),
            _ => Err(CopyError::Failed(format!(
                "reading the source: {}",
                errmsg(self.handle.as_raw_handle().as_ptr())
            ))),
        }
    }

    /// Column `i` of the current row, as stored (no conversion between storage classes).
    fn value(&self, i: usize) -> Val<'_> {
        let Ok(col) = std::ffi::c_int::try_from(i) else {
            return Val::Null;
        };
        if i >= self.columns {
            return Val::Null;
        }
        let stmt = self.stmt.as_ptr();
        // SAFETY: the statement is on a row (callers read values only after `next` returned
        // true) and `col` is in range. The blob pointer stays valid until the next step or
        // finalize, both of which need `&mut self` and so end this borrow first; the length is
        // read after the pointer, as SQLite requires, and a NULL pointer means empty.
        unsafe {
            match libsqlite3_sys::sqlite3_column_type(stmt, col) {
                libsqlite3_sys::SQLITE_INTEGER => {
                    Val::Int(libsqlite3_sys::sqlite3_column_int64(stmt, col))
                }
                libsqlite3_sys::SQLITE_FLOAT => {
                    Val::Real(libsqlite3_sys::sqlite3_column_double(stmt, col))
                }
                class @ (libsqlite3_sys::SQLITE_TEXT | libsqlite3_sys::SQLITE_BLOB) => {
                    let ptr = libsqlite3_sys::sqlite3_column_blob(stmt, col).cast::<u8>();
                    let len = libsqlite3_sys::sqlite3_column_bytes(stmt, col);
                    let bytes = match usize::try_from(len) {
                        Ok(n) if n > 0 && !ptr.is_null() => std::slice::from_raw_parts(ptr, n),
                        _ => &[],
                    };
                    if class == libsqlite3_sys::SQLITE_TEXT {
                        Val::Text(bytes)
                    } else {
                        Val::Blob(bytes)
                    }
                }
                _ => Val::Null,
            }
        }
    }
}

impl Drop for Scan<'_> {
    fn drop(&mut self) {
        // SAFETY: finalized once, here; the handle is still held.
        unsafe {
            libsqlite3_sys::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

fn errmsg(db: *mut libsqlite3_sys::sqlite3) -> String {
    // SAFETY: `db` is an open connection; SQLite returns a NUL-terminated string it owns,
    // copied here before anything else can change it.
    unsafe {
        let msg = libsqlite3_sys::sqlite3_errmsg(db);
        if msg.is_null() {
            return "unknown SQLite error".to_owned();
        }
        std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned()
    }
}

/// Storage classes and the integer range only: what a load needs for its reasons and the
/// seconds-or-milliseconds check, without parsing any text.
fn count(s: &mut Stats, v: Val<'_>) {
    match v {
        Val::Null => s.nulls += 1,
        Val::Int(i) => {
            s.ints += 1;
            s.int_min = Some(s.int_min.map_or(i, |m| m.min(i)));
            s.int_max = Some(s.int_max.map_or(i, |m| m.max(i)));
        }
        Val::Real(_) => s.reals += 1,
        Val::Text(_) => s.texts += 1,
        Val::Blob(_) => s.blobs += 1,
    }
}

/// Everything the choice of a column's type needs to know about a value.
fn observe(s: &mut Stats, v: Val<'_>, check_text: (bool, bool, bool)) {
    match v {
        Val::Null => s.nulls += 1,
        Val::Int(i) => {
            s.ints += 1;
            s.int_min = Some(s.int_min.map_or(i, |m| m.min(i)));
            s.int_max = Some(s.int_max.map_or(i, |m| m.max(i)));
            if i != 0 && i != 1 {
                s.non_bool += 1;
            }
            if i.unsigned_abs() > 1 << 53 {
                s.wide_ints += 1;
            }
            if !(MIN_MS..=MAX_MS).contains(&i) {
                s.not_timestamp += 1;
            }
        }
        Val::Real(f) => {
            s.reals += 1;
            if !f.is_finite() {
                s.non_finite += 1;
            }
            s.not_timestamp += 1;
        }
        Val::Text(b) => {
            s.texts += 1;
            let (ts, date, js) = check_text;
            let text = std::str::from_utf8(b).ok();
            if ts && text.and_then(parse_timestamp).is_none() {
                s.not_timestamp += 1;
                if s.not_timestamp_example.is_none() {
                    s.not_timestamp_example = Some(String::from_utf8_lossy(b).into_owned());
                }
            }
            if date && text.and_then(parse_date).is_none() {
                s.not_date += 1;
            }
            if js && text.is_none_or(|t| !json_ok(t)) {
                s.not_json += 1;
                if s.not_json_example.is_none() {
                    s.not_json_example = Some(String::from_utf8_lossy(b).into_owned());
                }
            }
        }
        Val::Blob(b) => {
            s.blobs += 1;
            s.not_timestamp += 1;
            s.not_json += 1;
            if !clean_text(b) {
                s.binary_blobs += 1;
            }
        }
    }
}

/// UTF-8 without NUL bytes: what a PostgreSQL text value can hold.
fn clean_text(b: &[u8]) -> bool {
    !b.contains(&0) && std::str::from_utf8(b).is_ok()
}

/// Appends `b` to a COPY text field, escaping what the format needs.
fn escape_into(out: &mut Vec<u8>, b: &[u8]) {
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let rep: &[u8] = match c {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(rep);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A bytea value in COPY text: `\\x` then hex (the backslash escaped for COPY).
fn bytea_into(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b"\\\\x");
    out.reserve(b.len() * 2);
    for &c in b {
        out.push(HEX[usize::from(c >> 4)]);
        out.push(HEX[usize::from(c & 15)]);
    }
}

/// A double in the shortest text that reads back as the same value.
fn real_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f == f64::INFINITY {
        "Infinity".to_owned()
    } else if f == f64::NEG_INFINITY {
        "-Infinity".to_owned()
    } else {
        format!("{f}")
    }
}

/// A real as SQLite shows it as text (`3.0`, not `3`), but with every digit needed.
fn real_as_text(f: f64) -> String {
    let t = real_text(f);
    if f.is_finite() && !t.contains('.') {
        format!("{t}.0")
    } else {
        t
    }
}

/// Collects canonical values of one row, then hashes them in one call. Reused from row to row.
///
/// The hash is MurmurHash3 x64-128: the checksum guards against values lost or changed on the
/// way, not against an adversary, and SHA-256 here was a sixth of the copy's time.
struct RowHash {
    buf: Vec<u8>,
}

impl RowHash {
    fn new() -> Self {
        RowHash { buf: Vec::new() }
    }

    fn null(&mut self) {
        self.buf.push(0);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.buf.push(1);
        self.buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
        self.buf.extend_from_slice(b);
    }

    /// The row's hash; the buffer is emptied for the next row.
    fn finish(&mut self) -> u128 {
        let h = murmur3_128(&self.buf);
        self.buf.clear();
        h
    }
}

/// MurmurHash3 x64-128 with seed 0 (Austin Appleby's reference `MurmurHash3_x64_128`), as
/// `h2 << 64 | h1`.
fn murmur3_128(data: &[u8]) -> u128 {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    fn fmix(mut k: u64) -> u64 {
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(w)
    };
    let (mut h1, mut h2) = (0u64, 0u64);
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let k1 = word(&block[..8])
            .wrapping_mul(C1)
            .rotate_left(31)
            .wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        let k2 = word(&block[8..])
            .wrapping_mul(C2)
            .rotate_left(33)
            .wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    if tail.len() > 8 {
        h2 ^= word(&tail[8..])
            .wrapping_mul(C2)
            .rotate_left(33)
            .wrapping_mul(C1);
    }
    if !tail.is_empty() {
        h1 ^= word(&tail[..tail.len().min(8)])
            .wrapping_mul(C1)
            .rotate_left(31)
            .wrapping_mul(C2);
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (u128::from(h2) << 64) | u128::from(h1)
}

/// The order-independent checksum of a table: row count and the sum of row hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Checksum {
    rows: u64,
    sum: u128,
}

impl Checksum {
    fn add(&mut self, row: u128) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(row);
    }

    fn hex(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

/// Inexact values of a table being loaded, grouped by column and reason.
#[derive(Default)]
struct InexactLog {
    groups: BTreeMap<(usize, String), (u64, Vec<InexactValue>)>,
}

impl InexactLog {
    fn push(
        &mut self,
        col: usize,
        reason: &str,
        row: impl FnOnce() -> Json,
        value: String,
        stored: String,
    ) {
        let entry = self
            .groups
            .entry((col, reason.to_owned()))
            .or_insert_with(|| (0, Vec::new()));
        entry.0 += 1;
        if entry.1.len() < MAX_INEXACT_VALUES {
            entry.1.push(InexactValue {
                row: row(),
                value: shown(&value),
                stored: shown(&stored),
            });
        }
    }
}

fn shown(text: &str) -> String {
    if text.chars().count() <= MAX_SHOWN {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_SHOWN).collect();
    format!("{cut}... ({} bytes)", text.len())
}

fn val_shown(v: Val<'_>) -> String {
    match v {
        Val::Null => "NULL".to_owned(),
        Val::Int(i) => i.to_string(),
        Val::Real(f) => real_as_text(f),
        Val::Text(b) => String::from_utf8_lossy(b).into_owned(),
        Val::Blob(b) => {
            let mut s = String::from("x'");
            for c in b.iter().take(MAX_SHOWN) {
                let _ = write!(s, "{c:02x}");
            }
            if b.len() > MAX_SHOWN {
                let _ = write!(s, "...({} bytes)", b.len());
            }
            s.push('\'');
            s
        }
    }
}

fn val_json(v: Val<'_>) -> Json {
    match v {
        Val::Null => Json::Null,
        Val::Int(i) => json!(i),
        Val::Real(f) => json!(f),
        other => json!(val_shown(other)),
    }
}

/// Text for a text column; lossy for invalid UTF-8 and NUL bytes, which PostgreSQL text
/// cannot hold.
fn text_value(b: &[u8]) -> (std::borrow::Cow<'_, [u8]>, Option<&'static str>) {
    match std::str::from_utf8(b) {
        Ok(_) if !b.contains(&0) => (std::borrow::Cow::Borrowed(b), None),
        Ok(s) => (
            std::borrow::Cow::Owned(s.replace('\0', "").into_bytes()),
            Some("text with NUL bytes: PostgreSQL text cannot hold them, they were removed"),
        ),
        Err(_) => (
            std::borrow::Cow::Owned(String::from_utf8_lossy(b).replace('\0', "").into_bytes()),
            Some("text that is not valid UTF-8: invalid bytes were replaced by U+FFFD"),
        ),
    }
}

/// Encodes one value as a COPY field and feeds its canonical form to the row hash.
/// `inexact` receives a reason and the stored form when the value was not kept exactly.
fn encode(
    out: &mut Vec<u8>,
    hash: &mut RowHash,
    plan: &ColPlan,
    v: Val<'_>,
    scratch: &mut Vec<u8>,
) -> Result<Option<(&'static str, String)>, String> {
    let misfit = |what: &str| -> Result<Option<(&'static str, String)>, String> {
        Err(format!("{what} in a {} column", plan.kind.name()))
    };
    if let Val::Null = v {
        out.extend_from_slice(b"\\N");
        hash.null();
        return Ok(None);
    }
    match plan.kind {
        Kind::Identity | Kind::BigInt => match v {
            Val::Int(i) => {
                push_int(out, i);
                hash.bytes(&i.to_le_bytes());
                Ok(None)
            }
            other => misfit(class_name(other)),
        },
        Kind::Double => {
            let f = match v {
                Val::Real(f) => f,
                Val::Int(i) if i.unsigned_abs() <= 1 << 53 => i as f64,
                other => return misfit(class_name(other)),
            };
            write_real(out, f);
            hash.bytes(&f.to_bits().to_le_bytes());
            Ok(None)
        }
        Kind::Numeric => {
            let t = match v {
                Val::Int(i) => i.to_string(),
                Val::Real(f) if !f.is_nan() => real_text(f),
                other => return misfit(class_name(other)),
            };
            out.extend_from_slice(t.as_bytes());
            hash.bytes(norm_decimal(&t).unwrap_or(t).as_bytes());
            Ok(None)
        }
        Kind::Bool => match v {
            Val::Int(i @ (0 | 1)) => {
                out.push(if i == 1 { b't' } else { b'f' });
                hash.bytes(&[i as u8]);
                Ok(None)
            }
            Val::Int(_) => misfit("an integer other than 0 or 1"),
            other => misfit(class_name(other)),
        },
        Kind::Text => {
            let (bytes, note): (std::borrow::Cow<'_, [u8]>, Option<&'static str>) = match v {
                Val::Text(b) => text_value(b),
                Val::Int(i) if plan.lenient => (
                    std::borrow::Cow::Owned(i.to_string().into_bytes()),
                    Some("integer stored as text"),
                ),
                Val::Real(f) if plan.lenient => (
                    std::borrow::Cow::Owned(real_as_text(f).into_bytes()),
                    Some("real stored as text"),
                ),
                Val::Blob(b) if plan.lenient && clean_text(b) => (
                    std::borrow::Cow::Borrowed(b),
                    Some("blob stored as UTF-8 text"),
                ),
                other => return misfit(class_name(other)),
            };
            escape_into(out, &bytes);
            hash.bytes(&bytes);
            Ok(note.map(|n| (n, String::from_utf8_lossy(&bytes).into_owned())))
        }
        Kind::Bytea => {
            let (bytes, note): (std::borrow::Cow<'_, [u8]>, Option<&'static str>) = match v {
                Val::Blob(b) => (std::borrow::Cow::Borrowed(b), None),
                Val::Text(b) if plan.lenient => (
                    std::borrow::Cow::Borrowed(b),
                    Some("text stored as its bytes"),
                ),
                Val::Int(i) if plan.lenient => (
                    std::borrow::Cow::Owned(i.to_string().into_bytes()),
                    Some("integer stored as the bytes of its decimal text"),
                ),
                Val::Real(f) if plan.lenient => (
                    std::borrow::Cow::Owned(real_as_text(f).into_bytes()),
                    Some("real stored as the bytes of its decimal text"),
                ),
                other => return misfit(class_name(other)),
            };
            bytea_into(out, &bytes);
            hash.bytes(&bytes);
            Ok(note.map(|n| (n, val_shown(Val::Blob(&bytes)))))
        }
        Kind::Timestamptz => {
            let micros = match v {
                Val::Int(ms) if (MIN_MS..=MAX_MS).contains(&ms) => ms * 1000,
                Val::Text(b) => match std::str::from_utf8(b).ok().and_then(parse_timestamp) {
                    Some(m) => m,
                    None => return misfit("text that is not an ISO 8601 timestamp"),
                },
                Val::Int(_) => return misfit("an integer out of the millisecond range"),
                other => return misfit(class_name(other)),
            };
            format_timestamp(out, micros);
            hash.bytes(&micros.to_le_bytes());
            Ok(None)
        }
        Kind::Date => {
            let days = match v {
                Val::Text(b) => match std::str::from_utf8(b).ok().and_then(parse_date) {
                    Some(d) => d,
                    None => return misfit("text that is not an ISO 8601 date"),
                },
                other => return misfit(class_name(other)),
            };
            format_date(out, days);
            hash.bytes(&i64::from(days).to_le_bytes());
            Ok(None)
        }
        Kind::Jsonb => {
            let text = match v {
                Val::Text(b) => match std::str::from_utf8(b) {
                    Ok(t) if json_ok(t) => std::borrow::Cow::Borrowed(t),
                    _ => return misfit("text that is not JSON"),
                },
                Val::Int(i) => std::borrow::Cow::Owned(i.to_string()),
                Val::Real(f) if f.is_finite() => std::borrow::Cow::Owned(real_text(f)),
                other => return misfit(class_name(other)),
            };
            escape_into(out, text.as_bytes());
            scratch.clear();
            canon_json_text(&text, scratch);
            hash.bytes(scratch);
            Ok(None)
        }
    }
}

fn class_name(v: Val<'_>) -> &'static str {
    match v {
        Val::Null => "NULL",
        Val::Int(_) => "an integer",
        Val::Real(_) => "a real",
        Val::Text(_) => "text",
        Val::Blob(_) => "a blob",
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and canonical forms

fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at + n)?;
    let mut v = 0u32;
    for &c in part {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Days since 1970-01-01 of exactly `YYYY-MM-DD` (years 1 to 9999).
fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 {
        return None;
    }
    date_at(b).map(|(d, _)| d)
}

fn date_at(b: &[u8]) -> Option<(i32, usize)> {
    let y = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let m = digits(b, 5, 2)?;
    let d = digits(b, 8, 2)?;
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if y == 0 || d == 0 || d > month_days {
        return None;
    }
    Some((
        days_from_civil(i64::from(y), i64::from(m), i64::from(d)) as i32,
        10,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of [`civil`]).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since 1970 (UTC) of an ISO 8601 timestamp: `YYYY-MM-DD`, optionally
/// `[T ]HH:MM[:SS[.fraction]]`, optionally `Z` or `±HH[[:]MM]`; no zone means UTC. A fraction
/// finer than microseconds must be zeros: the value has to be kept exactly.
fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (days, mut i) = date_at(b)?;
    let mut micros_of_day: i64 = 0;
    if i < b.len() && (b[i] == b'T' || b[i] == b' ') {
        i += 1;
        let h = digits(b, i, 2)?;
        if b.get(i + 2) != Some(&b':') {
            return None;
        }
        let mi = digits(b, i + 3, 2)?;
        i += 5;
        let mut sec = 0;
        let mut frac: i64 = 0;
        if b.get(i) == Some(&b':') {
            sec = digits(b, i + 1, 2)?;
            i += 3;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    let d = i64::from(b[i] - b'0');
                    let pos = i - start;
                    if pos < 6 {
                        frac += d * 10i64.pow(5 - pos as u32);
                    } else if d != 0 {
                        return None;
                    }
                    i += 1;
                }
                if i == start {
                    return None;
                }
            }
        }
        if h > 23 || mi > 59 || sec > 59 {
            return None;
        }
        micros_of_day =
            (i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec)) * 1_000_000 + frac;
    }
    let mut offset_secs: i64 = 0;
    if i < b.len() {
        match b[i] {
            b'Z' | b'z' => i += 1,
            sign @ (b'+' | b'-') => {
                let oh = digits(b, i + 1, 2)?;
                i += 3;
                let mut om = 0;
                if b.get(i) == Some(&b':') {
                    om = digits(b, i + 1, 2)?;
                    i += 3;
                } else if let Some(m) = digits(b, i, 2) {
                    om = m;
                    i += 2;
                }
                if oh > 15 || om > 59 {
                    return None;
                }
                offset_secs = i64::from(oh * 3600 + om * 60);
                if sign == b'-' {
                    offset_secs = -offset_secs;
                }
            }
            _ => return None,
        }
    }
    if i != b.len() {
        return None;
    }
    Some(i64::from(days) * 86_400_000_000 + micros_of_day - offset_secs * 1_000_000)
}

/// Year, month and day of a day count since 1970-01-01 (proleptic Gregorian calendar; the
/// algorithm of Howard Hinnant's "chrono-Compatible Low-Level Date Algorithms").
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// An integer in decimal, without the formatting machinery.
fn push_int(out: &mut Vec<u8>, i: i64) {
    if i < 0 {
        out.push(b'-');
    }
    let mut v = i.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut n = digits.len();
    loop {
        n -= 1;
        digits[n] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[n..]);
}

fn push_digits(out: &mut Vec<u8>, v: i64, width: u32) {
    let mut div = 10i64.pow(width - 1);
    while div > 0 {
        out.push(b'0' + ((v / div) % 10) as u8);
        div /= 10;
    }
}

/// `YYYY-MM-DD`; years outside 1 to 9999 never come from the parsers here.
fn push_date(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil(days);
    if !(0..=9999).contains(&y) {
        let _ = write!(out, "{y}");
    } else {
        push_digits(out, y, 4);
    }
    out.push(b'-');
    push_digits(out, m, 2);
    out.push(b'-');
    push_digits(out, d, 2);
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00`, written by hand: chrono's formatter was a tenth of the
/// time of a copy of timestamp-heavy tables.
fn format_timestamp(out: &mut Vec<u8>, micros: i64) {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    push_date(out, days);
    out.push(b' ');
    push_digits(out, rest / 3_600_000_000, 2);
    out.push(b':');
    push_digits(out, rest / 60_000_000 % 60, 2);
    out.push(b':');
    push_digits(out, rest / 1_000_000 % 60, 2);
    out.push(b'.');
    push_digits(out, rest % 1_000_000, 6);
    out.extend_from_slice(b"+00");
}

fn format_date(out: &mut Vec<u8>, days: i32) {
    push_date(out, i64::from(days));
}

/// A double in COPY text, without an intermediate string.
fn write_real(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        let _ = write!(out, "{f}");
    } else {
        out.extend_from_slice(real_text(f).as_bytes());
    }
}

/// A decimal without insignificant zeros: `-0012.3400` is `-12.34`, `-0.0` is `0`.
fn norm_decimal(s: &str) -> Option<String> {
    match s {
        "Infinity" | "-Infinity" | "NaN" => return Some(s.to_owned()),
        _ => {}
    }
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if int == "0" && frac.is_empty() {
        return Some("0".to_owned());
    }
    let sign = if neg { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// Whether text is JSON that jsonb keeps as it is: no duplicate keys (jsonb keeps the last)
/// and no NUL characters (jsonb refuses them).
fn json_ok(text: &str) -> bool {
    serde_json::from_str::<JsonCheck>(text).is_ok()
}

struct JsonCheck;

impl<'de> serde::Deserialize<'de> for JsonCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonCheckVisitor)
    }
}

struct JsonCheckVisitor;

impl<'de> serde::de::Visitor<'de> for JsonCheckVisitor {
    type Value = JsonCheck;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_i64<E>(self, _: i64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_u64<E>(self, _: u64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_f64<E>(self, _: f64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_unit<E>(self) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<JsonCheck, E> {
        if s.contains('\0') {
            return Err(E::custom("NUL character"));
        }
        Ok(JsonCheck)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<JsonCheck, A::Error> {
        while seq.next_element::<JsonCheck>()?.is_some() {}
        Ok(JsonCheck)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonCheck, A::Error> {
        let mut keys = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if k.contains('\0') {
                return Err(serde::de::Error::custom("NUL character"));
            }
            if !keys.insert(k) {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            map.next_value::<JsonCheck>()?;
        }
        Ok(JsonCheck)
    }
}

/// JSON in a canonical form: object keys sorted, numbers by value.
fn canon_json_text(text: &str, out: &mut Vec<u8>) {
    match serde_json::from_str::<Json>(text) {
        Ok(v) => canon_json(&v, out),
        // Not reached for values that passed `json_ok`; the text itself is then the form.
        Err(_) => out.extend_from_slice(text.as_bytes()),
    }
}

fn canon_json(v: &Json, out: &mut Vec<u8>) {
    match v {
        Json::Null => out.push(b'n'),
        Json::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Json::Number(n) => {
            out.push(b'd');
            match n.as_f64() {
                Some(f) => out.extend_from_slice(&f.to_bits().to_le_bytes()),
                None => out.extend_from_slice(n.to_string().as_bytes()),
            }
        }
        Json::String(s) => {
            out.push(b's');
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Json::Array(items) => {
            out.push(b'[');
            for item in items {
                canon_json(item, out);
            }
            out.push(b']');
        }
        Json::Object(map) => {
            out.push(b'{');
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for k in keys {
                out.extend_from_slice(&(k.len() as u64).to_le_bytes());
                out.extend_from_slice(k.as_bytes());
                if let Some(item) = map.get(k) {
                    canon_json(item, out);
                }
            }
            out.push(b'}');
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Defaults

/// The PostgreSQL default for a SQLite default expression, `Ok(None)` for none, `Err` with the
/// reason when it cannot be carried over.
fn translate_default(expr: &str, kind: Kind) -> Result<Option<String>, String> {
    let mut e = expr.trim();
    while e.starts_with('(') && e.ends_with(')') && e.len() >= 2 {
        e = e[1..e.len() - 1].trim();
    }
    let upper = e.to_ascii_uppercase();
    let unsupported = || {
        Err(format!(
            "`{expr}` has no translation for a {} column",
            kind.name()
        ))
    };
    match upper.as_str() {
        "NULL" => return Ok(None),
        "CURRENT_TIMESTAMP" => {
            return match kind {
                Kind::Timestamptz => Ok(Some("CURRENT_TIMESTAMP".to_owned())),
                Kind::Text => Ok(Some(
                    "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
                        .to_owned(),
                )),
                _ => unsupported(),
            };
        }
        "CURRENT_DATE" => {
            return match kind {
                Kind::Date => Ok(Some("CURRENT_DATE".to_owned())),
                Kind::Timestamptz => Ok(Some(
                    "date_trunc('day', CURRENT_TIMESTAMP AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
                        .to_owned(),
                )),
                Kind::Text => Ok(Some(
                    "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'YYYY-MM-DD')".to_owned(),
                )),
                _ => unsupported(),
            };
        }
        "CURRENT_TIME" => {
            return match kind {
                Kind::Text => Ok(Some(
                    "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'HH24:MI:SS')".to_owned(),
                )),
                _ => unsupported(),
            };
        }
        "TRUE" | "FALSE" => {
            let one = upper == "TRUE";
            return match kind {
                Kind::Bool => Ok(Some(upper.to_lowercase())),
                Kind::BigInt | Kind::Double | Kind::Numeric | Kind::Jsonb => {
                    Ok(Some(if one { "1" } else { "0" }.to_owned()))
                }
                _ => unsupported(),
            };
        }
        _ => {}
    }
    if let Some(n) = number_literal(e) {
        return match kind {
            Kind::BigInt | Kind::Identity if n.parse::<i64>().is_ok() => Ok(Some(n)),
            Kind::Double | Kind::Numeric => Ok(Some(n)),
            Kind::Bool if n == "0" || n == "1" => {
                Ok(Some(if n == "1" { "true" } else { "false" }.to_owned()))
            }
            Kind::Text => Ok(Some(ql(&n))),
            Kind::Jsonb => Ok(Some(format!("{}::jsonb", ql(&n)))),
            Kind::Timestamptz => match n.parse::<i64>() {
                Ok(ms) if (MIN_MS..=MAX_MS).contains(&ms) => {
                    let mut out = Vec::new();
                    format_timestamp(&mut out, ms * 1000);
                    Ok(Some(ql(&String::from_utf8_lossy(&out))))
                }
                _ => unsupported(),
            },
            _ => unsupported(),
        };
    }
    if (e.starts_with("X'") || e.starts_with("x'")) && e.ends_with('\'') && e.len() >= 3 {
        let hex = &e[2..e.len() - 1];
        return match kind {
            Kind::Bytea
                if hex.bytes().all(|c| c.is_ascii_hexdigit()) && hex.len().is_multiple_of(2) =>
            {
                Ok(Some(format!("'\\x{}'::bytea", hex.to_ascii_lowercase())))
            }
            _ => unsupported(),
        };
    }
    if let Some(s) = string_literal(e) {
        return match kind {
            Kind::Text => Ok(Some(ql(&s))),
            Kind::Bytea => Ok(Some(format!("'\\x{}'::bytea", hex::encode(s.as_bytes())))),
            Kind::Jsonb if json_ok(&s) => Ok(Some(format!("{}::jsonb", ql(&s)))),
            Kind::Timestamptz => match parse_timestamp(&s) {
                Some(m) => {
                    let mut out = Vec::new();
                    format_timestamp(&mut out, m);
                    Ok(Some(ql(&String::from_utf8_lossy(&out))))
                }
                None => unsupported(),
            },
            Kind::Date if parse_date(&s).is_some() => Ok(Some(ql(&s))),
            Kind::BigInt if s.trim().parse::<i64>().is_ok() => Ok(Some(s.trim().to_owned())),
            Kind::Double | Kind::Numeric if number_literal(s.trim()).is_some() => {
                Ok(Some(s.trim().to_owned()))
            }
            Kind::Bool => match s.to_ascii_lowercase().as_str() {
                "0" | "false" => Ok(Some("false".to_owned())),
                "1" | "true" => Ok(Some("true".to_owned())),
                _ => unsupported(),
            },
            _ => unsupported(),
        };
    }
    Err(format!(
        "`{expr}` is an expression runbook does not translate"
    ))
}

/// A numeric literal, normalised for PostgreSQL (`+1` is `1`, `.5` is `0.5`).
fn number_literal(e: &str) -> Option<String> {
    let (sign, body) = match e.as_bytes().first() {
        Some(b'-') => ("-", e[1..].trim_start()),
        Some(b'+') => ("", e[1..].trim_start()),
        _ => ("", e),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(p) => (&body[..p], Some(&body[p + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let ok_digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !ok_digits(int) || !ok_digits(frac) {
        return None;
    }
    if let Some(x) = exp {
        let x = x.strip_prefix(['+', '-']).unwrap_or(x);
        if x.is_empty() || !ok_digits(x) {
            return None;
        }
    }
    let int = if int.is_empty() { "0" } else { int };
    let mut out = format!("{sign}{int}");
    if mantissa.contains('.') {
        out.push('.');
        out.push_str(if frac.is_empty() { "0" } else { frac });
    }
    if let Some(p) = body.find(['e', 'E']) {
        out.push_str(&body[p..]);
    }
    Some(out)
}

fn string_literal(e: &str) -> Option<String> {
    let inner = e.strip_prefix('\'')?.strip_suffix('\'')?;
    // A quote inside must be doubled; anything else means this is not one literal.
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Names

/// Allocates PostgreSQL names for indexes and constraints, which share one namespace per
/// schema, within the 63-byte limit.
#[derive(Default)]
struct Names {
    used: HashSet<String>,
}

impl Names {
    fn take(&mut self, wanted: &str) -> String {
        let base = truncate(wanted, MAX_IDENT);
        if self.used.insert(base.clone()) {
            return base;
        }
        for n in 1.. {
            let suffix = format!("_{n}");
            let candidate = format!("{}{suffix}", truncate(wanted, MAX_IDENT - suffix.len()));
            if self.used.insert(candidate.clone()) {
                return candidate;
            }
        }
        base
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

// ---------------------------------------------------------------------------------------------
// The copy

/// A table's plan for this run.
struct Planned<'a> {
    src: &'a SrcTable,
    cols: Vec<ColPlan>,
    /// Stats of a full inspection, when one was made.
    inspected: Option<Vec<Stats>>,
}

/// What one load attempt produced.
struct Loaded {
    checksum: Checksum,
    stats: Vec<Stats>,
    inexact: InexactLog,
    decisions: Vec<Decision>,
    /// Seconds spent streaming rows, building keys and indexes, verifying.
    phases: [f64; 3],
}

enum Attempt {
    Done(Loaded),
    Misfit(Misfit),
}

/// A recorded row of the progress table.
#[derive(Debug, Clone)]
struct Recorded {
    source_rows: i64,
    checksum: String,
    status: String,
}

/// Copies the SQLite database into PostgreSQL. Per-table failures are in the report (the
/// caller fails the step on them); errors that stop everything are `Err`.
pub async fn copy(
    pg: &mut PgConnection,
    req: &Request,
    hooks: &Hooks<'_>,
) -> Result<Report, CopyError> {
    let started = Instant::now();
    let mut src = open_source(&req.source).await?;
    let (all_tables, mut decisions) = read_schema(&mut src).await?;
    let selected = select_tables(&all_tables, req.tables.as_deref())?;
    if selected.iter().any(|t| t.name == PROGRESS_TABLE) {
        return Err(CopyError::Failed(format!(
            "the source has a table named `{PROGRESS_TABLE}`, which runbook uses in the target \
             to record progress; leave it out with `tables:`"
        )));
    }
    for t in &selected {
        let long = std::iter::once(&t.name)
            .chain(t.columns.iter().map(|c| &c.name))
            .find(|n| n.len() > MAX_IDENT);
        if let Some(n) = long {
            return Err(CopyError::Failed(format!(
                "`{n}` (table `{}`) is longer than PostgreSQL's 63-byte limit for names",
                t.name
            )));
        }
    }
    if selected.is_empty() {
        hooks.note("the source has no tables to copy");
    }
    setup_session(pg).await?;
    let result = copy_tables(pg, &mut src, req, hooks, &selected, &mut decisions).await;
    // The session's settings go back to what the connection had, for the steps after this one.
    let _ = sqlx::raw_sql(
        "RESET TimeZone; RESET DateStyle; RESET extra_float_digits; RESET bytea_output",
    )
    .execute(&mut *pg)
    .await;
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

fn per_second(rows: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        (rows as f64 / seconds).round()
    } else {
        0.0
    }
}

fn select_tables<'a>(
    all: &'a [SrcTable],
    wanted: Option<&[String]>,
) -> Result<Vec<&'a SrcTable>, CopyError> {
    let Some(wanted) = wanted else {
        return Ok(all.iter().collect());
    };
    let mut out = Vec::new();
    for name in wanted {
        match all.iter().find(|t| &t.name == name) {
            Some(t) => out.push(t),
            None => {
                let hint =
                    crate::diagnostic::did_you_mean(name, all.iter().map(|t| t.name.as_str()))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                return Err(CopyError::Failed(format!(
                    "the source has no table `{name}`{hint}"
                )));
            }
        }
    }
    Ok(out)
}

async fn setup_session(pg: &mut PgConnection) -> Result<(), CopyError> {
    let version: String = sqlx::query_scalar("SHOW server_version_num")
        .fetch_one(&mut *pg)
        .await?;
    if version.parse::<u32>().unwrap_or(0) < 100_000 {
        return Err(CopyError::Failed(format!(
            "the target runs PostgreSQL {version}; identity columns need 10 or later"
        )));
    }
    // Values are written and read back in these formats: timestamps in UTC and ISO form,
    // floats in their shortest exact form, bytea in hex.
    sqlx::raw_sql(
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 1; \
         SET bytea_output = 'hex'",
    )
    .execute(&mut *pg)
    .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (\
           table_name text PRIMARY KEY, \
           source text NOT NULL, \
           source_rows bigint NOT NULL, \
           checksum text NOT NULL, \
           status text NOT NULL, \
           error text, \
           updated_at timestamptz NOT NULL DEFAULT now())"
    )))
    .execute(&mut *pg)
    .await?;
    Ok(())
}

async fn recorded(pg: &mut PgConnection) -> Result<HashMap<String, Recorded>, CopyError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT table_name, source_rows, checksum, status FROM {PROGRESS_TABLE}"
    )))
    .fetch_all(&mut *pg)
    .await?;
    let mut out = HashMap::new();
    for r in rows {
        out.insert(
            r.try_get::<String, _>(0)?,
            Recorded {
                source_rows: r.try_get(1)?,
                checksum: r.try_get(2)?,
                status: r.try_get(3)?,
            },
        );
    }
    Ok(out)
}

async fn target_exists(pg: &mut PgConnection, table: &str) -> Result<bool, CopyError> {
    Ok(sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(qi(table))
        .fetch_one(&mut *pg)
        .await?)
}

async fn target_count(pg: &mut PgConnection, table: &str) -> Result<i64, CopyError> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        qi(table)
    )))
    .fetch_one(&mut *pg)
    .await?)
}

async fn copy_tables(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    req: &Request,
    hooks: &Hooks<'_>,
    selected: &[&SrcTable],
    decisions: &mut Vec<Decision>,
) -> Result<(Vec<TableOutcome>, Vec<Inexact>), CopyError> {
    let source_name = req.source.display().to_string();
    if req.replace && !selected.is_empty() {
        let names: Vec<String> = selected.iter().map(|t| qi(&t.name)).collect();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            names.join(", ")
        )))
        .execute(&mut *pg)
        .await
        .map_err(|e| {
            CopyError::Failed(format!(
                "`replace: true` could not drop the existing tables: {}",
                describe(&e)
            ))
        })?;
        let list: Vec<String> = selected.iter().map(|t| t.name.clone()).collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {PROGRESS_TABLE} WHERE table_name = ANY($1)"
        )))
        .bind(list)
        .execute(&mut *pg)
        .await?;
    }
    let record = recorded(pg).await?;
    let mut names = Names::default();
    let mut outcomes = Vec::new();
    let mut inexact = Vec::new();
    for t in selected {
        if hooks.cancelled() {
            return Err(CopyError::Interrupted);
        }
        let began = Instant::now();
        let result = copy_table(
            pg,
            src,
            hooks,
            t,
            record.get(&t.name),
            &source_name,
            &mut names,
        )
        .await;
        let seconds = began.elapsed().as_secs_f64();
        match result {
            Ok(TableResult::Copied(loaded)) => {
                let rows = loaded.checksum.rows;
                let [load, keys, verify] = loaded.phases;
                hooks.note(&format!(
                    "`{}`: {rows} rows in {seconds:.1}s ({} rows/s; rows {load:.1}s, keys and \
                     indexes {keys:.1}s, verification {verify:.1}s), checksum verified",
                    t.name,
                    per_second(rows, seconds)
                ));
                for ((col, reason), (count, values)) in loaded.inexact.groups {
                    inexact.push(Inexact {
                        table: t.name.clone(),
                        column: t.columns[col].name.clone(),
                        reason,
                        count,
                        values,
                    });
                }
                decisions.extend(loaded.decisions);
                outcomes.push(TableOutcome {
                    table: t.name.clone(),
                    status: "copied".to_owned(),
                    rows,
                    seconds,
                    rows_per_second: per_second(rows, seconds),
                    checksum: Some(loaded.checksum.hex()),
                    error: None,
                });
            }
            Ok(TableResult::Skipped(sum)) => {
                hooks.note(&format!(
                    "`{}`: skipped, copied by an earlier run and the source is unchanged ({} rows)",
                    t.name, sum.rows
                ));
                outcomes.push(TableOutcome {
                    table: t.name.clone(),
                    status: "skipped".to_owned(),
                    rows: sum.rows,
                    seconds,
                    rows_per_second: 0.0,
                    checksum: Some(sum.hex()),
                    error: None,
                });
            }
            Err(CopyError::Interrupted) => return Err(CopyError::Interrupted),
            Err(CopyError::Failed(msg)) => {
                hooks.note(&format!("`{}`: failed: {msg}", t.name));
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {PROGRESS_TABLE} (table_name, source, source_rows, checksum, status, error) \
                     VALUES ($1, $2, 0, '', 'failed', $3) \
                     ON CONFLICT (table_name) DO UPDATE SET status = 'failed', error = $3, \
                     source = $2, updated_at = now()"
                )))
                .bind(&t.name)
                .bind(&source_name)
                .bind(&msg)
                .execute(&mut *pg)
                .await;
                outcomes.push(TableOutcome {
                    table: t.name.clone(),
                    status: "failed".to_owned(),
                    rows: 0,
                    seconds,
                    rows_per_second: 0.0,
                    checksum: None,
                    error: Some(msg),
                });
            }
        }
    }
    if outcomes.iter().all(|o| o.status != "failed") {
        for t in selected {
            add_foreign_keys(pg, t, decisions).await?;
        }
    } else if selected.iter().any(|t| !t.fks.is_empty()) {
        hooks.note("foreign keys are added once every table is copied; run the step again after fixing the failed tables");
    }
    Ok((outcomes, inexact))
}

enum TableResult {
    Copied(Loaded),
    Skipped(Checksum),
}

#[allow(clippy::too_many_arguments)]
async fn copy_table(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    hooks: &Hooks<'_>,
    t: &SrcTable,
    recorded: Option<&Recorded>,
    source_name: &str,
    names: &mut Names,
) -> Result<TableResult, CopyError> {
    let exists = target_exists(pg, &t.name).await?;
    let mut plan = plan_table(src, hooks, t).await?;
    if exists {
        match recorded {
            Some(r) if r.status == "done" => {
                let sum = source_checksum(src, hooks, &mut plan).await?;
                let count = target_count(pg, &t.name).await?;
                let unchanged =
                    i64::try_from(sum.rows).ok() == Some(r.source_rows) && sum.hex() == r.checksum;
                if unchanged && count == r.source_rows {
                    reserve_names(t, names);
                    return Ok(TableResult::Skipped(sum));
                }
                if count != r.source_rows {
                    return Err(CopyError::Failed(format!(
                        "`{}` was copied by an earlier run ({} rows) but has {count} rows in the \
                         target now; runbook does not overwrite changes made there: set \
                         `replace: true` to copy it again",
                        t.name, r.source_rows
                    )));
                }
                hooks.note(&format!(
                    "`{}`: the source changed since it was copied; copying it again",
                    t.name
                ));
                drop_table(pg, &t.name).await?;
            }
            Some(_) => {
                hooks.note(&format!(
                    "`{}`: an earlier copy did not finish; loading it again",
                    t.name
                ));
                drop_table(pg, &t.name).await?;
            }
            None => {
                let count = target_count(pg, &t.name).await?;
                let what = if count == 0 {
                    "exists (empty)".to_owned()
                } else {
                    format!("exists with {count} rows")
                };
                return Err(CopyError::Failed(format!(
                    "table `{}` {what} in the target and was not made by an earlier copy; \
                     copy creates its own tables: drop it, or set `replace: true` to drop it",
                    t.name
                )));
            }
        }
    }
    for round in 0..2 {
        match load_table(pg, src, hooks, t, &plan, source_name, names).await? {
            Attempt::Done(mut loaded) => {
                loaded
                    .decisions
                    .splice(0..0, column_decisions(t, &plan, &loaded.stats));
                return Ok(TableResult::Copied(loaded));
            }
            Attempt::Misfit(m) if round == 0 && plan.inspected.is_none() => {
                hooks.note(&format!(
                    "`{}`: column `{}` has {}; inspecting every value to choose its types",
                    t.name, m.column, m.what
                ));
                let stats = inspect(src, hooks, t).await?;
                plan = plan_from_stats(t, stats);
            }
            Attempt::Misfit(m) => {
                return Err(CopyError::Failed(format!(
                    "column `{}` has {} after its values were inspected; the source changed \
                     during the copy?",
                    m.column, m.what
                )));
            }
        }
    }
    Err(CopyError::Failed(
        "the table could not be loaded".to_owned(),
    ))
}

/// Reserves the constraint and index names a skipped table already uses.
fn reserve_names(t: &SrcTable, names: &mut Names) {
    let _ = index_plans(t, names);
}

async fn drop_table(pg: &mut PgConnection, table: &str) -> Result<(), CopyError> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {}", qi(table))))
        .execute(&mut *pg)
        .await
        .map_err(|e| {
            CopyError::Failed(format!("cannot drop the earlier copy: {}", describe(&e)))
        })?;
    Ok(())
}

/// The table's column types from the declared types, or from its values when a declared type
/// does not decide.
async fn plan_table<'a>(
    src: &mut SqliteConnection,
    hooks: &Hooks<'_>,
    t: &'a SrcTable,
) -> Result<Planned<'a>, CopyError> {
    let declared: Vec<Option<Kind>> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| declared_kind(c, t.rowid_alias == Some(i)))
        .collect();
    if declared.iter().all(Option::is_some) {
        return Ok(Planned {
            src: t,
            cols: declared
                .into_iter()
                .map(|k| ColPlan {
                    kind: k.unwrap_or(Kind::Text),
                    lenient: false,
                    optimistic: true,
                })
                .collect(),
            inspected: None,
        });
    }
    let stats = inspect(src, hooks, t).await?;
    Ok(plan_from_stats(t, stats))
}

fn plan_from_stats(t: &SrcTable, stats: Vec<Stats>) -> Planned<'_> {
    let cols = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (kind, lenient, _) = decide(c, t.rowid_alias == Some(i), &stats[i]);
            ColPlan {
                kind,
                lenient,
                optimistic: false,
            }
        })
        .collect();
    Planned {
        src: t,
        cols,
        inspected: Some(stats),
    }
}

fn column_decisions(t: &SrcTable, plan: &Planned<'_>, seen: &[Stats]) -> Vec<Decision> {
    let mut out = Vec::new();
    for (i, c) in t.columns.iter().enumerate() {
        let p = &plan.cols[i];
        let stats = plan
            .inspected
            .as_ref()
            .and_then(|s| s.get(i))
            .or_else(|| seen.get(i));
        let reason = match (stats, p.optimistic) {
            (Some(s), false) => decide(c, t.rowid_alias == Some(i), s).2,
            (Some(s), true) => optimistic_reason(c, p.kind, s, t.rowid_alias == Some(i)),
            (None, _) => String::new(),
        };
        let mut to = p.kind.name().to_owned();
        if p.kind == Kind::Identity {
            to = "bigint GENERATED BY DEFAULT AS IDENTITY".to_owned();
        }
        let mut reason = reason;
        if c.generated {
            reason.push_str(
                "; a generated column: copied as stored values, its expression is not carried over",
            );
        }
        out.push(Decision {
            table: t.name.clone(),
            column: Some(c.name.clone()),
            what: "type".to_owned(),
            from: if c.declared.is_empty() {
                "(no declared type)".to_owned()
            } else {
                c.declared.clone()
            },
            to,
            reason,
        });
    }
    out
}

fn optimistic_reason(c: &SrcColumn, kind: Kind, s: &Stats, rowid: bool) -> String {
    let seen = s.describe();
    if rowid {
        let auto = "INTEGER PRIMARY KEY (the rowid): identity column";
        return format!("{auto} ({seen})");
    }
    match kind {
        Kind::Bool => format!("declared boolean and every value is 0 or 1 ({seen})"),
        Kind::Timestamptz => format!(
            "declared {}: every value is ISO 8601 text (read as UTC when it has no zone) or \
             integer milliseconds since 1970 ({seen})",
            c.declared
        ),
        Kind::Date => format!("every value is an ISO 8601 date ({seen})"),
        Kind::Jsonb => format!("every value parses as JSON ({seen})"),
        Kind::Double => format!("REAL affinity: 8-byte float, as SQLite stores it ({seen})"),
        Kind::Numeric => format!("declared NUMERIC/DECIMAL: exact numeric ({seen})"),
        Kind::BigInt => format!("INTEGER affinity: 8-byte integer, as SQLite stores it ({seen})"),
        Kind::Text => format!("TEXT affinity ({seen})"),
        Kind::Bytea => format!("declared BLOB ({seen})"),
        Kind::Identity => format!("identity ({seen})"),
    }
}

/// Reads every value of a table and records what is there.
async fn inspect(
    src: &mut SqliteConnection,
    hooks: &Hooks<'_>,
    t: &SrcTable,
) -> Result<Vec<Stats>, CopyError> {
    let mut stats = vec![Stats::default(); t.columns.len()];
    let checks: Vec<(bool, bool, bool)> = t
        .columns
        .iter()
        .map(|c| {
            let f = family(&c.declared);
            (
                matches!(f, Family::DateTime | Family::Date),
                f == Family::Date,
                f == Family::Json,
            )
        })
        .collect();
    let mut scan = Scan::new(src, &select_sql(t)).await?;
    let mut n: u64 = 0;
    while scan.next()? {
        for (i, s) in stats.iter_mut().enumerate() {
            observe(s, scan.value(i), checks[i]);
        }
        n += 1;
        if n.is_multiple_of(16_384) && hooks.cancelled() {
            return Err(CopyError::Interrupted);
        }
    }
    Ok(stats)
}

fn select_sql(t: &SrcTable) -> String {
    let cols: Vec<String> = t.columns.iter().map(|c| qi(&c.name)).collect();
    format!("SELECT {} FROM {}", cols.join(", "), qi(&t.name))
}

/// The source's checksum under the planned types, without loading anything (a re-run deciding
/// whether a table can be skipped). A misfit means the source changed: the checksum cannot
/// match then.
async fn source_checksum(
    src: &mut SqliteConnection,
    hooks: &Hooks<'_>,
    plan: &mut Planned<'_>,
) -> Result<Checksum, CopyError> {
    for round in 0..2 {
        let mut sum = Checksum::default();
        let mut sink = Vec::new();
        let mut scratch = Vec::new();
        let mut misfit = false;
        {
            let mut scan = Scan::new(src, &select_sql(plan.src)).await?;
            let mut h = RowHash::new();
            'rows: while scan.next()? {
                for (i, p) in plan.cols.iter().enumerate() {
                    sink.clear();
                    if encode(&mut sink, &mut h, p, scan.value(i), &mut scratch).is_err() {
                        misfit = true;
                        break 'rows;
                    }
                }
                sum.add(h.finish());
                if sum.rows.is_multiple_of(16_384) && hooks.cancelled() {
                    return Err(CopyError::Interrupted);
                }
            }
        }
        if !misfit {
            return Ok(sum);
        }
        if round == 0 {
            let stats = inspect(src, hooks, plan.src).await?;
            *plan = plan_from_stats(plan.src, stats);
        }
    }
    Ok(Checksum {
        rows: u64::MAX,
        sum: 0,
    })
}

/// Index and constraint statements of a table, and decisions for what is left out.
struct IndexPlan {
    sql: String,
    /// Tried in a savepoint; a failure is reported rather than failing the table.
    optional: bool,
    decision: Decision,
}

fn index_plans(t: &SrcTable, names: &mut Names) -> Vec<IndexPlan> {
    let mut out = Vec::new();
    let table = qi(&t.name);
    if !t.pk.is_empty() {
        let cols: Vec<String> = t.pk.iter().map(|&i| qi(&t.columns[i].name)).collect();
        let name = names.take(&format!("{}_pkey", t.name));
        out.push(IndexPlan {
            sql: format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} PRIMARY KEY ({})",
                qi(&name),
                cols.join(", ")
            ),
            optional: false,
            decision: Decision {
                table: t.name.clone(),
                column: None,
                what: "primary_key".to_owned(),
                from: format!("PRIMARY KEY ({})", cols.join(", ")),
                to: format!("PRIMARY KEY ({}) as {}", cols.join(", "), qi(&name)),
                reason: "added after the load".to_owned(),
            },
        });
    }
    // pragma_index_list lists the newest index first; oldest first keeps names stable.
    for ix in t.indexes.iter().rev() {
        if ix.origin == "pk" {
            continue;
        }
        let expression = ix.columns.iter().any(Option::is_none);
        if expression || ix.partial {
            let Some(sql) = &ix.sql else { continue };
            names.used.insert(ix.name.clone());
            out.push(IndexPlan {
                sql: sql.clone(),
                optional: true,
                decision: Decision {
                    table: t.name.clone(),
                    column: None,
                    what: if ix.unique { "unique" } else { "index" }.to_owned(),
                    from: sql.clone(),
                    to: "the same statement".to_owned(),
                    reason: if expression {
                        "an index on expressions: its SQL is run as written".to_owned()
                    } else {
                        "a partial index: its SQL is run as written".to_owned()
                    },
                },
            });
            continue;
        }
        let cols: Vec<(String, bool, String)> = ix.columns.iter().flatten().cloned().collect();
        let list: Vec<String> = cols
            .iter()
            .map(|(c, desc, _)| format!("{}{}", qi(c), if *desc { " DESC" } else { "" }))
            .collect();
        let collations: Vec<&str> = cols
            .iter()
            .map(|(_, _, coll)| coll.as_str())
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("BINARY"))
            .collect();
        let mut reason = "added after the load".to_owned();
        if !collations.is_empty() {
            reason = format!(
                "added after the load; collation {} is not carried over, so comparisons in \
                 this index are case- and byte-exact",
                collations.join(", ")
            );
        }
        let (sql, what, name) = if ix.origin == "u" {
            let plain: Vec<&str> = cols.iter().map(|(c, _, _)| c.as_str()).collect();
            let name = names.take(&format!("{}_{}_key", t.name, plain.join("_")));
            (
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {} UNIQUE ({})",
                    qi(&name),
                    list.join(", ")
                ),
                "unique",
                name,
            )
        } else {
            let name = names.take(&ix.name);
            (
                format!(
                    "CREATE {}INDEX {} ON {table} ({})",
                    if ix.unique { "UNIQUE " } else { "" },
                    qi(&name),
                    list.join(", ")
                ),
                if ix.unique { "unique" } else { "index" },
                name,
            )
        };
        out.push(IndexPlan {
            sql,
            optional: false,
            decision: Decision {
                table: t.name.clone(),
                column: None,
                what: what.to_owned(),
                from: ix
                    .sql
                    .clone()
                    .unwrap_or_else(|| format!("UNIQUE ({})", list.join(", "))),
                to: qi(&name),
                reason,
            },
        });
    }
    out
}

/// `CREATE TABLE` with types, NOT NULL and defaults; keys and indexes come after the load.
fn create_sql(t: &SrcTable, plan: &Planned<'_>, decisions: &mut Vec<Decision>) -> String {
    let mut cols = Vec::new();
    for (i, c) in t.columns.iter().enumerate() {
        let kind = plan.cols[i].kind;
        let mut def = format!("{} {}", qi(&c.name), kind.ddl());
        // The identity column is NOT NULL by definition; SQLite's rowid cannot be NULL either.
        if c.notnull && kind != Kind::Identity {
            def.push_str(" NOT NULL");
        }
        if let Some(d) = &c.default
            && kind != Kind::Identity
        {
            match translate_default(d, kind) {
                Ok(Some(pg)) => {
                    def.push_str(&format!(" DEFAULT {pg}"));
                    decisions.push(Decision {
                        table: t.name.clone(),
                        column: Some(c.name.clone()),
                        what: "default".to_owned(),
                        from: d.clone(),
                        to: pg,
                        reason: "translated".to_owned(),
                    });
                }
                Ok(None) => {}
                Err(why) => decisions.push(Decision {
                    table: t.name.clone(),
                    column: Some(c.name.clone()),
                    what: "default".to_owned(),
                    from: d.clone(),
                    to: "not carried over".to_owned(),
                    reason: why,
                }),
            }
        }
        cols.push(def);
    }
    if has_word(&t.sql, "CHECK") {
        decisions.push(Decision {
            table: t.name.clone(),
            column: None,
            what: "constraint".to_owned(),
            from: "CHECK".to_owned(),
            to: "not carried over".to_owned(),
            reason: "CHECK constraints are SQLite expressions; add them for PostgreSQL by hand"
                .to_owned(),
        });
    }
    format!("CREATE TABLE {} ({})", qi(&t.name), cols.join(", "))
}

/// One attempt at loading a table: everything in one transaction, committed only verified.
async fn load_table(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    hooks: &Hooks<'_>,
    t: &SrcTable,
    plan: &Planned<'_>,
    source_name: &str,
    names: &mut Names,
) -> Result<Attempt, CopyError> {
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        qi(&t.name)
    )))
    .fetch_one(&mut *src)
    .await?;
    sqlx::raw_sql("BEGIN").execute(&mut *pg).await?;
    let out = load_in_tx(pg, src, hooks, t, plan, source_name, names, total).await;
    match &out {
        Ok(Attempt::Done(_)) => {
            if let Err(e) = sqlx::raw_sql("COMMIT").execute(&mut *pg).await {
                return Err(CopyError::Failed(format!("commit: {}", describe(&e))));
            }
        }
        _ => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *pg).await;
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn load_in_tx(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    hooks: &Hooks<'_>,
    t: &SrcTable,
    plan: &Planned<'_>,
    source_name: &str,
    names: &mut Names,
    total: i64,
) -> Result<Attempt, CopyError> {
    let mut decisions = Vec::new();
    let create = create_sql(t, plan, &mut decisions);
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut *pg)
        .await
        .map_err(|e| CopyError::Failed(format!("create table: {}", describe(&e))))?;

    let col_list: Vec<String> = t.columns.iter().map(|c| qi(&c.name)).collect();
    let copy_sql = format!("COPY {} ({}) FROM STDIN", qi(&t.name), col_list.join(", "));
    let mut stats = vec![Stats::default(); t.columns.len()];
    let mut inexact = InexactLog::default();
    let mut sum = Checksum::default();
    let started = Instant::now();
    let mut last_detail = Instant::now();
    {
        let mut copy = pg.copy_in_raw(&copy_sql).await?;
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 64 * 1024);
        let mut scratch = Vec::new();
        let mut scan = Scan::new(src, &select_sql(t)).await?;
        let mut misfit = None;
        let mut h = RowHash::new();
        'rows: loop {
            match scan.next() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let _ = copy.abort("the source could not be read").await;
                    return Err(e);
                }
            }
            for (i, p) in plan.cols.iter().enumerate() {
                if i > 0 {
                    buf.push(b'\t');
                }
                let v = scan.value(i);
                if p.optimistic {
                    count(&mut stats[i], v);
                }
                match encode(&mut buf, &mut h, p, v, &mut scratch) {
                    Ok(None) => {}
                    Ok(Some((reason, stored))) => {
                        let n = sum.rows + 1;
                        inexact.push(i, reason, || row_key(t, &scan, n), val_shown(v), stored);
                    }
                    Err(what) => {
                        misfit = Some(Misfit {
                            column: t.columns[i].name.clone(),
                            what,
                        });
                        break 'rows;
                    }
                }
            }
            buf.push(b'\n');
            sum.add(h.finish());
            if buf.len() >= CHUNK {
                if hooks.cancelled() {
                    let _ = copy.abort("interrupted").await;
                    return Err(CopyError::Interrupted);
                }
                if let Err(e) = copy.send(buf.as_slice()).await {
                    return Err(e.into());
                }
                buf.clear();
                if last_detail.elapsed() >= Duration::from_millis(200) {
                    last_detail = Instant::now();
                    hooks.detail(&format!(
                        "`{}` {} of {total} rows, {} rows/s",
                        t.name,
                        sum.rows,
                        per_second(sum.rows, started.elapsed().as_secs_f64())
                    ));
                }
            }
        }
        drop(scan);
        if let Some(m) = misfit {
            let _ = copy.abort("a value did not fit its column").await;
            return Ok(Attempt::Misfit(m));
        }
        if !buf.is_empty() {
            copy.send(buf.as_slice()).await?;
        }
        let copied = copy
            .finish()
            .await
            .map_err(|e| CopyError::Failed(format!("COPY: {}", describe(&e))))?;
        if copied != sum.rows {
            return Err(CopyError::Failed(format!(
                "COPY stored {copied} rows of {}",
                sum.rows
            )));
        }
    }
    // Values the optimistic types accepted one by one, but not as a whole.
    for (i, p) in plan.cols.iter().enumerate() {
        if p.optimistic && p.kind == Kind::Timestamptz && stats[i].ints_look_like_seconds() {
            return Ok(Attempt::Misfit(Misfit {
                column: t.columns[i].name.clone(),
                what: "integers that look like seconds since 1970, not milliseconds".to_owned(),
            }));
        }
    }
    let load_time = started.elapsed().as_secs_f64();
    let keys_started = Instant::now();
    hooks.detail(&format!("`{}`: keys and indexes", t.name));
    for ix in index_plans(t, names) {
        if ix.optional {
            sqlx::raw_sql("SAVEPOINT runbook_index")
                .execute(&mut *pg)
                .await?;
            match sqlx::raw_sql(sqlx::AssertSqlSafe(ix.sql.clone()))
                .execute(&mut *pg)
                .await
            {
                Ok(_) => {
                    sqlx::raw_sql("RELEASE SAVEPOINT runbook_index")
                        .execute(&mut *pg)
                        .await?;
                    decisions.push(ix.decision);
                }
                Err(e) => {
                    sqlx::raw_sql("ROLLBACK TO SAVEPOINT runbook_index")
                        .execute(&mut *pg)
                        .await?;
                    let mut d = ix.decision;
                    d.to = "not carried over".to_owned();
                    d.reason = format!("{}; PostgreSQL refused it: {}", d.reason, describe(&e));
                    decisions.push(d);
                }
            }
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(ix.sql.clone()))
            .execute(&mut *pg)
            .await
            .map_err(|e| CopyError::Failed(describe(&e)))?;
        decisions.push(ix.decision);
    }
    if let Some(i) = t.rowid_alias {
        let col = &t.columns[i];
        let max: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT max({}) FROM {}",
            qi(&col.name),
            qi(&t.name)
        )))
        .fetch_one(&mut *pg)
        .await?;
        // AUTOINCREMENT never reuses a key, not even of deleted rows: sqlite_sequence remembers
        // the highest ever given, and the sequence must start past it.
        let high = match (max, t.sequence) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let (value, called) = match high {
            Some(h) if h >= 1 => (h, true),
            _ => (1, false),
        };
        sqlx::query("SELECT setval(pg_get_serial_sequence($1, $2), $3, $4)")
            .bind(qi(&t.name))
            .bind(&col.name)
            .bind(value)
            .bind(called)
            .execute(&mut *pg)
            .await?;
        decisions.push(Decision {
            table: t.name.clone(),
            column: Some(col.name.clone()),
            what: "sequence".to_owned(),
            from: if t.autoincrement {
                format!(
                    "AUTOINCREMENT (sqlite_sequence {})",
                    t.sequence
                        .map_or_else(|| "empty".to_owned(), |s| s.to_string())
                )
            } else {
                "rowid".to_owned()
            },
            to: if called {
                format!(
                    "identity sequence at {value}; the next key is {}",
                    value + 1
                )
            } else {
                "identity sequence starts at 1".to_owned()
            },
            reason: "keys given after the copy do not collide with copied ones".to_owned(),
        });
    }
    let keys_time = keys_started.elapsed().as_secs_f64();
    let verify_started = Instant::now();
    hooks.detail(&format!("`{}`: verifying", t.name));
    let back = target_checksum(pg, hooks, t, plan).await?;
    let verify_time = verify_started.elapsed().as_secs_f64();
    if back != sum {
        return Err(CopyError::Failed(format!(
            "verification failed: the source has {} rows (checksum {}), the target {} rows \
             (checksum {})",
            sum.rows,
            sum.hex(),
            back.rows,
            back.hex()
        )));
    }
    if i64::try_from(sum.rows).ok() != Some(total) {
        return Err(CopyError::Failed(format!(
            "the source counted {total} rows but {} were read",
            sum.rows
        )));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {}", qi(&t.name))))
        .execute(&mut *pg)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {PROGRESS_TABLE} (table_name, source, source_rows, checksum, status, error) \
         VALUES ($1, $2, $3, $4, 'done', NULL) \
         ON CONFLICT (table_name) DO UPDATE SET source = $2, source_rows = $3, checksum = $4, \
         status = 'done', error = NULL, updated_at = now()"
    )))
    .bind(&t.name)
    .bind(source_name)
    .bind(i64::try_from(sum.rows).unwrap_or(i64::MAX))
    .bind(sum.hex())
    .execute(&mut *pg)
    .await?;
    Ok(Attempt::Done(Loaded {
        checksum: sum,
        stats,
        inexact,
        decisions,
        phases: [load_time, keys_time, verify_time],
    }))
}

/// The row's primary key values, or its position in the source.
fn row_key(t: &SrcTable, row: &Scan<'_>, n: u64) -> Json {
    if t.pk.is_empty() {
        return json!({ "row": n });
    }
    let mut m = serde_json::Map::new();
    for &i in &t.pk {
        let v = val_json(row.value(i));
        m.insert(t.columns[i].name.clone(), v);
    }
    Json::Object(m)
}

/// Reads the table back from PostgreSQL (`COPY ... TO STDOUT` in binary format) and computes
/// its checksum. Binary, because printing timestamps and floats as text was most of the
/// server's time here; it also decodes the values independently of how they were sent.
async fn target_checksum(
    pg: &mut PgConnection,
    hooks: &Hooks<'_>,
    t: &SrcTable,
    plan: &Planned<'_>,
) -> Result<Checksum, CopyError> {
    // numeric and jsonb come back as text: their binary forms are internal layouts.
    let cols: Vec<String> = t
        .columns
        .iter()
        .zip(&plan.cols)
        .map(|(c, p)| match p.kind {
            Kind::Numeric | Kind::Jsonb => format!("{}::text", qi(&c.name)),
            _ => qi(&c.name),
        })
        .collect();
    let sql = format!(
        "COPY (SELECT {} FROM {}) TO STDOUT (FORMAT binary)",
        cols.join(", "),
        qi(&t.name)
    );
    let kinds: Vec<Kind> = plan.cols.iter().map(|p| p.kind).collect();
    let mut stream = pg.copy_out_raw(&sql).await?;
    let mut reader = BinaryRows::default();
    let mut failure: Option<String> = None;
    while let Some(chunk) = stream.try_next().await? {
        // After a failure the stream is still read to its end: the connection cannot be used
        // again before that.
        if failure.is_none() {
            if let Err(e) = reader.feed(&chunk, &kinds) {
                failure = Some(e);
            } else if hooks.cancelled() {
                failure = Some(String::new());
            }
        }
    }
    match failure {
        Some(f) if f.is_empty() => Err(CopyError::Interrupted),
        Some(f) => Err(CopyError::Failed(format!("verification: {f}"))),
        None if !reader.ended => Err(CopyError::Failed(
            "verification: the binary COPY stream ended early".to_owned(),
        )),
        None => Ok(reader.sum),
    }
}

/// Microseconds and days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i64 = 10_957;

/// Parses PostgreSQL's binary COPY format as it arrives in chunks and sums the row hashes.
#[derive(Default)]
struct BinaryRows {
    carry: Vec<u8>,
    header_done: bool,
    ended: bool,
    sum: Checksum,
    hash: Option<RowHash>,
    scratch: Vec<u8>,
}

impl BinaryRows {
    fn feed(&mut self, chunk: &[u8], kinds: &[Kind]) -> Result<(), String> {
        self.carry.extend_from_slice(chunk);
        let mut pos = 0;
        if !self.header_done {
            // Signature (11 bytes), flags (4), header extension length (4) and extension.
            if self.carry.len() < 19 {
                return Ok(());
            }
            if &self.carry[..11] != b"PGCOPY\n\xff\r\n\0" {
                return Err("not a binary COPY stream".to_owned());
            }
            let ext = be_u32(&self.carry[15..19]) as usize;
            if self.carry.len() < 19 + ext {
                return Ok(());
            }
            pos = 19 + ext;
            self.header_done = true;
        }
        let mut hash = self.hash.take().unwrap_or_else(RowHash::new);
        let result = loop {
            match self.row(pos, kinds, &mut hash) {
                Ok(Some(next)) => pos = next,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
            if self.ended {
                break Ok(());
            }
        };
        self.hash = Some(hash);
        self.carry.drain(..pos);
        result
    }

    /// One row from `pos`: `Some(end)` when it was complete, `None` to wait for more data.
    fn row(
        &mut self,
        pos: usize,
        kinds: &[Kind],
        hash: &mut RowHash,
    ) -> Result<Option<usize>, String> {
        let buf = &self.carry;
        let Some(count) = buf.get(pos..pos + 2) else {
            return Ok(None);
        };
        let count = i16::from_be_bytes([count[0], count[1]]);
        if count == -1 {
            self.ended = true;
            return Ok(Some(pos + 2));
        }
        if usize::try_from(count).ok() != Some(kinds.len()) {
            return Err(format!(
                "the target returned {count} columns, expected {}",
                kinds.len()
            ));
        }
        // Check the row is complete before hashing any of it.
        let mut p = pos + 2;
        for _ in 0..kinds.len() {
            let Some(len) = buf.get(p..p + 4) else {
                return Ok(None);
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            p += 4 + usize::try_from(len).unwrap_or(0);
            if p > buf.len() {
                return Ok(None);
            }
        }
        let mut p = pos + 2;
        for &kind in kinds {
            let len = i32::from_be_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]);
            p += 4;
            let Ok(n) = usize::try_from(len) else {
                hash.null();
                continue;
            };
            canon_binary(kind, &buf[p..p + n], hash, &mut self.scratch)?;
            p += n;
        }
        self.sum.add(hash.finish());
        Ok(Some(p))
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Feeds one value in PostgreSQL's binary form (numeric and jsonb as text) to the row hash, in
/// the same canonical form `encode` used for the source value.
fn canon_binary(
    kind: Kind,
    v: &[u8],
    hash: &mut RowHash,
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    let bad = || {
        format!(
            "cannot read back a {} value of {} bytes",
            kind.name(),
            v.len()
        )
    };
    let eight = || <[u8; 8]>::try_from(v).map_err(|_| bad());
    match kind {
        Kind::Identity | Kind::BigInt => hash.bytes(&i64::from_be_bytes(eight()?).to_le_bytes()),
        Kind::Double => hash.bytes(&f64::from_be_bytes(eight()?).to_bits().to_le_bytes()),
        Kind::Timestamptz => {
            let micros = i64::from_be_bytes(eight()?) + PG_EPOCH_MICROS;
            hash.bytes(&micros.to_le_bytes());
        }
        Kind::Date => {
            let days = i32::from_be_bytes(<[u8; 4]>::try_from(v).map_err(|_| bad())?);
            hash.bytes(&(i64::from(days) + PG_EPOCH_DAYS).to_le_bytes());
        }
        Kind::Bool => hash.bytes(&[u8::from(v == [1])]),
        Kind::Text | Kind::Bytea => hash.bytes(v),
        Kind::Numeric => {
            let text = std::str::from_utf8(v).map_err(|_| bad())?;
            hash.bytes(norm_decimal(text).ok_or_else(bad)?.as_bytes());
        }
        Kind::Jsonb => {
            scratch.clear();
            canon_json_text(std::str::from_utf8(v).map_err(|_| bad())?, scratch);
            hash.bytes(scratch);
        }
    }
    Ok(())
}

async fn add_foreign_keys(
    pg: &mut PgConnection,
    t: &SrcTable,
    decisions: &mut Vec<Decision>,
) -> Result<(), CopyError> {
    for fk in &t.fks {
        let from: Vec<String> = fk.from.iter().map(|c| qi(c)).collect();
        let described = format!(
            "FOREIGN KEY ({}) REFERENCES {}",
            from.join(", "),
            qi(&fk.parent)
        );
        let mut decision = Decision {
            table: t.name.clone(),
            column: None,
            what: "foreign_key".to_owned(),
            from: described,
            to: String::new(),
            reason: String::new(),
        };
        if !target_exists(pg, &fk.parent).await? {
            decision.to = "not carried over".to_owned();
            decision.reason = format!("`{}` is not in the target", fk.parent);
            decisions.push(decision);
            continue;
        }
        // `REFERENCES parent` without columns means the parent's primary key.
        let to: Vec<String> = if fk.to.iter().all(Option::is_some) {
            fk.to.iter().flatten().map(|c| qi(c)).collect()
        } else {
            sqlx::query_scalar::<_, String>(
                "SELECT a.attname::text FROM pg_constraint c \
                 JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) ON true \
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum \
                 WHERE c.conrelid = to_regclass($1) AND c.contype = 'p' ORDER BY k.ord",
            )
            .bind(qi(&fk.parent))
            .fetch_all(&mut *pg)
            .await?
            .iter()
            .map(|c| qi(c))
            .collect()
        };
        let plain: Vec<&str> = fk.from.iter().map(String::as_str).collect();
        let name = truncate(&format!("{}_{}_fkey", t.name, plain.join("_")), MAX_IDENT);
        let exists: bool = sqlx::query_scalar(
            "SELECT count(*) > 0 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2",
        )
        .bind(qi(&t.name))
        .bind(&name)
        .fetch_one(&mut *pg)
        .await?;
        decision.to = qi(&name);
        if exists {
            decision.reason = "already added by an earlier run".to_owned();
            decisions.push(decision);
            continue;
        }
        let action = |a: &str| match a.to_ascii_uppercase().as_str() {
            "CASCADE" => "CASCADE",
            "SET NULL" => "SET NULL",
            "SET DEFAULT" => "SET DEFAULT",
            "RESTRICT" => "RESTRICT",
            _ => "NO ACTION",
        };
        let sql = format!(
            "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON UPDATE {} ON DELETE {}",
            qi(&t.name),
            qi(&name),
            from.join(", "),
            qi(&fk.parent),
            to.join(", "),
            action(&fk.on_update),
            action(&fk.on_delete)
        );
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *pg)
            .await
        {
            Ok(_) => {
                decision.reason = format!(
                    "added after the load (ON UPDATE {}, ON DELETE {})",
                    action(&fk.on_update),
                    action(&fk.on_delete)
                );
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23503") => {
                // SQLite does not check foreign keys unless told to, so old rows can break them.
                // NOT VALID keeps the key for new rows, as SQLite with `foreign_keys` on would.
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{sql} NOT VALID")))
                    .execute(&mut *pg)
                    .await?;
                decision.to = format!("{} NOT VALID", qi(&name));
                decision.reason = format!(
                    "existing rows break it ({}): added NOT VALID, so new rows are checked; fix \
                     the rows, then `ALTER TABLE {} VALIDATE CONSTRAINT {}`",
                    e.message(),
                    qi(&t.name),
                    qi(&name)
                );
            }
            Err(e) => {
                decision.to = "not carried over".to_owned();
                decision.reason = format!("PostgreSQL refused it: {}", describe(&e));
            }
        }
        decisions.push(decision);
    }
    Ok(())
}

/// The database's message with its SQLSTATE.
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

/// Writes the report as JSON.
pub fn write_report(path: &Path, report: &Report) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    }
    let text = serde_json::to_vec_pretty(report).map_err(|e| e.to_string())?;
    let mut f = std::fs::File::create(path)
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    f.write_all(&text)
        .and_then(|()| f.write_all(b"\n"))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_follows_sqlite_rules() {
        assert_eq!(affinity("INTEGER"), Affinity::Integer);
        assert_eq!(affinity("BIGINT"), Affinity::Integer);
        assert_eq!(affinity("VARCHAR(255)"), Affinity::Text);
        assert_eq!(affinity("CLOB"), Affinity::Text);
        assert_eq!(affinity(""), Affinity::Blob);
        assert_eq!(affinity("BLOB"), Affinity::Blob);
        assert_eq!(affinity("DOUBLE PRECISION"), Affinity::Real);
        assert_eq!(affinity("FLOAT"), Affinity::Real);
        assert_eq!(affinity("DECIMAL(10,2)"), Affinity::Numeric);
        assert_eq!(affinity("DATETIME"), Affinity::Numeric);
        // "POINT" contains "INT": SQLite's rules, not common sense.
        assert_eq!(affinity("POINT"), Affinity::Integer);
    }

    #[test]
    fn timestamps_parse_exactly() {
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01"), Some(1_000_000));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:00-0130"),
            Some(5_400_000_000)
        );
        assert_eq!(
            parse_timestamp("2024-02-29 12:34:56.123456+00"),
            Some(1_709_210_096_123_456)
        );
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:00.1234560"),
            Some(123_456)
        );
        // Finer than microseconds would be rounded by PostgreSQL: not exact, refused.
        assert_eq!(parse_timestamp("1970-01-01 00:00:00.1234567"), None);
        assert_eq!(parse_timestamp("2023-02-29"), None);
        assert_eq!(parse_timestamp("0000-01-01"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2024-01-01 25:00"), None);
        assert_eq!(parse_timestamp("2024-01-01 10:00 junk"), None);
        assert_eq!(parse_date("2024-01-31"), Some(19_753));
        assert_eq!(parse_date("0001-01-01"), Some(-719_162));
        assert_eq!(parse_date("9999-12-31"), Some(2_932_896));
        assert_eq!(parse_date("1900-02-29"), None);
        assert_eq!(parse_date("2000-02-29"), Some(11_016));
        assert_eq!(parse_date("2024-01-31 00:00"), None);
        let mut out = Vec::new();
        format_timestamp(&mut out, 1_709_210_096_123_456);
        assert_eq!(out, b"2024-02-29 12:34:56.123456+00");
        // Every day from year 1 to 9999 formats as chrono does, and before 1970 too.
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for days in (-719_162..2_932_897).step_by(7) {
            let mut out = Vec::new();
            format_date(&mut out, days);
            let want = epoch + chrono::TimeDelta::days(i64::from(days));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                want.format("%Y-%m-%d").to_string()
            );
        }
        let mut out = Vec::new();
        format_timestamp(&mut out, -1);
        assert_eq!(out, b"1969-12-31 23:59:59.999999+00");
    }

    #[test]
    fn murmur3_matches_the_reference() {
        assert_eq!(murmur3_128(b""), 0);
        assert_eq!(murmur3_128(b"hello"), 0x5b1e906a48ae1d19cbd8a7b341bd9b02);
        assert_eq!(
            murmur3_128(b"The quick brown fox jumps over the lazy dog"),
            0x7a433ca9c49a9347e34bbc7bbc071b6c
        );
        let mut out = Vec::new();
        for i in [0, 7, -1, i64::MIN, i64::MAX, 1_000_000] {
            out.clear();
            push_int(&mut out, i);
            assert_eq!(out, i.to_string().as_bytes());
        }
    }

    #[test]
    fn copy_text_escapes_what_the_format_needs() {
        let mut out = Vec::new();
        escape_into(&mut out, b"a\tb\nc\\d\re");
        assert_eq!(out, b"a\\tb\\nc\\\\d\\re");
        let mut out = Vec::new();
        bytea_into(&mut out, &[0, 255, 16]);
        assert_eq!(out, b"\\\\x00ff10");
    }

    #[test]
    fn binary_read_back_matches_the_source_hash_across_chunk_boundaries() {
        // Two rows (bigint 5, timestamptz 1970-01-01 00:00:01, text "é"), (NULL, NULL, "").
        let mut stream = b"PGCOPY\n\xff\r\n\0".to_vec();
        stream.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        stream.extend_from_slice(&3i16.to_be_bytes());
        stream.extend_from_slice(&8i32.to_be_bytes());
        stream.extend_from_slice(&5i64.to_be_bytes());
        stream.extend_from_slice(&8i32.to_be_bytes());
        stream.extend_from_slice(&(1_000_000 - PG_EPOCH_MICROS).to_be_bytes());
        stream.extend_from_slice(&2i32.to_be_bytes());
        stream.extend_from_slice("é".as_bytes());
        stream.extend_from_slice(&3i16.to_be_bytes());
        stream.extend_from_slice(&(-1i32).to_be_bytes());
        stream.extend_from_slice(&(-1i32).to_be_bytes());
        stream.extend_from_slice(&0i32.to_be_bytes());
        stream.extend_from_slice(&(-1i16).to_be_bytes());
        let kinds = [Kind::BigInt, Kind::Timestamptz, Kind::Text];
        let plans: Vec<ColPlan> = kinds
            .iter()
            .map(|&kind| ColPlan {
                kind,
                lenient: false,
                optimistic: true,
            })
            .collect();
        let mut want = Checksum::default();
        let mut h = RowHash::new();
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        for row in [
            [
                Val::Int(5),
                Val::Text(b"1970-01-01 00:00:01"),
                Val::Text("é".as_bytes()),
            ],
            [Val::Null, Val::Null, Val::Text(b"")],
        ] {
            for (p, v) in plans.iter().zip(row) {
                encode(&mut out, &mut h, p, v, &mut scratch).unwrap();
            }
            want.add(h.finish());
        }
        for size in [1, 3, 7, stream.len()] {
            let mut r = BinaryRows::default();
            for chunk in stream.chunks(size) {
                r.feed(chunk, &kinds).unwrap();
            }
            assert!(r.ended);
            assert_eq!(r.sum, want, "chunks of {size}");
        }
        let mut r = BinaryRows::default();
        assert!(
            r.feed(b"PGCOPY\n\xff\r\n\x01 and more bytes", &kinds)
                .is_err()
        );
    }

    #[test]
    fn decimals_normalise() {
        assert_eq!(norm_decimal("-0012.3400").as_deref(), Some("-12.34"));
        assert_eq!(norm_decimal("-0.000").as_deref(), Some("0"));
        assert_eq!(norm_decimal("100").as_deref(), Some("100"));
        assert_eq!(norm_decimal("Infinity").as_deref(), Some("Infinity"));
        assert_eq!(norm_decimal("1e5"), None);
        assert_eq!(real_text(0.1), "0.1");
        assert_eq!(real_as_text(3.0), "3.0");
        assert_eq!(real_text(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn json_that_jsonb_would_change_is_refused() {
        assert!(json_ok(r#"{"a": [1, 2.5, null, true], "b": {"c": "d"}}"#));
        assert!(json_ok("42"));
        assert!(!json_ok(r#"{"a": 1, "a": 2}"#));
        assert!(!json_ok(r#"{"a": "\u0000"}"#));
        assert!(!json_ok("{not json"));
        let mut a = Vec::new();
        let mut b = Vec::new();
        canon_json_text(r#"{"b": 1e2, "a": [true]}"#, &mut a);
        canon_json_text(r#"{"a":[true],"b":100}"#, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn defaults_translate_or_say_why_not() {
        assert_eq!(
            translate_default("CURRENT_TIMESTAMP", Kind::Timestamptz),
            Ok(Some("CURRENT_TIMESTAMP".to_owned()))
        );
        assert_eq!(
            translate_default("'it''s'", Kind::Text),
            Ok(Some("'it''s'".to_owned()))
        );
        assert_eq!(
            translate_default("(0)", Kind::Bool),
            Ok(Some("false".to_owned()))
        );
        assert_eq!(
            translate_default("false", Kind::Bool),
            Ok(Some("false".to_owned()))
        );
        assert_eq!(
            translate_default("-1.5", Kind::Double),
            Ok(Some("-1.5".to_owned()))
        );
        assert_eq!(
            translate_default(".5", Kind::Numeric),
            Ok(Some("0.5".to_owned()))
        );
        assert_eq!(translate_default("NULL", Kind::Text), Ok(None));
        assert_eq!(
            translate_default("X'00FF'", Kind::Bytea),
            Ok(Some("'\\x00ff'::bytea".to_owned()))
        );
        assert_eq!(
            translate_default("'2024-01-02 03:04:05'", Kind::Timestamptz),
            Ok(Some("'2024-01-02 03:04:05.000000+00'".to_owned()))
        );
        assert!(translate_default("abs(random())", Kind::BigInt).is_err());
        assert!(translate_default("'x' || 'y'", Kind::Text).is_err());
        assert!(translate_default("'abc'", Kind::BigInt).is_err());
    }

    #[test]
    fn mixed_columns_keep_every_value() {
        let col = SrcColumn {
            name: "v".to_owned(),
            declared: String::new(),
            notnull: false,
            default: None,
            generated: false,
        };
        let mut s = Stats::default();
        for v in [Val::Int(1), Val::Real(2.5), Val::Text(b"x"), Val::Null] {
            observe(&mut s, v, (false, false, false));
        }
        assert_eq!(decide(&col, false, &s).0, Kind::Text);
        observe(&mut s, Val::Blob(&[0xff, 0]), (false, false, false));
        assert_eq!(decide(&col, false, &s).0, Kind::Bytea);
        let mut ints = Stats::default();
        observe(&mut ints, Val::Int(1), (false, false, false));
        observe(&mut ints, Val::Real(0.5), (false, false, false));
        assert_eq!(decide(&col, false, &ints).0, Kind::Numeric);
        let dt = SrcColumn {
            declared: "DATETIME".to_owned(),
            ..col.clone()
        };
        let mut secs = Stats::default();
        observe(&mut secs, Val::Int(1_700_000_000), (true, false, false));
        assert_eq!(decide(&dt, false, &secs).0, Kind::BigInt);
        let mut ms = Stats::default();
        observe(&mut ms, Val::Int(1_700_000_000_000), (true, false, false));
        observe(
            &mut ms,
            Val::Text(b"2024-01-01 00:00:00"),
            (true, false, false),
        );
        assert_eq!(decide(&dt, false, &ms).0, Kind::Timestamptz);
    }

    #[test]
    fn names_stay_within_the_limit_and_unique() {
        let mut n = Names::default();
        let long = "x".repeat(70);
        let a = n.take(&long);
        let b = n.take(&long);
        assert_eq!(a.len(), 63);
        assert!(b.len() <= 63);
        assert_ne!(a, b);
    }
}
