//! Settings worth reviewing (PostgreSQL): server settings compared with what the guides
//! recommend (the production guide's configuration and logging, the HIPAA checklist's TLS and
//! access logging, the migration runbook's timeouts) and with what durability needs. Each
//! setting is read as a new session of this role on this database starts with it
//! (`pg_settings.reset_val`: the server's configuration with the database's and role's own
//! `SET`s, not runbook's per-query timeouts). A setting the guides size by the machine's memory
//! (`shared_buffers`) is flagged only while it is still at the built-in default, which fits a
//! small machine, never against a guessed amount of memory. Graded on how many settings are
//! flagged (warn at 1); each names its value, the recommendation and why.

use super::CheckResult;
use super::grade::graded;
use super::postgres::Pg;
use crate::fmt::{bytes, plural};
use crate::playbook::HealthCheck;
use serde_json::json;
use sqlx::Row;

/// A setting's value as the session starts with it.
struct Value<'a> {
    text: &'a str,
    /// The number in the setting's unit, for numeric settings.
    number: Option<f64>,
    /// The number in bytes, for memory settings.
    bytes: Option<f64>,
}

/// One recommendation: the setting, what is recommended, why, and when the value misses it.
struct Rule {
    name: &'static str,
    recommended: &'static str,
    why: &'static str,
    flagged: fn(&Value) -> bool,
}

fn off(v: &Value) -> bool {
    matches!(v.text, "off" | "false" | "")
}

const MIB: f64 = 1024.0 * 1024.0;

const RULES: &[Rule] = &[
    Rule {
        name: "ssl",
        recommended: "on",
        why: "the guides require TLS for every connection (sslmode=require, HIPAA)",
        flagged: off,
    },
    Rule {
        name: "password_encryption",
        recommended: "scram-sha-256",
        why: "md5 password hashes are weak and deprecated; scram-sha-256 is the default since PostgreSQL 14",
        flagged: |v| v.text == "md5",
    },
    Rule {
        name: "log_min_duration_statement",
        recommended: "1000 ms",
        why: "the production guide logs queries over 1 s to find slow ones; -1 logs none, 0 logs every statement (and its data)",
        flagged: |v| v.number.is_some_and(|n| n <= 0.0 || n > 1000.0),
    },
    Rule {
        name: "log_connections",
        recommended: "on",
        why: "the HIPAA checklist's access logging",
        flagged: off,
    },
    Rule {
        name: "log_disconnections",
        recommended: "on",
        why: "the HIPAA checklist's access logging",
        flagged: off,
    },
    Rule {
        name: "log_checkpoints",
        recommended: "on",
        why: "the production guide's logging for monitoring",
        flagged: off,
    },
    Rule {
        name: "statement_timeout",
        recommended: "a limit for the application's role or database, such as 60s",
        why: "without one a runaway query holds its locks and a connection until someone cancels it; the guides alert at queries over 5 s and give migrations 10 min",
        flagged: |v| v.number == Some(0.0),
    },
    Rule {
        name: "idle_in_transaction_session_timeout",
        recommended: "a limit, such as 60s",
        why: "a session left idle in a transaction keeps its locks (blocking migrations) and keeps VACUUM from removing dead tuples",
        flagged: |v| v.number == Some(0.0),
    },
    Rule {
        name: "checkpoint_completion_target",
        recommended: "0.9",
        why: "the production guide spreads checkpoint writes over the interval",
        flagged: |v| v.number.is_some_and(|n| n < 0.9),
    },
    Rule {
        name: "shared_buffers",
        recommended: "about a quarter of the server's memory (the guide: 2GB on 8GB)",
        why: "still at or below the built-in 128MB, sized for a small machine",
        flagged: |v| v.bytes.is_some_and(|b| b <= 128.0 * MIB),
    },
    Rule {
        name: "max_connections",
        recommended: "200 or fewer, behind a pooler",
        why: "each connection is a server process with its own memory; the guide keeps 200 behind PgBouncer (pool_mode = transaction)",
        flagged: |v| v.number.is_some_and(|n| n > 200.0),
    },
    Rule {
        name: "autovacuum",
        recommended: "on",
        why: "without it dead tuples pile up, tables bloat and statistics go stale",
        flagged: off,
    },
    Rule {
        name: "wal_level",
        recommended: "replica",
        why: "minimal WAL allows neither a standby nor point-in-time recovery",
        flagged: |v| v.text == "minimal",
    },
    Rule {
        name: "fsync",
        recommended: "on",
        why: "off, a crash of the server or the machine can corrupt the database",
        flagged: off,
    },
    Rule {
        name: "full_page_writes",
        recommended: "on",
        why: "off, a crash in the middle of a page write can leave the page torn beyond repair",
        flagged: off,
    },
];

/// The bytes one unit of a memory setting holds (`pg_settings.unit`).
fn unit_bytes(unit: &str) -> Option<f64> {
    match unit {
        "B" => Some(1.0),
        "kB" => Some(1024.0),
        "8kB" => Some(8192.0),
        "16kB" => Some(16384.0),
        "MB" => Some(MIB),
        _ => None,
    }
}

impl Pg<'_> {
    pub(super) async fn settings(&mut self) -> Result<CheckResult, sqlx::Error> {
        let names: Vec<String> = RULES.iter().map(|r| format!("'{}'", r.name)).collect();
        let rows = self
            .rows(&format!(
                "SELECT name::text, coalesce(reset_val, '')::text, coalesce(unit, '')::text, \
                        source::text \
                 FROM pg_settings WHERE name IN ({}) ORDER BY name",
                names.join(", ")
            ))
            .await?;
        let mut read = Vec::new();
        for r in &rows {
            let (name, text, unit, source): (String, String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            read.push((name, text, unit, source));
        }
        let mut flagged = Vec::new();
        let mut reviewed = Vec::new();
        for rule in RULES {
            let Some((_, text, unit, source)) = read.iter().find(|(n, ..)| n == rule.name) else {
                continue;
            };
            reviewed.push(rule.name);
            let number: Option<f64> = text.parse().ok();
            let value = Value {
                text,
                number,
                bytes: number.zip(unit_bytes(unit)).map(|(n, u)| n * u),
            };
            if !(rule.flagged)(&value) {
                continue;
            }
            let shown = match (value.bytes, unit.as_str()) {
                (Some(b), _) => bytes(b.max(0.0) as u64),
                (None, "") => text.clone(),
                (None, u) => format!("{text} {u}"),
            };
            flagged.push(json!({
                "name": rule.name,
                "value": shown,
                "recommended": rule.recommended,
                "why": rule.why,
                "source": source,
            }));
        }
        let n = flagged.len();
        let message = if n == 0 {
            format!(
                "the {} reviewed follow the guides' recommendations",
                plural(reviewed.len(), "setting", "settings")
            )
        } else {
            let each: Vec<String> = flagged
                .iter()
                .map(|f| {
                    format!(
                        "{} = {} (recommended {}: {})",
                        f["name"].as_str().unwrap_or_default(),
                        f["value"].as_str().unwrap_or_default(),
                        f["recommended"].as_str().unwrap_or_default(),
                        f["why"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            format!(
                "{} worth reviewing: {}",
                plural(n, "setting", "settings"),
                each.join("; ")
            )
        };
        Ok(graded(
            HealthCheck::Settings,
            n as f64,
            self.opts,
            json!(n),
            message,
        )
        .with("settings", flagged)
        .with("reviewed", reviewed))
    }
}

#[cfg(test)]
mod tests {
    use super::{RULES, Value, unit_bytes};

    /// Whether the rule for `name` flags `text` in `unit`.
    fn flags(name: &str, text: &str, unit: &str) -> bool {
        let rule = RULES.iter().find(|r| r.name == name).unwrap();
        let number: Option<f64> = text.parse().ok();
        let v = Value {
            text,
            number,
            bytes: number.zip(unit_bytes(unit)).map(|(n, u)| n * u),
        };
        (rule.flagged)(&v)
    }

    #[test]
    fn each_rule_flags_what_misses_the_recommendation_and_nothing_else() {
        for (text, flagged) in [("-1", true), ("0", true), ("2000", true), ("500", false)] {
            assert_eq!(
                flags("log_min_duration_statement", text, "ms"),
                flagged,
                "{text}"
            );
        }
        // 16384 pages of 8kB are the built-in 128MB; one more page is not.
        assert!(flags("shared_buffers", "16384", "8kB"));
        assert!(!flags("shared_buffers", "16385", "8kB"));
        assert!(flags("statement_timeout", "0", "ms"));
        assert!(!flags("statement_timeout", "60000", "ms"));
        assert!(flags("ssl", "off", ""));
        assert!(!flags("ssl", "on", ""));
        assert!(flags("password_encryption", "md5", ""));
        assert!(!flags("password_encryption", "scram-sha-256", ""));
        assert!(flags("max_connections", "500", ""));
        assert!(!flags("max_connections", "200", ""));
        assert!(flags("checkpoint_completion_target", "0.5", ""));
        assert!(!flags("wal_level", "replica", ""));
        assert!(flags("wal_level", "minimal", ""));
    }
}
