//! PostgreSQL's own hash of a row, computed here from the values sent: what
//! `hash_record_extended(ROW(...), 0)` gives on the server for the same row, so the server can
//! sum its rows' hashes (one aggregate, in parallel) instead of sending every row back.
//!
//! `hash_record_extended` combines the columns' extended hash functions (`hash = hash * 31 +
//! column hash`, NULL hashing to 0); those hash a column's value with Bob Jenkins' lookup3 as
//! PostgreSQL adapted it (`hash_bytes_extended`, `hash_bytes_uint32_extended`: the final `b`
//! and `c` as one 64-bit value). The values come as their binary COPY fields, the bytes the
//! server reads. Numeric and jsonb hash their internal forms, not computed here: a table with
//! such a column is read back instead. A double's zero hashes as NULL does, so the sum also
//! carries each double column's non-NULL count.

use super::types::Kind;

/// Jenkins' `mix`: three words mixed reversibly.
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

/// Jenkins' `final`: the words mixed into `b` and `c`, returned as `b << 32 | c`.
fn finish(mut a: u32, mut b: u32, mut c: u32) -> u64 {
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    (u64::from(b) << 32) | u64::from(c)
}

/// The starting value of the three words for a key of `len` bytes.
fn start(len: usize) -> u32 {
    0x9e37_79b9_u32
        .wrapping_add(len as u32)
        .wrapping_add(3_923_095)
}

/// A little-endian word from up to four bytes, the missing high bytes zero.
fn word(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w[..b.len()].copy_from_slice(b);
    u32::from_le_bytes(w)
}

/// `hash_bytes_extended(k, len, 0)` on a little-endian server.
pub(super) fn hash_bytes(k: &[u8]) -> u64 {
    let (mut a, mut b, mut c) = (start(k.len()), start(k.len()), start(k.len()));
    let mut blocks = k.chunks_exact(12);
    for block in &mut blocks {
        a = a.wrapping_add(word(&block[..4]));
        b = b.wrapping_add(word(&block[4..8]));
        c = c.wrapping_add(word(&block[8..]));
        mix(&mut a, &mut b, &mut c);
    }
    let tail = blocks.remainder();
    a = a.wrapping_add(word(&tail[..tail.len().min(4)]));
    if tail.len() > 4 {
        b = b.wrapping_add(word(&tail[4..tail.len().min(8)]));
    }
    if tail.len() > 8 {
        // The lowest byte of `c` is left for the length.
        c = c.wrapping_add(word(&tail[8..]) << 8);
    }
    finish(a, b, c)
}

/// `hash_bytes_uint32_extended(k, 0)`.
pub(super) fn hash_u32(k: u32) -> u64 {
    let s = start(4);
    finish(s.wrapping_add(k), s, s)
}

/// `hashint8extended(v, 0)`: the high half folded into the low one (complemented when
/// negative), so equal int2, int4 and int8 values hash alike.
fn hash_i64(v: i64) -> u64 {
    let hi = (v >> 32) as u32;
    let lo = (v as u32) ^ if v >= 0 { hi } else { !hi };
    hash_u32(lo)
}

/// The extended hash (seed 0) of one binary COPY field of `kind`; `None` for the kinds whose
/// hash is not computed here, or a field of the wrong length.
pub(super) fn value_hash(kind: Kind, v: &[u8]) -> Option<u64> {
    let eight = || <[u8; 8]>::try_from(v).ok();
    Some(match kind {
        Kind::Identity | Kind::BigInt | Kind::Timestamptz => hash_i64(i64::from_be_bytes(eight()?)),
        Kind::Date => hash_u32(u32::from_be_bytes(<[u8; 4]>::try_from(v).ok()?)),
        Kind::Bool => hash_u32(u32::from(*v.first()?)),
        Kind::Double => {
            let f = f64::from_be_bytes(eight()?);
            if f == 0.0 {
                // Zero and minus zero are equal: both hash to the seed.
                0
            } else if f.is_nan() {
                hash_bytes(&f64::NAN.to_le_bytes())
            } else {
                hash_bytes(&f.to_le_bytes())
            }
        }
        Kind::Text | Kind::Bytea => hash_bytes(v),
        Kind::Numeric | Kind::Jsonb => return None,
    })
}

/// Whether every column's hash is computed here.
pub(super) fn hashable(kinds: impl IntoIterator<Item = Kind>) -> bool {
    kinds
        .into_iter()
        .all(|k| !matches!(k, Kind::Numeric | Kind::Jsonb))
}

/// What a table's rows add up to as the server sums them: the row count, the sum of the rows'
/// hashes (signed, as `sum(bigint)` adds them) and the non-NULL values of each double column,
/// in column order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RowSum {
    pub(super) rows: u64,
    pub(super) sum: i128,
    pub(super) non_null: Vec<u64>,
}

/// Rows' hashes as they are built, column by column, and what they add up to.
pub(super) struct RowHasher {
    kinds: Vec<Kind>,
    hash: u64,
    next: usize,
    /// Each column's place among the double columns.
    double_at: Vec<Option<usize>>,
    /// Whether each double column's value in this row is not NULL.
    doubles: Vec<bool>,
    pub(super) sum: RowSum,
}

impl RowHasher {
    pub(super) fn new(kinds: Vec<Kind>) -> Self {
        let mut n = 0;
        let double_at = kinds
            .iter()
            .map(|k| {
                (*k == Kind::Double).then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect();
        RowHasher {
            kinds,
            double_at,
            hash: 0,
            next: 0,
            doubles: vec![false; n],
            sum: RowSum {
                non_null: vec![0; n],
                ..RowSum::default()
            },
        }
    }

    /// Starts a row (one that stopped before its end is not counted).
    pub(super) fn start_row(&mut self) {
        self.hash = 0;
        self.next = 0;
        self.doubles.fill(false);
    }

    /// The next column's binary COPY field (`None` for NULL); false when its hash cannot be
    /// computed.
    pub(super) fn field(&mut self, v: Option<&[u8]>) -> bool {
        let Some(&kind) = self.kinds.get(self.next) else {
            return false;
        };
        let h = match v {
            None => 0,
            Some(v) => match value_hash(kind, v) {
                Some(h) => h,
                None => return false,
            },
        };
        if let (Some(k), Some(_)) = (self.double_at[self.next], v) {
            self.doubles[k] = true;
        }
        self.hash = self.hash.wrapping_mul(31).wrapping_add(h);
        self.next += 1;
        true
    }

    /// Ends the row, adding it to the sum.
    pub(super) fn end_row(&mut self) {
        self.sum.rows += 1;
        self.sum.sum += i128::from(self.hash as i64);
        for (n, seen) in self.sum.non_null.iter_mut().zip(&self.doubles) {
            *n += u64::from(*seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Kind, RowHasher, hash_bytes, hash_u32, value_hash};

    /// One row's hash as the server's `hash_record_extended(ROW(...), 0)` gives it.
    fn row(fields: &[(Kind, Option<&[u8]>)]) -> i64 {
        let mut h = RowHasher::new(fields.iter().map(|f| f.0).collect());
        h.start_row();
        for (_, v) in fields {
            assert!(h.field(*v));
        }
        h.end_row();
        i64::try_from(h.sum.sum).unwrap()
    }

    #[test]
    fn hashes_are_postgresqls() {
        // Each value from PostgreSQL 15 on x86-64 (`hashint8extended(-1234567890123, 0)`...).
        let int8 = |v: i64| value_hash(Kind::BigInt, &v.to_be_bytes()).unwrap() as i64;
        assert_eq!(int8(-1_234_567_890_123), -4_233_410_618_833_895_210);
        assert_eq!(int8(i64::MAX), 1_977_219_185_673_256_887);
        let float8 = |v: f64| value_hash(Kind::Double, &v.to_be_bytes()).unwrap() as i64;
        assert_eq!(float8(-2.5), 6_700_445_097_261_707_386);
        assert_eq!(float8(f64::NAN), 4_719_788_943_832_604_568);
        assert_eq!(float8(0.0), 0);
        assert_eq!(float8(-0.0), 0);
        let text = |v: &str| hash_bytes(v.as_bytes()) as i64;
        assert_eq!(text("é✓ probe"), -9_026_981_654_191_719_915);
        assert_eq!(text(""), -6_939_563_903_564_495_251);
        assert_eq!(text("abcdefghijkl"), -7_556_637_188_122_330_412);
        assert_eq!(text("abcdefghijklmnopqrstuvw"), -1_198_571_854_151_947_912);
        assert_eq!(hash_u32(2) as i64, 3_647_684_041_653_542_134);
        // hash_record_extended(ROW(true), 0), ROW(1::bigint, NULL::text, 'x'::text) and
        // ROW(date '2000-01-03', timestamptz '2000-01-01 00:00:01.5+00', '\x00ff10'::bytea).
        assert_eq!(row(&[(Kind::Bool, Some(&[1]))]), -3_670_598_878_359_251_130);
        assert_eq!(
            row(&[
                (Kind::BigInt, Some(&1_i64.to_be_bytes())),
                (Kind::Text, None),
                (Kind::Text, Some(b"x")),
            ]),
            -4_592_249_191_205_652_913
        );
        assert_eq!(
            row(&[
                (Kind::Date, Some(&2_i32.to_be_bytes())),
                (Kind::Timestamptz, Some(&1_500_000_i64.to_be_bytes())),
                (Kind::Bytea, Some(&[0, 0xff, 0x10])),
            ]),
            -4_950_240_081_871_857_646
        );
        assert!(value_hash(Kind::Numeric, b"1").is_none());
    }

    #[test]
    fn a_row_counts_its_double_columns_values_that_are_not_null() {
        let mut h = RowHasher::new(vec![Kind::Double, Kind::Text, Kind::Double]);
        for (a, b) in [
            (Some(0.0), None),
            (None, Some(1.5)),
            (Some(2.0), Some(-0.0)),
        ] {
            h.start_row();
            assert!(h.field(a.map(f64::to_be_bytes).as_ref().map(|v| &v[..])));
            assert!(h.field(Some(b"t")));
            assert!(h.field(b.map(f64::to_be_bytes).as_ref().map(|v| &v[..])));
            h.end_row();
        }
        assert_eq!((h.sum.rows, h.sum.non_null.clone()), (3, vec![2, 2]));
        // A row that stopped part way is not counted: the next row starts afresh.
        h.start_row();
        assert!(h.field(Some(&1.0_f64.to_be_bytes())));
        h.start_row();
        assert!(!h.field(Some(b"too short for a double")));
        assert_eq!(h.sum.rows, 3);
    }
}
