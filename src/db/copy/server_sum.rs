//! Verification by the server's own sum: one aggregate over the table, in the load's
//! transaction, adds `hash_record_extended` of every row (PostgreSQL 14 and later) with the row
//! count and each double column's non-NULL count; `pghash` computed the same from the rows as
//! they were sent. The server scans the table once (in parallel when it plans so) instead of
//! sending every row back to be decoded and hashed here.
//!
//! The same query hashes a probe row of the table's type whose values are known here: when its
//! hash is not the one computed here (a server of another byte order, a collation that hashes
//! text otherwise, a value the cast changed), the table is read back instead. A table with a
//! numeric or jsonb column is read back too (their hashes are of internal forms).

use super::limits::Limit;
use super::pghash::{RowHasher, RowSum, hashable};
use super::schema::SrcTable;
use super::types::{ColPlan, Kind};
use super::{OpError, db_error};
use crate::fmt::quote_ident;
use sqlx::{PgConnection, Row};

/// The first server version with `hash_record_extended`.
const FIRST_VERSION: u32 = 140_000;

/// The probe's text, 11 bytes (lookup3's last partial block); a `varchar(n)` column gets its
/// first n characters, as the cast to the table's type keeps.
const PROBE_TEXT: &str = "é✓ probe";

/// A probe value for column `p`: its SQL text and its binary COPY field.
fn probe(p: &ColPlan) -> (String, Vec<u8>) {
    let fixed = |sql: &str, field: Vec<u8>| (sql.to_owned(), field);
    match p.kind {
        Kind::Identity | Kind::BigInt => fixed(
            "'-1234567890123'",
            (-1_234_567_890_123_i64).to_be_bytes().to_vec(),
        ),
        Kind::Double => fixed("'-2.5'", (-2.5_f64).to_be_bytes().to_vec()),
        Kind::Bool => fixed("'true'", vec![1]),
        Kind::Text => {
            let text: String = match p.limit {
                Some(Limit::Chars(n)) => PROBE_TEXT.chars().take(n as usize).collect(),
                _ => PROBE_TEXT.to_owned(),
            };
            (format!("'{text}'"), text.into_bytes())
        }
        Kind::Bytea => fixed("decode('00ff10', 'hex')", vec![0, 0xff, 0x10]),
        // 1.5 s after PostgreSQL's epoch, in microseconds.
        Kind::Timestamptz => fixed(
            "'2000-01-01 00:00:01.5+00'",
            1_500_000_i64.to_be_bytes().to_vec(),
        ),
        // Two days after PostgreSQL's epoch.
        Kind::Date => fixed("'2000-01-03'", 2_i32.to_be_bytes().to_vec()),
        Kind::Numeric | Kind::Jsonb => fixed("NULL", Vec::new()),
    }
}

/// The aggregate's SQL: count, sum of row hashes, the double columns' counts and the probe
/// row's hash, all as text (the simple protocol's rows are text).
fn sum_sql(t: &SrcTable, cols: &[ColPlan]) -> String {
    let doubles: Vec<String> = t
        .columns
        .iter()
        .zip(cols)
        .filter(|(_, p)| p.kind == Kind::Double)
        .map(|(c, _)| format!(", count(x.{})::text", quote_ident(&c.name)))
        .collect();
    let probe: Vec<String> = cols.iter().map(|p| probe(p).0).collect();
    let table = quote_ident(&t.name);
    format!(
        "SELECT count(*)::text, coalesce(sum(hash_record_extended(x, 0)), 0)::text{}, \
         hash_record_extended(ROW({})::{table}, 0)::text FROM {table} x",
        doubles.concat(),
        probe.join(", ")
    )
}

/// The probe row's hash as computed here.
fn probe_hash(cols: &[ColPlan]) -> Option<i64> {
    let mut h = RowHasher::new(cols.iter().map(|p| p.kind).collect());
    h.start_row();
    for p in cols {
        if !h.field(Some(&probe(p).1)) {
            return None;
        }
    }
    h.end_row();
    i64::try_from(h.sum.sum).ok()
}

/// The server's sum of the table's rows; `None` when it cannot be had (an older server, a
/// kind not hashed here, a probe hashed otherwise): the table is read back then.
pub(super) async fn server_sum(
    pg: &mut PgConnection,
    t: &SrcTable,
    cols: &[ColPlan],
) -> Result<Option<RowSum>, OpError> {
    if pg.server_version_num().is_none_or(|v| v < FIRST_VERSION)
        || !hashable(cols.iter().map(|p| p.kind))
    {
        return Ok(None);
    }
    let Some(want) = probe_hash(cols) else {
        return Ok(None);
    };
    let row = sqlx::raw_sql(sqlx::AssertSqlSafe(sum_sql(t, cols)))
        .fetch_one(&mut *pg)
        .await
        .map_err(db_error)?;
    let get = |i: usize| -> Result<i64, OpError> {
        let text: &str = row.try_get(i).map_err(db_error)?;
        text.parse()
            .map_err(|_| OpError::Failed(format!("verification: cannot read `{text}`")))
    };
    let doubles = cols.iter().filter(|p| p.kind == Kind::Double).count();
    if get(2 + doubles)? != want {
        return Ok(None);
    }
    let sum: &str = row.try_get(1).map_err(db_error)?;
    let sum = sum
        .parse()
        .map_err(|_| OpError::Failed(format!("verification: cannot read the sum `{sum}`")))?;
    let rows = u64::try_from(get(0)?).unwrap_or(u64::MAX);
    let non_null = (0..doubles)
        .map(|i| get(2 + i).map(|n| u64::try_from(n).unwrap_or(u64::MAX)))
        .collect::<Result<_, _>>()?;
    Ok(Some(RowSum {
        rows,
        sum,
        non_null,
    }))
}

/// Whether the server's sum is the one of the rows sent.
pub(super) fn verified_sum(sent: &RowSum, stored: &RowSum) -> Result<(), OpError> {
    if sent == stored {
        return Ok(());
    }
    Err(OpError::Failed(format!(
        "verification failed: the source has {} rows (hash sum {}, non-NULL doubles {:?}), the \
         target {} rows (hash sum {}, non-NULL doubles {:?})",
        sent.rows, sent.sum, sent.non_null, stored.rows, stored.sum, stored.non_null
    )))
}
