//! `csv`: every record of the given runs as one CSV line, for spreadsheets and other tools.

use super::verdict::Verdict;
use serde_json::Value as Json;
use std::fmt::Write as _;

/// Records as CSV, one line per record.
pub fn csv(verdicts: &[Verdict]) -> String {
    let mut out =
        String::from("run_id,seq,ts,event,step,phase,action,status,operator,env,prev,hash\n");
    let cell = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    for v in verdicts {
        for r in &v.entries {
            let g = |k: &str| {
                r.get(k)
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                    .unwrap_or_default()
            };
            let status = r
                .get("outcome")
                .and_then(|o| o.get("status"))
                .and_then(Json::as_str)
                .unwrap_or_default();
            let fields = [
                g("run_id"),
                g("seq"),
                g("ts"),
                g("event"),
                g("step"),
                g("phase"),
                g("action"),
                status.to_owned(),
                g("operator"),
                g("env"),
                g("prev"),
                g("hash"),
            ];
            let _ = writeln!(
                out,
                "{}",
                fields.iter().map(|f| cell(f)).collect::<Vec<_>>().join(",")
            );
        }
    }
    out
}
