//! `csv`: every record of the given runs as one CSV line, for spreadsheets and other tools.
//!
//! Quoting is the `csv` crate's (RFC 4180). A cell that a spreadsheet would read as a formula
//! (it starts with `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed with `'`, as
//! OWASP advises against CSV injection: an approval comment or a step name is data, never a
//! formula that runs on the auditor's machine.

use super::verdict::Verdict;
use serde_json::Value as Json;

const HEADER: [&str; 15] = [
    "run_id", "seq", "ts", "event", "step", "phase", "action", "status", "operator", "env",
    "approver", "decision", "comment", "prev", "hash",
];

/// Records as CSV, one line per record.
pub fn csv(verdicts: &[Verdict]) -> String {
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let _ = w.write_record(HEADER);
    for v in verdicts {
        for r in &v.entries {
            let _ = w.write_record(row(r).iter().map(|c| neutralise(c)));
        }
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The cells of one record, in [`HEADER`]'s order.
fn row(r: &serde_json::Map<String, Json>) -> [String; 15] {
    let g = |k: &str| {
        r.get(k)
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .unwrap_or_default()
    };
    let status = r
        .get("outcome")
        .and_then(|o| o.get("status"))
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let (approver, decision, comment) = approval(r);
    [
        g("run_id"),
        g("seq"),
        g("ts"),
        g("event"),
        g("step"),
        g("phase"),
        g("action"),
        status,
        g("operator"),
        g("env"),
        approver,
        decision,
        comment,
        g("prev"),
        g("hash"),
    ]
}

/// Who decided, what and with which comment: an approval record's one decision, or the
/// approvers a passed approval gate counted (joined with `; `).
fn approval(r: &serde_json::Map<String, Json>) -> (String, String, String) {
    let Some(list) = r.get("approvals").and_then(Json::as_array) else {
        return Default::default();
    };
    let text = |v: Option<&Json>| v.and_then(Json::as_str).unwrap_or_default().to_owned();
    match list.as_slice() {
        [one] if one.is_object() => (
            text(one.get("actor")),
            text(one.get("decision")),
            text(one.get("comment")),
        ),
        many => (
            many.iter()
                .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("; "),
            String::new(),
            String::new(),
        ),
    }
}

/// A cell a spreadsheet would evaluate, made plain text.
fn neutralise(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::neutralise;

    #[test]
    fn formulas_become_text_and_plain_cells_stay() {
        assert_eq!(neutralise("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralise("+1"), "'+1");
        assert_eq!(neutralise("-2+3"), "'-2+3");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("looks right"), "looks right");
        assert_eq!(neutralise(""), "");
    }
}
