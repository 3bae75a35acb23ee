//! One table into its existing target table: the rows converted and streamed with `COPY ...
//! FROM STDIN`, in binary format when every column has a binary form (`wire`), else as text
//! (or only converted, to compare checksums on a re-run), the table read back and its checksum
//! compared, its sequences moved past the copied values.

use super::super::binary;
use super::super::checksum::{Checksum, RowHash};
use super::super::encode::escape_into;
use super::super::report::{shown, val_json, val_shown};
use super::super::scan::Scan;
use super::super::schema::{SrcTable, select_sql};
use super::super::{Op, OpError, db_error, describe, detail, per_second};
use super::canon::{canon, copy_fields};
use super::columns::{TgtColumn, TgtTable};
use super::convert::{Reading, convert};
use super::wire;
use crate::fmt::{MASK, quote_ident};
use futures_util::TryStreamExt;
use serde_json::{Value as Json, json};
use sqlx::PgConnection;
use sqlx::sqlite::SqliteConnection;
use std::time::{Duration, Instant};

/// Bytes of COPY data sent in one message.
const CHUNK: usize = 256 << 10;

/// Which source column goes into which target column.
#[derive(Debug, Clone)]
pub(in crate::db::copy) struct Mapping {
    /// Pairs of (source column, target column) positions, in target order.
    pub(in crate::db::copy) pairs: Vec<(usize, usize)>,
}

/// One table's rows converted: loaded into the target when `send`, else only summed.
pub(in crate::db::copy) struct Job<'a> {
    pub(in crate::db::copy) src: &'a SrcTable,
    pub(in crate::db::copy) tgt: &'a TgtTable,
    pub(in crate::db::copy) map: &'a Mapping,
    pub(in crate::db::copy) zone: Reading,
}

impl Job<'_> {
    /// The loaded target columns, in COPY order.
    fn columns(&self) -> Vec<&TgtColumn> {
        self.map
            .pairs
            .iter()
            .map(|&(_, ti)| &self.tgt.columns[ti])
            .collect()
    }

    fn target_columns(&self) -> String {
        let cols: Vec<String> = self
            .map
            .pairs
            .iter()
            .map(|&(_, ti)| quote_ident(&self.tgt.columns[ti].name))
            .collect();
        cols.join(", ")
    }

    /// The error of a value that does not convert, naming the row's key, the column and the
    /// value (masked when the column holds secrets).
    fn misfit(&self, scan: &Scan<'_>, row: u64, si: usize, ti: usize, why: &str) -> OpError {
        let col = &self.tgt.columns[ti];
        let value = if secret_column(&self.src.columns[si].name) {
            MASK.to_owned()
        } else {
            shown(&val_shown(scan.value(si)))
        };
        OpError::Failed(format!(
            "`{}` row {}: column `{}` ({}): the value `{value}` {why}",
            self.src.name,
            row_key(self.src, scan, row),
            col.name,
            col.shown
        ))
    }
}

/// Why PostgreSQL refused the rows (a CHECK or unique violation, a value it could not parse),
/// with where in the COPY it happened, but never the row's values ("Failing row contains
/// (...)", the line COPY quotes): they may be secrets.
fn copy_failure(e: &sqlx::Error) -> String {
    let sqlx::Error::Database(db) = e else {
        return describe(e);
    };
    let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() else {
        return describe(e);
    };
    let mut msg = pg.message().to_owned();
    if let Some(d) = pg
        .detail()
        .filter(|d| !d.starts_with("Failing row contains"))
    {
        msg.push_str(&format!(" ({d})"));
    }
    // `COPY "T", line 2: "the line's values"`: the place, without the values.
    if let Some(w) = pg.r#where().and_then(|w| w.lines().next()) {
        let place = w.split_once(": \"").map_or(w, |(place, _)| place);
        msg.push_str(&format!(" at {place}"));
    }
    format!("{msg} (SQLSTATE {})", pg.code())
}

/// Whether a column's name says it holds secrets, so its values are never shown.
fn secret_column(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password", "secret", "token", "hash", "salt", "apikey", "api_key", "private",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// The row's primary key values, or its position in the source.
fn row_key(t: &SrcTable, scan: &Scan<'_>, n: u64) -> Json {
    if t.pk.is_empty() {
        return json!({ "row": n });
    }
    let mut m = serde_json::Map::new();
    for &i in &t.pk {
        m.insert(t.columns[i].name.clone(), val_json(scan.value(i)));
    }
    Json::Object(m)
}

/// Converts every row of the table; with `send`, streams them into the target table. Returns
/// the checksum of the converted values.
pub(in crate::db::copy) async fn convert_rows(
    pg: &mut PgConnection,
    src: &mut SqliteConnection,
    op: &Op<'_>,
    job: &Job<'_>,
    send: bool,
) -> Result<Checksum, OpError> {
    let bin = wire::all_binary(&job.columns());
    let mut copy = if send {
        let sql = format!(
            "COPY {} ({}) FROM STDIN{}",
            quote_ident(&job.tgt.name),
            job.target_columns(),
            if bin { " (FORMAT binary)" } else { "" }
        );
        Some(pg.copy_in_raw(&sql).await.map_err(db_error)?)
    } else {
        None
    };
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 64 * 1024);
    if bin {
        buf.extend_from_slice(binary::HEADER);
    }
    let (mut hash, mut scratch, mut field) = (RowHash::new(), Vec::new(), String::new());
    let mut sum = Checksum::default();
    let started = Instant::now();
    let mut last_detail = Instant::now();
    let mut scan = Scan::new(src, &select_sql(job.src)).await?;
    let mut failure = None;
    'rows: while scan.next()? {
        if bin {
            binary::row_start(&mut buf, job.map.pairs.len());
        }
        for (k, &(si, ti)) in job.map.pairs.iter().enumerate() {
            let col = &job.tgt.columns[ti];
            field.clear();
            let put = match convert(&col.ty, scan.value(si), job.zone, &mut field) {
                Ok(true) => canon(&col.ty, &field, &mut hash, &mut scratch)
                    .and_then(|()| put_field(&mut buf, bin, k, col, Some(&field))),
                Ok(false) => {
                    hash.null();
                    put_field(&mut buf, bin, k, col, None)
                }
                Err(why) => Err(why),
            };
            if let Err(why) = put {
                failure = Some(job.misfit(&scan, sum.rows + 1, si, ti, &why));
                break 'rows;
            }
        }
        if !bin {
            buf.push(b'\n');
        }
        sum.add(hash.finish());
        if buf.len() >= CHUNK {
            if op.cancelled() {
                failure = Some(OpError::Interrupted);
                break;
            }
            if let Some(c) = copy.as_mut() {
                c.send(buf.as_slice())
                    .await
                    .map_err(|e| OpError::Failed(copy_failure(&e)))?;
            }
            buf.clear();
            if last_detail.elapsed() >= Duration::from_millis(200) {
                last_detail = Instant::now();
                let rate = per_second(sum.rows, started.elapsed().as_secs_f64());
                let n = sum.rows;
                detail(op, &format!("`{}` {n} rows, {rate} rows/s", job.tgt.name));
            }
        }
    }
    drop(scan);
    let Some(mut copy) = copy else {
        return failure.map_or(Ok(sum), Err);
    };
    if let Some(f) = failure {
        let _ = copy.abort("a value did not convert").await;
        return Err(f);
    }
    if bin {
        buf.extend_from_slice(&binary::TRAILER);
    }
    if !buf.is_empty() {
        copy.send(buf.as_slice())
            .await
            .map_err(|e| OpError::Failed(copy_failure(&e)))?;
    }
    let stored = copy
        .finish()
        .await
        .map_err(|e| OpError::Failed(format!("`{}`: COPY: {}", job.tgt.name, copy_failure(&e))))?;
    if stored != sum.rows {
        return Err(OpError::Failed(format!(
            "`{}`: COPY stored {stored} rows of {}",
            job.tgt.name, sum.rows
        )));
    }
    Ok(sum)
}

/// Writes one field of a row: binary, or COPY text after a tab when it is not the row's
/// first; `None` is NULL.
fn put_field(
    buf: &mut Vec<u8>,
    bin: bool,
    k: usize,
    col: &TgtColumn,
    text: Option<&str>,
) -> Result<(), String> {
    match (bin, text) {
        (true, Some(t)) => wire::field(buf, col, t)?,
        (true, None) => binary::null(buf),
        (false, text) => {
            if k > 0 {
                buf.push(b'\t');
            }
            match text {
                Some(t) => escape_into(buf, t.as_bytes()),
                None => buf.extend_from_slice(b"\\N"),
            }
        }
    }
    Ok(())
}

/// Reads the loaded columns back (`COPY ... TO STDOUT`, text) and sums the same canonical
/// forms the source's values were summed in.
pub(in crate::db::copy) async fn target_checksum(
    pg: &mut PgConnection,
    op: &Op<'_>,
    job: &Job<'_>,
) -> Result<Checksum, OpError> {
    let sql = format!(
        "COPY (SELECT {} FROM {}) TO STDOUT",
        job.target_columns(),
        quote_ident(&job.tgt.name)
    );
    let types: Vec<_> = job
        .map
        .pairs
        .iter()
        .map(|&(_, ti)| &job.tgt.columns[ti].ty)
        .collect();
    let mut stream = pg.copy_out_raw(&sql).await.map_err(db_error)?;
    let (mut carry, mut hash, mut scratch) = (Vec::new(), RowHash::new(), Vec::new());
    let mut sum = Checksum::default();
    let mut failure: Option<OpError> = None;
    while let Some(chunk) = stream.try_next().await.map_err(db_error)? {
        // The stream is read to its end even after a failure: the connection needs it.
        if failure.is_some() {
            continue;
        }
        carry.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = carry[start..].iter().position(|&b| b == b'\n') {
            let fields = copy_fields(&carry[start..start + end]);
            start += end + 1;
            if fields.len() != types.len() {
                failure = Some(OpError::Failed(
                    "verification: a row came back malformed".into(),
                ));
                break;
            }
            for (ty, f) in types.iter().zip(&fields) {
                let r = match f {
                    Some(text) => canon(ty, text, &mut hash, &mut scratch),
                    None => {
                        hash.null();
                        Ok(())
                    }
                };
                if let Err(e) = r {
                    failure = Some(OpError::Failed(format!("verification: {e}")));
                }
            }
            sum.add(hash.finish());
        }
        carry.drain(..start);
        if op.cancelled() {
            failure = Some(OpError::Interrupted);
        }
    }
    failure.map_or(Ok(sum), Err)
}

/// Moves the sequences of the loaded serial and identity columns past their highest value.
pub(in crate::db::copy) async fn move_sequences(
    pg: &mut PgConnection,
    job: &Job<'_>,
) -> Result<Vec<String>, OpError> {
    let mut moved = Vec::new();
    for &(_, ti) in &job.map.pairs {
        let col = &job.tgt.columns[ti];
        let Some(seq) = &col.sequence else { continue };
        let sql = format!(
            "SELECT setval($1::regclass, m) FROM (SELECT max({})::bigint AS m FROM {}) x \
             WHERE m IS NOT NULL",
            quote_ident(&col.name),
            quote_ident(&job.tgt.name)
        );
        let v: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(seq)
            .fetch_optional(&mut *pg)
            .await
            .map_err(db_error)?;
        if let Some(v) = v {
            moved.push(format!("{} continues after {v}", col.name));
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::secret_column;

    #[test]
    fn secret_columns_are_recognised() {
        assert!(secret_column("passwordHash"));
        assert!(secret_column("api_key"));
        assert!(!secret_column("email"));
    }
}
