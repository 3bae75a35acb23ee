//! Schedules: a playbook run in an environment at the times a cron expression names in a time
//! zone (`schedules:` in runbook.yaml). runbook keeps no daemon: `runbook schedule export`
//! writes them for the schedulers people already run (`systemd.rs`: timer and service units;
//! `crontab.rs`: crontab lines; `kubernetes.rs`: batch/v1 CronJobs), each from the same parsed
//! fields, so the three agree with `runbook schedule list`. `job.rs`: the command a scheduled
//! run is.
//!
//! The cron dialect is the five fields every one of those schedulers reads (minute, hour, day
//! of month, month, day of week; names, ranges, steps, lists and the `@daily`-style
//! nicknames), parsed by the `croner` crate with its extensions turned off: no seconds or
//! years, no `L`, `W` or `#` (which systemd, cron and Kubernetes cannot express), and not both
//! a day of month and a day of week (cron runs on either, systemd on both: the two would
//! disagree).

pub mod crontab;
mod job;
pub mod kubernetes;
pub mod systemd;

pub use job::Job;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A cron expression read in a time zone.
#[derive(Debug, Clone)]
pub struct Cadence {
    /// As written in runbook.yaml.
    pub expr: String,
    pub zone: Tz,
    cron: Cron,
    fields: Fields,
}

/// The values each field matches, expanded: what every export writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub minutes: Vec<u16>,
    pub hours: Vec<u16>,
    /// Days of the month, 1-31.
    pub days: Vec<u16>,
    /// 1-12.
    pub months: Vec<u16>,
    /// 0 (Sunday) to 6.
    pub weekdays: Vec<u16>,
}

/// The full range of each field, to tell `*` from a restriction.
const MINUTES: (u16, u16) = (0, 59);
const HOURS: (u16, u16) = (0, 23);
const DAYS: (u16, u16) = (1, 31);
const MONTHS: (u16, u16) = (1, 12);
const WEEKDAYS: (u16, u16) = (0, 6);

impl Cadence {
    /// Parses a cron expression and an IANA time zone name (`None`: UTC). The error is one
    /// sentence saying what is wrong; the caller places it.
    pub fn parse(expr: &str, zone: Option<&str>) -> Result<Cadence, CadenceError> {
        let zone = match zone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| CadenceError::Zone(format!("`{name}` is not a known time zone")))?,
        };
        let (cron, fields) = parse_cron(expr).map_err(CadenceError::Cron)?;
        Ok(Cadence {
            expr: expr.to_owned(),
            zone,
            cron,
            fields,
        })
    }

    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// The next `count` times after `after`, in the schedule's zone.
    pub fn next(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Tz>> {
        let start = after.with_timezone(&self.zone);
        self.cron.clone().iter_after(start).take(count).collect()
    }
}

/// Why a schedule's timing is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CadenceError {
    Cron(String),
    Zone(String),
}

/// Parses the five-field dialect and expands its fields.
fn parse_cron(expr: &str) -> Result<(Cron, Fields), String> {
    if expr.split_whitespace().count() > 5 {
        return Err(format!(
            "`{expr}` has more than five fields: seconds and years are not supported"
        ));
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .dom_and_dow(false)
        .build();
    let cron = parser
        .parse(expr)
        .map_err(|e| format!("`{expr}` is not a cron expression: {e}"))?;
    let p = &cron.pattern;
    if p.days.has_modifiers() || p.days_of_week.has_modifiers() {
        return Err(format!(
            "`{expr}` uses `L`, `W` or `#`, which systemd, cron and Kubernetes cannot express"
        ));
    }
    let mut weekdays: Vec<u16> = p.days_of_week.values().into_iter().map(|d| d % 7).collect();
    weekdays.sort_unstable();
    weekdays.dedup();
    let fields = Fields {
        minutes: p.minutes.values(),
        hours: p.hours.values(),
        days: p.days.values(),
        months: p.months.values(),
        weekdays,
    };
    if fields.restricts_days() && fields.restricts_weekdays() {
        return Err(format!(
            "`{expr}` names both days of the month and days of the week: cron runs on either, \
             systemd only on both"
        ));
    }
    if [
        &fields.minutes,
        &fields.hours,
        &fields.days,
        &fields.months,
        &fields.weekdays,
    ]
    .iter()
    .any(|f| f.is_empty())
    {
        return Err(format!("`{expr}` never matches"));
    }
    Ok((cron, fields))
}

impl Fields {
    pub fn restricts_days(&self) -> bool {
        !full(&self.days, DAYS)
    }

    pub fn restricts_weekdays(&self) -> bool {
        !full(&self.weekdays, WEEKDAYS)
    }

    /// The five fields as plain numbers (`*`, lists and `a-b` ranges): the form both cron and
    /// Kubernetes read the same way.
    pub fn cron_text(&self) -> String {
        [
            field(&self.minutes, MINUTES, "-", &|v| v.to_string()),
            field(&self.hours, HOURS, "-", &|v| v.to_string()),
            field(&self.days, DAYS, "-", &|v| v.to_string()),
            field(&self.months, MONTHS, "-", &|v| v.to_string()),
            field(&self.weekdays, WEEKDAYS, "-", &|v| v.to_string()),
        ]
        .join(" ")
    }

    /// systemd's calendar event (`systemd.time(7)`): `[DOW] *-MM-DD HH:MM:00 ZONE`.
    pub fn on_calendar(&self, zone: &str) -> String {
        const NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        let two = |v: u16| format!("{v:02}");
        let dow = if self.restricts_weekdays() {
            format!(
                "{} ",
                field(&self.weekdays, WEEKDAYS, "..", &|v| NAMES[usize::from(v)]
                    .to_owned())
            )
        } else {
            String::new()
        };
        format!(
            "{dow}*-{}-{} {}:{}:00 {zone}",
            field(&self.months, MONTHS, "..", &two),
            field(&self.days, DAYS, "..", &two),
            field(&self.hours, HOURS, "..", &two),
            field(&self.minutes, MINUTES, "..", &two),
        )
    }
}

fn full(values: &[u16], (lo, hi): (u16, u16)) -> bool {
    values.len() == usize::from(hi - lo + 1)
}

/// One field: `*` when it matches its whole range, else its values with runs of three or
/// more written as ranges.
fn field(values: &[u16], range: (u16, u16), dash: &str, show: &dyn Fn(u16) -> String) -> String {
    if full(values, range) {
        return "*".to_owned();
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}{dash}{}", show(values[i]), show(values[j])));
        } else {
            parts.extend(values[i..=j].iter().map(|v| show(*v)));
        }
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::{Cadence, CadenceError};
    use chrono::{DateTime, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn fields_expand_to_the_forms_each_scheduler_reads() {
        let c = Cadence::parse("*/15 9-17 * * mon-fri", None).unwrap();
        assert_eq!(c.fields().cron_text(), "0,15,30,45 9-17 * * 1-5");
        assert_eq!(
            c.fields().on_calendar("UTC"),
            "Mon..Fri *-*-* 09..17:00,15,30,45:00 UTC"
        );
        let sunday = Cadence::parse("0 3 * * 7", Some("Europe/Berlin")).unwrap();
        assert_eq!(sunday.fields().cron_text(), "0 3 * * 0");
        assert_eq!(
            sunday.fields().on_calendar("Europe/Berlin"),
            "Sun *-*-* 03:00:00 Europe/Berlin"
        );
        let daily = Cadence::parse("@daily", None).unwrap();
        assert_eq!(daily.fields().cron_text(), "0 0 * * *");
        let monthly = Cadence::parse("30 4 1,15 * *", None).unwrap();
        assert_eq!(
            monthly.fields().on_calendar("UTC"),
            "*-*-01,15 04:30:00 UTC"
        );
    }

    #[test]
    fn next_times_follow_the_zone_across_a_daylight_saving_change() {
        let c = Cadence::parse("0 2 * * *", Some("Europe/Berlin")).unwrap();
        let next: Vec<String> = c
            .next(at("2026-10-24T12:00:00Z"), 2)
            .iter()
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            next,
            ["2026-10-25T02:00:00+02:00", "2026-10-26T02:00:00+01:00"]
        );
    }

    #[test]
    fn what_the_exports_cannot_express_is_refused() {
        for (expr, says) in [
            ("0 0 2 * * *", "more than five fields"),
            ("0 2 L * *", "`L`, `W` or `#`"),
            ("0 2 1 * 1", "both days of the month and days of the week"),
            ("0 25 * * *", "is not a cron expression"),
            ("every day", "is not a cron expression"),
        ] {
            match Cadence::parse(expr, None) {
                Err(CadenceError::Cron(m)) => assert!(m.contains(says), "{expr}: {m}"),
                other => panic!("{expr}: {other:?}"),
            }
        }
        assert!(matches!(
            Cadence::parse("0 2 * * *", Some("Europe/Berlim")),
            Err(CadenceError::Zone(_))
        ));
    }
}
