//! Semantic validation: what the schema cannot say. Unique ids, one action per step, template
//! references that resolve, well-formed rollback and finally blocks, complete gates, typed
//! parameter defaults, and gates before destructive steps in protected environments.
//!
//! Every check pushes diagnostics and goes on, so the user sees all problems at once. The
//! checks of a playbook are methods of one `Checker`, one concern per file; the config has
//! its own checks in `config`.

mod actions;
mod checker;
mod config;
mod durations;
mod environments;
mod gates;
mod http;
mod inputs;
mod maintain;
mod names;
mod params;
mod references;
mod schedules;
mod steps;
mod templates;
mod visible;

pub use config::check_config;
pub use inputs::{Folders, check_inputs};
pub use names::{is_env_name, is_identifier, is_time_zone};
pub use params::type_matches;

use crate::config::ConfigDef;
use crate::diagnostic::Diagnostic;
use crate::playbook::PlaybookDef;
use crate::source::Source;
use crate::yaml::Node;
use checker::{Block, Checker};

/// Checks a playbook that passed the schema. `config` enables the checks that depend on the
/// environments (variables, protections); without it those are skipped.
pub fn check_playbook(
    def: &PlaybookDef,
    source: &Source,
    tree: &Node,
    config: Option<&ConfigDef>,
) -> Vec<Diagnostic> {
    let mut main_ids = std::collections::HashMap::new();
    for (i, s) in def.steps.iter().enumerate() {
        if let Some(id) = &s.id {
            main_ids.entry(id.clone()).or_insert(i);
        }
    }
    let main_ids = std::rc::Rc::new(main_ids);
    let mut c = Checker {
        def,
        source,
        tree,
        config,
        diags: Vec::new(),
        main_ids,
        lines: 0,
    };
    c.params();
    c.environments();
    c.ids();
    if def.steps.is_empty() {
        c.err(
            &["steps"],
            "empty-playbook",
            "the playbook has no steps",
            "add at least one step under `steps:`",
        );
    }
    for (i, step) in def.steps.iter().enumerate() {
        let path = vec!["steps".to_owned(), i.to_string()];
        c.step(step, &path, Block::Steps, i);
        for (j, comp) in step.rollback.iter().enumerate() {
            let mut p = path.clone();
            p.extend(["rollback".to_owned(), j.to_string()]);
            c.step(comp, &p, Block::Rollback { owner: i }, j);
        }
    }
    for (block, name) in [
        (Block::OnFailure, "on_failure"),
        (Block::Finally, "finally"),
    ] {
        let steps = if block == Block::OnFailure {
            &def.on_failure
        } else {
            &def.finally
        };
        for (i, step) in steps.iter().enumerate() {
            c.step(step, &[name.to_owned(), i.to_string()], block, i);
        }
    }
    c.protections();
    c.full_vacuum_gates();
    c.diags
}
