//! What a step changed in the target database, as far as runbook can tell, and what
//! `rollback_when: changed` makes of it. Read-only actions (health, gates, log, a `wait_for`
//! query, `migrate status`/`lint`, a read-only `sql`, `find_backup`) and `backup` (it writes
//! files) change nothing; `migrate apply` that applied nothing and a `seed` that inserted and
//! updated nothing change nothing; a failed step changed nothing only when its action knows its
//! transaction rolled back (`StepError::NothingCommitted`). Everything else, and whatever
//! runbook cannot know, changed the target.

use super::StepError;
use super::engine::Engine;
use crate::fmt::plural;
use crate::playbook::{Action, MigrateOp, RollbackWhen, Step};
use crate::run::{Change, Phase};
use serde_json::{Map, Value as Json};

/// What only reading the target says.
const READS: &str = "only reads the database";

/// Why a step of this action changes nothing whatever happens, if it never does.
pub(super) fn read_only(step: &Step) -> Option<&'static str> {
    match step.action()? {
        Action::Health(_) | Action::Gate(_) | Action::Log(_) => Some(READS),
        Action::WaitFor(w) if w.sql.is_some() => Some(READS),
        Action::Sql(s) if s.read_only => Some("runs read-only"),
        Action::Backup(_) => Some("writes a backup file, not the database"),
        Action::Http(h)
            if h.method.as_deref().is_none_or(|m| {
                ["GET", "HEAD", "OPTIONS"].contains(&m.to_ascii_uppercase().as_str())
            }) =>
        {
            Some("asks an application, not the database")
        }
        Action::FindBackup(_) => Some("only reads backup files"),
        Action::Migrate(m) if matches!(m.action, MigrateOp::Status | MigrateOp::Lint) => {
            Some(READS)
        }
        _ => None,
    }
}

/// What a step that succeeded changed, from its action and its outputs.
pub(super) fn after_success(step: &Step, outputs: &Map<String, Json>) -> Change {
    if let Some(why) = read_only(step) {
        return Change::unchanged(why);
    }
    let n = |k: &str| outputs.get(k).and_then(Json::as_u64);
    match step.action() {
        Some(Action::Migrate(m)) => {
            let (verb, none) = match m.action {
                MigrateOp::Apply => ("applied", "applied no migration"),
                MigrateOp::Revert => ("reverted", "reverted no migration"),
                MigrateOp::Baseline => ("marked as applied", "marked no migration as applied"),
                MigrateOp::Resolve => ("resolved", "resolved no migration"),
                _ => return Change::unchanged("rehearsed in a transaction it rolled back"),
            };
            match n("count") {
                Some(0) => Change::unchanged(none),
                Some(c) => {
                    Change::changed(format!("{verb} {}", plural(c, "migration", "migrations")))
                }
                None => Change::changed(format!("{verb} migrations")),
            }
        }
        Some(Action::Vacuum(_) | Action::Reindex(_)) => {
            Change::unchanged("maintenance: no row or schema changed")
        }
        Some(Action::Seed(_)) => match (n("inserted"), n("updated")) {
            (Some(0), Some(0)) => Change::unchanged("inserted and updated nothing"),
            (Some(i), Some(u)) => Change::changed(format!("inserted {i} and updated {u} rows")),
            _ => Change::changed("wrote seed rows"),
        },
        Some(a) => unknown(a.key()),
        None => unknown("?"),
    }
}

/// What a step that failed changed: nothing only when its action knows it committed nothing.
pub(super) fn after_failure(step: &Step, e: &StepError) -> Change {
    if let Some(why) = read_only(step) {
        return Change::unchanged(why);
    }
    match e {
        StepError::NothingCommitted(_) => Change::unchanged("failed and committed nothing"),
        _ => Change::changed("failed part-way: runbook cannot tell what it changed"),
    }
}

/// A gate, whatever it decided: it only reads.
pub(super) fn gate() -> Change {
    Change::unchanged(READS)
}

/// A step that failed before its action ran (its `when` or arguments could not be rendered).
pub(super) fn before_running() -> Change {
    Change::unchanged("failed before its action ran")
}

/// An action whose effect runbook cannot see (a program, a statement, a restore or copy).
fn unknown(action: &str) -> Change {
    Change::changed(format!(
        "ran `{action}`, which runbook counts as changing the database"
    ))
}

impl Engine<'_> {
    /// What a step that was in flight when the run stopped changed: unknown, so a change,
    /// unless its action never changes anything. `skipped`: the operator said it took effect.
    pub(super) fn in_flight_change(&self, phase: Phase, qid: &str, skipped: bool) -> Change {
        if let Some(why) = self.units.find(phase, qid).and_then(|u| read_only(&u.step)) {
            return Change::unchanged(why);
        }
        Change::changed(if skipped {
            "was in flight when the run stopped, and was skipped on resume as having taken effect"
        } else {
            "was in flight when the run stopped: what it did then is unknown"
        })
    }

    /// Why the compensations of main unit `owner` are skipped, if they are (the line the
    /// operator reads): it says `rollback_when: changed` and no unit that ran after it in this
    /// run changed the target. `failed` is the unit whose failure started the rollback.
    pub(super) fn skip_rollback(&self, owner: usize, failed: &str) -> Option<String> {
        let unit = &self.units.main[owner];
        if unit.step.rollback_when != Some(RollbackWhen::Changed) {
            return None;
        }
        if self
            .later(owner)
            .any(|key| self.changes.get(&key).is_some_and(|c| c.changed))
        {
            return None;
        }
        let why = [Phase::Main, Phase::Finally]
            .into_iter()
            .find_map(|p| self.changes.get(&(p, failed.to_owned())))
            .map_or("failed before any of its steps ran", |c| c.reason.as_str());
        Some(format!(
            "rollback of `{}` skipped: nothing after it changed the database (`{failed}` {why})",
            unit.qid
        ))
    }

    /// The units that ran after main unit `owner` before the rollback: the main units after
    /// it and the `finally` of includes that end with or after it. (Compensations do not
    /// count: the decision is made before they run, and again the same way on resume.)
    fn later(&self, owner: usize) -> impl Iterator<Item = (Phase, String)> + '_ {
        let main = self.units.main[owner + 1..]
            .iter()
            .map(|u| (u.phase, u.qid.clone()));
        let finally = self
            .units
            .blocks
            .iter()
            .filter(move |b| b.end > owner)
            .flat_map(|b| b.finally.iter().map(|u| (u.phase, u.qid.clone())));
        main.chain(finally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::{MigrateAction, SeedAction, ShellAction};
    use serde_json::json;

    fn outputs(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn migrate(action: MigrateOp) -> Step {
        let a: MigrateAction =
            serde_json::from_value(json!({"action": action})).expect("a migrate action");
        Step {
            migrate: Some(a),
            ..Step::default()
        }
    }

    #[test]
    fn applying_nothing_changes_nothing_and_applying_one_changes_the_target() {
        let step = migrate(MigrateOp::Apply);
        assert!(!after_success(&step, &outputs(json!({"count": 0}))).changed);
        let one = after_success(&step, &outputs(json!({"count": 1})));
        assert!(one.changed);
        assert_eq!(one.reason, "applied 1 migration");
        // Outputs without a count cannot say nothing happened.
        assert!(after_success(&step, &Map::new()).changed);
    }

    #[test]
    fn resolving_a_migration_changes_the_target() {
        let step = migrate(MigrateOp::Resolve);
        assert!(step.action().is_some_and(|a| a.is_destructive()));
        let one = after_success(&step, &outputs(json!({"count": 1})));
        assert!(one.changed);
        assert_eq!(one.reason, "resolved 1 migration");
    }

    #[test]
    fn a_failure_changed_nothing_only_when_the_action_says_it_committed_nothing() {
        let step = migrate(MigrateOp::Apply);
        let rolled_back = StepError::NothingCommitted("x".into());
        assert!(!after_failure(&step, &rolled_back).changed);
        assert!(after_failure(&step, &StepError::Failed("x".into())).changed);
        // A status never changes anything, however it fails.
        let status = migrate(MigrateOp::Status);
        assert!(!after_failure(&status, &StepError::Failed("x".into())).changed);
    }

    #[test]
    fn choosing_a_backup_changes_nothing() {
        let step: Step = serde_json::from_value(json!({"find_backup": {"dir": "b"}}))
            .expect("a find_backup step");
        assert!(!after_success(&step, &Map::new()).changed);
        assert!(!after_failure(&step, &StepError::Failed("x".into())).changed);
    }

    #[test]
    fn seeds_that_wrote_nothing_and_unknown_actions() {
        let seed = Step {
            seed: Some(SeedAction {
                set: "s".into(),
                dir: None,
            }),
            ..Step::default()
        };
        let none = outputs(json!({"inserted": 0, "updated": 0, "unchanged": 4}));
        assert!(!after_success(&seed, &none).changed);
        let some = outputs(json!({"inserted": 0, "updated": 2}));
        assert!(after_success(&seed, &some).changed);
        let shell: ShellAction =
            serde_json::from_value(json!({"argv": ["true"]})).expect("a shell action");
        let shell = Step {
            shell: Some(shell),
            ..Step::default()
        };
        assert!(after_success(&shell, &Map::new()).changed);
        assert!(after_failure(&shell, &StepError::Failed("x".into())).changed);
    }
}
