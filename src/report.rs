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
