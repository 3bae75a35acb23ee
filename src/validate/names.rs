//! Shapes of names: identifiers, environment variable names, time zones, and the backquoted
//! lists that hints are made of.

/// A name templates can read as `params.<name>` or `steps.<id>`: letters, digits and `_`,
/// not starting with a digit.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The name of an environment variable (never its value, which may be a secret).
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `UTC`, a fixed offset in use on Earth (`-12:00` to `+14:00`), or a zone of the IANA
/// database (`Europe/Berlin`; chrono-tz's copy, the one the gates read).
pub fn is_time_zone(tz: &str) -> bool {
    if tz == "UTC" || tz == "Z" {
        return true;
    }
    let b = tz.as_bytes();
    if b.len() == 6 && (b[0] == b'+' || b[0] == b'-') && b[3] == b':' {
        let (Ok(h), Ok(m)) = (tz[1..3].parse::<u32>(), tz[4..6].parse::<u32>()) else {
            return false;
        };
        if !b[1..3].iter().chain(&b[4..6]).all(u8::is_ascii_digit) || m >= 60 {
            return false;
        }
        let limit = if b[0] == b'+' { 14 * 60 } else { 12 * 60 };
        return h * 60 + m <= limit;
    }
    tz.parse::<chrono_tz::Tz>().is_ok()
}

/// The hint for a time zone that is not one: the closest `Area/City` name for a misspelt one,
/// else the forms there are (an abbreviation like `CEST` names no rules for summer time).
pub(super) fn time_zone_hint(tz: &str) -> String {
    let names = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|z| z.name())
        .filter(|n| n.contains('/'));
    match crate::diagnostic::did_you_mean(tz, names).filter(|_| tz.contains('/')) {
        Some(near) => format!("did you mean `{near}`?"),
        None => "use `UTC`, a fixed offset from `-12:00` to `+14:00` like `+02:00`, or an IANA name like `Europe/Berlin`".to_owned(),
    }
}

/// "`a`, `b`, `c`".
pub(super) fn names<'a, S: AsRef<str> + 'a>(items: impl IntoIterator<Item = S>) -> String {
    items
        .into_iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}
