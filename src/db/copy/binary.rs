//! PostgreSQL's binary COPY format, the writing side: the stream's header and trailer, a row's
//! field count, each field's length, and the binary forms of the values copy sends (bigint,
//! double precision, boolean, date, timestamptz, jsonb, and numeric from its decimal text).
//! Binary, because parsing text was most of the server's time in a load. Also reads back a
//! field just written, for the rows' hashes as PostgreSQL computes them.

/// The stream's signature, flags (none) and header extension length (none).
pub(super) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The field count that ends the stream.
pub(super) const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// Microseconds and days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
pub(super) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
pub(super) const PG_EPOCH_DAYS: i64 = 10_957;

/// Starts a row of `columns` fields.
pub(super) fn row_start(out: &mut Vec<u8>, columns: usize) {
    let n = i16::try_from(columns).unwrap_or(i16::MAX);
    out.extend_from_slice(&n.to_be_bytes());
}

/// The field written at `at`: its bytes, `None` for NULL (or a field cut short).
pub(super) fn field_at(out: &[u8], at: usize) -> Option<&[u8]> {
    let len = out.get(at..at + 4)?;
    let len = usize::try_from(i32::from_be_bytes([len[0], len[1], len[2], len[3]])).ok()?;
    out.get(at + 4..at + 4 + len)
}

/// A NULL field.
pub(super) fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

/// A field of the given bytes (text, varchar, bytea).
pub(super) fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = i32::try_from(b.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
}

/// A bigint field.
pub(super) fn int8(out: &mut Vec<u8>, i: i64) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&i.to_be_bytes());
}

/// A double precision field.
pub(super) fn float8(out: &mut Vec<u8>, f: f64) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&f.to_bits().to_be_bytes());
}

/// A boolean field.
pub(super) fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(&1i32.to_be_bytes());
    out.push(u8::from(b));
}

/// A date field, from days since 1970-01-01.
pub(super) fn date(out: &mut Vec<u8>, days: i32) {
    let d = i64::from(days) - PG_EPOCH_DAYS;
    out.extend_from_slice(&4i32.to_be_bytes());
    out.extend_from_slice(&i32::try_from(d).unwrap_or(i32::MIN).to_be_bytes());
}

/// A timestamptz (or timestamp) field, from microseconds since 1970-01-01 UTC.
pub(super) fn timestamp(out: &mut Vec<u8>, micros: i64) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&(micros - PG_EPOCH_MICROS).to_be_bytes());
}

/// A jsonb field from JSON text: version 1, then the text.
pub(super) fn jsonb(out: &mut Vec<u8>, text: &[u8]) {
    let len = i32::try_from(text.len() + 1).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(1);
    out.extend_from_slice(text);
}

/// numeric's sign words.
const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// A numeric field from decimal text (`-12.340`, `Infinity`, `-Infinity`, `NaN`), with the
/// display scale the text has, as PostgreSQL's own reading of the text would store it: base
/// 10000 digits, the weight of the first, the sign, the scale. `None` when the text is not a
/// plain decimal (no exponents); nothing is written then.
pub(super) fn numeric(out: &mut Vec<u8>, text: &str) -> Option<()> {
    let special = match text {
        "NaN" => Some(NUMERIC_NAN),
        "Infinity" => Some(NUMERIC_PINF),
        "-Infinity" => Some(NUMERIC_NINF),
        _ => None,
    };
    if let Some(sign) = special {
        numeric_head(out, 0, 0, sign, 0);
        return Some(());
    }
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let dscale = u16::try_from(frac.len()).ok().filter(|&s| s <= 0x3FFF)?;
    let int = int.trim_start_matches('0').as_bytes();
    let frac = frac.as_bytes();
    // Base-10000 groups aligned on the point: the integer part padded on the left, the
    // fraction on the right.
    let int_groups = int.len().div_ceil(4);
    let lead = int_groups * 4 - int.len();
    let frac_groups = frac.len().div_ceil(4);
    let mut groups: Vec<u16> = Vec::with_capacity(int_groups + frac_groups);
    let mut acc = 0u16;
    let mut n = lead;
    for &c in int.iter().chain(frac) {
        acc = acc * 10 + u16::from(c - b'0');
        n += 1;
        if n == 4 {
            groups.push(acc);
            acc = 0;
            n = 0;
        }
    }
    if n > 0 {
        for _ in n..4 {
            acc *= 10;
        }
        groups.push(acc);
    }
    let mut weight = i32::try_from(int_groups).ok()? - 1;
    let first = groups.iter().position(|&g| g != 0);
    let Some(first) = first else {
        numeric_head(out, 0, 0, NUMERIC_POS, dscale);
        return Some(());
    };
    weight -= i32::try_from(first).ok()?;
    let last = groups.iter().rposition(|&g| g != 0).unwrap_or(first);
    let digits = &groups[first..=last];
    let ndigits = u16::try_from(digits.len()).ok()?;
    let weight = i16::try_from(weight).ok()?;
    let sign = if neg { NUMERIC_NEG } else { NUMERIC_POS };
    numeric_head(out, ndigits, weight, sign, dscale);
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
    Some(())
}

/// A numeric field's length and header; `ndigits` base-10000 digits follow.
fn numeric_head(out: &mut Vec<u8>, ndigits: u16, weight: i16, sign: u16, dscale: u16) {
    let len = 8 + 2 * i32::from(ndigits);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::numeric;

    /// The field's words after its length: ndigits, weight, sign, dscale, digits.
    fn words(text: &str) -> Vec<i32> {
        let mut out = Vec::new();
        numeric(&mut out, text).expect("a decimal");
        let len = i32::from_be_bytes([out[0], out[1], out[2], out[3]]);
        assert_eq!(usize::try_from(len).ok(), Some(out.len() - 4));
        out[4..]
            .chunks(2)
            .enumerate()
            .map(|(i, w)| {
                if i == 1 {
                    i32::from(i16::from_be_bytes([w[0], w[1]]))
                } else {
                    i32::from(u16::from_be_bytes([w[0], w[1]]))
                }
            })
            .collect()
    }

    #[test]
    fn numerics_are_base_10000_digits_aligned_on_the_point() {
        assert_eq!(words("0"), [0, 0, 0, 0]);
        assert_eq!(words("-0.000"), [0, 0, 0, 3]);
        assert_eq!(words("12345.678"), [3, 1, 0, 3, 1, 2345, 6780]);
        assert_eq!(words("-12.5"), [2, 0, 0x4000, 1, 12, 5000]);
        assert_eq!(words("0.00001"), [1, -2, 0, 5, 1000]);
        assert_eq!(words("100000000"), [1, 2, 0, 0, 1]);
        assert_eq!(words("Infinity"), [0, 0, 0xD000, 0]);
        assert_eq!(words("-Infinity"), [0, 0, 0xF000, 0]);
        assert_eq!(numeric(&mut Vec::new(), "1e5"), None);
        assert_eq!(numeric(&mut Vec::new(), "-"), None);
        assert_eq!(numeric(&mut Vec::new(), "1.2.3"), None);
    }
}
