//! What a health check found: each check's status, value, message and details, and the
//! report of all of them with the guide's summary line.

use super::{HealthOptions, title};
use crate::db::describe;
use crate::fmt::plural;
use crate::playbook::HealthCheck;
use serde_json::{Map, Value as Json, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Skip,
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Skip => "skip",
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub check: HealthCheck,
    pub status: Status,
    /// The headline value: a number, a version, a count.
    pub value: Json,
    pub message: String,
    /// Check-specific facts (per-table counts, the queries found, `free_percent`, ...).
    pub details: Map<String, Json>,
}

impl CheckResult {
    pub(super) fn new(
        check: HealthCheck,
        status: Status,
        value: Json,
        message: impl Into<String>,
    ) -> Self {
        CheckResult {
            check,
            status,
            value,
            message: message.into(),
            details: Map::new(),
        }
    }

    pub(super) fn skip(check: HealthCheck, reason: impl Into<String>) -> Self {
        CheckResult::new(check, Status::Skip, Json::Null, reason)
    }

    pub(super) fn with(mut self, key: &str, value: impl Into<Json>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// The JSON form used in step outputs: status, value, message, title, then the details.
    pub fn to_json(&self) -> Json {
        let mut m = Map::new();
        m.insert("status".to_owned(), json!(self.status.word()));
        m.insert("value".to_owned(), self.value.clone());
        m.insert("message".to_owned(), json!(self.message));
        m.insert("title".to_owned(), json!(title(self.check)));
        for (k, v) in &self.details {
            m.insert(k.clone(), v.clone());
        }
        Json::Object(m)
    }
}

/// A check whose query failed: the outcome is unknown, which deserves a look but is not
/// proof of a problem, except for row counts that must be compared with a baseline.
pub(super) fn errored(check: HealthCheck, e: &sqlx::Error, opts: &HealthOptions) -> CheckResult {
    let status = if check == HealthCheck::RowCounts && opts.baseline.is_some() {
        Status::Fail
    } else {
        Status::Warn
    };
    CheckResult::new(
        check,
        status,
        Json::Null,
        format!("could not run: {}", describe(e)),
    )
}

/// All checks' outcomes.
#[derive(Debug, Clone, Default)]
pub struct HealthReport {
    pub results: Vec<CheckResult>,
}

impl HealthReport {
    /// The worst status of the checks that ran (pass when none ran).
    pub fn status(&self) -> Status {
        self.results
            .iter()
            .map(|r| r.status)
            .max()
            .unwrap_or(Status::Pass)
            .max(Status::Pass)
    }

    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    /// The summary line: like the guide's "Health check PASSED with warnings".
    pub fn summary(&self) -> String {
        let (p, w, f, s) = (
            self.count(Status::Pass),
            self.count(Status::Warn),
            self.count(Status::Fail),
            self.count(Status::Skip),
        );
        let verdict = match self.status() {
            Status::Fail => "FAILED",
            Status::Warn => "PASSED with warnings",
            _ => "PASSED",
        };
        let skipped = if s > 0 {
            format!(", {s} skipped")
        } else {
            String::new()
        };
        format!(
            "health check {verdict}: {}, {p} passed, {}, {f} failed{skipped}",
            plural(p + w + f, "check", "checks"),
            plural(w, "warning", "warnings")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{CheckResult, HealthReport, Status};
    use crate::playbook::HealthCheck;
    use serde_json::Value as Json;

    #[test]
    fn the_summary_counts_like_the_guide() {
        let mut r = HealthReport::default();
        for s in [Status::Pass, Status::Pass, Status::Warn, Status::Skip] {
            r.results
                .push(CheckResult::new(HealthCheck::Connection, s, Json::Null, ""));
        }
        assert_eq!(r.status(), Status::Warn);
        assert_eq!(
            r.summary(),
            "health check PASSED with warnings: 3 checks, 2 passed, 1 warning, 0 failed, 1 skipped"
        );
    }
}
