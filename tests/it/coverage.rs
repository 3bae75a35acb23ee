//! Keeps `docs/coverage.md` (what runbook does of each item of the source guides) honest: every
//! cited guide line exists and holds the item's text, every cited file, playbook step, schedule,
//! health check and test exists, every `full` or `partial` row cites a test, and the totals at
//! the top (and each guide's own line) match the rows.

use crate::support::repo;
use regex::Regex;
use runbook::playbook::HealthCheck;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::LazyLock;

static TICK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"`([^`]+)`").unwrap());
static PATH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9_./-]+\.(yaml|rs|sql|md|json|txt)(#[A-Za-z0-9_-]+)?$").unwrap()
});
static CHECKS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"checks? ((?:`[a-z_]+`(?:, | and )?)+)").unwrap());

const STATUSES: [&str; 4] = ["full", "partial", "none", "not automatable"];

/// Letters and digits only, lowercased: how an item is compared with its guide line.
fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The backquoted tokens of a cell.
fn ticks(cell: &str) -> Vec<String> {
    TICK.captures_iter(cell).map(|c| c[1].to_owned()).collect()
}

/// Whether `file` (under `root`) names `anchor`: a step id, or a top-level key such as a
/// schedule's name.
fn has_anchor(text: &str, anchor: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start().trim_start_matches("- ");
        l == format!("id: {anchor}") || l.starts_with(&format!("{anchor}:"))
    })
}

/// The problems of one cited evidence cell: files, steps and health checks that do not exist.
/// Returns how many things it cited.
fn check_evidence(root: &Path, at: &str, cell: &str, problems: &mut Vec<String>) -> usize {
    let mut cited = 0;
    for token in ticks(cell) {
        if !PATH.is_match(&token) {
            continue;
        }
        cited += 1;
        let (file, anchor) = match token.split_once('#') {
            Some((f, a)) => (f, Some(a)),
            None => (token.as_str(), None),
        };
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            problems.push(format!("{at}: cites `{file}`, which does not exist"));
            continue;
        };
        if let Some(a) = anchor
            && !has_anchor(&text, a)
        {
            problems.push(format!("{at}: `{file}` has no step or key `{a}`"));
        }
    }
    // "check `name`" and "checks `a`, `b`": health checks by name.
    for c in CHECKS.captures_iter(cell) {
        for name in ticks(&c[1]) {
            cited += 1;
            if serde_json::from_value::<HealthCheck>(serde_json::json!(name)).is_err() {
                problems.push(format!("{at}: there is no health check `{name}`"));
            }
        }
    }
    cited
}

/// The problems of one cited tests cell: a file or a test function that does not exist.
fn check_tests(root: &Path, at: &str, cell: &str, problems: &mut Vec<String>) -> usize {
    let mut cited = 0;
    for token in ticks(cell) {
        let Some((file, name)) = token.split_once("::") else {
            problems.push(format!("{at}: `{token}` is not `path::test`"));
            continue;
        };
        cited += 1;
        match std::fs::read_to_string(root.join(file)) {
            Err(_) => problems.push(format!("{at}: cites `{file}`, which does not exist")),
            Ok(text) if !text.contains(&format!("fn {name}(")) => {
                problems.push(format!("{at}: `{file}` has no test `{name}`"));
            }
            Ok(_) => {}
        }
    }
    cited
}

/// Every problem of a coverage document, with `root` the project (guides, files and tests
/// are read from there).
fn problems(doc: &str, root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let header = Regex::new(r"^## (\d{3}): .*\(`(docs/guides/[^`]+)`\)$").unwrap();
    let per_guide =
        Regex::new(r"^(\d+) full, (\d+) partial, (\d+) none, (\d+) not automatable\.$").unwrap();
    let totals = Regex::new(
        r"^\*\*Totals:\*\* (\d+) full, (\d+) partial, (\d+) none of (\d+) automatable items; (\d+) not automatable\.$",
    )
    .unwrap();
    let mut guides: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut guide_counts: Vec<(String, [usize; 4], [usize; 4])> = Vec::new();
    let mut said_totals = None;
    let mut seen = BTreeSet::new();
    for line in doc.lines() {
        if let Some(c) = totals.captures(line) {
            let n = |i: usize| c[i].parse::<usize>().unwrap();
            said_totals = Some((n(1), n(2), n(3), n(4), n(5)));
        }
        if let Some(c) = header.captures(line) {
            match std::fs::read_to_string(root.join(&c[2])) {
                Ok(text) => {
                    guides.insert(c[1].to_owned(), text.lines().map(str::to_owned).collect());
                }
                Err(_) => problems.push(format!("{}: no such guide", &c[2])),
            }
            guide_counts.push((c[1].to_owned(), [0; 4], [0; 4]));
            continue;
        }
        if let Some(c) = per_guide.captures(line)
            && let Some(last) = guide_counts.last_mut()
        {
            for (i, v) in last.2.iter_mut().enumerate() {
                *v = c[i + 1].parse().unwrap();
            }
            continue;
        }
        let Some(row) = line.strip_prefix("| ") else {
            continue;
        };
        let cells: Vec<&str> = row
            .trim_end_matches('|')
            .split(" | ")
            .map(str::trim)
            .collect();
        let Some((guide, number)) = cells[0].split_once(':') else {
            continue;
        };
        let Ok(number) = number.parse::<usize>() else {
            continue;
        };
        let at = cells[0];
        if cells.len() != 6 {
            problems.push(format!("{at}: {} cells, not 6", cells.len()));
            continue;
        }
        if !seen.insert(at.to_owned()) {
            problems.push(format!("{at}: listed twice"));
        }
        match guides.get(guide) {
            None => problems.push(format!("{at}: no section for guide {guide} above it")),
            Some(lines) => match number.checked_sub(1).and_then(|i| lines.get(i)) {
                None => problems.push(format!("{at}: the guide has {} lines", lines.len())),
                Some(text) => {
                    let item = norm(cells[1].trim_end_matches('…'));
                    if item.is_empty() || !norm(text).contains(&item) {
                        problems.push(format!("{at}: the line says `{text}`, not `{}`", cells[1]));
                    }
                }
            },
        }
        let status = cells[2];
        let Some(k) = STATUSES.iter().position(|s| *s == status) else {
            problems.push(format!("{at}: unknown status `{status}`"));
            continue;
        };
        *counts.entry(STATUSES[k]).or_default() += 1;
        if let Some(last) = guide_counts.last_mut() {
            last.1[k] += 1;
        }
        let evidence = check_evidence(root, at, cells[3], &mut problems);
        let tests = check_tests(root, at, cells[4], &mut problems);
        match status {
            "full" if evidence == 0 || tests == 0 => problems.push(format!(
                "{at}: a full item needs the step, action or check that does it and a test"
            )),
            "partial" if tests == 0 => problems.push(format!("{at}: a partial item needs a test")),
            "none" | "not automatable" if cells[5].is_empty() => {
                problems.push(format!("{at}: say why ({status})"))
            }
            _ => {}
        }
    }
    for (guide, counted, said) in &guide_counts {
        if counted != said {
            problems.push(format!(
                "guide {guide}: its line says {said:?} (full, partial, none, not automatable), the rows {counted:?}"
            ));
        }
    }
    let n = |s: &str| counts.get(s).copied().unwrap_or(0);
    let counted = (
        n("full"),
        n("partial"),
        n("none"),
        n("full") + n("partial") + n("none"),
        n("not automatable"),
    );
    match said_totals {
        None => problems.push("no **Totals:** line".to_owned()),
        Some(said) if said != counted => problems.push(format!(
            "the totals say {said:?} (full, partial, none, automatable, not automatable), the rows {counted:?}"
        )),
        Some(_) => {}
    }
    if seen.is_empty() {
        problems.push("no rows".to_owned());
    }
    problems
}

fn doc() -> String {
    std::fs::read_to_string(repo().join("docs/coverage.md")).unwrap()
}

#[test]
fn the_coverage_table_cites_what_exists_and_its_totals_match() {
    let found = problems(&doc(), &repo());
    assert!(found.is_empty(), "docs/coverage.md:\n{}", found.join("\n"));
}

/// Each rule fails on a document that breaks it.
#[test]
fn the_coverage_check_fails_each_rule_when_it_is_broken() {
    let doc = doc();
    let root = repo();
    let row = doc
        .lines()
        .find(|l| l.starts_with("| 000:8 |"))
        .expect("row 000:8")
        .to_owned();
    let broken = |from: &str, to: &str, says: &str| {
        assert!(doc.contains(from), "{from}");
        let d = doc.replacen(from, to, 1);
        let found = problems(&d, &root);
        assert!(
            found.iter().any(|p| p.contains(says)),
            "{from} -> {to}: expected `{says}` in {found:#?}"
        );
    };
    // A line that does not hold the item, and one past the end of the guide.
    broken("| 000:8 |", "| 000:9 |", "000:9: the line says");
    broken("| 000:8 |", "| 000:9999 |", "the guide has 703 lines");
    // A test that does not exist, a file that does not exist, a step that does not exist.
    broken(
        "health.rs::a_healthy_postgres_database_passes_every_check`",
        "health.rs::a_healthy_postgres_database_passes_every_check_not`",
        "has no test `a_healthy_postgres_database_passes_every_check_not`",
    );
    broken(
        "`playbooks/pre-migration.yaml#health`",
        "`playbooks/pre-migrations.yaml#health`",
        "cites `playbooks/pre-migrations.yaml`, which does not exist",
    );
    broken(
        "`playbooks/pre-migration.yaml#health`",
        "`playbooks/pre-migration.yaml#healthy`",
        "has no step or key `healthy`",
    );
    broken(
        "check `version`",
        "check `versions`",
        "no health check `versions`",
    );
    // A full row without a test, totals that do not match the rows, a row listed twice.
    let without_test: Vec<&str> = row.split(" | ").collect();
    let mut cells = without_test.clone();
    cells[4] = "";
    broken(&row, &cells.join(" | "), "000:8: a full item needs");
    broken("**Totals:** ", "**Totals:** 1", "the totals say");
    broken(&row, &format!("{row}\n{row}"), "000:8: listed twice");
    // A guide's own count that does not match its rows.
    let full_to_none = row.replacen("| full |", "| none |", 1);
    broken(&row, &full_to_none, "guide 000: its line says");
}
