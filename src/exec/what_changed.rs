//! What a step changed, named for its audit record (`changed` in `step_finished`): the
//! migrations applied, reverted, baselined or resolved (version, name, checksum, direction, duration),
//! the backup taken or the archive restored (path, sha256, size, rows per table), what a seed
//! inserted, updated and left unchanged per table, and what a copy loaded per table (rows,
//! checksum), and the sessions a migration's `on_blocked` cancelled or terminated. Taken from the step's outputs, which the actions compute; never row data. Lists
//! are cut at [`MAX_ITEMS`] entries, the rest counted, so a record stays small.

use crate::playbook::{Action, MigrateOp};
use serde_json::{Map, Value as Json, json};

/// Most entries (migrations, tables) one record names; the rest are counted in `omitted`.
pub const MAX_ITEMS: usize = 100;

/// What the step changed, from its action, its rendered arguments and its outputs; `None` for
/// an action that changes nothing it could name (SQL, shell, gates, checks).
pub fn named(action: &Action<'_>, rendered: &Json, outputs: &Map<String, Json>) -> Option<Json> {
    let get = |k: &str| outputs.get(k).cloned().unwrap_or(Json::Null);
    match action {
        Action::Migrate(m) => {
            let list = match m.action {
                MigrateOp::Apply => "results",
                MigrateOp::Revert => "reverted",
                MigrateOp::Baseline => "marked",
                MigrateOp::Resolve => "resolved",
                // Status and lint read; a rehearsal rolls back everything it ran.
                MigrateOp::Status | MigrateOp::Lint | MigrateOp::Rehearse => return None,
            };
            let items = outputs.get(list).and_then(Json::as_array);
            let migrations: Vec<Json> = items
                .into_iter()
                .flatten()
                .map(|r| {
                    let mut m = Map::new();
                    for k in ["version", "name", "checksum", "direction", "duration_ms"] {
                        if let Some(v) = r.get(k) {
                            m.insert(k.into(), v.clone());
                        }
                    }
                    Json::Object(m)
                })
                .collect();
            let mut out = Map::new();
            capped(&mut out, "migrations", migrations);
            out.insert("current_version".into(), get("current_version"));
            // The sessions `on_blocked` cancelled or terminated: changed by this step too.
            if let Some(stopped) = outputs.get("stopped").and_then(Json::as_array)
                && !stopped.is_empty()
            {
                capped(&mut out, "stopped_sessions", stopped.clone());
            }
            Some(Json::Object(out))
        }
        Action::Vacuum(_) | Action::Reindex(_) => {
            let names = |k: &str| -> Vec<Json> {
                let list = outputs
                    .get(k)
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten();
                list.map(|t| t.get("name").cloned().unwrap_or(Json::Null))
                    .collect()
            };
            let mut out = Map::new();
            capped(&mut out, "tables", names("tables"));
            capped(&mut out, "indexes", names("indexes"));
            Some(json!({ action.key(): out }))
        }
        Action::Backup(_) => Some(json!({"backup": {
            "path": get("path"), "sha256": get("sha256"), "size": get("size"),
            "format": get("format"), "row_counts": capped_map(outputs.get("row_counts")),
        }})),
        Action::Restore(_) => Some(json!({"restore": {
            "path": get("path"), "sha256": get("sha256"), "size": get("size"),
            "row_counts": capped_map(outputs.get("row_counts")),
            "pre_backup": {"path": get("pre_backup"), "sha256": get("pre_backup_sha256")},
        }})),
        Action::Seed(_) => Some(json!({"seed": {
            "set": rendered.get("set"), "inserted": get("inserted"), "updated": get("updated"),
            "unchanged": get("unchanged"), "tables": capped_map(outputs.get("tables")),
        }})),
        Action::Copy(_) => {
            let tables = outputs.get("tables").and_then(Json::as_object).map(|t| {
                t.iter()
                    .map(|(name, v)| {
                        let pick = |k: &str| v.get(k).cloned().unwrap_or(Json::Null);
                        let t = json!({"status": pick("status"), "rows": pick("rows"), "checksum": pick("checksum")});
                        (name.clone(), t)
                    })
                    .collect::<Map<String, Json>>()
            });
            let tables = Json::Object(tables.unwrap_or_default());
            // The run's own report file: kept per run, never overwritten by a later copy.
            Some(
                json!({"copy": {"rows": get("rows"), "tables": capped_map(Some(&tables)), "report": get("report")}}),
            )
        }
        _ => None,
    }
}

/// `list` under `key`, cut at [`MAX_ITEMS`] with the rest counted in `KEY_omitted`.
fn capped(out: &mut Map<String, Json>, key: &str, mut list: Vec<Json>) {
    if list.len() > MAX_ITEMS {
        out.insert(format!("{key}_omitted"), json!(list.len() - MAX_ITEMS));
        list.truncate(MAX_ITEMS);
    }
    out.insert(key.into(), Json::Array(list));
}

/// A map of table to counts, cut at [`MAX_ITEMS`] tables with the rest counted under
/// `(omitted)` (not a table name: table names are identifiers without parentheses here).
fn capped_map(v: Option<&Json>) -> Json {
    let Some(m) = v.and_then(Json::as_object) else {
        return Json::Null;
    };
    if m.len() <= MAX_ITEMS {
        return Json::Object(m.clone());
    }
    let mut out: Map<String, Json> = m
        .iter()
        .take(MAX_ITEMS)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert("(omitted)".into(), json!(m.len() - MAX_ITEMS));
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::{BackupAction, SqlAction};

    #[test]
    fn a_long_migration_list_is_cut_and_counted() {
        let m: crate::playbook::MigrateAction =
            serde_json::from_value(json!({"action": "apply"})).unwrap();
        let results: Vec<Json> = (0..MAX_ITEMS + 5)
            .map(|i| json!({"version": i.to_string(), "name": "n", "checksum": "c", "direction": "apply", "duration_ms": 1, "file": "f", "attempts": 1}))
            .collect();
        let mut outputs = Map::new();
        outputs.insert("results".into(), Json::Array(results));
        let named = named(&Action::Migrate(&m), &Json::Null, &outputs).unwrap();
        assert_eq!(named["migrations"].as_array().unwrap().len(), MAX_ITEMS);
        assert_eq!(named["migrations_omitted"], 5);
        // Only the fields an auditor reads: not the file's attempts.
        assert!(named["migrations"][0].get("attempts").is_none());
        assert_eq!(named["migrations"][0]["checksum"], "c");
    }

    #[test]
    fn backups_are_named_and_sql_is_not() {
        let b: BackupAction = serde_json::from_value(json!({"dir": "b"})).unwrap();
        let mut outputs = Map::new();
        outputs.insert("sha256".into(), json!("abc"));
        outputs.insert("size".into(), json!(12));
        let named = named(&Action::Backup(&b), &Json::Null, &outputs).unwrap();
        assert_eq!(named["backup"]["sha256"], "abc");
        assert_eq!(named["backup"]["size"], 12);
        let q: SqlAction = serde_json::from_value(json!({"query": "SELECT 1"})).unwrap();
        assert!(super::named(&Action::Sql(&q), &Json::Null, &outputs).is_none());
    }
}
