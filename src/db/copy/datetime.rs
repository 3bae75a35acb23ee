//! ISO 8601 dates and timestamps: exact parsing into days and microseconds since 1970, and
//! formatting for COPY text, by hand because it is on every row of the load.

use std::io::Write as _;

/// The `n` ASCII digits at `at` as a number.
fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at + n)?;
    let mut v = 0u32;
    for &c in part {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Days since 1970-01-01 of exactly `YYYY-MM-DD` (years 1 to 9999).
pub(super) fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 {
        return None;
    }
    date_at(b).map(|(d, _)| d)
}

/// The date at the start of `b`, and where it ends.
fn date_at(b: &[u8]) -> Option<(i32, usize)> {
    let y = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let m = digits(b, 5, 2)?;
    let d = digits(b, 8, 2)?;
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if y == 0 || d == 0 || d > month_days {
        return None;
    }
    Some((
        days_from_civil(i64::from(y), i64::from(m), i64::from(d)) as i32,
        10,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of [`civil`]).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since 1970 (UTC) of an ISO 8601 timestamp: `YYYY-MM-DD`, optionally
/// `[T ]HH:MM[:SS[.fraction]]`, optionally `Z` or `±HH[[:]MM]`; no zone means UTC. A fraction
/// finer than microseconds must be zeros: the value has to be kept exactly.
pub(super) fn parse_timestamp(s: &str) -> Option<i64> {
    parse_timestamp_zoned(s).map(|(micros, _)| micros)
}

/// As [`parse_timestamp`], and whether the text named its zone (`Z` or an offset); without
/// one the microseconds are the wall-clock time read as UTC.
pub(super) fn parse_timestamp_zoned(s: &str) -> Option<(i64, bool)> {
    let b = s.as_bytes();
    let (days, mut i) = date_at(b)?;
    let mut micros_of_day: i64 = 0;
    if i < b.len() && (b[i] == b'T' || b[i] == b' ') {
        i += 1;
        let h = digits(b, i, 2)?;
        if b.get(i + 2) != Some(&b':') {
            return None;
        }
        let mi = digits(b, i + 3, 2)?;
        i += 5;
        let mut sec = 0;
        let mut frac: i64 = 0;
        if b.get(i) == Some(&b':') {
            sec = digits(b, i + 1, 2)?;
            i += 3;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    let d = i64::from(b[i] - b'0');
                    let pos = i - start;
                    if pos < 6 {
                        frac += d * 10i64.pow(5 - pos as u32);
                    } else if d != 0 {
                        return None;
                    }
                    i += 1;
                }
                if i == start {
                    return None;
                }
            }
        }
        if h > 23 || mi > 59 || sec > 59 {
            return None;
        }
        micros_of_day =
            (i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec)) * 1_000_000 + frac;
    }
    let mut offset_secs: i64 = 0;
    let zoned = i < b.len();
    if i < b.len() {
        match b[i] {
            b'Z' | b'z' => i += 1,
            sign @ (b'+' | b'-') => {
                let oh = digits(b, i + 1, 2)?;
                i += 3;
                let mut om = 0;
                if b.get(i) == Some(&b':') {
                    om = digits(b, i + 1, 2)?;
                    i += 3;
                } else if let Some(m) = digits(b, i, 2) {
                    om = m;
                    i += 2;
                }
                if oh > 15 || om > 59 {
                    return None;
                }
                offset_secs = i64::from(oh * 3600 + om * 60);
                if sign == b'-' {
                    offset_secs = -offset_secs;
                }
            }
            _ => return None,
        }
    }
    if i != b.len() {
        return None;
    }
    Some((
        i64::from(days) * 86_400_000_000 + micros_of_day - offset_secs * 1_000_000,
        zoned,
    ))
}

/// Microseconds since 1970 (UTC) of a wall-clock time (`micros` read as UTC) in `tz`; a time
/// the zone skips or repeats at a clock change is an error, never a guess.
pub(super) fn local_to_utc(micros: i64, tz: chrono_tz::Tz) -> Result<i64, String> {
    use chrono::TimeZone as _;
    let naive = chrono::DateTime::from_timestamp_micros(micros)
        .ok_or("is not a date-time")?
        .naive_utc();
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(dt) => Ok(dt.timestamp_micros()),
        chrono::LocalResult::Ambiguous(..) => Err(format!(
            "is ambiguous in {tz} (the hour repeated when clocks go back)"
        )),
        chrono::LocalResult::None => Err(format!(
            "does not exist in {tz} (skipped when clocks go forward)"
        )),
    }
}

/// Year, month and day of a day count since 1970-01-01 (proleptic Gregorian calendar; the
/// algorithm of Howard Hinnant's "chrono-Compatible Low-Level Date Algorithms").
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `v` in exactly `width` digits, zero-padded.
fn push_digits(out: &mut Vec<u8>, v: i64, width: u32) {
    let mut div = 10i64.pow(width - 1);
    while div > 0 {
        out.push(b'0' + ((v / div) % 10) as u8);
        div /= 10;
    }
}

/// `YYYY-MM-DD`; years outside 1 to 9999 never come from the parsers here.
fn push_date(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil(days);
    if !(0..=9999).contains(&y) {
        let _ = write!(out, "{y}");
    } else {
        push_digits(out, y, 4);
    }
    out.push(b'-');
    push_digits(out, m, 2);
    out.push(b'-');
    push_digits(out, d, 2);
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00`, written by hand: chrono's formatter was a tenth of the
/// time of a copy of timestamp-heavy tables.
pub(super) fn format_timestamp(out: &mut Vec<u8>, micros: i64) {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    push_date(out, days);
    out.push(b' ');
    push_digits(out, rest / 3_600_000_000, 2);
    out.push(b':');
    push_digits(out, rest / 60_000_000 % 60, 2);
    out.push(b':');
    push_digits(out, rest / 1_000_000 % 60, 2);
    out.push(b'.');
    push_digits(out, rest % 1_000_000, 6);
    out.extend_from_slice(b"+00");
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
pub(super) fn format_date(out: &mut Vec<u8>, days: i32) {
    push_date(out, i64::from(days));
}

#[cfg(test)]
mod tests {
    use super::{format_date, format_timestamp, parse_date, parse_timestamp};

    #[test]
    fn timestamps_parse_exactly() {
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01"), Some(1_000_000));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:00-0130"),
            Some(5_400_000_000)
        );
        assert_eq!(
            parse_timestamp("2024-02-29 12:34:56.123456+00"),
            Some(1_709_210_096_123_456)
        );
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:00.1234560"),
            Some(123_456)
        );
        // Finer than microseconds would be rounded by PostgreSQL: not exact, refused.
        assert_eq!(parse_timestamp("1970-01-01 00:00:00.1234567"), None);
        assert_eq!(parse_timestamp("2023-02-29"), None);
        assert_eq!(parse_timestamp("0000-01-01"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2024-01-01 25:00"), None);
        assert_eq!(parse_timestamp("2024-01-01 10:00 junk"), None);
        assert_eq!(parse_date("2024-01-31"), Some(19_753));
        assert_eq!(parse_date("0001-01-01"), Some(-719_162));
        assert_eq!(parse_date("9999-12-31"), Some(2_932_896));
        assert_eq!(parse_date("1900-02-29"), None);
        assert_eq!(parse_date("2000-02-29"), Some(11_016));
        assert_eq!(parse_date("2024-01-31 00:00"), None);
        let mut out = Vec::new();
        format_timestamp(&mut out, 1_709_210_096_123_456);
        assert_eq!(out, b"2024-02-29 12:34:56.123456+00");
        // Every day from year 1 to 9999 formats as chrono does, and before 1970 too.
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for days in (-719_162..2_932_897).step_by(7) {
            let mut out = Vec::new();
            format_date(&mut out, days);
            let want = epoch + chrono::TimeDelta::days(i64::from(days));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                want.format("%Y-%m-%d").to_string()
            );
        }
        let mut out = Vec::new();
        format_timestamp(&mut out, -1);
        assert_eq!(out, b"1969-12-31 23:59:59.999999+00");
    }
}
