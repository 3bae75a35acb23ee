//! What a run changed and under which rules, read back from its records for `audit show` and
//! the HTML report: `started_under` (the config's sha256, the protections and windows in force,
//! the migration set's hash, the git commit and whether the tree was dirty, from `run_started`)
//! and `changes` (each changing step's `changed`: migrations with their checksums, the backup
//! or restore with its sha256 and size, a seed's and a copy's tables).

use serde_json::{Map, Value as Json};

/// A string field, `-` when missing.
fn s(v: &Json, k: &str) -> String {
    match v.get(k) {
        Some(Json::String(t)) => t.clone(),
        Some(Json::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// The header lines of the rules and inputs the run started under, from its first record
/// (none for a record that does not say: a refusal, an older chain).
pub fn started_under(first: &Map<String, Json>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(c) = first.get("config").filter(|c| !c.is_null()) {
        out.push((
            "config".into(),
            format!("{} (sha256 {})", s(c, "file"), s(c, "sha256")),
        ));
    }
    if let Some(p) = first.get("protections") {
        out.push(("protections".into(), protections(p)));
    }
    if let Some(m) = first.get("migrations") {
        out.push(("migrations".into(), format!("sha256 {}", s(m, "sha256"))));
    }
    match first.get("git") {
        Some(Json::Null) => out.push(("git".into(), "not in a git repository".into())),
        Some(g) => {
            let dirty = g.get("dirty").and_then(Json::as_bool).unwrap_or(true);
            let state = if dirty {
                "DIRTY: the working tree has uncommitted changes"
            } else {
                "clean"
            };
            out.push(("git".into(), format!("{} ({state})", s(g, "commit"))));
        }
        None => {}
    }
    out
}

/// The protections a run recorded, in one line: whose, each rule in force, the windows.
fn protections(p: &Json) -> String {
    let rules = p.get("rules").cloned().unwrap_or(Json::Null);
    let mut parts = Vec::new();
    for flag in [
        "protected",
        "self_approval",
        "confirm_destructive",
        "signed_approvals",
    ] {
        if rules.get(flag).and_then(Json::as_bool) == Some(true) {
            parts.push(flag.replace('_', " "));
        }
    }
    for k in ["approvals", "approval_expiry"] {
        if let Some(v) = rules.get(k).filter(|v| !v.is_null()) {
            parts.push(format!(
                "{} {}",
                k.replace('_', " "),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned)
            ));
        }
    }
    let windows: Vec<String> = rules
        .get("windows")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|w| {
            let days = w
                .get("days")
                .and_then(Json::as_array)
                .map(|d| {
                    d.iter()
                        .filter_map(Json::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "every day".to_owned());
            let tz = w.get("tz").and_then(Json::as_str).unwrap_or("UTC");
            format!("{days} {}-{} {tz}", s(w, "start"), s(w, "end"))
        })
        .collect();
    if !windows.is_empty() {
        parts.push(format!("windows {}", windows.join("; ")));
    }
    let rules = if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    };
    let borrowed = if p.get("borrowed").and_then(Json::as_bool) == Some(true) {
        " (borrowed: the target is its database)"
    } else {
        ""
    };
    format!("{}'s{borrowed}: {rules}", s(p, "source"))
}

/// One line per thing the run changed, in record order, each naming its step.
pub fn changes(entries: &[Map<String, Json>]) -> Vec<String> {
    let mut out = Vec::new();
    for r in entries {
        let Some(c) = r.get("changed") else {
            continue;
        };
        let step = r.get("step").and_then(Json::as_str).unwrap_or("?");
        for m in c
            .get("migrations")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            out.push(format!(
                "{step}: migration {} {} {} (sha256 {}, {} ms)",
                s(m, "direction"),
                s(m, "version"),
                s(m, "name"),
                s(m, "checksum"),
                s(m, "duration_ms")
            ));
        }
        if let Some(n) = c.get("migrations_omitted") {
            out.push(format!("{step}: ... and {n} more migrations"));
        }
        for kind in ["backup", "restore"] {
            if let Some(b) = c.get(kind) {
                out.push(format!(
                    "{step}: {kind} {} (sha256 {}, {} bytes; rows: {})",
                    s(b, "path"),
                    s(b, "sha256"),
                    s(b, "size"),
                    counts(b.get("row_counts"))
                ));
            }
        }
        if let Some(p) = c.get("restore").and_then(|r| r.get("pre_backup"))
            && p.get("path").is_some_and(|x| !x.is_null())
        {
            out.push(format!(
                "{step}: pre-restore backup {} (sha256 {})",
                s(p, "path"),
                s(p, "sha256")
            ));
        }
        if let Some(seed) = c.get("seed") {
            out.push(format!(
                "{step}: seed {}: {}",
                s(seed, "set"),
                tables(seed.get("tables"), &["inserted", "updated", "unchanged"])
            ));
        }
        if let Some(copy) = c.get("copy") {
            out.push(format!(
                "{step}: copy of {} (report {}): {}",
                crate::fmt::plural(s(copy, "rows"), "row", "rows"),
                s(copy, "report"),
                tables(copy.get("tables"), &["rows", "checksum"])
            ));
        }
    }
    out
}

/// `table n, table n` from a map of table to row count.
fn counts(m: Option<&Json>) -> String {
    match m.and_then(Json::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "-".to_owned(),
    }
}

/// `table (k v, k v); ...` from a map of table to an object of figures.
fn tables(m: Option<&Json>, keys: &[&str]) -> String {
    match m.and_then(Json::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(t, v)| {
                let figures: Vec<String> =
                    keys.iter().map(|k| format!("{k} {}", s(v, k))).collect();
                format!("{t} ({})", figures.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => "-".to_owned(),
    }
}
