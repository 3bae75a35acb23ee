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

/// `UTC`, a fixed offset, or something shaped like an IANA name (`Area/City`).
pub fn is_time_zone(tz: &str) -> bool {
    if tz == "UTC" || tz == "Z" {
        return true;
    }
    let b = tz.as_bytes();
    if b.len() == 6 && (b[0] == b'+' || b[0] == b'-') && b[3] == b':' {
        return b[1..3].iter().chain(&b[4..6]).all(u8::is_ascii_digit);
    }
    tz.contains('/')
        && tz.split('/').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '+')
        })
}

/// "`a`, `b`, `c`".
pub(super) fn names<'a, S: AsRef<str> + 'a>(items: impl IntoIterator<Item = S>) -> String {
    items
        .into_iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}
