//! Connections to the target database and running statements on it: PostgreSQL and SQLite
//! through sqlx. Values are always bound parameters; rows come back as JSON objects.

pub mod backup;
pub mod copy;
pub mod dialect;
pub mod health;
pub mod migrate;
pub mod op;
pub mod seed;

use futures_util::TryStreamExt;
use serde_json::{Map, Value as Json};
use sqlx::{Column, ConnectOptions, Connection, Row, TypeInfo, ValueRef};
use std::path::PathBuf;
use std::str::FromStr;

pub use dialect::Dialect;

/// Rows kept from one statement; more are counted but not kept.
pub const MAX_ROWS: usize = 1_000;

/// A target database, resolved from the environment's config or `--target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Postgres(String),
    Sqlite(PathBuf),
}

impl TargetSpec {
    /// Parses `postgres://...` / `postgresql://...` or `sqlite:PATH` / `sqlite://PATH`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(TargetSpec::Postgres(text.to_owned()));
        }
        if let Some(path) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err("`sqlite:` needs a file path, like `sqlite:dev.db`".to_owned());
            }
            return Ok(TargetSpec::Sqlite(PathBuf::from(path)));
        }
        Err("a target is a `postgres://` URL or a `sqlite:` path".to_owned())
    }

    /// A form safe to print: the password masked.
    pub fn describe(&self) -> String {
        match self {
            TargetSpec::Postgres(url) => crate::dburl::redact(url),
            TargetSpec::Sqlite(path) => format!("sqlite:{}", crate::source::display_path(path)),
        }
    }

    /// A stable key naming the target (for locks and run history), without secrets.
    pub fn key(&self) -> String {
        match self {
            // Without the user: two users of the same database are the same target.
            TargetSpec::Postgres(url) => crate::dburl::key(url),
            TargetSpec::Sqlite(path) => {
                let abs = std::fs::canonicalize(path)
                    .unwrap_or_else(|_| std::path::absolute(path).unwrap_or(path.clone()));
                format!("sqlite:{}", abs.display())
            }
        }
    }

    /// The database name users type to confirm (`confirm` gates): the PostgreSQL database or
    /// the SQLite file name.
    pub fn database_name(&self) -> String {
        match self {
            TargetSpec::Postgres(url) => crate::dburl::database(url),
            TargetSpec::Sqlite(path) => path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

/// An open connection to the target.
pub enum Db {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

/// The result of one statement.
#[derive(Debug, Clone, Default)]
pub struct SqlResult {
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Json>>,
    /// Rows returned, including any beyond [`MAX_ROWS`].
    pub row_count: u64,
    pub rows_affected: u64,
}

impl Db {
    pub async fn connect(spec: &TargetSpec) -> Result<Db, sqlx::Error> {
        match spec {
            TargetSpec::Postgres(url) => {
                let opts =
                    sqlx::postgres::PgConnectOptions::from_str(url)?.application_name("runbook");
                Ok(Db::Postgres(opts.connect().await?))
            }
            TargetSpec::Sqlite(path) => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .foreign_keys(true)
                    .busy_timeout(std::time::Duration::from_secs(10));
                Ok(Db::Sqlite(opts.connect().await?))
            }
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Runs one statement with bound parameters. With `read_only`, inside a read-only
    /// transaction that is rolled back.
    pub async fn execute(
        &mut self,
        query: &str,
        params: &[Json],
        read_only: bool,
    ) -> Result<SqlResult, sqlx::Error> {
        match self {
            Db::Postgres(conn) => {
                if read_only {
                    let mut tx = conn.begin().await?;
                    sqlx::query("SET TRANSACTION READ ONLY")
                        .execute(&mut *tx)
                        .await?;
                    let out = pg_run(&mut tx, query, params).await;
                    tx.rollback().await?;
                    out
                } else {
                    pg_run(conn, query, params).await
                }
            }
            Db::Sqlite(conn) => {
                if read_only {
                    sqlx::query("PRAGMA query_only = ON")
                        .execute(&mut *conn)
                        .await?;
                    let out = sqlite_run(conn, query, params).await;
                    sqlx::query("PRAGMA query_only = OFF")
                        .execute(&mut *conn)
                        .await?;
                    out
                } else {
                    sqlite_run(conn, query, params).await
                }
            }
        }
    }

    pub async fn close(self) {
        let _ = match self {
            Db::Postgres(c) => c.close().await,
            Db::Sqlite(c) => c.close().await,
        };
    }
}

/// The database's message with its SQLSTATE, which is what an operator searches for.
pub fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    }
}

async fn pg_run(
    conn: &mut sqlx::PgConnection,
    query: &str,
    params: &[Json],
) -> Result<SqlResult, sqlx::Error> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(query.to_owned()));
    for p in params {
        q = match p {
            Json::Null => q.bind(None::<String>),
            Json::Bool(b) => q.bind(*b),
            Json::Number(n) if n.is_i64() => q.bind(n.as_i64().unwrap_or_default()),
            Json::Number(n) => q.bind(n.as_f64().unwrap_or_default()),
            Json::String(s) => q.bind(s.clone()),
            other => q.bind(sqlx::types::Json(other.clone())),
        };
    }
    let results = sqlx::Executor::fetch_many(conn, q).map_ok(|r| r.map_left(|d| d.rows_affected()));
    collect(results, pg_row).await
}

async fn sqlite_run(
    conn: &mut sqlx::SqliteConnection,
    query: &str,
    params: &[Json],
) -> Result<SqlResult, sqlx::Error> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(query.to_owned()));
    for p in params {
        q = match p {
            Json::Null => q.bind(None::<String>),
            Json::Bool(b) => q.bind(*b),
            Json::Number(n) if n.is_i64() => q.bind(n.as_i64().unwrap_or_default()),
            Json::Number(n) => q.bind(n.as_f64().unwrap_or_default()),
            Json::String(s) => q.bind(s.clone()),
            other => q.bind(other.to_string()),
        };
    }
    let results = sqlx::Executor::fetch_many(conn, q).map_ok(|r| r.map_left(|d| d.rows_affected()));
    collect(results, sqlite_row).await
}

/// Gathers a statement's results, either dialect: rows affected, columns, the row count and
/// the first `MAX_ROWS` rows as JSON.
async fn collect<R: Row>(
    results: impl futures_util::Stream<Item = Result<sqlx::Either<u64, R>, sqlx::Error>>,
    to_json: fn(&R) -> Map<String, Json>,
) -> Result<SqlResult, sqlx::Error> {
    let mut results = std::pin::pin!(results);
    let mut out = SqlResult::default();
    while let Some(item) = results.try_next().await? {
        match item {
            sqlx::Either::Left(affected) => out.rows_affected += affected,
            sqlx::Either::Right(row) => {
                if out.columns.is_empty() {
                    out.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                }
                out.row_count += 1;
                if out.rows.len() < MAX_ROWS {
                    out.rows.push(to_json(&row));
                }
            }
        }
    }
    Ok(out)
}

fn pg_row(row: &sqlx::postgres::PgRow) -> Map<String, Json> {
    let mut map = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        map.insert(
            col.name().to_owned(),
            pg_value(row, i, col.type_info().name()),
        );
    }
    map
}

fn pg_value(row: &sqlx::postgres::PgRow, i: usize, ty: &str) -> Json {
    use sqlx::types::chrono;
    let is_null = row.try_get_raw(i).map(|v| v.is_null()).unwrap_or(true);
    if is_null {
        return Json::Null;
    }
    let get = |r: Result<Json, sqlx::Error>| r.unwrap_or(Json::Null);
    match ty {
        "BOOL" => get(row.try_get::<bool, _>(i).map(Json::from)),
        "INT2" => get(row.try_get::<i16, _>(i).map(Json::from)),
        "INT4" => get(row.try_get::<i32, _>(i).map(Json::from)),
        "INT8" => get(row.try_get::<i64, _>(i).map(Json::from)),
        "OID" => get(row
            .try_get::<sqlx::postgres::types::Oid, _>(i)
            .map(|o| Json::from(o.0))),
        "FLOAT4" => get(row.try_get::<f32, _>(i).map(|f| Json::from(f64::from(f)))),
        "FLOAT8" => get(row.try_get::<f64, _>(i).map(Json::from)),
        "NUMERIC" => row
            .try_get_raw(i)
            .ok()
            .and_then(|v| v.as_bytes().ok().map(decode_numeric))
            .map_or(Json::Null, |s| {
                s.parse::<serde_json::Number>()
                    .map(Json::Number)
                    .unwrap_or(Json::String(s))
            }),
        "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" | "CHAR" | "CITEXT" | "UNKNOWN" => {
            get(row.try_get::<String, _>(i).map(Json::from))
        }
        "JSON" | "JSONB" => get(row.try_get::<Json, _>(i)),
        "TIMESTAMPTZ" => get(row
            .try_get::<chrono::DateTime<chrono::Utc>, _>(i)
            .map(|t| Json::from(t.to_rfc3339()))),
        "TIMESTAMP" => get(row
            .try_get::<chrono::NaiveDateTime, _>(i)
            .map(|t| Json::from(t.to_string()))),
        "DATE" => get(row
            .try_get::<chrono::NaiveDate, _>(i)
            .map(|t| Json::from(t.to_string()))),
        "TIME" => get(row
            .try_get::<chrono::NaiveTime, _>(i)
            .map(|t| Json::from(t.to_string()))),
        "BYTEA" => get(row
            .try_get::<Vec<u8>, _>(i)
            .map(|b| Json::from(format!("\\x{}", hex::encode(b))))),
        "UUID" => row
            .try_get_raw(i)
            .ok()
            .and_then(|v| v.as_bytes().ok().map(<[u8]>::to_vec))
            .filter(|b| b.len() == 16)
            .map_or(Json::Null, |b| {
                let h = hex::encode(b);
                Json::from(format!(
                    "{}-{}-{}-{}-{}",
                    &h[0..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..32]
                ))
            }),
        "TEXT[]" | "VARCHAR[]" | "NAME[]" => get(row.try_get::<Vec<String>, _>(i).map(Json::from)),
        "INT4[]" => get(row.try_get::<Vec<i32>, _>(i).map(Json::from)),
        "INT8[]" => get(row.try_get::<Vec<i64>, _>(i).map(Json::from)),
        other => row
            .try_get::<String, _>(i)
            .map(Json::from)
            .unwrap_or_else(|_| Json::from(format!("<{}>", other.to_lowercase()))),
    }
}

/// Decodes PostgreSQL's binary NUMERIC (base-10000 digits) to its decimal text.
fn decode_numeric(b: &[u8]) -> String {
    if b.len() < 8 {
        return String::new();
    }
    let rd = |i: usize| i16::from_be_bytes([b[i], b[i + 1]]);
    let ndigits = rd(0).max(0) as usize;
    let weight = rd(2) as i32;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = rd(6).max(0) as usize;
    if sign == 0xC000 {
        return "NaN".to_owned();
    }
    let digits: Vec<i32> = (0..ndigits)
        .filter(|k| 8 + 2 * k + 1 < b.len())
        .map(|k| i32::from(rd(8 + 2 * k)))
        .collect();
    let mut int_part = String::new();
    for w in 0..=weight.max(-1) {
        let d = digits.get(w as usize).copied().unwrap_or(0);
        if int_part.is_empty() {
            int_part = d.to_string();
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part = "0".to_owned();
    }
    let mut frac = String::new();
    let mut idx = weight + 1;
    while frac.len() < dscale {
        let d = if idx >= 0 {
            digits.get(idx as usize).copied().unwrap_or(0)
        } else {
            0
        };
        frac.push_str(&format!("{d:04}"));
        idx += 1;
    }
    frac.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac}")
    }
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Map<String, Json> {
    let mut map = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let value = match row.try_get_raw(i) {
            Ok(v) if v.is_null() => Json::Null,
            Ok(v) => match v.type_info().name() {
                "INTEGER" | "BOOLEAN" => row
                    .try_get::<i64, _>(i)
                    .map(Json::from)
                    .unwrap_or(Json::Null),
                "REAL" => row
                    .try_get::<f64, _>(i)
                    .map(Json::from)
                    .unwrap_or(Json::Null),
                "BLOB" => row
                    .try_get::<Vec<u8>, _>(i)
                    .map(|b| Json::from(format!("x'{}'", hex::encode(b))))
                    .unwrap_or(Json::Null),
                _ => row
                    .try_get::<String, _>(i)
                    .map(Json::from)
                    .unwrap_or(Json::Null),
            },
            Err(_) => Json::Null,
        };
        map.insert(col.name().to_owned(), value);
    }
    map
}
