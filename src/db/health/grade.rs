//! Grading: the metric each check measures, which way it gets worse, its default warn and
//! fail thresholds, and how a measured value becomes a status with a reason.

use super::{CheckResult, HealthOptions, Status};
use crate::playbook::{HealthCheck, Threshold};
use serde_json::{Value as Json, json};

/// Which way a metric gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Worse {
    Higher,
    Lower,
}

/// What a check's thresholds measure, and their defaults.
struct Metric {
    what: &'static str,
    unit: &'static str,
    worse: Worse,
    warn: Option<f64>,
    fail: Option<f64>,
}

/// The metric each check grades. Sizes and counts have no default thresholds: they are facts
/// about the data, not problems, until an operator says what is too much.
fn metric(check: HealthCheck) -> Metric {
    let m = |what, unit, worse, warn, fail| Metric {
        what,
        unit,
        worse,
        warn,
        fail,
    };
    use Worse::{Higher, Lower};
    match check {
        HealthCheck::Connection => m("round trip", " ms", Higher, Some(500.0), Some(5_000.0)),
        // PostgreSQL 12 and older no longer get fixes.
        HealthCheck::Version => m("major version", "", Lower, Some(13.0), None),
        HealthCheck::DatabaseSize => m("size", " MiB", Higher, None, None),
        HealthCheck::RowCounts => m("total rows", "", Higher, None, None),
        HealthCheck::Indexes => m("invalid indexes", "", Higher, Some(1.0), None),
        HealthCheck::ForeignKeys => m("unvalidated constraints", "", Higher, Some(1.0), None),
        HealthCheck::OrphanedRows => m("orphaned rows", "", Higher, Some(1.0), None),
        HealthCheck::Connections => m("connections in use", "%", Higher, Some(80.0), Some(95.0)),
        HealthCheck::CacheHitRatio => m("cache hit ratio", "%", Lower, Some(90.0), Some(80.0)),
        HealthCheck::LongRunningQueries => m("longest query", "s", Higher, Some(60.0), Some(300.0)),
        HealthCheck::BlockingLocks => m("longest lock wait", "s", Higher, Some(10.0), Some(60.0)),
        HealthCheck::MigrationStatus => m("pending migrations", "", Higher, Some(1.0), None),
        HealthCheck::DiskSpace => m("free disk", "%", Lower, Some(20.0), Some(10.0)),
        // A daily backup with two hours of slack; two days without one fails.
        HealthCheck::BackupAge => m(
            "newest verified backup age",
            " h",
            Higher,
            Some(26.0),
            Some(48.0),
        ),
        HealthCheck::Tls => m("TCP sessions without TLS", "", Higher, Some(1.0), None),
        HealthCheck::Superuser => m("superuser", "", Higher, Some(1.0), None),
        HealthCheck::Deadlocks => m("deadlocks", "", Higher, Some(1.0), None),
        // The guides: statements over 100 ms are slow, over 5 s an alert.
        HealthCheck::SlowStatements => m(
            "slowest mean statement time",
            " ms",
            Higher,
            Some(100.0),
            Some(5_000.0),
        ),
        HealthCheck::UnusedIndexes => m("unused indexes", "", Higher, Some(1.0), None),
        HealthCheck::DeadTuples => m(
            "dead tuples in the worst table",
            "%",
            Higher,
            Some(20.0),
            Some(50.0),
        ),
        HealthCheck::TableSizes => m("largest table", " MiB", Higher, None, None),
        // The checklist alerts at replication lag over 5 s.
        HealthCheck::ReplicationLag => m("worst replay lag", "s", Higher, Some(5.0), Some(30.0)),
        // As free disk: the filesystem holding a tablespace.
        HealthCheck::Tablespaces => m(
            "least free disk under a tablespace",
            "%",
            Lower,
            Some(20.0),
            Some(10.0),
        ),
        HealthCheck::Settings => m("settings to review", "", Higher, Some(1.0), None),
        // The checklist alerts at failed queries over 10 a minute.
        HealthCheck::FailedQueries => m(
            "rolled-back transactions per minute",
            "/min",
            Higher,
            Some(10.0),
            Some(60.0),
        ),
    }
}

/// The warn and fail thresholds in force: the playbook's, else the defaults, field by field.
pub fn thresholds(check: HealthCheck, given: Option<&Threshold>) -> (Option<f64>, Option<f64>) {
    let d = metric(check);
    (
        given.and_then(|t| t.warn).or(d.warn),
        given.and_then(|t| t.fail).or(d.fail),
    )
}

/// Grades a metric: the status and, when it is not a pass, why.
fn grade(check: HealthCheck, value: f64, given: Option<&Threshold>) -> (Status, Option<String>) {
    let m = metric(check);
    let (warn, fail) = thresholds(check, given);
    let crossed = |t: f64| match m.worse {
        Worse::Higher => value >= t,
        Worse::Lower => value < t,
    };
    let why = |level: &str, t: f64| match m.worse {
        Worse::Higher => format!("{level} at {}{} or more", num(t), m.unit),
        Worse::Lower => format!("{level} below {}{}", num(t), m.unit),
    };
    if let Some(t) = fail
        && crossed(t)
    {
        return (Status::Fail, Some(why("fail", t)));
    }
    if let Some(t) = warn
        && crossed(t)
    {
        return (Status::Warn, Some(why("warn", t)));
    }
    (Status::Pass, None)
}

/// A number without a useless `.0`.
pub(super) fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

/// A measurement (milliseconds, seconds) rounded to one decimal, as messages show it.
pub(super) fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A graded result: the message gets the reason appended when the check did not pass.
pub(super) fn graded(
    check: HealthCheck,
    metric_value: f64,
    opts: &HealthOptions,
    value: Json,
    message: String,
) -> CheckResult {
    let given = opts.thresholds.get(&check);
    let (status, why) = grade(check, metric_value, given);
    let message = match why {
        Some(w) => format!("{message} ({w})"),
        None => message,
    };
    let (warn, fail) = thresholds(check, given);
    let mut r = CheckResult::new(check, status, value, message);
    let m = metric(check);
    // What the thresholds compare, so JSON readers need not know each check's convention.
    r.details.insert(
        "thresholds".to_owned(),
        json!({
            "metric": m.what,
            "value": metric_value,
            "unit": m.unit.trim(),
            "worse": if m.worse == Worse::Higher { "higher" } else { "lower" },
            "warn": warn,
            "fail": fail,
        }),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::{Status, grade};
    use crate::playbook::{HealthCheck, Threshold};

    #[test]
    fn grading_follows_direction_and_overrides() {
        let c = HealthCheck::CacheHitRatio;
        assert_eq!(grade(c, 99.0, None).0, Status::Pass);
        assert_eq!(grade(c, 85.0, None).0, Status::Warn);
        assert_eq!(grade(c, 70.0, None).0, Status::Fail);
        let l = HealthCheck::LongRunningQueries;
        assert_eq!(grade(l, 59.9, None).0, Status::Pass);
        assert_eq!(grade(l, 60.0, None).0, Status::Warn);
        let t = Threshold {
            warn: Some(1.0),
            fail: None,
        };
        let (s, why) = grade(l, 2.0, Some(&t));
        assert_eq!(s, Status::Warn);
        assert_eq!(why.unwrap(), "warn at 1s or more");
        // The default fail threshold still applies when only warn is given.
        assert_eq!(grade(l, 301.0, Some(&t)).0, Status::Fail);
    }
}
