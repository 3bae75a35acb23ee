//! The statement an approver signs: one line per fact (run, gate, decision, plan hash, the
//! database's identity, when it was signed and until when it holds, the comment), so that
//! `ssh-keygen -Y verify` checks the very bytes runbook counts, and a person can read them.

use chrono::{DateTime, SecondsFormat, Utc};

/// The first line: what the text is, and the version of its layout.
const HEADER: &str = "runbook approval v1";

/// What an approver signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub run: String,
    pub gate: String,
    /// `approve` or `reject`.
    pub decision: String,
    pub plan: String,
    /// The run's database (`db::identity`), `none` for a run without one.
    pub target: String,
    /// Milliseconds since the Unix epoch.
    pub signed: i64,
    /// Until when the approval counts (ms); `None`: as long as the environment lets it.
    pub expires: Option<i64>,
    pub comment: Option<String>,
}

impl Statement {
    /// The signed text. The comment is a JSON string, so whatever it holds stays on its line.
    pub fn text(&self) -> String {
        let expires = self.expires.map_or_else(|| "never".to_owned(), time);
        let comment = self
            .comment
            .as_ref()
            .map_or_else(|| "none".to_owned(), |c| serde_json::json!(c).to_string());
        format!(
            "{HEADER}\nrun: {}\ngate: {}\ndecision: {}\nplan: {}\ntarget: {}\nsigned: {}\nexpires: {expires}\ncomment: {comment}\n",
            self.run,
            self.gate,
            self.decision,
            self.plan,
            self.target,
            time(self.signed)
        )
    }

    /// Reads a signed text back; `None` when it is not one runbook wrote.
    pub fn parse(text: &str) -> Option<Statement> {
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(": "))
                .map(str::to_owned)
        };
        let (run, gate, decision, plan, target) = (
            field("run")?,
            field("gate")?,
            field("decision")?,
            field("plan")?,
            field("target")?,
        );
        let signed = parse_time(&field("signed")?)?;
        let expires = match field("expires")?.as_str() {
            "never" => None,
            t => Some(parse_time(t)?),
        };
        let comment = match field("comment")?.as_str() {
            "none" => None,
            c => Some(serde_json::from_str::<String>(c).ok()?),
        };
        let statement = Statement {
            run,
            gate,
            decision,
            plan,
            target,
            signed,
            expires,
            comment,
        };
        // Only the exact bytes runbook writes: nothing appended, nothing reformatted.
        (statement.text() == text).then_some(statement)
    }
}

/// A time in the statement: RFC 3339 in UTC with milliseconds.
pub fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_reads_back_and_nothing_else_does() {
        let s = Statement {
            run: "20261202-081500-abcdef".to_owned(),
            gate: "approve".to_owned(),
            decision: "approve".to_owned(),
            plan: "ab12".to_owned(),
            target: "SQLite file /srv/app.db".to_owned(),
            signed: 1_764_662_400_000,
            expires: Some(1_764_748_800_000),
            comment: Some("line one\nline \"two\"".to_owned()),
        };
        let text = s.text();
        assert!(
            text.contains("expires: 2025-12-03T08:00:00.000Z\n"),
            "{text}"
        );
        assert_eq!(Statement::parse(&text), Some(s.clone()));
        assert_eq!(Statement::parse(&text.replace("v1", "v2")), None);
        assert_eq!(Statement::parse(&format!("{text}extra\n")), None);
        let never = Statement {
            expires: None,
            comment: None,
            ..s
        };
        assert_eq!(Statement::parse(&never.text()), Some(never));
    }
}
