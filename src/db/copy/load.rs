//! One table's load, in one PostgreSQL transaction, in two halves: `stream_table` creates the
//! table and streams its rows with `COPY ... FROM STDIN` in binary format, frozen (the table
//! is new in the transaction; the half that reads the source);
//! `finish_table` adds keys and indexes, verifies the checksum read back, records it as done
//! and commits (the half that needs only the table's connection). A value that does not fit its
//! column ends the attempt as a misfit.

use super::binary;
use super::checksum::{Checksum, RowHash, target_checksum};
use super::ddl::{Names, create_sql};
use super::encode::encode;
use super::keys::{Keys, add_checks, add_indexes, move_sequence};
use super::pghash::{self, RowHasher};
use super::plan::{Planned, column_decisions};
use super::progress;
use super::report::{Decision, InexactLog, val_json, val_shown};
use super::scan::{Cursor, Filled, Row, Source};
use super::schema::{SrcTable, select_sql};
use super::server_sum::{server_sum, verified_sum};
use super::stats::{Stats, count};
use super::types::{Kind, Misfit};
use super::{Op, OpError, db_error, describe, detail, per_second};
use crate::fmt::quote_ident;
use serde_json::{Value as Json, json};
use sqlx::PgConnection;
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// Bytes of COPY data sent in one message: small enough to keep the copy's memory low, large
/// enough that messages cost nothing next to the rows.
const CHUNK: usize = 256 << 10;

/// What one load attempt produced.
pub(super) struct Loaded {
    pub(super) checksum: Checksum,
    pub(super) inexact: InexactLog,
    pub(super) decisions: Vec<Decision>,
    /// Seconds spent streaming rows, building keys and indexes, verifying.
    pub(super) phases: [f64; 3],
    /// How the rows were verified: `by the server's hash sum` or `read back`.
    pub(super) verified_by: &'static str,
}

/// A table whose rows are in, its transaction still open on its connection: what is left
/// (keys, indexes, verification, commit) needs only that connection, so it runs while the next
/// table streams on the other.
pub(super) struct Streamed<'a> {
    pub(super) plan: Planned<'a>,
    rows: Rows,
    decisions: Vec<Decision>,
    total: i64,
    load_time: f64,
}

/// How the streaming of a table ended: its rows in (transaction open), or stopped by a value
/// that did not fit (rolled back).
pub(super) enum Attempt<'a> {
    Streamed(Streamed<'a>),
    Misfit(Planned<'a>, Misfit),
}

/// Opens the table's transaction, creates it and streams its rows. Anything but
/// `Attempt::Streamed` leaves the transaction rolled back.
pub(super) async fn stream_table<'a>(
    pg: &mut PgConnection,
    src: &Source,
    op: &Op<'_>,
    t: &SrcTable,
    plan: Planned<'a>,
) -> Result<Attempt<'a>, OpError> {
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        quote_ident(&t.name)
    )))
    .fetch_one(&mut *src.lock().await?)
    .await
    .map_err(db_error)?;
    sqlx::raw_sql("BEGIN")
        .execute(&mut *pg)
        .await
        .map_err(db_error)?;
    let out = stream_in_tx(pg, src, op, t, plan, total).await;
    if !matches!(out, Ok(Attempt::Streamed(_))) {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *pg).await;
    }
    out
}

async fn stream_in_tx<'a>(
    pg: &mut PgConnection,
    src: &Source,
    op: &Op<'_>,
    t: &SrcTable,
    plan: Planned<'a>,
    total: i64,
) -> Result<Attempt<'a>, OpError> {
    let mut decisions = Vec::new();
    let create = create_sql(t, &plan, &mut decisions);
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut *pg)
        .await
        .map_err(|e| OpError::Failed(format!("create table: {}", describe(&e))))?;
    let started = Instant::now();
    let rows = match stream_rows(pg, src, op, t, &plan, total).await? {
        Ok(rows) => rows,
        Err(m) => return Ok(Attempt::Misfit(plan, m)),
    };
    if let Some(m) = seconds_misfit(t, &plan, &rows.stats) {
        return Ok(Attempt::Misfit(plan, m));
    }
    Ok(Attempt::Streamed(Streamed {
        plan,
        rows,
        decisions,
        total,
        load_time: started.elapsed().as_secs_f64(),
    }))
}

/// Adds the streamed table's keys and indexes, verifies its checksum read back, records it
/// as done and commits; on any failure the transaction is rolled back.
pub(super) async fn finish_table(
    pg: &mut PgConnection,
    op: &Op<'_>,
    t: &SrcTable,
    streamed: Streamed<'_>,
    source_name: &str,
    keys: Keys,
    names: &RefCell<Names>,
) -> Result<Loaded, OpError> {
    let out = finish_in_tx(pg, op, t, streamed, source_name, keys, names).await;
    match &out {
        Ok(_) => {
            if let Err(e) = sqlx::raw_sql("COMMIT").execute(&mut *pg).await {
                return Err(OpError::Failed(format!("commit: {}", describe(&e))));
            }
        }
        Err(_) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *pg).await;
        }
    }
    out
}

async fn finish_in_tx(
    pg: &mut PgConnection,
    op: &Op<'_>,
    t: &SrcTable,
    streamed: Streamed<'_>,
    source_name: &str,
    keys: Keys,
    names: &RefCell<Names>,
) -> Result<Loaded, OpError> {
    let Streamed {
        plan,
        rows,
        mut decisions,
        total,
        load_time,
    } = streamed;
    let keys_started = Instant::now();
    detail(op, &format!("`{}`: keys and indexes", t.name));
    add_indexes(pg, keys.indexes, names, &mut decisions).await?;
    add_checks(pg, t, keys.checks, names, &mut decisions).await?;
    if let Some(i) = t.rowid_alias {
        decisions.push(move_sequence(pg, t, i).await?);
    }
    let keys_time = keys_started.elapsed().as_secs_f64();
    let verify_started = Instant::now();
    detail(op, &format!("`{}`: verifying", t.name));
    let sum = rows.sum;
    let on_server = match &rows.pg {
        Some(sent) => server_sum(pg, t, &plan.cols)
            .await?
            .map(|stored| verified_sum(&sent.sum, &stored)),
        None => None,
    };
    let verified_by = match on_server {
        Some(result) => {
            result?;
            "by the server's hash sum"
        }
        None => {
            verified(&sum, &target_checksum(pg, op, t, &plan).await?)?;
            "read back"
        }
    };
    counted(&sum, total)?;
    let verify_time = verify_started.elapsed().as_secs_f64();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ANALYZE {}",
        quote_ident(&t.name)
    )))
    .execute(&mut *pg)
    .await
    .map_err(db_error)?;
    progress::record_done(pg, &t.name, source_name, &sum).await?;
    decisions.splice(0..0, column_decisions(t, &plan, &rows.stats));
    Ok(Loaded {
        checksum: sum,
        inexact: rows.inexact,
        decisions,
        phases: [load_time, keys_time, verify_time],
        verified_by,
    })
}

/// The rows of one COPY stream: the chunk being filled, and what the rows so far add up to.
struct Rows {
    buf: Vec<u8>,
    hash: RowHash,
    scratch: Vec<u8>,
    /// Storage classes seen in columns of optimistic types, for the reasons and the seconds
    /// check.
    stats: Vec<Stats>,
    inexact: InexactLog,
    sum: Checksum,
    /// The rows' hashes as PostgreSQL computes them, for the server to verify; `None` when a
    /// column's hash is not computed here.
    pg: Option<Box<RowHasher>>,
}

impl Rows {
    fn new(plan: &Planned<'_>) -> Self {
        let mut buf = Vec::with_capacity(CHUNK + 64 * 1024);
        buf.extend_from_slice(binary::HEADER);
        let kinds: Vec<Kind> = plan.cols.iter().map(|p| p.kind).collect();
        Rows {
            buf,
            hash: RowHash::new(),
            scratch: Vec::new(),
            stats: vec![Stats::default(); kinds.len()],
            inexact: InexactLog::default(),
            sum: Checksum::default(),
            pg: pghash::hashable(kinds.iter().copied()).then(|| Box::new(RowHasher::new(kinds))),
        }
    }

    /// Encodes the scan's current row into the chunk; the first value that does not fit its
    /// column stops the row, which is then neither ended nor counted.
    fn push(&mut self, t: &SrcTable, plan: &Planned<'_>, scan: &Row<'_>) -> Result<(), Misfit> {
        binary::row_start(&mut self.buf, plan.cols.len());
        if let Some(h) = &mut self.pg {
            h.start_row();
        }
        for (i, p) in plan.cols.iter().enumerate() {
            let v = scan.value(i);
            if p.optimistic {
                count(&mut self.stats[i], v);
            }
            let at = self.buf.len();
            let encoded = encode(&mut self.buf, &mut self.hash, p, v, &mut self.scratch);
            if encoded.is_ok()
                && let Some(h) = &mut self.pg
                && !h.field(binary::field_at(&self.buf, at))
            {
                self.pg = None;
            }
            match encoded {
                Ok(None) => {}
                Ok(Some((reason, stored))) => {
                    let n = self.sum.rows + 1;
                    self.inexact
                        .push(i, reason, || row_key(t, scan, n), val_shown(v), stored);
                }
                Err(what) => {
                    return Err(Misfit {
                        column: t.columns[i].name.clone(),
                        what,
                    });
                }
            }
        }
        self.sum.add(self.hash.finish());
        if let Some(h) = &mut self.pg {
            h.end_row();
        }
        Ok(())
    }
}

/// Streams the table's rows into `COPY ... FROM STDIN` in chunks: `Ok(Err(misfit))` when a
/// value did not fit its column (the COPY is aborted then). The source is read a chunk at a
/// time under its lock, which is free while a chunk is sent.
async fn stream_rows(
    pg: &mut PgConnection,
    src: &Source,
    op: &Op<'_>,
    t: &SrcTable,
    plan: &Planned<'_>,
    total: i64,
) -> Result<Result<Rows, Misfit>, OpError> {
    let col_list: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let copy_sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary, FREEZE)",
        quote_ident(&t.name),
        col_list.join(", ")
    );
    let mut copy = pg.copy_in_raw(&copy_sql).await.map_err(db_error)?;
    let mut cursor = match Cursor::new(src, &select_sql(t)).await {
        Ok(c) => c,
        Err(e) => {
            let _ = copy.abort("the source could not be read").await;
            return Err(e);
        }
    };
    let out = stream_chunks(&mut copy, &mut cursor, op, t, plan, total).await;
    cursor.close().await;
    let rows = match out {
        Ok(Ok(rows)) => rows,
        Ok(Err(m)) => {
            let _ = copy.abort("a value did not fit its column").await;
            return Ok(Err(m));
        }
        Err(e) => {
            let why = match e {
                OpError::Interrupted => "interrupted",
                _ => "the source could not be read",
            };
            let _ = copy.abort(why).await;
            return Err(e);
        }
    };
    let copied = copy
        .finish()
        .await
        .map_err(|e| OpError::Failed(format!("COPY: {}", describe(&e))))?;
    if copied != rows.sum.rows {
        return Err(OpError::Failed(format!(
            "COPY stored {copied} rows of {}",
            rows.sum.rows
        )));
    }
    Ok(Ok(rows))
}

/// Fills and sends the chunks, the last with the stream's trailer.
async fn stream_chunks(
    copy: &mut sqlx::postgres::PgCopyIn<&mut PgConnection>,
    cursor: &mut Cursor<'_>,
    op: &Op<'_>,
    t: &SrcTable,
    plan: &Planned<'_>,
    total: i64,
) -> Result<Result<Rows, Misfit>, OpError> {
    let mut rows = Rows::new(plan);
    let started = Instant::now();
    let mut last_detail = Instant::now();
    loop {
        let filled = cursor
            .fill(|row| {
                rows.push(t, plan, row)?;
                Ok(rows.buf.len() < CHUNK)
            })
            .await?;
        match filled {
            Filled::Stopped(m) => return Ok(Err(m)),
            Filled::End => break,
            Filled::Paused => {}
        }
        if op.cancelled() {
            return Err(OpError::Interrupted);
        }
        copy.send(rows.buf.as_slice()).await.map_err(db_error)?;
        rows.buf.clear();
        if last_detail.elapsed() >= Duration::from_millis(200) {
            last_detail = Instant::now();
            let n = rows.sum.rows;
            let rate = per_second(n, started.elapsed().as_secs_f64());
            detail(
                op,
                &format!("`{}` {n} of {total} rows, {rate} rows/s", t.name),
            );
        }
    }
    rows.buf.extend_from_slice(&binary::TRAILER);
    copy.send(rows.buf.as_slice()).await.map_err(db_error)?;
    Ok(Ok(rows))
}

/// Values the optimistic types accepted one by one, but not as a whole: integer timestamps
/// that all look like seconds.
fn seconds_misfit(t: &SrcTable, plan: &Planned<'_>, stats: &[Stats]) -> Option<Misfit> {
    plan.cols.iter().enumerate().find_map(|(i, p)| {
        (p.optimistic && p.kind == Kind::Timestamptz && stats[i].ints_look_like_seconds()).then(
            || Misfit {
                column: t.columns[i].name.clone(),
                what: "integers that look like seconds since 1970, not milliseconds".to_owned(),
            },
        )
    })
}

/// Whether the target's checksum (read back) is the source's.
fn verified(sum: &Checksum, back: &Checksum) -> Result<(), OpError> {
    if back != sum {
        return Err(OpError::Failed(format!(
            "verification failed: the source has {} rows (checksum {}), the target {} rows \
             (checksum {})",
            sum.rows,
            sum.hex(),
            back.rows,
            back.hex()
        )));
    }
    Ok(())
}

/// Whether the source's count is the rows read.
fn counted(sum: &Checksum, total: i64) -> Result<(), OpError> {
    if i64::try_from(sum.rows).ok() != Some(total) {
        return Err(OpError::Failed(format!(
            "the source counted {total} rows but {} were read",
            sum.rows
        )));
    }
    Ok(())
}

/// The row's primary key values, or its position in the source.
fn row_key(t: &SrcTable, row: &Row<'_>, n: u64) -> Json {
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
