//! Tablespace usage (PostgreSQL): each tablespace's size (`pg_tablespace_size`, which the
//! server shows for the database's own default tablespace, and for others to a role with
//! CREATE on them or pg_read_all_stats; hidden otherwise, and said so) and the free disk of
//! the filesystem holding it, graded like `disk_space` on the tablespace with the least.
//! Free disk is measured only where `disk_space` would measure it: runbook runs beside the
//! server and the server's pid file proves its data directory is the one seen here (the
//! built-in tablespaces live there, the others at their location). Where it cannot be
//! measured the check is skipped saying why, with the sizes it did read; never a made-up
//! figure.

use super::grade::{graded, num};
use super::postgres::Pg;
use super::{CheckResult, Status};
use crate::fmt::{bytes, percent};
use crate::playbook::HealthCheck;
use serde_json::{Value as Json, json};
use sqlx::Row;
use std::path::PathBuf;

const C: HealthCheck = HealthCheck::Tablespaces;

impl Pg<'_> {
    pub(super) async fn tablespaces(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows(
                "SELECT t.spcname::text, pg_tablespace_location(t.oid)::text, \
                        CASE WHEN t.oid = (SELECT dattablespace FROM pg_database WHERE datname = current_database()) \
                               OR has_tablespace_privilege(t.oid, 'CREATE') \
                               OR pg_has_role('pg_read_all_stats', 'USAGE') \
                             THEN pg_tablespace_size(t.oid) END::int8 \
                 FROM pg_tablespace t ORDER BY 1",
            )
            .await?;
        let mut spaces: Vec<(String, String, Option<i64>)> = Vec::new();
        for r in &rows {
            spaces.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
        let data_dir = self.local_data_dir().await?;
        let mut list = Vec::new();
        let mut worst: Option<(f64, String)> = None;
        let mut unknown = Vec::new();
        let mut sizes = Vec::new();
        for (name, location, size) in &spaces {
            sizes.push(match size {
                Some(b) => format!("{name} {}", bytes((*b).max(0) as u64)),
                None => format!("{name} size hidden"),
            });
            // The built-in tablespaces have no location: they are in the data directory.
            let dir = match (&data_dir, location.is_empty()) {
                (Ok(d), true) => Ok(d.clone()),
                (Ok(_), false) => Ok(PathBuf::from(location)),
                (Err(why), _) => Err(why.clone()),
            };
            let free = dir.and_then(|d| {
                super::disk::statvfs(&d)
                    .map_err(|e| format!("cannot measure `{}`: {e}", d.display()))
                    .and_then(|(free, total)| {
                        if total == 0 {
                            Err(format!("the filesystem at `{}` reports no size", d.display()))
                        } else {
                            Ok((free, total, d))
                        }
                    })
            });
            let mut entry = json!({
                "name": name,
                "location": location,
                "bytes": size,
                "free_percent": Json::Null,
            });
            match free {
                Ok((free, total, d)) => {
                    let pct = percent(free as f64, total as f64);
                    if worst.as_ref().is_none_or(|(w, _)| pct < *w) {
                        worst = Some((pct, name.clone()));
                    }
                    entry["free_percent"] = json!(pct);
                    entry["free_bytes"] = json!(free);
                    entry["total_bytes"] = json!(total);
                    entry["path"] = json!(d.display().to_string());
                }
                Err(why) => {
                    entry["free_unknown"] = json!(why);
                    unknown.push((name.clone(), why));
                }
            }
            list.push(entry);
        }
        let sizes = sizes.join(", ");
        let Some((pct, name)) = worst else {
            // Nothing measured: the same reason for every tablespace when the data directory
            // cannot be confirmed, so say it once.
            let why = match &data_dir {
                Err(why) => why.clone(),
                Ok(_) => unknown
                    .iter()
                    .map(|(n, w)| format!("{n}: {w}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            return Ok(CheckResult::skip(
                C,
                format!("free disk under the tablespaces unknown: {why}; sizes: {sizes}"),
            )
            .with("tablespaces", list));
        };
        let mut message = format!(
            "{}% free under `{name}`, the least of any tablespace; sizes: {sizes}",
            num(pct)
        );
        if !unknown.is_empty() {
            let names: Vec<&str> = unknown.iter().map(|(n, _)| n.as_str()).collect();
            message.push_str(&format!("; free disk unknown for {}", names.join(", ")));
        }
        let mut result = graded(C, pct, self.opts, json!(pct), message).with("tablespaces", list);
        if !unknown.is_empty() {
            result.status = result.status.max(Status::Warn);
        }
        Ok(result)
    }
}
