//! Source files and positions: the text a diagnostic points into.

use std::path::{Path, PathBuf};

/// A 1-based line and column (in characters) inside a source file. Line 0 means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub const UNKNOWN: Pos = Pos { line: 0, col: 0 };

    pub fn new(line: usize, col: usize) -> Self {
        Pos { line, col }
    }

    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

/// A file that was read, kept so that diagnostics can quote its lines.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Source {
            path: path.into(),
            text: text.into(),
        }
    }

    /// The path as shown to the user: relative to the working directory when possible.
    pub fn display_path(&self) -> String {
        display_path(&self.path)
    }

    /// The text of a 1-based line, without its line ending.
    pub fn line(&self, line: usize) -> Option<&str> {
        if line == 0 {
            return None;
        }
        self.text
            .split('\n')
            .nth(line - 1)
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
    }

    /// The position of the first occurrence of `needle` at or after `from`, searching only the
    /// rest of the line `from` is on. Used to point at a word inside a scalar.
    pub fn find_on_line(&self, from: Pos, needle: &str) -> Option<Pos> {
        let line = self.line(from.line)?;
        let start_byte = line
            .char_indices()
            .nth(from.col.saturating_sub(1))
            .map(|(b, _)| b)?;
        let found = line[start_byte..].find(needle)? + start_byte;
        Some(Pos::new(from.line, line[..found].chars().count() + 1))
    }
}

impl Source {
    /// Like [`Source::find_on_line`], but goes on to the following `more_lines` lines, for
    /// block scalars (`|`, `>`) whose text spans several lines.
    pub fn find_from(&self, from: Pos, needle: &str, more_lines: usize) -> Option<Pos> {
        if let Some(p) = self.find_on_line(from, needle) {
            return Some(p);
        }
        (from.line + 1..=from.line + more_lines)
            .find_map(|n| self.find_on_line(Pos::new(n, 1), needle))
    }
}

/// A path shown relative to the current directory when it lies under it.
pub fn display_path(path: &Path) -> String {
    let path = &normalize(path);
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = path.strip_prefix(&cwd)
    {
        return rel.display().to_string();
    }
    path.display().to_string()
}

/// Removes `.` and resolves `..` lexically, so `a/./b/../c` shows as `a/c`.
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
