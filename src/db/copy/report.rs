//! What the copy reports: per table, every decision and every value not kept exactly; the
//! report file; and how values are shown in it.

use super::encode::real_as_text;
use super::scan::Val;
use serde::Serialize;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// Values of one kind of inexact conversion kept per column in the report.
const MAX_INEXACT_VALUES: usize = 10_000;

/// Characters of a value shown in the report.
const MAX_SHOWN: usize = 200;

/// What the copy did: per table, every type decision, every value not kept exactly.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub tables: Vec<TableOutcome>,
    pub decisions: Vec<Decision>,
    pub inexact: Vec<Inexact>,
    /// Rows loaded by this run (skipped tables not counted).
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
}

impl Report {
    /// The tables that failed.
    pub fn failed(&self) -> Vec<&TableOutcome> {
        self.tables
            .iter()
            .filter(|t| t.status == "failed")
            .collect()
    }
}

/// What happened to one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableOutcome {
    pub table: String,
    /// `copied`, `skipped` (done before, source unchanged) or `failed`.
    pub status: String,
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// The content checksum both sides agreed on.
    pub checksum: Option<String>,
    pub error: Option<String>,
}

/// One choice the copy made: a column's type, a default, an index, a key.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Decision {
    pub table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `type`, `default`, `primary_key`, `index`, `unique`, `foreign_key`, `sequence`,
    /// `constraint`, `view`, `trigger`, `table`.
    pub what: String,
    /// What SQLite had.
    pub from: String,
    /// What PostgreSQL got; `not carried over` when nothing.
    pub to: String,
    pub reason: String,
}

/// Values of one column that could not be kept exactly, for one reason.
#[derive(Debug, Clone, Serialize)]
pub struct Inexact {
    pub table: String,
    pub column: String,
    pub reason: String,
    pub count: u64,
    /// The first values (up to 10,000): their row, the source value, what was stored.
    pub values: Vec<InexactValue>,
}

/// One value not kept exactly.
#[derive(Debug, Clone, Serialize)]
pub struct InexactValue {
    /// The primary key values, or the row's position in the source when there is none.
    pub row: Json,
    pub value: String,
    pub stored: String,
}

/// Inexact values of a table being loaded, grouped by column and reason.
#[derive(Default)]
pub(super) struct InexactLog {
    pub(super) groups: BTreeMap<(usize, String), (u64, Vec<InexactValue>)>,
}

impl InexactLog {
    pub(super) fn push(
        &mut self,
        col: usize,
        reason: &str,
        row: impl FnOnce() -> Json,
        value: String,
        stored: String,
    ) {
        let entry = self
            .groups
            .entry((col, reason.to_owned()))
            .or_insert_with(|| (0, Vec::new()));
        entry.0 += 1;
        if entry.1.len() < MAX_INEXACT_VALUES {
            entry.1.push(InexactValue {
                row: row(),
                value: shown(&value),
                stored: shown(&stored),
            });
        }
    }
}

/// A value for the report, cut at 200 characters.
pub(super) fn shown(text: &str) -> String {
    if text.chars().count() <= MAX_SHOWN {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_SHOWN).collect();
    format!("{cut}... ({} bytes)", text.len())
}

/// A source value as SQLite would show it: blobs as `x'..'` hex.
pub(super) fn val_shown(v: Val<'_>) -> String {
    match v {
        Val::Null => "NULL".to_owned(),
        Val::Int(i) => i.to_string(),
        Val::Real(f) => real_as_text(f),
        Val::Text(b) => String::from_utf8_lossy(b).into_owned(),
        Val::Blob(b) => {
            let mut s = String::from("x'");
            for c in b.iter().take(MAX_SHOWN) {
                let _ = write!(s, "{c:02x}");
            }
            if b.len() > MAX_SHOWN {
                let _ = write!(s, "...({} bytes)", b.len());
            }
            s.push('\'');
            s
        }
    }
}

/// A source value in JSON, for a row's key.
pub(super) fn val_json(v: Val<'_>) -> Json {
    match v {
        Val::Null => Json::Null,
        Val::Int(i) => json!(i),
        Val::Real(f) => json!(f),
        other => json!(val_shown(other)),
    }
}

/// Writes the report as JSON.
pub fn write_report(path: &Path, report: &Report) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    }
    let text = serde_json::to_vec_pretty(report).map_err(|e| e.to_string())?;
    let mut f = std::fs::File::create(path)
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    f.write_all(&text)
        .and_then(|()| f.write_all(b"\n"))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}
