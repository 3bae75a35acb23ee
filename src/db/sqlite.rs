//! SQLite statements with bound parameters, and its rows decoded to JSON.

use super::SqlResult;
use super::conn::{bind_json, collect};
use futures_util::TryStreamExt;
use serde_json::{Map, Value as Json};
use sqlx::{Column, Row, TypeInfo, ValueRef};

pub(super) async fn run(
    conn: &mut sqlx::SqliteConnection,
    query: &str,
    params: &[Json],
) -> Result<SqlResult, sqlx::Error> {
    let q = bind_json(query, params, |q, v| q.bind(v.to_string()));
    let results = sqlx::Executor::fetch_many(conn, q).map_ok(|r| r.map_left(|d| d.rows_affected()));
    collect(results, sqlite_row).await
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
