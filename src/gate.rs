//! Gates: the points where a run stops until people or facts allow it to go on. Approval,
//! typed confirmation, a condition over earlier outputs, a maintenance window, and a required
//! earlier run. A gate never lets a run continue by default: without a terminal and without a
//! recorded decision, the run stops and waits. This module holds what a gate decides and the
//! maintenance-window arithmetic; the engine makes the decisions (`exec/gates.rs`), and the
//! terminal prompt is the `Ui`'s.

use crate::playbook::{Weekday, WindowGate};
use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc};

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
        if !crate::validate::is_time_zone(tz) {
            return Err(format!("`{tz}` is not a known time zone"));
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
/// zone). A window is wall-clock time in its zone: `now` is turned into the zone's local date
/// and time and compared with `start` and `end`, so on a daylight-saving change day the window
/// is shorter (local times that are skipped never occur) or longer (local times that occur
/// twice are inside both times). A window whose end is before its start runs past midnight;
/// `days` are the days it opens on. `now` is a parameter so that tests fix the clock.
pub fn window(w: &WindowGate, now: DateTime<Utc>) -> Result<Result<(), String>, String> {
    let zone = Zone::parse(w.tz.as_deref())?;
    let span = Span {
        start: NaiveTime::parse_from_str(&w.start, "%H:%M")
            .map_err(|_| format!("`{}` is not HH:MM", w.start))?,
        end: NaiveTime::parse_from_str(&w.end, "%H:%M")
            .map_err(|_| format!("`{}` is not HH:MM", w.end))?,
        days: w.days.as_deref(),
    };
    if span.holds(zone.local(now)) {
        return Ok(Ok(()));
    }
    // The next opening is the first whole minute the same test admits: window bounds are
    // whole minutes and so are the offset changes of every zone in use, and stepping through
    // time (rather than computing the local start's instant) also finds the openings that a
    // daylight-saving change makes, such as the local hour repeated inside a window. Eight days
    // reach every allowed weekday.
    let first = now + chrono::Duration::seconds(60 - i64::from(now.second()));
    let first = first.with_second(0).and_then(|t| t.with_nanosecond(0));
    let next = first.and_then(|first| {
        (0..8 * 24 * 60)
            .map(|m| first + chrono::Duration::minutes(m))
            .find(|t| span.holds(zone.local(*t)))
    });
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

/// A window's wall-clock interval and the days it opens on (all days when `None`).
struct Span<'a> {
    start: NaiveTime,
    end: NaiveTime,
    days: Option<&'a [Weekday]>,
}

impl Span<'_> {
    fn opens_on(&self, d: chrono::NaiveDate) -> bool {
        self.days
            .is_none_or(|days| days.iter().any(|x| weekday(*x) == d.weekday()))
    }

    /// Whether a local date and time is inside: from `start` to `end` on an allowed day, or,
    /// for a window past midnight, from `start` to midnight on an allowed day and from
    /// midnight to `end` on the day after one.
    fn holds(&self, local: chrono::NaiveDateTime) -> bool {
        let (day, t) = (local.date(), local.time());
        if self.start < self.end {
            return self.opens_on(day) && self.start <= t && t < self.end;
        }
        (self.opens_on(day) && t >= self.start)
            || (t < self.end && day.pred_opt().is_some_and(|d| self.opens_on(d)))
    }
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

    /// `01:00–02:30 America/New_York` at fixed instants, on an ordinary day and on both
    /// daylight-saving changes of 2026.
    #[test]
    fn windows_are_wall_clock_time_across_daylight_saving_changes() {
        let ny = w(None, "01:00", "02:30", "America/New_York");
        let check = |t: &str| window(&ny, at(t)).unwrap();
        // An ordinary summer day (EDT, UTC-4).
        assert_eq!(check("2026-07-15T05:30:00Z"), Ok(()), "01:30 EDT");
        assert_eq!(check("2026-07-15T06:29:00Z"), Ok(()), "02:29 EDT");
        assert_eq!(
            check("2026-07-15T06:45:00Z"),
            Err("Thu 2026-07-16 01:00 America/New_York".into()),
            "02:45 EDT"
        );
        assert_eq!(
            check("2026-07-15T04:59:00Z"),
            Err("Wed 2026-07-15 01:00 America/New_York".into()),
            "00:59 EDT"
        );
        // 2026-03-08: at 02:00 EST the clocks go to 03:00 EDT; 02:00-02:59 never happens, and
        // 03:10 and 03:29 are past 02:30 (they were admitted when the end was taken as an
        // instant, 02:30 moved an hour forward).
        assert_eq!(
            check("2026-03-08T05:59:00Z"),
            Err("Sun 2026-03-08 01:00 America/New_York".into()),
            "00:59 EST"
        );
        assert_eq!(check("2026-03-08T06:00:00Z"), Ok(()), "01:00 EST");
        assert_eq!(check("2026-03-08T06:59:00Z"), Ok(()), "01:59 EST");
        for (t, local) in [
            ("2026-03-08T07:00:00Z", "03:00 EDT"),
            ("2026-03-08T07:10:00Z", "03:10 EDT"),
            ("2026-03-08T07:29:00Z", "03:29 EDT"),
        ] {
            assert_eq!(
                check(t),
                Err("Mon 2026-03-09 01:00 America/New_York".into()),
                "{local}"
            );
        }
        // 2026-11-01: at 02:00 EDT the clocks go back to 01:00 EST; 01:00-01:59 happens twice,
        // inside the window both times.
        assert_eq!(check("2026-11-01T05:30:00Z"), Ok(()), "01:30 EDT");
        assert_eq!(check("2026-11-01T06:30:00Z"), Ok(()), "01:30 EST");
        assert_eq!(check("2026-11-01T07:29:00Z"), Ok(()), "02:29 EST");
        assert_eq!(
            check("2026-11-01T07:45:00Z"),
            Err("Mon 2026-11-02 01:00 America/New_York".into()),
            "02:45 EST"
        );
        // The repeated hour reopens a window that had closed: 00:30–01:30 is left at 01:30 EDT
        // and entered again when the clocks go back to 01:00 EST.
        let early = w(None, "00:30", "01:30", "America/New_York");
        assert_eq!(
            window(&early, at("2026-11-01T05:45:00Z")).unwrap(),
            Err("Sun 2026-11-01 01:00 America/New_York".into()),
            "01:45 EDT"
        );
        assert_eq!(window(&early, at("2026-11-01T06:10:00Z")).unwrap(), Ok(()));
        // A window starting in the skipped hour opens when the clocks jump past its start.
        let skipped = w(None, "02:15", "04:00", "America/New_York");
        assert_eq!(
            window(&skipped, at("2026-03-08T06:30:00Z")).unwrap(),
            Err("Sun 2026-03-08 03:00 America/New_York".into()),
            "01:30 EST"
        );
        assert_eq!(
            window(&skipped, at("2026-03-08T07:05:00Z")).unwrap(),
            Ok(())
        );
        // Past midnight on a change day: Saturday 23:00 to 02:30, open at 01:30 EST on Sunday.
        let night = w(
            Some(vec![Weekday::Sat]),
            "23:00",
            "02:30",
            "America/New_York",
        );
        assert_eq!(window(&night, at("2026-11-01T06:30:00Z")).unwrap(), Ok(()));
        assert_eq!(
            window(&night, at("2026-03-08T07:10:00Z")).unwrap(),
            Err("Sat 2026-03-14 23:00 America/New_York".into()),
            "03:10 EDT"
        );
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
