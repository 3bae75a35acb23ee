//! The playbook checker's state and its ways to report a problem at a path of the document.

use super::visible::MainIds;
use crate::config::ConfigDef;
use crate::diagnostic::Diagnostic;
use crate::playbook::PlaybookDef;
use crate::source::{Pos, Source};
use crate::yaml::Node;

/// Which block a step is in; it decides what the step's templates may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Block {
    Steps,
    Rollback { owner: usize },
    OnFailure,
    Finally,
}

pub(super) struct Checker<'a> {
    pub(super) def: &'a PlaybookDef,
    pub(super) source: &'a Source,
    pub(super) tree: &'a Node,
    pub(super) config: Option<&'a ConfigDef>,
    pub(super) diags: Vec<Diagnostic>,
    /// Main step ids, with the index of their first occurrence.
    pub(super) main_ids: MainIds,
    /// How many lines past its first the string being checked spans (block scalars).
    pub(super) lines: usize,
}

impl Checker<'_> {
    pub(super) fn node(&self, path: &[String]) -> Option<&Node> {
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        self.tree.lookup(&refs)
    }

    pub(super) fn pos(&self, path: &[String]) -> Pos {
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        self.tree.pos_of(&refs)
    }

    pub(super) fn err(
        &mut self,
        path: &[&str],
        code: &'static str,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let owned: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        self.err_at(&owned, code, msg, hint);
    }

    /// An error at the node at `path`, underlining its string value (up to 60 characters).
    pub(super) fn err_at(
        &mut self,
        path: &[String],
        code: &'static str,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let pos = self.pos(path);
        let width = self
            .node(path)
            .and_then(Node::as_str)
            .map_or(1, |s| s.chars().count().min(60));
        self.diags.push(
            Diagnostic::error(code, msg)
                .at(self.source, pos)
                .with_width(width)
                .with_hint(hint),
        );
    }

    /// An error pointing at the key `key` of the mapping at `parent`.
    pub(super) fn err_key(
        &mut self,
        parent: &[String],
        key: &str,
        code: &'static str,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let pos = self.node(parent).and_then(|n| n.key(key)).map(|k| k.pos);
        match pos {
            Some(pos) => self.diags.push(
                Diagnostic::error(code, msg)
                    .at(self.source, pos)
                    .with_width(key.chars().count())
                    .with_hint(hint),
            ),
            None => {
                let mut p = parent.to_vec();
                p.push(key.to_owned());
                self.err_at(&p, code, msg, hint);
            }
        }
    }
}
