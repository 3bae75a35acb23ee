//! Gates: the points where a run stops until people or facts allow it to go on. Approval,
//! typed confirmation, a condition over earlier outputs, a maintenance window, and a required
//! earlier run. A gate never lets a run continue by default: without a terminal and without a
//! recorded decision, the run stops and waits. This module holds what a gate decides and the
//! maintenance-window arithmetic; the engine makes the decisions (`exec/gates.rs`), and the
//! terminal prompt is the `Ui`'s.

use crate::playbook::{Weekday, WindowGate};
use chrono::{DateTime, Datelike, NaiveTime, TimeZone, Utc};

/// What a gate decided.
#[derive(Debug, Clone)]
pub enum GateOutcome {
    /// Go on; `detail` says why (who approved, what held).
    Pass(serde_json::Value),
    /// Stop and wait for a decision recorded later (`runbook approve`, `--confirm`).
    Wait(String),
    /// Stop for good: the run is refused and rolled back.
    Refuse(String),
}

/// A time zone: UTC, a fixed offset, or an IANA name.
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    Utc,
    Fixed(chrono::FixedOffset),
    Named(chrono_tz::Tz),
}

impl Zone {
    pub fn parse(tz: Option<&str>) -> Result<Zone, String> {
        let Some(tz) = tz else { return Ok(Zone::Utc) };
        if tz == "UTC" || tz == "Z" {
            return Ok(Zone::Utc);
        }
        let b = tz.as_bytes();
        if b.len() == 6 && (b[0] == b'+' || b[0] == b'-') && b[3] == b':' {
            let h: i32 = tz[1..3]
                .parse()
                .map_err(|_| format!("`{tz}` is not an offset"))?;
            let m: i32 = tz[4..6]
                .parse()
                .map_err(|_| format!("`{tz}` is not an offset"))?;
            let secs = (h * 3600 + m * 60) * if b[0] == b'-' { -1 } else { 1 };
            return chrono::FixedOffset::east_opt(secs)
                .map(Zone::Fixed)
                .ok_or_else(|| format!("`{tz}` is out of range"));
        }
        tz.parse::<chrono_tz::Tz>()
            .map(Zone::Named)
            .map_err(|_| format!("`{tz}` is not a known time zone"))
    }

    /// The local date and time of an instant in this zone.
    fn local(&self, t: DateTime<Utc>) -> chrono::NaiveDateTime {
        match self {
            Zone::Utc => t.naive_utc(),
            Zone::Fixed(o) => t.with_timezone(o).naive_local(),
            Zone::Named(z) => t.with_timezone(z).naive_local(),
        }
    }

    /// The instant of a local date and time (the earlier one when it is ambiguous; skipped
    /// local times move forward an hour).
    fn instant(&self, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
        let pick = |r: chrono::LocalResult<DateTime<chrono::FixedOffset>>| {
            r.earliest().map(|t| t.with_timezone(&Utc))
        };
        match self {
            Zone::Utc => Some(Utc.from_utc_datetime(&local)),
            Zone::Fixed(o) => pick(o.from_local_datetime(&local)),
            Zone::Named(z) => z
                .from_local_datetime(&local)
                .earliest()
                .or_else(|| {
                    z.from_local_datetime(&(local + chrono::Duration::hours(1)))
                        .earliest()
                })
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Zone::Utc => "UTC".to_owned(),
            Zone::Fixed(o) => o.to_string(),
            Zone::Named(z) => z.name().to_owned(),
        }
    }
}

fn weekday(d: Weekday) -> chrono::Weekday {
    match d {
        Weekday::Mon => chrono::Weekday::Mon,
        Weekday::Tue => chrono::Weekday::Tue,
        Weekday::Wed => chrono::Weekday::Wed,
        Weekday::Thu => chrono::Weekday::Thu,
        Weekday::Fri => chrono::Weekday::Fri,
        Weekday::Sat => chrono::Weekday::Sat,
        Weekday::Sun => chrono::Weekday::Sun,
    }
}

/// Whether `now` is inside the window; if not, the next opening (as text in the window's
/// zone). A window whose end is before its start runs past midnight; `days` are the days it
/// opens on.
pub fn window(w: &WindowGate, now: DateTime<Utc>) -> Result<Result<(), String>, String> {
    let zone = Zone::parse(w.tz.as_deref())?;
    let start = NaiveTime::parse_from_str(&w.start, "%H:%M")
        .map_err(|_| format!("`{}` is not HH:MM", w.start))?;
    let end = NaiveTime::parse_from_str(&w.end, "%H:%M")
        .map_err(|_| format!("`{}` is not HH:MM", w.end))?;
    let local_now = zone.local(now);
    let allowed = |d: chrono::Weekday| {
        w.days
            .as_ref()
            .is_none_or(|days| days.iter().any(|x| weekday(*x) == d))
    };
    // Openings from yesterday (a window past midnight may still be open) to a week ahead.
    let mut next: Option<DateTime<Utc>> = None;
    for offset in -1..=8 {
        let day = local_now.date() + chrono::Duration::days(offset);
        if !allowed(day.weekday()) {
            continue;
        }
        let open_local = day.and_time(start);
        let close_local = if end > start {
            day.and_time(end)
        } else {
            (day + chrono::Duration::days(1)).and_time(end)
        };
        let (Some(open), Some(close)) = (zone.instant(open_local), zone.instant(close_local))
        else {
            continue;
        };
        if open <= now && now < close {
            return Ok(Ok(()));
        }
        if open > now && next.is_none_or(|n| open < n) {
            next = Some(open);
        }
    }
    let when = match next {
        Some(t) => format!(
            "{} {}",
            zone.local(t).format("%a %Y-%m-%d %H:%M"),
            zone.name()
        ),
        None => "never (no day is allowed)".to_owned(),
    };
    Ok(Err(when))
}

/// Names compared the way people expect: case, Unicode compatibility forms and surrounding
/// space do not matter (`jürgen` is `JÜRGEN`, `Straße` is `STRASSE`, a composed `é` is the
/// decomposed one). ASCII folding alone let `JÜRGEN` approve a run of `jürgen`.
pub fn same_person(a: &str, b: &str) -> bool {
    name_key(a) == name_key(b)
}

/// The compatibility caseless form of a name (Unicode D146: NFKC of the case folding of NFKC
/// of the case folding of NFD), so names equal under that definition get one key.
pub fn name_key(name: &str) -> String {
    use icu_casemap::CaseMapper;
    use icu_normalizer::{ComposingNormalizer, DecomposingNormalizer};
    let fold = CaseMapper::new();
    let nfkc = ComposingNormalizer::new_nfkc();
    let nfd = DecomposingNormalizer::new_nfd();
    let decomposed = nfd.normalize(name.trim());
    let once = nfkc.normalize(&fold.fold_string(&decomposed)).into_owned();
    nfkc.normalize(&fold.fold_string(&once)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(days: Option<Vec<Weekday>>, start: &str, end: &str, tz: &str) -> WindowGate {
        WindowGate {
            days,
            start: start.into(),
            end: end.into(),
            tz: Some(tz.into()),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn names_compare_with_unicode_case_folding_and_normalisation() {
        assert!(same_person("jürgen", "JÜRGEN"));
        assert!(same_person("Straße", "STRASSE"));
        assert!(same_person("strasse", "STRAẞE"), "capital sharp s");
        assert!(
            same_person("Ren\u{e9}", "Rene\u{301}"),
            "composed and decomposed é"
        );
        assert!(same_person("RE\u{301}NE", "r\u{e9}ne"));
        assert!(
            same_person("ﬁona", "FIONA"),
            "the ﬁ ligature is f and i under NFKC"
        );
        assert!(same_person("  Alice ", "alice"));
        assert!(
            same_person("ΟΔΥΣΣΕΥΣ", "οδυσσευς"),
            "final sigma folds to sigma"
        );
        assert!(!same_person("jürgen", "jurgen"));
        assert!(!same_person("René", "Rene"));
        assert!(!same_person("alice", "bob"));
        assert!(!same_person("alice", "alicia"));
        assert!(!same_person("strasse", "strase"));
    }

    #[test]
    fn windows_open_close_and_name_the_next_opening() {
        // 2026-11-21 is a Saturday.
        let sat = w(
            Some(vec![Weekday::Sat, Weekday::Sun]),
            "02:00",
            "06:00",
            "UTC",
        );
        assert_eq!(window(&sat, at("2026-11-21T03:00:00Z")).unwrap(), Ok(()));
        assert_eq!(
            window(&sat, at("2026-11-21T07:00:00Z")).unwrap(),
            Err("Sun 2026-11-22 02:00 UTC".into())
        );
        assert_eq!(
            window(&sat, at("2026-11-23T03:00:00Z")).unwrap(),
            Err("Sat 2026-11-28 02:00 UTC".into())
        );
        // Past midnight, in a named zone (Berlin is UTC+1 in November).
        let night = w(Some(vec![Weekday::Fri]), "23:00", "02:00", "Europe/Berlin");
        assert_eq!(
            window(&night, at("2026-11-21T00:30:00Z")).unwrap(),
            Ok(()),
            "01:30 Saturday Berlin, opened Friday"
        );
        assert_eq!(
            window(&night, at("2026-11-21T02:30:00Z")).unwrap(),
            Err("Fri 2026-11-27 23:00 Europe/Berlin".into())
        );
        let fixed = w(None, "09:00", "17:00", "+05:30");
        assert_eq!(window(&fixed, at("2026-11-21T04:00:00Z")).unwrap(), Ok(()));
        assert!(
            window(
                &w(None, "09:00", "17:00", "Mars/Olympus"),
                at("2026-11-21T04:00:00Z")
            )
            .is_err()
        );
    }
}
