//! Diagnostics: one problem found in an input file, with where it is and how to fix it.
//!
//! Validation collects every diagnostic before reporting, so a user fixes all problems in one
//! pass. Rendering follows the house style: no trailing period, literals in backticks, a
//! `hint:` line, a caret under the column, readable without colour.

use crate::source::{Pos, Source};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in one file.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A short stable kebab-case name for the kind of problem, e.g. `unknown-key`.
    pub code: &'static str,
    pub message: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// How many characters the caret underlines (at least one).
    #[serde(skip)]
    pub width: usize,
    /// The quoted source line, captured when the diagnostic is made.
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: String::new(),
            line: 0,
            column: 0,
            hint: None,
            width: 1,
            source_line: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// Places the diagnostic in `source` at `pos`, quoting the line for the caret.
    pub fn at(mut self, source: &Source, pos: Pos) -> Self {
        self.file = source.display_path();
        self.line = pos.line;
        self.column = pos.col;
        self.source_line = source.line(pos.line).map(crate::dburl::redact_in_text);
        self
    }

    /// Names a file without a position (an unreadable file, say).
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = file.into();
        self
    }

    /// A problem of a whole file (it cannot be read, it is too large): at its line 1, column 1,
    /// so every format names a position an editor can open.
    pub fn at_file(mut self, file: impl Into<String>) -> Self {
        self.file = file.into();
        self.line = 1;
        self.column = 1;
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_width(mut self, width: usize) -> Self {
        self.width = width.max(1);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col`, or less when the position is unknown.
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (0, _) => self.file.clone(),
            (l, 0) => format!("{}:{l}", self.file),
            (l, c) => format!("{}:{l}:{c}", self.file),
        }
    }

    /// The human form: a header, the location, the quoted line with a caret, and the hint.
    pub fn render(&self, color: bool) -> String {
        let (red, yellow, blue, bold, reset) = if color {
            ("\x1b[31m", "\x1b[33m", "\x1b[34m", "\x1b[1m", "\x1b[0m")
        } else {
            ("", "", "", "", "")
        };
        let (label, tone) = match self.severity {
            Severity::Error => ("error", red),
            Severity::Warning => ("warning", yellow),
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{bold}{tone}{label}[{}]{reset}{bold}: {}{reset}",
            self.code, self.message
        );
        let gutter = self.line.to_string().len().max(1);
        let pad = " ".repeat(gutter);
        let _ = writeln!(out, "{pad}{blue}-->{reset} {}", self.location());
        if let Some(text) = &self.source_line {
            let (shown, column) = window(&text.replace('\t', " "), self.column);
            let _ = writeln!(out, "{pad} {blue}|{reset}");
            let _ = writeln!(out, "{blue}{}{reset} {blue}|{reset} {shown}", self.line);
            if column > 0 {
                let indent = " ".repeat(column - 1);
                let carets = "^".repeat(self.width);
                let _ = writeln!(out, "{pad} {blue}|{reset} {indent}{tone}{carets}{reset}");
            }
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{pad} {blue}={reset} {bold}hint{reset}: {hint}");
        }
        out
    }
}

/// Sorts diagnostics by file and position so output is stable.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.code, &a.message)
            .cmp(&(&b.file, b.line, b.column, b.code, &b.message))
    });
}

/// Suggests the closest candidate to a misspelled name, if one is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(name, candidate);
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Escapes text for XML attribute and element content.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// "an integer", "a string".
pub fn article(word: &str) -> String {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {word}"),
        _ => format!("a {word}"),
    }
}

/// Long lines are cut to a window around the column so the caret stays readable.
fn window(line: &str, column: usize) -> (String, usize) {
    const MAX: usize = 100;
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= MAX {
        return (line.to_owned(), column);
    }
    let start = column
        .saturating_sub(MAX / 2)
        .min(chars.len().saturating_sub(MAX));
    let end = (start + MAX).min(chars.len());
    let mut shown = String::new();
    let mut col = column.saturating_sub(start);
    if start > 0 {
        shown.push_str("...");
        col += 3;
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push_str("...");
    }
    (shown, col)
}
