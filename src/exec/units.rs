//! The playbook as the engine schedules it: steps flattened out of includes into [`Unit`]s
//! with qualified ids (`notify.send`), each include an [`IncludeBlock`] (its range of units and
//! its own `on_failure`/`finally` units), and per playbook a [`Scope`] of params and outputs.

use crate::playbook::{Action, Step};
use crate::project::Playbook;
use crate::run::Phase;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A step as the executor schedules it: flattened out of includes, with a qualified id.
#[derive(Debug, Clone)]
pub(super) struct Unit {
    pub qid: String,
    pub local: String,
    pub scope: usize,
    pub step: Step,
    pub phase: Phase,
    pub ord: i64,
}

/// An included playbook's place among the main units and its own `on_failure` and `finally`
/// steps: `finally` runs once its last unit is done; on a failure inside it, `on_failure` and
/// then `finally` run (innermost include first) before the including playbook's own.
#[derive(Debug, Clone)]
pub(super) struct IncludeBlock {
    /// Indexes into [`Layout::main`]: `start..end` are the include's units.
    pub start: usize,
    pub end: usize,
    /// The include step's own `when`, evaluated in the including playbook's scope.
    pub when: Option<String>,
    pub parent_scope: usize,
    /// The include step's qualified id.
    pub qid: String,
    pub on_failure: Vec<Unit>,
    pub finally: Vec<Unit>,
}

/// The parameters and outputs one playbook (the top one, or an include) sees.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    pub playbook: Arc<Playbook>,
    /// `None` until the include's parameters are rendered (when its first step runs).
    pub params: Option<Map<String, Json>>,
    /// The include's parameter templates and the scope they are rendered in.
    pub given: Option<(BTreeMap<String, Json>, usize)>,
    pub steps: Map<String, Json>,
}

/// Every unit of a run, in the order they may run.
#[derive(Debug, Default)]
pub(super) struct Layout {
    pub main: Vec<Unit>,
    /// The compensations of each main unit (same index).
    pub comps: Vec<Vec<Unit>>,
    pub on_failure: Vec<Unit>,
    pub finally: Vec<Unit>,
    /// Included playbooks, inner ones before the outer ones that contain them.
    pub blocks: Vec<IncludeBlock>,
    /// Where each (phase, qualified id) is, for `find`: a resume finds every recorded step.
    places: BTreeMap<(Phase, String), Place>,
}

/// Where a unit is in a [`Layout`].
#[derive(Debug, Clone, Copy)]
enum Place {
    Main(usize),
    Comp(usize, usize),
    OnFailure(usize),
    Finally(usize),
    BlockOnFailure(usize, usize),
    BlockFinally(usize, usize),
}

impl Layout {
    /// Flattens a playbook; gives the layout and the scopes, the top playbook's first with
    /// `root_params`.
    pub fn build(playbook: &Arc<Playbook>, root_params: Map<String, Json>) -> (Layout, Vec<Scope>) {
        let mut flat = Flattener {
            layout: Layout::default(),
            scopes: vec![Scope {
                playbook: playbook.clone(),
                params: Some(root_params),
                given: None,
                steps: Map::new(),
            }],
            ord: 0,
        };
        flat.steps(playbook, &playbook.def.steps, 0, "", &[]);
        let ord = &mut flat.ord;
        flat.layout.on_failure =
            handler_units(&playbook.def.on_failure, Phase::OnFailure, 0, "", ord);
        flat.layout.finally = handler_units(&playbook.def.finally, Phase::Finally, 0, "", ord);
        flat.layout.index();
        (flat.layout, flat.scopes)
    }

    /// Notes where every unit is; the first of two with the same phase and id is the one found,
    /// in the order main, compensations, `on_failure`, `finally`, includes' handlers.
    fn index(&mut self) {
        let mut places = BTreeMap::new();
        let mut note = |u: &Unit, p: Place| {
            places.entry((u.phase, u.qid.clone())).or_insert(p);
        };
        for (i, u) in self.main.iter().enumerate() {
            note(u, Place::Main(i));
        }
        for (i, comps) in self.comps.iter().enumerate() {
            for (j, u) in comps.iter().enumerate() {
                note(u, Place::Comp(i, j));
            }
        }
        for (i, u) in self.on_failure.iter().enumerate() {
            note(u, Place::OnFailure(i));
        }
        for (i, u) in self.finally.iter().enumerate() {
            note(u, Place::Finally(i));
        }
        for (b, block) in self.blocks.iter().enumerate() {
            for (i, u) in block.on_failure.iter().enumerate() {
                note(u, Place::BlockOnFailure(b, i));
            }
            for (i, u) in block.finally.iter().enumerate() {
                note(u, Place::BlockFinally(b, i));
            }
        }
        self.places = places;
    }

    /// Puts a unit before every main unit (the approval gate of an emergency run), keeping the
    /// includes' ranges on their units.
    pub fn prepend(&mut self, unit: Unit) {
        self.main.insert(0, unit);
        self.comps.insert(0, Vec::new());
        for b in &mut self.blocks {
            b.start += 1;
            b.end += 1;
        }
        self.index();
    }

    /// The unit with this phase and qualified id, wherever it is.
    pub fn find(&self, phase: Phase, qid: &str) -> Option<&Unit> {
        match *self.places.get(&(phase, qid.to_owned()))? {
            Place::Main(i) => self.main.get(i),
            Place::Comp(i, j) => self.comps.get(i)?.get(j),
            Place::OnFailure(i) => self.on_failure.get(i),
            Place::Finally(i) => self.finally.get(i),
            Place::BlockOnFailure(b, i) => self.blocks.get(b)?.on_failure.get(i),
            Place::BlockFinally(b, i) => self.blocks.get(b)?.finally.get(i),
        }
    }
}

/// The state of flattening: the layout so far, the scopes, and the next step's order.
struct Flattener {
    layout: Layout,
    scopes: Vec<Scope>,
    ord: i64,
}

impl Flattener {
    /// Flattens steps (and included playbooks' steps) into units, in order.
    fn steps(
        &mut self,
        pb: &Arc<Playbook>,
        steps: &[Step],
        scope: usize,
        prefix: &str,
        inherited_tags: &[String],
    ) {
        for (i, step) in steps.iter().enumerate() {
            let local = step.local_id("step", i);
            let qid = format!("{prefix}{local}");
            if let Some(Action::Include(inc)) = step.action() {
                if let Some(child) = pb.includes.get(&local).cloned() {
                    let given = (inc.params.clone(), scope);
                    self.include(step, child, given, qid, inherited_tags);
                }
                continue;
            }
            self.ord += 1;
            let ord = self.ord;
            let comps = step
                .rollback
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let clocal = c.local_id(&format!("{local}.rollback"), j);
                    Unit {
                        qid: format!("{prefix}{clocal}"),
                        local: clocal,
                        scope,
                        step: c.clone(),
                        phase: Phase::Rollback,
                        ord,
                    }
                })
                .collect();
            let mut step = step.clone();
            step.tags.extend(inherited_tags.iter().cloned());
            self.layout.main.push(Unit {
                qid,
                local,
                scope,
                step,
                phase: Phase::Main,
                ord,
            });
            self.layout.comps.push(comps);
        }
    }

    /// Flattens an included playbook in its own scope; an include with steps becomes a block.
    fn include(
        &mut self,
        step: &Step,
        child: Arc<Playbook>,
        given: (BTreeMap<String, Json>, usize),
        qid: String,
        inherited_tags: &[String],
    ) {
        let parent_scope = given.1;
        self.scopes.push(Scope {
            playbook: child.clone(),
            params: None,
            given: Some(given),
            steps: Map::new(),
        });
        let child_scope = self.scopes.len() - 1;
        let child_prefix = format!("{qid}.");
        // An include's tags select its steps, like their own.
        let mut tags = inherited_tags.to_vec();
        tags.extend(step.tags.iter().cloned());
        let start = self.layout.main.len();
        self.steps(&child, &child.def.steps, child_scope, &child_prefix, &tags);
        let end = self.layout.main.len();
        if end == start {
            return;
        }
        let ord = &mut self.ord;
        let on_failure = handler_units(
            &child.def.on_failure,
            Phase::OnFailure,
            child_scope,
            &child_prefix,
            ord,
        );
        let finally = handler_units(
            &child.def.finally,
            Phase::Finally,
            child_scope,
            &child_prefix,
            ord,
        );
        self.layout.blocks.push(IncludeBlock {
            start,
            end,
            when: step.when.clone(),
            parent_scope,
            qid,
            on_failure,
            finally,
        });
    }
}

/// The units of an `on_failure` or `finally` block, ids prefixed like their playbook's steps.
fn handler_units(
    steps: &[Step],
    phase: Phase,
    scope: usize,
    prefix: &str,
    ord: &mut i64,
) -> Vec<Unit> {
    let block = match phase {
        Phase::OnFailure => "on_failure",
        _ => "finally",
    };
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            *ord += 1;
            let local = s.local_id(block, i);
            Unit {
                qid: format!("{prefix}{local}"),
                local,
                scope,
                step: s.clone(),
                phase,
                ord: *ord,
            }
        })
        .collect()
}

/// The approval gate step with this qualified id (`approve`, or `sub.approve` in an include).
pub(super) fn find_approval_gate(pb: &Playbook, qid: &str) -> Option<Step> {
    let (head, rest) = match qid.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (qid, None),
    };
    match rest {
        None => pb
            .def
            .steps
            .iter()
            .find(|s| {
                s.id.as_deref() == Some(head)
                    && s.gate.as_ref().is_some_and(|g| g.approval.is_some())
            })
            .cloned(),
        Some(rest) => pb
            .includes
            .get(head)
            .and_then(|child| find_approval_gate(child, rest)),
    }
}
