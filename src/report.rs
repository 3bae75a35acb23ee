//! Machine-readable reports of validation: JSON for tools, JUnit XML for CI dashboards.

use crate::diagnostic::{Diagnostic, xml_escape};
use serde::Serialize;
use std::fmt::Write as _;

/// The result of validating one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    pub file: String,
    /// `playbook` or `config`.
    pub kind: &'static str,
    /// The playbook's name, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub valid: bool,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    pub valid: bool,
    pub files: Vec<FileResult>,
    pub errors: usize,
    pub warnings: usize,
}

impl ValidationReport {
    pub fn new(files: Vec<FileResult>) -> Self {
        let errors = files
            .iter()
            .flat_map(|f| &f.diagnostics)
            .filter(|d| d.is_error())
            .count();
        let warnings = files
            .iter()
            .flat_map(|f| &f.diagnostics)
            .filter(|d| !d.is_error())
            .count();
        ValidationReport {
            valid: errors == 0,
            files,
            errors,
            warnings,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// GitHub Actions workflow commands, one per diagnostic, so each shows on its line of the
    /// pull request (`::error file=F,line=L,col=C,title=CODE::MESSAGE`).
    pub fn to_github(&self) -> String {
        let mut out = String::new();
        for d in self.files.iter().flat_map(|f| &f.diagnostics) {
            let level = if d.is_error() { "error" } else { "warning" };
            let message = match &d.hint {
                Some(h) => format!("{} (hint: {h})", d.message),
                None => d.message.clone(),
            };
            let _ = writeln!(
                out,
                "::{level} file={},line={},col={},title={}::{}",
                github_property(&d.file),
                d.line.max(1),
                d.column.max(1),
                github_property(d.code),
                github_data(&message)
            );
        }
        out
    }

    /// One test case per file; a failure per error, with the rendered diagnostic as text.
    pub fn to_junit(&self) -> String {
        let failures = self.files.iter().filter(|f| !f.valid).count();
        let mut out = String::new();
        let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            out,
            r#"<testsuites name="runbook validate" tests="{}" failures="{failures}">"#,
            self.files.len()
        );
        let _ = writeln!(
            out,
            r#"  <testsuite name="runbook validate" tests="{}" failures="{failures}" errors="0">"#,
            self.files.len()
        );
        for f in &self.files {
            let name = xml_escape(&f.file);
            if f.valid {
                let _ = writeln!(
                    out,
                    r#"    <testcase classname="runbook.{}" name="{name}"/>"#,
                    f.kind
                );
                continue;
            }
            let _ = writeln!(
                out,
                r#"    <testcase classname="runbook.{}" name="{name}">"#,
                f.kind
            );
            for d in f.diagnostics.iter().filter(|d| d.is_error()) {
                let _ = writeln!(
                    out,
                    r#"      <failure type="{}" message="{}">{}</failure>"#,
                    d.code,
                    xml_escape(&format!("{}: {}", d.location(), d.message)),
                    xml_escape(&d.render(false))
                );
            }
            let _ = writeln!(out, "    </testcase>");
        }
        let _ = writeln!(out, "  </testsuite>");
        let _ = writeln!(out, "</testsuites>");
        out
    }
}

/// A workflow command's message, escaped as the runner unescapes it.
fn github_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: its message escapes, and `:` and `,`.
fn github_property(s: &str) -> String {
    github_data(s).replace(':', "%3A").replace(',', "%2C")
}
