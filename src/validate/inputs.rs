//! The files a step names exist before anything runs: a seed set and a migrations folder
//! written out in the playbook (not templates, which are known only when the run renders them).
//! Without this check the run failed at that step, after the steps before it had run.

use crate::diagnostic::Diagnostic;
use crate::playbook::{PlaybookDef, Step};
use crate::source::{Source, display_path};
use crate::template;
use crate::yaml::Node;
use std::path::Path;

/// Where the project's folders are.
pub struct Folders<'a> {
    pub root: &'a Path,
    pub seeds: &'a Path,
}

/// A diagnostic for each seed set or migrations folder the playbook names that is not there.
pub fn check_inputs(
    def: &PlaybookDef,
    source: &Source,
    tree: &Node,
    folders: &Folders<'_>,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut visit = |steps: &[Step], base: Vec<String>| {
        for (i, step) in steps.iter().enumerate() {
            let mut path = base.clone();
            path.push(i.to_string());
            check_step(step, &path, source, tree, folders, &mut diags);
            for (j, comp) in step.rollback.iter().enumerate() {
                let mut p = path.clone();
                p.extend(["rollback".to_owned(), j.to_string()]);
                check_step(comp, &p, source, tree, folders, &mut diags);
            }
        }
    };
    visit(&def.steps, vec!["steps".to_owned()]);
    visit(&def.on_failure, vec!["on_failure".to_owned()]);
    visit(&def.finally, vec!["finally".to_owned()]);
    diags
}

fn check_step(
    step: &Step,
    path: &[String],
    source: &Source,
    tree: &Node,
    folders: &Folders<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    let at = |rel: &[&str]| {
        let mut p: Vec<&str> = path.iter().map(String::as_str).collect();
        p.extend(rel);
        tree.pos_of(&p)
    };
    if let Some(seed) = &step.seed
        && !template::is_template(&seed.set)
        && seed
            .dir
            .as_deref()
            .is_none_or(|d| !template::is_template(d))
    {
        let dir = match &seed.dir {
            Some(d) => folders.root.join(d),
            None => folders.seeds.to_path_buf(),
        };
        let found = ["yaml", "yml"]
            .iter()
            .any(|ext| dir.join(format!("{}.{ext}", seed.set)).is_file());
        if !found {
            diags.push(
                Diagnostic::error(
                    "missing-file",
                    format!("seed set `{}` is not in `{}`", seed.set, display_path(&dir)),
                )
                .at(source, at(&["seed", "set"]))
                .with_width(seed.set.chars().count())
                .with_hint(format!(
                    "create `{}.yaml` there, or name a set that exists",
                    seed.set
                )),
            );
        }
    }
    if let Some(m) = &step.migrate
        && let Some(dir) = &m.dir
        && !template::is_template(dir)
        && !folders.root.join(dir).is_dir()
    {
        diags.push(
            Diagnostic::error(
                "missing-file",
                format!("migrations folder `{dir}` does not exist"),
            )
            .at(source, at(&["migrate", "dir"]))
            .with_width(dir.chars().count())
            .with_hint("give a folder relative to the project, or remove `dir` for the config's `migrations_dir`"),
        );
    }
}
