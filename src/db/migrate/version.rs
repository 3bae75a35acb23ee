//! Migration versions: digits and dots, compared numerically segment by segment.

use std::cmp::Ordering;

/// Whether `v` is a version: dot-separated runs of digits, none empty.
pub(super) fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.split('.')
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

/// Compares versions segment by segment (split on `.`), numerically: `2` < `10`, `001` = `1`,
/// `1` = `1.0`.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (a, b) = (version_key(a), version_key(b));
    let (mut ai, mut bi) = (a.split('.'), b.split('.'));
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (x, y) => {
                let (x, y) = (x.unwrap_or("0"), y.unwrap_or("0"));
                let o = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// The canonical form of a version: no leading zeros per segment, no trailing `.0` segments.
pub(super) fn version_key(v: &str) -> String {
    let mut segs: Vec<&str> = v
        .split('.')
        .map(|s| {
            let t = s.trim_start_matches('0');
            if t.is_empty() { "0" } else { t }
        })
        .collect();
    while segs.len() > 1 && segs.last() == Some(&"0") {
        segs.pop();
    }
    segs.join(".")
}

#[cfg(test)]
mod tests {
    use super::compare_versions;
    use std::cmp::Ordering;

    #[test]
    fn versions_compare_numerically_by_segment() {
        assert_eq!(compare_versions("2", "10"), Ordering::Less);
        assert_eq!(compare_versions("001", "1"), Ordering::Equal);
        assert_eq!(compare_versions("1", "1.0"), Ordering::Equal);
        assert_eq!(compare_versions("1.2", "1.10"), Ordering::Less);
        assert_eq!(
            compare_versions("20240101120000", "20231231235959"),
            Ordering::Greater
        );
    }
}
