//! Content checksums on both sides: a row hash over canonical values (MurmurHash3, 128 bits),
//! the order-independent sum of a table's row hashes, the source's sum under a plan, and the
//! target's sum read back through binary `COPY ... TO STDOUT`.

use super::encode::{encode, norm_decimal};
use super::json::canon_json_text;
use super::plan::{Planned, inspect, plan_from_stats};
use super::scan::Scan;
use super::schema::{SrcTable, select_sql};
use super::types::Kind;
use super::{Op, OpError, db_error};
use crate::fmt::quote_ident;
use futures_util::TryStreamExt;
use sqlx::PgConnection;
use sqlx::sqlite::SqliteConnection;

/// Collects canonical values of one row, then hashes them in one call. Reused from row to row.
///
/// The hash is MurmurHash3 x64-128: the checksum guards against values lost or changed on the
/// way, not against an adversary, and SHA-256 here was a sixth of the copy's time.
pub(super) struct RowHash {
    buf: Vec<u8>,
}

impl RowHash {
    pub(super) fn new() -> Self {
        RowHash { buf: Vec::new() }
    }

    pub(super) fn null(&mut self) {
        self.buf.push(0);
    }

    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.buf.push(1);
        self.buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
        self.buf.extend_from_slice(b);
    }

    /// The row's hash; the buffer is emptied for the next row.
    pub(super) fn finish(&mut self) -> u128 {
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
pub(super) struct Checksum {
    pub(super) rows: u64,
    pub(super) sum: u128,
}

impl Checksum {
    pub(super) fn add(&mut self, row: u128) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(row);
    }

    /// The sum as 32 hex digits, as reports and the progress table show it.
    pub(super) fn hex(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

/// The source's checksum under the planned types, without loading anything (a re-run deciding
/// whether a table can be skipped). A misfit means the source changed: the checksum cannot
/// match then.
pub(super) async fn source_checksum(
    src: &mut SqliteConnection,
    op: &Op<'_>,
    plan: &mut Planned<'_>,
) -> Result<Checksum, OpError> {
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
                if sum.rows.is_multiple_of(16_384) && op.cancelled() {
                    return Err(OpError::Interrupted);
                }
            }
        }
        if !misfit {
            return Ok(sum);
        }
        if round == 0 {
            let stats = inspect(src, op, plan.src).await?;
            let zone = plan.cols.first().and_then(|c| c.zone);
            *plan = plan_from_stats(plan.src, stats).with_zone(zone);
        }
    }
    Ok(Checksum {
        rows: u64::MAX,
        sum: 0,
    })
}

/// Reads the table back from PostgreSQL (`COPY ... TO STDOUT` in binary format) and computes
/// its checksum. Binary, because printing timestamps and floats as text was most of the
/// server's time here; it also decodes the values independently of how they were sent.
pub(super) async fn target_checksum(
    pg: &mut PgConnection,
    op: &Op<'_>,
    t: &SrcTable,
    plan: &Planned<'_>,
) -> Result<Checksum, OpError> {
    // numeric and jsonb come back as text: their binary forms are internal layouts.
    let cols: Vec<String> = t
        .columns
        .iter()
        .zip(&plan.cols)
        .map(|(c, p)| match p.kind {
            Kind::Numeric | Kind::Jsonb => format!("{}::text", quote_ident(&c.name)),
            _ => quote_ident(&c.name),
        })
        .collect();
    let sql = format!(
        "COPY (SELECT {} FROM {}) TO STDOUT (FORMAT binary)",
        cols.join(", "),
        quote_ident(&t.name)
    );
    let kinds: Vec<Kind> = plan.cols.iter().map(|p| p.kind).collect();
    let mut stream = pg.copy_out_raw(&sql).await.map_err(db_error)?;
    let mut reader = BinaryRows::default();
    let mut failure: Option<String> = None;
    while let Some(chunk) = stream.try_next().await.map_err(db_error)? {
        // After a failure the stream is still read to its end: the connection cannot be used
        // again before that.
        if failure.is_none() {
            if let Err(e) = reader.feed(&chunk, &kinds) {
                failure = Some(e);
            } else if op.cancelled() {
                failure = Some(String::new());
            }
        }
    }
    match failure {
        Some(f) if f.is_empty() => Err(OpError::Interrupted),
        Some(f) => Err(OpError::Failed(format!("verification: {f}"))),
        None if !reader.ended => Err(OpError::Failed(
            "verification: the binary COPY stream ended early".to_owned(),
        )),
        None => Ok(reader.sum),
    }
}

use super::binary::{PG_EPOCH_DAYS, PG_EPOCH_MICROS};

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

/// A big-endian u32 from the first four bytes.
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

#[cfg(test)]
mod tests {
    use super::{BinaryRows, Checksum, PG_EPOCH_MICROS, RowHash, murmur3_128};
    use crate::db::copy::encode::encode;
    use crate::db::copy::scan::Val;
    use crate::db::copy::types::{ColPlan, Kind};

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
                limit: None,
                zone: None,
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
    fn murmur3_matches_the_reference() {
        assert_eq!(murmur3_128(b""), 0);
        assert_eq!(murmur3_128(b"hello"), 0x5b1e906a48ae1d19cbd8a7b341bd9b02);
        assert_eq!(
            murmur3_128(b"The quick brown fox jumps over the lazy dog"),
            0x7a433ca9c49a9347e34bbc7bbc071b6c
        );
    }
}
