//! The row-count comparison with a baseline (a backup manifest's counts): a table with fewer
//! rows than before, one that is gone, and one that cannot be counted all fail the
//! `row_counts` check; a count that is only an estimate is not judged.

use super::volume::RowCounts;
use super::{CheckResult, Status};
use crate::fmt::{list_some, plural};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;

/// How the counts of now compare with a baseline.
struct CountComparison {
    /// Every baseline table: `{before, after}` (`after` is null for a table that is gone).
    changes: Map<String, Json>,
    /// The tables with fewer rows than before, or gone.
    lost: Map<String, Json>,
    /// Tables whose count is an estimate or could not be taken: not judged.
    not_compared: Vec<Json>,
    compared: usize,
}

/// The table a baseline key names, as the checks show it: a backup manifest's `public.T` is `T`.
pub fn baseline_name(key: &str) -> &str {
    key.strip_prefix("public.").unwrap_or(key)
}

/// The row count result `r` judged against `baseline`: its status, message and details.
pub(super) fn judge(
    mut r: CheckResult,
    baseline: &BTreeMap<String, u64>,
    measured: &RowCounts,
) -> CheckResult {
    let cmp = compare_counts(baseline, measured);
    if !cmp.lost.is_empty() {
        r.status = Status::Fail;
        r.message = format!(
            "{}; {} fewer rows than the baseline: {}",
            r.message,
            plural(cmp.lost.len(), "table has", "tables have"),
            list_some(
                &cmp.lost
                    .iter()
                    .map(|(t, c)| match (c["after"].as_i64(), c.get("error")) {
                        (Some(after), _) => format!("{t} {} -> {after}", c["before"]),
                        (None, Some(_)) => format!("{t} {} -> could not count", c["before"]),
                        (None, None) => format!("{t} {} -> gone", c["before"]),
                    })
                    .collect::<Vec<_>>()
            )
        );
    } else {
        r.message = format!(
            "{}; no table has fewer rows than the baseline ({} compared)",
            r.message,
            plural(cmp.compared, "table", "tables")
        );
    }
    r = r
        .with("baseline", cmp.changes)
        .with("lost", cmp.lost)
        .with("not_compared", cmp.not_compared);
    if !measured.partitions.is_empty() {
        r = r.with("partitions", measured.partitions.clone());
    }
    r
}

/// Compares counts with a baseline, by `baseline_name`.
fn compare_counts(baseline: &BTreeMap<String, u64>, measured: &RowCounts) -> CountComparison {
    let mut out = CountComparison {
        changes: Map::new(),
        lost: Map::new(),
        not_compared: Vec::new(),
        compared: 0,
    };
    for (key, &before) in baseline {
        let table = baseline_name(key);
        if measured.estimated.iter().any(|e| e == table) {
            out.not_compared.push(json!(table));
            continue;
        }
        // A table that could not be counted may have lost rows: it fails the comparison.
        if let Some(why) = measured.errors.get(table) {
            out.lost.insert(
                table.to_owned(),
                json!({"before": before, "after": null, "error": why}),
            );
            continue;
        }
        let after = measured
            .counts
            .get(table)
            .or_else(|| measured.partitions.get(table))
            .and_then(Json::as_i64);
        let change = json!({"before": before, "after": after});
        out.compared += 1;
        if after.is_none_or(|a| (a.max(0) as u64) < before) {
            out.lost.insert(table.to_owned(), change.clone());
        }
        out.changes.insert(table.to_owned(), change);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::super::tests::opts;
    use super::super::volume::{RowCounts, row_counts_result};
    use serde_json::{Map, Value as Json, json};
    use std::collections::BTreeMap;

    #[test]
    fn counts_below_the_baseline_fail_naming_each_table() {
        let mut o = opts();
        o.baseline = Some(BTreeMap::from([
            ("public.User".to_owned(), 10),
            ("public.Plan".to_owned(), 6),
            ("Gone".to_owned(), 1),
            ("Big".to_owned(), 5_000_000),
        ]));
        let counts = Map::from_iter([
            ("User".to_owned(), json!(8)),
            ("Plan".to_owned(), json!(7)),
            ("Big".to_owned(), json!(4_000_000)),
        ]);
        let measured = |estimated: Vec<Json>, errors: Map<String, Json>| RowCounts {
            counts: counts.clone(),
            partitions: Map::from_iter([("Part_2024".to_owned(), json!(3))]),
            estimated,
            errors,
            total: 15,
        };
        let r = row_counts_result(measured(vec![json!("Big")], Map::new()), &o);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.message.ends_with(
                "2 tables have fewer rows than the baseline: Gone 1 -> gone, User 10 -> 8"
            ),
            "{}",
            r.message
        );
        assert_eq!(r.details["lost"]["User"], json!({"before": 10, "after": 8}));
        assert_eq!(
            r.details["baseline"]["Plan"],
            json!({"before": 6, "after": 7})
        );
        // An estimated count is not judged.
        assert_eq!(r.details["not_compared"], json!(["Big"]));

        // A partition (listed by a backup manifest) is compared with its own count.
        o.baseline = Some(BTreeMap::from([
            ("public.Plan".to_owned(), 6),
            ("public.Part_2024".to_owned(), 3),
        ]));
        let r = row_counts_result(measured(vec![], Map::new()), &o);
        assert_eq!(r.status, Status::Pass, "{}", r.message);
        assert!(r.message.ends_with("(2 tables compared)"), "{}", r.message);

        // A baseline table that could not be counted fails: it may have lost rows.
        let r = row_counts_result(
            measured(
                vec![],
                Map::from_iter([("Plan".to_owned(), json!("permission denied"))]),
            ),
            &o,
        );
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.message.ends_with("Plan 6 -> could not count"),
            "{}",
            r.message
        );
    }
}
