//! The sessions that block a migration's statement (`pg_blocking_pids` joined to
//! `pg_stat_activity`), how they are shown, and `on_blocked`'s cancel or terminate. A
//! blocker's query is shown on one line, cut at [`QUERY_CHARS`], with every string literal
//! and dollar-quoted body replaced by `'***'` (a query's literals can hold secrets or personal
//! data; the run's redactor masks the secrets it knows on top of that).

use crate::fmt::{MASK, duration};
use crate::playbook::BlockerStop;
use serde::Serialize;
use sqlx::{PgConnection, Row};
use std::time::Duration;

/// The characters of a blocker's query kept, after masking.
pub const QUERY_CHARS: usize = 120;

/// A session that held a lock the migration waited for.
#[derive(Debug, Clone, Serialize)]
pub struct Blocker {
    /// The migration file that waited.
    pub file: String,
    pub pid: i32,
    /// When the blocker's session started (Unix ms): with the pid, names the session.
    pub backend_start: i64,
    pub user: String,
    pub application: String,
    pub client: String,
    /// `active`, `idle in transaction`, ...
    pub state: String,
    /// Its last (or current) query, masked and cut.
    pub query: String,
    /// How long its transaction had been open when runbook last looked, in seconds.
    pub transaction_seconds: f64,
    /// How long it blocked the migration, since runbook first saw it.
    pub blocked_ms: u64,
}

/// A blocker `on_blocked` cancelled or terminated.
#[derive(Debug, Clone, Serialize)]
pub struct Stopped {
    pub pid: i32,
    pub backend_start: i64,
    pub user: String,
    pub application: String,
    pub state: String,
    pub query: String,
    /// `cancel` or `terminate`.
    pub action: &'static str,
    pub blocked_ms: u64,
    /// Whether the server accepted the signal (false: no permission, or already gone).
    pub signalled: bool,
}

/// The sessions blocking backend `pid` now.
pub(super) async fn blocking(c: &mut PgConnection, pid: i32) -> Result<Vec<Blocker>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT a.pid, (extract(epoch FROM a.backend_start) * 1000)::int8, \
                coalesce(a.usename::text, ''), coalesce(a.application_name, ''), \
                coalesce(host(a.client_addr), 'local'), coalesce(a.state, ''), \
                left(coalesce(a.query, ''), 4000), \
                coalesce(extract(epoch FROM now() - a.xact_start), 0)::float8 \
         FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids($1)) ORDER BY a.pid",
    )
    .bind(pid)
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Blocker {
                file: String::new(),
                pid: r.try_get(0)?,
                backend_start: r.try_get(1)?,
                user: r.try_get(2)?,
                application: r.try_get(3)?,
                client: r.try_get(4)?,
                state: r.try_get(5)?,
                query: shown_query(&r.try_get::<String, _>(6)?),
                transaction_seconds: (r.try_get::<f64, _>(7)? * 10.0).round() / 10.0,
                blocked_ms: 0,
            })
        })
        .collect()
}

/// Whether the blocker's session (the same pid and start) has ended.
pub(super) async fn gone(c: &mut PgConnection, b: &Blocker) -> bool {
    sqlx::query_scalar::<_, bool>(
        "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 \
           AND (extract(epoch FROM backend_start) * 1000)::int8 = $2)",
    )
    .bind(b.pid)
    .bind(b.backend_start)
    .fetch_one(&mut *c)
    .await
    .unwrap_or(false)
}

/// Cancels the blocker's statement or terminates its session, if it is still the same session.
pub(super) async fn stop(c: &mut PgConnection, b: &Blocker, how: BlockerStop) -> Stopped {
    let function = match how {
        BlockerStop::Cancel => "pg_cancel_backend",
        BlockerStop::Terminate => "pg_terminate_backend",
    };
    let sql = format!(
        "SELECT coalesce((SELECT {function}(a.pid) FROM pg_stat_activity a WHERE a.pid = $1 \
           AND (extract(epoch FROM a.backend_start) * 1000)::int8 = $2), false)"
    );
    let signalled = sqlx::query_scalar::<_, bool>(sqlx::AssertSqlSafe(sql))
        .bind(b.pid)
        .bind(b.backend_start)
        .fetch_one(&mut *c)
        .await
        .unwrap_or_else(|e| {
            tracing::debug!("{function}({}) failed: {e}", b.pid);
            false
        });
    Stopped {
        pid: b.pid,
        backend_start: b.backend_start,
        user: b.user.clone(),
        application: b.application.clone(),
        state: b.state.clone(),
        query: b.query.clone(),
        action: how.as_str(),
        blocked_ms: b.blocked_ms,
        signalled,
    }
}

impl Blocker {
    /// `pid 123 (user app, application psql, idle in transaction, transaction open 3.2s): UPDATE ...`
    pub fn describe(&self) -> String {
        let app = if self.application.is_empty() {
            String::new()
        } else {
            format!(", application {}", self.application)
        };
        format!(
            "pid {} (user {}{app}, from {}, {}, transaction open {}s): {}",
            self.pid,
            self.user,
            self.client,
            self.state,
            self.transaction_seconds,
            if self.query.is_empty() {
                "(no query)"
            } else {
                &self.query
            }
        )
    }
}

impl Stopped {
    /// The note of a stopped blocker.
    pub fn describe(&self, file: &str) -> String {
        let verb = match (self.action, self.signalled) {
            ("cancel", true) => "cancelled the statement of",
            ("terminate", true) => "terminated",
            ("cancel", false) => "could not cancel the statement of",
            _ => "could not terminate",
        };
        let why = if !self.signalled {
            " (gone already, or runbook's role may not signal it: it needs pg_signal_backend or the same role)"
        } else if self.action == "cancel" && self.state.starts_with("idle in transaction") {
            " (it was idle in a transaction: no statement to cancel, its locks stay until it ends; `blocker: terminate` ends it)"
        } else {
            ""
        };
        format!(
            "on_blocked: {verb} pid {} (user {}, application {}), which had blocked `{file}` for {}{why}",
            self.pid,
            self.user,
            self.application,
            duration(Duration::from_millis(self.blocked_ms))
        )
    }
}

/// A query as shown: literals masked, on one line, cut at [`QUERY_CHARS`].
pub fn shown_query(sql: &str) -> String {
    let flat = mask_literals(sql)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() > QUERY_CHARS {
        let cut: String = flat.chars().take(QUERY_CHARS).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

/// Replaces each string literal (`'...'`, `E'...'`, with doubled quotes inside) and each
/// dollar-quoted body (`$$...$$`, `$tag$...$tag$`) with `'***'`; an unterminated one masks
/// the rest. Comments are dropped.
pub fn mask_literals(sql: &str) -> String {
    let masked = format!("'{MASK}'");
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if c == '\'' {
            rest = skip_quoted(&rest[1..], escape_string(&out));
            out.push_str(&masked);
        } else if c == '$'
            && let Some(tag) = dollar_tag(rest)
        {
            let body = &rest[tag.len()..];
            rest = body.find(tag).map_or("", |end| &body[end + tag.len()..]);
            out.push_str(&masked);
        } else if rest.starts_with("--") {
            rest = rest.find('\n').map_or("", |end| &rest[end..]);
        } else if rest.starts_with("/*") {
            rest = rest.find("*/").map_or("", |end| &rest[end + 2..]);
            out.push(' ');
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Whether a quote after `before` opens an escape string (`E'...'`, backslashes escape).
fn escape_string(before: &str) -> bool {
    let mut back = before.chars().rev();
    matches!(back.next(), Some('E' | 'e'))
        && back
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
}

/// The text after a single-quoted literal's closing quote (`''` inside stays inside, and in
/// an escape string `\'` too).
fn skip_quoted(s: &str, backslash: bool) -> &str {
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if backslash => {
                chars.next();
            }
            '\'' if s[i + 1..].starts_with('\'') => {
                chars.next();
            }
            '\'' => return &s[i + 1..],
            _ => {}
        }
    }
    ""
}

/// `$$` or `$tag$` at the start of `s` (a tag is an identifier; `$1` is a parameter).
fn dollar_tag(s: &str) -> Option<&str> {
    let end = s[1..].find('$')? + 1;
    let tag = &s[1..end];
    let ok = tag.is_empty()
        || (tag.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !tag.starts_with(|c: char| c.is_ascii_digit()));
    ok.then(|| &s[..=end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_masked_and_the_rest_kept() {
        assert_eq!(
            mask_literals("UPDATE users SET password = 'hunter2''s', n = 42 WHERE id = $1"),
            "UPDATE users SET password = '***', n = 42 WHERE id = $1"
        );
        assert_eq!(
            mask_literals("SELECT E'a\\'b', 'c\\', 1"),
            "SELECT E'***', '***', 1"
        );
        assert_eq!(
            mask_literals("SELECT $$x 'y'$$, $t$z$t$ -- 'c'\n1"),
            "SELECT '***', '***' \n1"
        );
        assert_eq!(mask_literals("SELECT 'open"), "SELECT '***'");
        assert_eq!(shown_query("SELECT\n  1"), "SELECT 1");
        assert!(shown_query(&"x ".repeat(200)).ends_with("..."));
    }
}
