//! Tablespace usage (PostgreSQL): each tablespace's size (`pg_tablespace_size`, which the
//! server shows for the database's own default tablespace, and for others to a role with
//! CREATE on them or pg_read_all_stats; hidden otherwise, and said so) and, for a tablespace
//! with a location of its own, the free disk of the filesystem holding it, graded like
//! `disk_space` on the one with the least. The built-in tablespaces (`pg_default`,
//! `pg_global`) live in the data directory, whose free disk is `disk_space`'s figure (measured
//! there, or from the environment's `disk_limit`/`disk_command`): they are sized, not graded
//! twice. Free disk is measured only where `disk_space` would measure it: runbook runs beside
//! the server and the server's pid file proves its data directory is the one seen here, so its
//! paths mean the same here. Where nothing can be graded the check is skipped saying why, with
//! the sizes it read; never a made-up figure.

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
        // Only a tablespace outside the data directory needs the directory confirmed.
        let data_dir = if spaces.iter().any(|(_, l, _)| !l.is_empty()) {
            self.local_data_dir().await?
        } else {
            Err(String::new())
        };
        let mut list = Vec::new();
        let mut worst: Option<(f64, String)> = None;
        let mut unknown = Vec::new();
        let mut sizes = Vec::new();
        for (name, location, size) in &spaces {
            sizes.push(match size {
                Some(b) => format!("{name} {}", bytes((*b).max(0) as u64)),
                None => format!("{name} size hidden"),
            });
            let mut entry = json!({
                "name": name,
                "location": location,
                "bytes": size,
                "free_percent": Json::Null,
                "in_data_directory": location.is_empty(),
            });
            if location.is_empty() {
                list.push(entry);
                continue;
            }
            let free = data_dir.clone().and_then(|_| {
                let d = PathBuf::from(location);
                match super::disk::statvfs(&d) {
                    Err(e) => Err(format!("cannot measure `{}`: {e}", d.display())),
                    Ok((_, 0)) => Err(format!(
                        "the filesystem at `{}` reports no size",
                        d.display()
                    )),
                    Ok((free, total)) => Ok((free, total)),
                }
            });
            match free {
                Ok((free, total)) => {
                    let pct = percent(free as f64, total as f64);
                    if worst.as_ref().is_none_or(|(w, _)| pct < *w) {
                        worst = Some((pct, name.clone()));
                    }
                    entry["free_percent"] = json!(pct);
                    entry["free_bytes"] = json!(free);
                    entry["total_bytes"] = json!(total);
                }
                Err(why) => {
                    entry["free_unknown"] = json!(why);
                    unknown.push((name.clone(), why));
                }
            }
            list.push(entry);
        }
        let sizes = sizes.join(", ");
        if unknown.is_empty() && worst.is_none() {
            return Ok(CheckResult::skip(
                C,
                format!(
                    "only the built-in tablespaces, in the data directory (disk_space grades its free space); sizes: {sizes}"
                ),
            )
            .with("tablespaces", list));
        }
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
                format!("free space under the tablespaces unknown: {why}; sizes: {sizes}"),
            )
            .with("tablespaces", list));
        };
        let mut message = format!(
            "{}% free under `{name}`, the least of the tablespaces outside the data directory; sizes: {sizes}",
            num(pct)
        );
        if !unknown.is_empty() {
            let names: Vec<&str> = unknown.iter().map(|(n, _)| n.as_str()).collect();
            message.push_str(&format!("; free space unknown for {}", names.join(", ")));
        }
        let mut result = graded(C, pct, self.opts, json!(pct), message).with("tablespaces", list);
        if !unknown.is_empty() {
            result.status = result.status.max(Status::Warn);
        }
        Ok(result)
    }
}
