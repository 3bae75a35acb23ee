//! `Duration`: the `30s`, `5m`, `1h30m` durations of playbooks and the config.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A duration such as `500ms`, `30s`, `5m`, `2h`, `7d`, or a combination like `1h30m`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Duration(
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h|d))+$"))]
    #[schemars(
        description = "A duration: digits and a unit (ms, s, m, h, d), e.g. `30s`, `1h30m`"
    )]
    pub String,
);

impl Duration {
    /// Parses the duration; the schema already guarantees the shape.
    pub fn parse(&self) -> Option<std::time::Duration> {
        parse_duration(&self.0)
    }
}

/// Parses `1h30m`-style durations.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let mut total_ms: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (mult, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('d') {
            (86_400_000, 1)
        } else {
            return None;
        };
        total_ms = total_ms.checked_add(n.checked_mul(mult)?)?;
        rest = &rest[len..];
    }
    Some(std::time::Duration::from_millis(total_ms))
}
