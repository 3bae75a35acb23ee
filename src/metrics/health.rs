//! A health report as metrics: each check's status (one series per status, 1 for the one it
//! has), the figure its thresholds grade with the warn and fail thresholds beside it, the count
//! of checks per status, and when the report was made.

use super::Family;
use serde_json::{Map, Value as Json};

const STATUSES: [&str; 4] = ["pass", "warn", "fail", "skip"];

/// The families of one report, as a health step's `checks` output holds it (check name to its
/// status, value and thresholds), labelled with the environment it ran in.
pub fn families(checks: &Map<String, Json>, environment: &str, now_secs: f64) -> Vec<Family> {
    let mut status = Family::new(
        "runbook_health_check_status",
        "Health check status: 1 for the status the check has, 0 for the others.",
    );
    let mut value = Family::new(
        "runbook_health_check_value",
        "The figure a health check's thresholds grade, in the unit its `unit` label names.",
    );
    let mut warn = Family::new(
        "runbook_health_check_warn_threshold",
        "The value at which a health check warns (the direction is in `worse`).",
    );
    let mut fail = Family::new(
        "runbook_health_check_fail_threshold",
        "The value at which a health check fails (the direction is in `worse`).",
    );
    let mut counts = Family::new(
        "runbook_health_checks",
        "Health checks of the last report by status.",
    );
    let mut when = Family::new(
        "runbook_health_last_report_timestamp_seconds",
        "When the last health report was made, in seconds since the epoch.",
    );
    let env = || ("environment", environment.to_owned());
    let mut tally = [0usize; 4];
    for (name, r) in checks {
        let check = || ("check", name.clone());
        let has = r.get("status").and_then(Json::as_str).unwrap_or("skip");
        for (i, s) in STATUSES.iter().enumerate() {
            if *s == has {
                tally[i] += 1;
            }
            status.push(
                vec![env(), check(), ("status", (*s).to_owned())],
                f64::from(u8::from(*s == has)),
            );
        }
        let t = r.get("thresholds");
        let field = |k: &str| t.and_then(|t| t.get(k));
        let unit = field("unit").and_then(|u| u.as_str()).map_or("", unit_word);
        let worse = field("worse").and_then(|w| w.as_str()).unwrap_or("higher");
        let graded = || {
            vec![
                env(),
                check(),
                ("unit", unit.to_owned()),
                ("worse", worse.to_owned()),
            ]
        };
        // A skipped check or a figure that could not be measured has no sample, never a 0.
        if has != "skip"
            && r.get("value").is_some_and(|v| !v.is_null())
            && let Some(v) = field("value").and_then(Json::as_f64)
        {
            value.push(graded(), v);
        }
        if let Some(v) = field("warn").and_then(Json::as_f64) {
            warn.push(graded(), v);
        }
        if let Some(v) = field("fail").and_then(Json::as_f64) {
            fail.push(graded(), v);
        }
    }
    for (i, s) in STATUSES.iter().enumerate() {
        counts.push(vec![env(), ("status", (*s).to_owned())], tally[i] as f64);
    }
    when.push(vec![env()], now_secs);
    vec![status, value, warn, fail, counts, when]
}

/// The unit of a threshold as a word a label can carry.
fn unit_word(unit: &str) -> &'static str {
    match unit {
        "ms" => "milliseconds",
        "s" => "seconds",
        "h" => "hours",
        "%" => "percent",
        "MiB" => "mebibytes",
        "/min" => "per_minute",
        _ => "count",
    }
}
