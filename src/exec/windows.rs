//! Maintenance windows: who may run outside them. Inside an environment's windows (or where it
//! has none) every playbook runs. Outside them a playbook that changes nothing runs (decided
//! statically from what its steps do, includes, compensations and handlers included: see
//! `change::read_only`); a playbook that may change the database runs only as an emergency
//! (`--emergency REASON`, which adds an approval gate before its first step); anything else is
//! refused, naming the next opening and the emergency command. Window arithmetic (time zones,
//! daylight-saving days) is `crate::gate::window`.

use super::change::read_only;
use super::emergency::Emergency;
use super::protections::Effective;
use super::refusal::Refusal;
use crate::playbook::{Action, Step};
use crate::project::Playbook;
use chrono::{DateTime, Utc};

/// How a run is let through the maintenance windows.
#[derive(Debug)]
pub(super) enum Admit {
    /// No windows, or inside one: a normal run.
    Open,
    /// Outside the windows, but the playbook changes nothing.
    ReadOnly,
    /// Outside the windows as an emergency: it waits for approvals before its first step.
    Emergency(Emergency),
}

/// Whether the windows of `eff` are open at `now`: `Ok(None)` when open (or there are none),
/// `Ok(Some(next opening))` when closed, `Err` when a window is invalid.
pub(super) fn closed(eff: &Effective, now: DateTime<Utc>) -> Result<Option<String>, Refusal> {
    if eff.rules.windows.is_empty() {
        return Ok(None);
    }
    let mut next = Vec::new();
    for w in &eff.rules.windows {
        match crate::gate::window(w, now) {
            Ok(Ok(())) => return Ok(None),
            Ok(Err(when)) => next.push(when),
            Err(e) => {
                return Err(Refusal::invalid(
                    format!("a maintenance window of `{}` is invalid: {e}", eff.source),
                    "fix the window in runbook.yaml".to_owned(),
                ));
            }
        }
    }
    Ok(Some(next.into_iter().next().unwrap_or_default()))
}

/// The first step of the playbook that may change the database (`id` and action), if any:
/// its steps, their compensations, `on_failure`, `finally`, and those of its includes.
pub(super) fn first_change(pb: &Playbook) -> Option<String> {
    first_change_in(pb, "")
}

fn first_change_in(pb: &Playbook, prefix: &str) -> Option<String> {
    let blocks = [
        ("", &pb.def.steps),
        ("on_failure", &pb.def.on_failure),
        ("finally", &pb.def.finally),
    ];
    for (block, steps) in blocks {
        for (i, s) in steps.iter().enumerate() {
            let local = s.local_id(if block.is_empty() { "step" } else { block }, i);
            let id = format!("{prefix}{local}");
            if let Some(Action::Include(_)) = s.action() {
                // An include runbook could not look into counts as a change.
                let found = match pb.includes.get(&local) {
                    Some(child) => first_change_in(child, &format!("{id}.")),
                    None => Some(format!("step `{id}` (include)")),
                };
                if found.is_some() {
                    return found;
                }
                continue;
            }
            let key = |x: &Step| x.action().map_or("?", |a| a.key());
            if changes(s) {
                return Some(format!("step `{id}` ({})", key(s)));
            }
            if let Some(x) = s.rollback.iter().find(|x| changes(x)) {
                return Some(format!("the rollback of step `{id}` ({})", key(x)));
            }
        }
    }
    None
}

/// Whether a step may change the database: anything not known to only read.
fn changes(step: &Step) -> bool {
    read_only(step).is_none()
}

/// How a new run of `pb` under `eff` is let through the windows at `now`; `env` is the
/// environment the run names (`--env`), `reason` the `--emergency` reason. Gives a note to
/// show beside the decision, if any.
pub(super) fn admit(
    pb: &Playbook,
    eff: &Effective,
    env: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Admit, Option<String>), Refusal> {
    let reason = match reason.map(str::trim) {
        Some("") => {
            return Err(Refusal::invalid(
                "`--emergency` needs a reason: what is broken and why it cannot wait".to_owned(),
                "pass --emergency \"REASON\" with a non-empty reason".to_owned(),
            ));
        }
        other => other,
    };
    let name = &pb.def.name;
    let Some(next) = closed(eff, now)? else {
        let note = reason.map(|_| {
            format!("`{}` is inside its maintenance window: `--emergency` is not needed, and this is a normal run", eff.source)
        });
        return Ok((Admit::Open, note));
    };
    let Some(change) = first_change(pb) else {
        return Ok((
            Admit::ReadOnly,
            Some(format!(
                "`{}` is outside its maintenance windows (the next opens {next}); `{name}` changes nothing in the database, so it runs{}",
                eff.source,
                if reason.is_some() {
                    " as a normal run, not an emergency"
                } else {
                    ""
                }
            )),
        ));
    };
    let outside = format!(
        "`{}` is outside its maintenance windows (the next opens {next})",
        eff.source
    );
    if let Some(reason) = reason {
        let approvals = eff.rules.approvals.unwrap_or(1).max(1);
        return Ok((
            Admit::Emergency(Emergency::new(reason, &outside, approvals)),
            None,
        ));
    }
    let required = eff.rules.approvals.unwrap_or(1).max(1);
    Err(Refusal::refused(
        format!("{outside} and `{name}` may change the database ({change}); nothing ran"),
        format!(
            "run it when the window opens ({next}); in an emergency, `runbook run {name} --env {env} --emergency \"REASON\"` runs it now once {} approve it (recorded as an emergency, with the reason)",
            crate::fmt::plural(u64::from(required), "person", "people")
        ),
    ))
}

/// Whether a run may be resumed outside its windows: an emergency run may (it was approved as
/// one), a run of a playbook that changes nothing may, any other is refused.
pub(super) fn admit_resume(
    pb: &Playbook,
    eff: &Effective,
    emergency: bool,
    (run_id, env): (&str, &str),
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if emergency || first_change(pb).is_none() {
        return Ok(());
    }
    let Some(next) = closed(eff, now)? else {
        return Ok(());
    };
    let name = &pb.def.name;
    Err(Refusal::refused(
        format!(
            "`{}` is outside its maintenance windows (the next opens {next}); run {run_id} was not started as an emergency, so it does not continue now; nothing ran",
            eff.source
        ),
        format!(
            "resume it when the window opens ({next}); if it cannot wait, start an emergency run: `runbook run {name} --env {env} --emergency \"REASON\"`"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::Project;
    use std::path::Path;

    /// The shipped playbooks: which run outside a window without an emergency.
    #[test]
    fn the_shipped_playbooks_that_change_nothing() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let project = Project::open(root).expect("the shipped project opens");
        let first = |name: &str| {
            let pb = project
                .load_playbook(&root.join(format!("playbooks/{name}.yaml")))
                .expect("a shipped playbook validates");
            first_change(&pb)
        };
        for name in ["health-check", "backup", "pre-migration"] {
            assert_eq!(first(name), None, "{name}");
        }
        for (name, step) in [
            // The chat notification at its start is a POST: it counts as a change.
            ("deploy", "step `notify_start` (http)"),
            // A program can do anything: `verify` reads its baseline with a shell step.
            ("verify", "step `before` (shell)"),
            ("seed-production", "step `seed` (seed)"),
            ("sqlite-to-postgres", "step `schema` (migrate)"),
        ] {
            assert_eq!(first(name).as_deref(), Some(step), "{name}");
        }
        for name in ["rollback", "restore"] {
            assert!(first(name).is_some(), "{name}");
        }
    }
}
