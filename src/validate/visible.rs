//! Which earlier steps a step can read (`steps.<id>.outputs`): main steps before it (a
//! compensation also sees its owner), and for cleanup blocks every main step and the block's
//! earlier steps. A view answered by lookups, not a set built per step: building the set for
//! every step made validating a long playbook quadratic.

use crate::playbook::Step;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

/// Main step ids with the index of their first occurrence.
pub(super) type MainIds = Rc<HashMap<String, usize>>;

pub(super) struct Visible<'a> {
    main: MainIds,
    /// Main steps with an index below this are visible.
    below: usize,
    /// The cleanup block's steps before this one.
    own: &'a [Step],
}

impl<'a> Visible<'a> {
    pub(super) fn new(main: MainIds, below: usize, own: &'a [Step]) -> Self {
        Visible { main, below, own }
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.main.get(id).is_some_and(|&i| i < self.below)
            || self.own.iter().any(|s| s.id.as_deref() == Some(id))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.sorted().is_empty()
    }

    /// The visible ids in name order (for hints; only asked when something is wrong).
    pub(super) fn sorted(&self) -> BTreeSet<&str> {
        self.main
            .iter()
            .filter(|(_, i)| **i < self.below)
            .map(|(id, _)| id.as_str())
            .chain(self.own.iter().filter_map(|s| s.id.as_deref()))
            .collect()
    }
}
