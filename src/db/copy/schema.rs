//! The source's schema: its tables, columns, keys, indexes and foreign keys as SQLite
//! reports them, read once inside the copy's read transaction.

use super::report::Decision;
use super::{OpError, db_error, describe};
use crate::fmt::quote_ident;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Row};
use std::path::Path;
use std::time::Duration;

/// A table of the source, with what PostgreSQL needs to recreate it.
#[derive(Debug, Clone)]
pub(super) struct SrcTable {
    pub(super) name: String,
    pub(super) sql: String,
    pub(super) columns: Vec<SrcColumn>,
    /// Columns of the primary key, in key order.
    pub(super) pk: Vec<usize>,
    pub(super) rowid_alias: Option<usize>,
    pub(super) autoincrement: bool,
    /// `sqlite_sequence`'s value for an AUTOINCREMENT table.
    pub(super) sequence: Option<i64>,
    pub(super) indexes: Vec<SrcIndex>,
    pub(super) fks: Vec<SrcFk>,
}

/// A column as `pragma_table_xinfo` describes it.
#[derive(Debug, Clone)]
pub(super) struct SrcColumn {
    pub(super) name: String,
    pub(super) declared: String,
    pub(super) notnull: bool,
    pub(super) default: Option<String>,
    pub(super) generated: bool,
}

/// An index or UNIQUE constraint as `pragma_index_list` and `pragma_index_xinfo` describe it.
#[derive(Debug, Clone)]
pub(super) struct SrcIndex {
    pub(super) name: String,
    pub(super) unique: bool,
    /// `c` (CREATE INDEX), `u` (UNIQUE constraint), `pk`.
    pub(super) origin: String,
    pub(super) partial: bool,
    /// `None` for an expression part.
    pub(super) columns: Vec<Option<(String, bool, String)>>,
    pub(super) sql: Option<String>,
}

/// A foreign key, its columns in order.
#[derive(Debug, Clone)]
pub(super) struct SrcFk {
    pub(super) parent: String,
    pub(super) from: Vec<String>,
    pub(super) to: Vec<Option<String>>,
    pub(super) on_update: String,
    pub(super) on_delete: String,
}

/// Opens the source read-only and starts the read transaction every pass shares.
pub(super) async fn open_source(path: &Path) -> Result<SqliteConnection, OpError> {
    if !path.is_file() {
        return Err(OpError::Failed(format!(
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
        OpError::Failed(format!(
            "cannot open the source `{}`: {}",
            path.display(),
            describe(&e)
        ))
    })?;
    // One read transaction for the whole copy: every pass reads the same snapshot. The first
    // read below (the schema) starts it.
    sqlx::raw_sql("BEGIN")
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(conn)
}

/// The tables to copy, and decisions for what is not carried over (virtual tables, views,
/// triggers).
pub(super) async fn read_schema(
    conn: &mut SqliteConnection,
) -> Result<(Vec<SrcTable>, Vec<Decision>), sqlx::Error> {
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
) -> Result<SrcTable, sqlx::Error> {
    let (columns, pk) = read_columns(conn, &name).await?;
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
    let indexes = read_indexes(conn, &name).await?;
    let fks = read_fks(conn, &name).await?;
    Ok(SrcTable {
        name,
        sql,
        columns,
        pk,
        rowid_alias,
        autoincrement,
        sequence,
        indexes,
        fks,
    })
}

/// The table's columns, and the positions of its primary key's columns in key order.
async fn read_columns(
    conn: &mut SqliteConnection,
    name: &str,
) -> Result<(Vec<SrcColumn>, Vec<usize>), sqlx::Error> {
    let cols = sqlx::query(
        "SELECT name, coalesce(type, ''), \"notnull\", dflt_value, pk, hidden \
         FROM pragma_table_xinfo(?1) ORDER BY cid",
    )
    .bind(name)
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
    Ok((columns, pk_order.into_iter().map(|(_, i)| i).collect()))
}

/// The table's indexes, newest first as `pragma_index_list` gives them.
async fn read_indexes(
    conn: &mut SqliteConnection,
    name: &str,
) -> Result<Vec<SrcIndex>, sqlx::Error> {
    let mut indexes = Vec::new();
    let list = sqlx::query(
        "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1) ORDER BY seq DESC",
    )
    .bind(name)
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
    Ok(indexes)
}

/// The table's foreign keys, one per constraint with its columns in order.
async fn read_fks(conn: &mut SqliteConnection, name: &str) -> Result<Vec<SrcFk>, sqlx::Error> {
    let fk_rows = sqlx::query(
        "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete \
         FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
    )
    .bind(name)
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
    Ok(fks.into_iter().map(|(_, f)| f).collect())
}

/// Whether `word` appears in `sql` as a keyword outside quotes and comments.
pub(super) fn has_word(sql: &str, word: &str) -> bool {
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

/// `SELECT` of every column, in the order the plans and the COPY use.
pub(super) fn select_sql(t: &SrcTable) -> String {
    let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.name)).collect();
    format!("SELECT {} FROM {}", cols.join(", "), quote_ident(&t.name))
}
