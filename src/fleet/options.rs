//! How a fleet run goes: the concurrency limit, the canary and the stop threshold, and the
//! options a resumed fleet takes over from the run it continues.

/// When to stop starting new targets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopAfter {
    Count(usize),
    Percent(f64),
}

impl std::fmt::Display for StopAfter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopAfter::Count(n) => write!(f, "{n}"),
            StopAfter::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl StopAfter {
    /// Whether `failures` of `total` targets reach the threshold.
    pub(super) fn reached(self, failures: usize, total: usize) -> bool {
        match self {
            StopAfter::Count(n) => failures >= n,
            StopAfter::Percent(p) => (failures as f64) * 100.0 / (total as f64) >= p,
        }
    }
}

pub fn parse_stop_after(text: &str) -> Result<StopAfter, String> {
    match text.strip_suffix('%') {
        Some(p) => p
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0 && *v <= 100.0)
            .map(StopAfter::Percent),
        None => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|v| *v > 0)
            .map(StopAfter::Count),
    }
    .ok_or_else(|| format!("`{text}` is not a failure count like `3` or a percentage like `10%`"))
}

/// How a fleet run goes.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub concurrency: usize,
    pub canary: usize,
    pub stop_after: Option<StopAfter>,
}

impl FleetOptions {
    /// The options of a resumed fleet: what the command line gives, else what the fleet run
    /// started with. The canary applies to the resumed targets and is never carried over: the
    /// first run's canaries either passed or are among the unfinished.
    pub fn resumed(
        stored: &serde_json::Value,
        concurrency: Option<usize>,
        canary: Option<usize>,
        stop_after: Option<StopAfter>,
    ) -> FleetOptions {
        FleetOptions {
            concurrency: concurrency
                .or_else(|| {
                    stored["concurrency"]
                        .as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                })
                .filter(|&n| n > 0)
                .unwrap_or(4),
            canary: canary.unwrap_or(0),
            stop_after: stop_after.or_else(|| {
                stored["stop_after"].as_str().and_then(|t| {
                    // Fleets started by earlier versions stored `Some(Count(3))`, `None`.
                    let legacy = t
                        .strip_prefix("Some(Count(")
                        .or_else(|| t.strip_prefix("Some(Percent("))
                        .and_then(|v| v.strip_suffix("))"))
                        .map(|v| {
                            if t.contains("Percent") {
                                format!("{v}%")
                            } else {
                                v.to_owned()
                            }
                        });
                    parse_stop_after(legacy.as_deref().unwrap_or(t)).ok()
                })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FleetOptions, StopAfter};
    use serde_json::json;

    #[test]
    fn a_resumed_fleet_keeps_its_options_unless_given_new_ones() {
        let stored = json!({"concurrency": 3, "canary": 2, "stop_after": "10%"});
        let o = FleetOptions::resumed(&stored, None, None, None);
        assert_eq!(o.concurrency, 3);
        assert_eq!(o.canary, 0, "a canary is never carried over");
        assert_eq!(o.stop_after, Some(StopAfter::Percent(10.0)));
        let o = FleetOptions::resumed(&stored, Some(8), Some(1), Some(StopAfter::Count(2)));
        assert_eq!((o.concurrency, o.canary), (8, 1));
        assert_eq!(o.stop_after, Some(StopAfter::Count(2)));
        // What earlier versions stored.
        for (text, want) in [
            ("Some(Count(3))", Some(StopAfter::Count(3))),
            ("Some(Percent(12.5))", Some(StopAfter::Percent(12.5))),
            ("None", None),
        ] {
            let o = FleetOptions::resumed(&json!({"stop_after": text}), None, None, None);
            assert_eq!(o.stop_after, want, "{text}");
            assert_eq!(o.concurrency, 4);
        }
    }
}
