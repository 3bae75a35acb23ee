//! Health results and run outcomes as Prometheus metrics, in the text exposition format
//! (version 0.0.4, which node_exporter's textfile collector reads and `promtool check metrics`
//! lints): `health.rs` (a health report), `run.rs` (a run's outcome).
//!
//! Names follow Prometheus conventions: a `runbook_` prefix, snake case, base units in the name
//! (`_seconds`, `_timestamp_seconds`), gauges only (each file says how things are now), an
//! outcome as one series per possible value set to 1 or 0, thresholds as gauges of their own
//! beside the value they grade. A textfile is written atomically: a temporary file in the same
//! folder, fsynced, then renamed over the old one, so the collector never reads half a file.

pub mod health;
pub mod run;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// One metric family: its name, help, and samples (all gauges).
#[derive(Debug, Clone)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub samples: Vec<Sample>,
}

/// One sample: its labels (in order) and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Family {
    pub fn new(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }

    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64) {
        self.samples.push(Sample { labels, value });
    }
}

/// The families as exposition text. A family without samples is left out (promtool and the
/// collector accept it, but it says nothing).
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for s in &f.samples {
            out.push_str(f.name);
            if !s.labels.is_empty() {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", labels.join(","));
            }
            let _ = writeln!(out, " {}", number(s.value));
        }
    }
    out
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as the format writes it (`NaN`, `+Inf`, `-Inf` spelt out).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Writes `text` to `path` atomically: a hidden temporary file beside it (node_exporter reads
/// only `*.prom`), fsynced, renamed over `path`.
pub fn write_textfile(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics".to_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::{Family, render, write_textfile};

    #[test]
    fn labels_and_values_are_escaped_as_the_format_says() {
        let mut f = Family::new("runbook_x", "a \\ help\nline");
        f.push(vec![("check", "a\"b\\c\nd".to_owned())], 0.5);
        f.push(vec![], f64::INFINITY);
        let empty = Family::new("runbook_empty", "nothing");
        assert_eq!(
            render(&[f, empty]),
            "# HELP runbook_x a \\\\ help\\nline\n# TYPE runbook_x gauge\nrunbook_x{check=\"a\\\"b\\\\c\\nd\"} 0.5\nrunbook_x +Inf\n"
        );
    }

    #[test]
    fn a_textfile_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runbook.prom");
        write_textfile(&path, "a 1\n").unwrap();
        write_textfile(&path, "b 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
        // Nothing else is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
