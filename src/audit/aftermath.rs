//! What state a run left its database in, said in plain words from its records: which steps
//! changed it, which compensations ran, which failed, and what an operator does next. The HTML
//! report puts it at the top of a failed run's page, where an auditor or the person on call
//! looks first.

use super::timeline::Span;

/// Sentences about the database after the run, the first one the verdict.
pub fn aftermath(spans: &[Span], status: &str) -> Vec<String> {
    let changed: Vec<&Span> = spans
        .iter()
        .filter(|s| s.phase == "main" && s.change.as_ref().is_some_and(|(c, _)| *c))
        .collect();
    let rollback: Vec<&Span> = spans.iter().filter(|s| s.phase == "rollback").collect();
    let ran: Vec<&Span> = rollback
        .iter()
        .copied()
        .filter(|s| s.status == "succeeded")
        .collect();
    let failed: Vec<&Span> = rollback
        .iter()
        .copied()
        .filter(|s| s.status == "failed")
        .collect();
    // A step's own compensations are named after it (`migrate.rollback-1`): the steps whose
    // compensations ran, collected once (every `.rollback-` in a name may end an owner's id).
    let owners: std::collections::HashSet<&str> = ran
        .iter()
        .flat_map(|c| {
            c.step
                .match_indices(".rollback-")
                .map(|(i, _)| &c.step[..i])
        })
        .collect();
    let undone = |s: &Span| owners.contains(s.step.as_str());
    let restored = ran.iter().find(|c| c.action == "restore");
    let left: Vec<&Span> = changed.iter().copied().filter(|s| !undone(s)).collect();
    let mut out = vec![verdict(
        status,
        &changed,
        &left,
        restored.copied(),
        !failed.is_empty(),
    )];
    if !changed.is_empty() {
        out.push(format!(
            "Steps that changed the database: {}.",
            list(&changed)
        ));
    }
    if !ran.is_empty() {
        out.push(format!("Compensations that ran: {}.", list(&ran)));
    }
    if !failed.is_empty() {
        let failed: Vec<String> = failed
            .iter()
            .map(|s| format!("`{}` ({})", s.step, s.detail))
            .collect();
        out.push(format!("Compensations that failed: {}.", failed.join("; ")));
    }
    if status == "rollback_failed" {
        out.push(
            "Next: restore the backup taken before the run (`runbook run restore`), or finish the failed compensation by hand; then check the database with the `verify` playbook before anyone works on it again.".to_owned(),
        );
    }
    out
}

/// The first sentence: the database's state in one line.
fn verdict(
    status: &str,
    changed: &[&Span],
    left: &[&Span],
    restored: Option<&Span>,
    compensation_failed: bool,
) -> String {
    let ended = matches!(status, "failed" | "refused" | "rollback_failed");
    if status == "succeeded" {
        return if changed.is_empty() {
            "The run succeeded without changing the database.".to_owned()
        } else {
            "The run succeeded: the database holds every change listed below.".to_owned()
        };
    }
    if !ended {
        return format!(
            "The run is {status}: the database holds the changes listed below and nothing after them ran; resume the run, or roll it back, to finish."
        );
    }
    if compensation_failed || status == "rollback_failed" {
        return "The rollback failed: the database is in neither the state before the run nor the state the run meant to leave. It holds the changes below, minus the compensations that ran.".to_owned();
    }
    if changed.is_empty() {
        return "The run stopped before any step changed the database: it is as it was before the run.".to_owned();
    }
    if let Some(r) = restored {
        let from = r.step.split(".rollback-").next().unwrap_or(&r.step);
        return format!(
            "The rollback restored the backup taken by step `{from}`: the database is as it was when that backup was taken."
        );
    }
    if left.is_empty() {
        return "The run stopped and its rollback undid every change: the database is as it was before the run.".to_owned();
    }
    format!(
        "The run stopped and these changes were not undone (they have no compensation): {}. The database holds them.",
        list(left)
    )
}

/// Steps and what each did, joined with `; `.
fn list(spans: &[&Span]) -> String {
    spans
        .iter()
        .map(|s| describe(s))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A step and what it did: `` `migrate` (applied 2 migrations) ``.
fn describe(s: &Span) -> String {
    match &s.change {
        Some((_, why)) if !why.is_empty() => format!("`{}` ({why})", s.step),
        _ => format!("`{}`", s.step),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(step: &str, phase: &str, status: &str, change: Option<(bool, &str)>) -> Span {
        Span {
            step: step.into(),
            phase: phase.into(),
            status: status.into(),
            detail: if status == "failed" {
                "boom".into()
            } else {
                String::new()
            },
            change: change.map(|(c, w)| (c, w.to_owned())),
            ..Default::default()
        }
    }

    #[test]
    fn a_failed_rollback_names_what_changed_what_was_undone_and_what_failed() {
        let spans = [
            span(
                "backup",
                "main",
                "succeeded",
                Some((false, "writes a backup file")),
            ),
            span(
                "migrate",
                "main",
                "succeeded",
                Some((true, "applied 2 migrations")),
            ),
            span(
                "seed",
                "main",
                "succeeded",
                Some((true, "inserted 3 and updated 0 rows")),
            ),
            span("verify", "main", "failed", None),
            span(
                "seed.rollback-1",
                "rollback",
                "succeeded",
                Some((true, "ran")),
            ),
            span("migrate.rollback-1", "rollback", "failed", None),
        ];
        let words = aftermath(&spans, "rollback_failed");
        assert!(words[0].starts_with("The rollback failed"), "{words:?}");
        assert!(
            words[1].contains("`migrate` (applied 2 migrations)"),
            "{words:?}"
        );
        assert!(words[1].contains("`seed` (inserted 3"), "{words:?}");
        assert!(!words[1].contains("backup"), "{words:?}");
        assert!(words[2].contains("`seed.rollback-1`"), "{words:?}");
        assert!(
            words[3].contains("`migrate.rollback-1` (boom)"),
            "{words:?}"
        );
        assert!(words[4].starts_with("Next: restore"), "{words:?}");
    }

    #[test]
    fn a_run_that_changed_nothing_says_so() {
        let spans = [span("check", "main", "failed", None)];
        let words = aftermath(&spans, "failed");
        assert_eq!(words.len(), 1);
        assert!(words[0].contains("as it was before the run"), "{words:?}");
    }

    #[test]
    fn a_change_without_a_compensation_is_named_as_still_there() {
        let spans = [
            span(
                "migrate",
                "main",
                "succeeded",
                Some((true, "applied 1 migration")),
            ),
            span(
                "seed",
                "main",
                "succeeded",
                Some((true, "inserted 1 and updated 0 rows")),
            ),
            span("verify", "main", "failed", None),
            span(
                "seed.rollback-1",
                "rollback",
                "succeeded",
                Some((true, "ran")),
            ),
        ];
        let words = aftermath(&spans, "failed");
        assert!(words[0].contains("not undone"), "{words:?}");
        assert!(
            words[0].contains("`migrate` (applied 1 migration)"),
            "{words:?}"
        );
        assert!(!words[0].contains("`seed`"), "{words:?}");
    }

    #[test]
    fn a_restore_compensation_returns_the_database_to_its_backup() {
        let mut restore = span(
            "backup.rollback-1",
            "rollback",
            "succeeded",
            Some((true, "restored")),
        );
        restore.action = "restore".into();
        let spans = [
            span(
                "migrate",
                "main",
                "succeeded",
                Some((true, "applied 1 migration")),
            ),
            span("verify", "main", "failed", None),
            restore,
        ];
        let words = aftermath(&spans, "failed");
        assert!(
            words[0].contains("restored the backup taken by step `backup`"),
            "{words:?}"
        );
    }
}
