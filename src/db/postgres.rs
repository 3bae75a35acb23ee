//! PostgreSQL statements with bound parameters, and its rows decoded to JSON (NUMERIC, UUID,
//! arrays and times included).

use super::SqlResult;
use super::conn::{bind_json, collect};
use futures_util::TryStreamExt;
use serde_json::{Map, Value as Json};
use sqlx::{Column, Row, TypeInfo, ValueRef};

pub(super) async fn run(
    conn: &mut sqlx::PgConnection,
    query: &str,
    params: &[Json],
) -> Result<SqlResult, sqlx::Error> {
    let q = bind_json(query, params, |q, v| q.bind(sqlx::types::Json(v.clone())));
    let results = sqlx::Executor::fetch_many(conn, q).map_ok(|r| r.map_left(|d| d.rows_affected()));
    collect(results, pg_row).await
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
