//! The one home of formatting helpers for messages: durations, counts, sizes, plurals,
//! quoted identifiers. Pure functions; every layer may use them.

use std::fmt::Display;
use std::time::Duration;

/// What is shown in place of a secret.
pub const MASK: &str = "***";

/// A duration as operators read it: `250ms`, `3s`, `1.5s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// `50000` as `50,000`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `1 table`, `2 tables`: the count, then `one` or `many`.
pub fn plural<N: Display>(n: N, one: &str, many: &str) -> String {
    let n = n.to_string();
    let word = if n == "1" { one } else { many };
    format!("{n} {word}")
}

/// Items shown in a message's list before `and N more`.
const SHOWN: usize = 10;

/// The first ten items joined with commas, then how many more there are (`a, b and 3 more`):
/// long lists of tables or problems stay readable in one message.
pub fn list_some(items: &[String]) -> String {
    first_of(items, ", ", " ")
}

/// [`list_some`] with the items joined by `sep`, which also comes before how many more
/// there are (`a; b; and 3 more`): items that hold words of their own stay apart.
pub fn list_some_by(items: &[String], sep: &str) -> String {
    first_of(items, sep, sep)
}

fn first_of(items: &[String], sep: &str, before_more: &str) -> String {
    let mut text = items
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(sep);
    if items.len() > SHOWN {
        text.push_str(&format!("{before_more}and {} more", items.len() - SHOWN));
    }
    text
}

/// `1.5 MiB`; under a KiB, `N bytes`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `"name"` with inner quotes doubled: safe for any identifier in both dialects.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `part` of `whole` as a percentage rounded to one decimal; 0 when `whole` is 0.
pub fn percent(part: f64, whole: f64) -> f64 {
    if whole == 0.0 {
        return 0.0;
    }
    (part * 100.0 / whole * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_show_ten_and_how_many_more() {
        let items: Vec<String> = (1..=12).map(|i| format!("t{i}")).collect();
        assert_eq!(
            list_some(&items),
            "t1, t2, t3, t4, t5, t6, t7, t8, t9, t10 and 2 more"
        );
        assert_eq!(
            list_some(&items[..10]),
            "t1, t2, t3, t4, t5, t6, t7, t8, t9, t10"
        );
        assert_eq!(list_some_by(&items[..2], "; "), "t1; t2");
        assert!(list_some_by(&items, "; ").ends_with("; t10; and 2 more"));
        assert_eq!(list_some(&[]), "");
    }

    #[test]
    fn formats() {
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(duration(Duration::from_secs(3)), "3s");
        assert_eq!(count(-1234567), "-1,234,567");
        assert_eq!(plural(1, "row", "rows"), "1 row");
        assert_eq!(plural(0usize, "row", "rows"), "0 rows");
        assert_eq!(plural(-1i64, "row", "rows"), "-1 rows");
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(percent(1.0, 3.0), 33.3);
        assert_eq!(percent(1.0, 0.0), 0.0);
    }
}
