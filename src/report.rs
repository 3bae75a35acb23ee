//! Machine-readable reports of validation: JSON for tools, JUnit XML for CI dashboards.

use crate::diagnostic::{Diagnostic, xml_escape};
use serde::Serialize;
use std::fmt::Write as _;

/// The result of validating one file.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FileResult {
    pub file: String,
    /// `playbook` or `config`.
    pub kind: &'static str,
    /// The playbook's name, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub valid: bool,
    pub diagnostics: Vec<Diagnostic>,
    /// How long reading and checking the file took (JUnit's `time`).
    #[serde(skip)]
    pub time: std::time::Duration,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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

    /// JUnit XML as CI dashboards read it (Jenkins' schema): a passing test case per valid
    /// file, and per error a test case of its own holding its one `<failure>` (with the
    /// rendered diagnostic as text). Each test case names its `file` (and `line`) and `time`:
    /// the file's checking time, given to its first test case so the times add up.
    pub fn to_junit(&self) -> String {
        let mut cases = String::new();
        let (mut tests, mut failures) = (0, 0);
        for f in &self.files {
            let classname = format!("runbook.{}", f.kind);
            let file = xml_escape(&f.file);
            let mut time = f.time.as_secs_f64();
            let errors: Vec<&Diagnostic> = f.diagnostics.iter().filter(|d| d.is_error()).collect();
            if errors.is_empty() {
                tests += 1;
                let _ = writeln!(
                    cases,
                    r#"    <testcase classname="{classname}" name="{file}" file="{file}" time="{time:.3}"/>"#
                );
            }
            for d in errors {
                tests += 1;
                failures += 1;
                let line = match d.line {
                    0 => String::new(),
                    l => format!(r#" line="{l}""#),
                };
                let _ = writeln!(
                    cases,
                    r#"    <testcase classname="{classname}" name="{}" file="{file}"{line} time="{time:.3}">"#,
                    xml_escape(&format!("{} {}", d.location(), d.code)),
                );
                let _ = writeln!(
                    cases,
                    r#"      <failure type="{}" message="{}">{}</failure>"#,
                    d.code,
                    xml_escape(&format!("{}: {}", d.location(), d.message)),
                    xml_escape(&d.render(false))
                );
                let _ = writeln!(cases, "    </testcase>");
                time = 0.0;
            }
        }
        let total: f64 = self.files.iter().map(|f| f.time.as_secs_f64()).sum();
        let mut out = String::new();
        let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            out,
            r#"<testsuites name="runbook validate" tests="{tests}" failures="{failures}" errors="0" time="{total:.3}">"#
        );
        let _ = writeln!(
            out,
            r#"  <testsuite name="runbook validate" tests="{tests}" failures="{failures}" errors="0" skipped="0" time="{total:.3}">"#
        );
        out.push_str(&cases);
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
