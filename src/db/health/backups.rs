//! Backup freshness (the guides' "verify daily backup success"): the age of the newest full
//! backup of the target in the backup folder that verifies (sha256 and size, then
//! `pg_restore --list` or `PRAGMA integrity_check`), found as `find_backup` finds the backup a
//! rollback restores. A newer backup that fails verification is passed over, so a broken
//! nightly backup shows as an old one; none at all fails.

use super::grade::{graded, num, round1};
use super::{CheckResult, HealthOptions, Status};
use crate::db::Db;
use crate::db::backup::newest_verified;
use crate::db::op::{Op, OpError};
use crate::playbook::HealthCheck;
use chrono::{DateTime, Utc};
use serde_json::json;

/// The `backup_age` result.
pub(super) async fn backup_age(db: &mut Db, opts: &HealthOptions, op: &Op<'_>) -> CheckResult {
    let check = HealthCheck::BackupAge;
    let Some(at) = &opts.backups else {
        return CheckResult::skip(
            check,
            "no backup folder: give `backup_dir`, the folder `backup` steps write to",
        );
    };
    match newest_verified(db, &at.target, &at.dir, op).await {
        Ok(found) => {
            let m = &found.verified.manifest;
            let Ok(created) = DateTime::parse_from_rfc3339(&m.created_at) else {
                return CheckResult::new(
                    check,
                    Status::Fail,
                    serde_json::Value::Null,
                    format!("{} has no readable time", found.manifest_path.display()),
                );
            };
            let hours = (Utc::now() - created.with_timezone(&Utc)).num_seconds() as f64 / 3600.0;
            let hours = round1(hours.max(0.0));
            graded(
                check,
                hours,
                opts,
                json!(hours),
                format!(
                    "newest verified backup {} taken {} h ago ({})",
                    m.archive,
                    num(hours),
                    m.created_at
                ),
            )
            .with("archive", found.verified.archive.display().to_string())
            .with("taken_at", m.created_at.clone())
            .with("age_hours", hours)
        }
        Err(OpError::Failed(msg) | OpError::NothingCommitted(msg)) => {
            // The search's message ends with what a rollback would do; the check says what
            // it found.
            let msg = msg
                .split("; take one with")
                .next()
                .unwrap_or(&msg)
                .to_owned();
            CheckResult::new(check, Status::Fail, serde_json::Value::Null, msg)
        }
        Err(e) => CheckResult::new(check, Status::Fail, serde_json::Value::Null, e.to_string()),
    }
}
