//! Replication lag (PostgreSQL): on a primary, each replica `pg_stat_replication` lists
//! (a base backup's sender is not a replica) with its replay lag in seconds (the server's own
//! `replay_lag`: how long ago the WAL the replica last replayed was flushed here, still growing
//! while replay is stuck) and in bytes (WAL written here and not yet replayed there); on a
//! standby, the age of the last transaction it replayed, counted only while WAL it received
//! waits to be replayed (an idle primary sends nothing, and that is no lag), and the bytes
//! received and not yet replayed. Graded on the worst replica's seconds (the checklist alerts
//! at 5 s). A primary with no replica is skipped; a figure the server does not give (a role
//! without `pg_monitor` sees no positions, a standby whose receiver is not streaming cannot
//! know how far behind it is) is unknown, a warning, never a guessed number. A replication
//! slot no replica reads warns too, naming the WAL it keeps on the primary: its replica is
//! gone or down, and the WAL piles up until the disk fills.

use super::grade::{graded, num, round1};
use super::postgres::Pg;
use super::{CheckResult, Status};
use crate::fmt::{bytes, plural};
use crate::playbook::HealthCheck;
use serde_json::{Value as Json, json};
use sqlx::Row;

const C: HealthCheck = HealthCheck::ReplicationLag;

/// One replica as the primary sees it.
struct Replica {
    name: String,
    address: String,
    state: Option<String>,
    sync_state: String,
    /// WAL written on the primary and not yet replayed on the replica.
    replay_bytes: Option<i64>,
    replay_seconds: Option<f64>,
    write_seconds: Option<f64>,
    flush_seconds: Option<f64>,
}

impl Replica {
    /// The replay lag in seconds when it is known: 0 when the replica has replayed everything
    /// written here (the server's own figure is then the last one it measured, kept for a
    /// moment), else the server's figure.
    fn lag(&self) -> Option<f64> {
        self.state.as_ref()?;
        if self.replay_bytes == Some(0) {
            Some(0.0)
        } else {
            self.replay_seconds
        }
    }

    fn label(&self) -> String {
        if self.name.is_empty() {
            self.address.clone()
        } else {
            format!("{} ({})", self.name, self.address)
        }
    }

    fn to_json(&self) -> Json {
        json!({
            "name": self.name,
            "address": self.address,
            "state": self.state,
            "sync_state": self.sync_state,
            "replay_lag_seconds": self.lag().map(round3),
            "replay_lag_bytes": self.replay_bytes,
            "write_lag_seconds": self.write_seconds.map(round3),
            "flush_lag_seconds": self.flush_seconds.map(round3),
        })
    }
}

/// Seconds to the millisecond, as the details show them.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl Pg<'_> {
    pub(super) async fn replication_lag(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self.rows("SELECT pg_is_in_recovery()").await?;
        let standby: bool = rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(false);
        if standby {
            self.standby_lag().await
        } else {
            self.primary_lag().await
        }
    }

    async fn primary_lag(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows(
                "SELECT coalesce(application_name, '')::text, \
                        coalesce(host(client_addr), 'local')::text, state::text, \
                        coalesce(sync_state, '')::text, \
                        pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::int8, \
                        extract(epoch FROM replay_lag)::float8, \
                        extract(epoch FROM write_lag)::float8, \
                        extract(epoch FROM flush_lag)::float8 \
                 FROM pg_stat_replication WHERE state IS DISTINCT FROM 'backup' ORDER BY 1, 2, pid",
            )
            .await?;
        let mut replicas = Vec::new();
        for r in &rows {
            replicas.push(Replica {
                name: r.try_get(0)?,
                address: r.try_get(1)?,
                state: r.try_get(2)?,
                sync_state: r.try_get(3)?,
                replay_bytes: r.try_get(4)?,
                replay_seconds: r.try_get(5)?,
                write_seconds: r.try_get(6)?,
                flush_seconds: r.try_get(7)?,
            });
        }
        let (slots, retained) = self.inactive_slots().await?;
        if replicas.is_empty() && slots.is_empty() {
            return Ok(CheckResult::skip(
                C,
                "no replicas: this server is a primary with no standby or subscriber connected",
            )
            .with("role", "primary")
            .with("replicas", Json::Array(Vec::new()))
            .with("inactive_slots", Json::Array(Vec::new())));
        }
        if replicas.is_empty() {
            return Ok(CheckResult::new(
                C,
                Status::Warn,
                Json::Null,
                format!("no replica connected; {retained}"),
            )
            .with("role", "primary")
            .with("replicas", Json::Array(Vec::new()))
            .with("inactive_slots", slots));
        }
        let list: Vec<Json> = replicas.iter().map(Replica::to_json).collect();
        let unknown: Vec<String> = replicas
            .iter()
            .filter(|r| r.lag().is_none())
            .map(|r| match r.state {
                None => format!(
                    "{}: its positions are hidden from this role (grant pg_monitor)",
                    r.label()
                ),
                Some(_) => format!(
                    "{}: {} behind, the server has not measured the time yet",
                    r.label(),
                    bytes(r.replay_bytes.unwrap_or(0).max(0) as u64)
                ),
            })
            .collect();
        let worst = replicas
            .iter()
            .filter_map(|r| r.lag().map(|s| (s, r)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let count = plural(replicas.len(), "replica", "replicas");
        let Some((secs, r)) = worst else {
            return Ok(CheckResult::new(
                C,
                Status::Warn,
                Json::Null,
                format!("{count}; replay lag unknown: {}", unknown.join("; ")),
            )
            .with("role", "primary")
            .with("replicas", list));
        };
        let secs = round1(secs);
        let mut message = format!(
            "{count}; worst replay lag {} s at {} ({} not yet replayed, {})",
            num(secs),
            r.label(),
            bytes(r.replay_bytes.unwrap_or(0).max(0) as u64),
            r.state.as_deref().unwrap_or("unknown state")
        );
        if !unknown.is_empty() {
            message.push_str(&format!("; unknown for {}", unknown.join("; ")));
        }
        if !slots.is_empty() {
            message.push_str(&format!("; {retained}"));
        }
        let mut result = graded(C, secs, self.opts, json!(secs), message)
            .with("role", "primary")
            .with("replicas", list);
        // A replica whose lag nobody measured, or a slot nobody reads, deserves a look even
        // when the replicas' lag is fine.
        if !unknown.is_empty() || !slots.is_empty() {
            result.status = result.status.max(Status::Warn);
        }
        Ok(result.with("inactive_slots", slots))
    }

    /// The replication slots no replica reads, and a sentence naming them and the WAL each
    /// keeps on this server (until the disk fills, unless `max_slot_wal_keep_size` limits it).
    async fn inactive_slots(&mut self) -> Result<(Vec<Json>, String), sqlx::Error> {
        let rows = self
            .rows(
                "SELECT slot_name::text, slot_type::text, \
                        pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 \
                 FROM pg_replication_slots WHERE NOT active ORDER BY 1",
            )
            .await?;
        let mut slots = Vec::new();
        let mut named = Vec::new();
        for r in &rows {
            let (name, kind, kept): (String, String, Option<i64>) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            named.push(match kept {
                Some(b) => format!("`{name}` ({kind}) keeps {} of WAL", bytes(b.max(0) as u64)),
                None => format!("`{name}` ({kind}) keeps no WAL yet"),
            });
            slots.push(json!({"name": name, "type": kind, "retained_bytes": kept}));
        }
        let sentence = format!(
            "{} no replica reads: {}; drop a slot whose replica is not coming back (pg_drop_replication_slot)",
            plural(slots.len(), "replication slot", "replication slots"),
            named.join(", ")
        );
        Ok((slots, sentence))
    }

    async fn standby_lag(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows(
                "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8, \
                        extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, \
                        pg_is_wal_replay_paused(), \
                        coalesce((SELECT status FROM pg_stat_wal_receiver), 'stopped')::text, \
                        coalesce((SELECT sender_host FROM pg_stat_wal_receiver), '')::text, \
                        coalesce(pg_last_xact_replay_timestamp()::text, '')",
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(CheckResult::skip(C, "the standby answered nothing"));
        };
        let (gap, age, paused, receiver, sender, last): (
            Option<i64>,
            Option<f64>,
            bool,
            String,
            String,
            String,
        ) = (
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
        );
        let paused_note = if paused { ", replay paused" } else { "" };
        let details = |res: CheckResult| {
            res.with("role", "standby")
                .with("receive_replay_gap_bytes", json!(gap))
                .with("last_replayed_age_seconds", json!(age.map(round3)))
                .with("last_replayed_at", last.clone())
                .with("replay_paused", paused)
                .with("receiver_status", receiver.clone())
                .with("primary", sender.clone())
        };
        // Without a streaming receiver the standby cannot know what the primary has written.
        if receiver != "streaming" {
            return Ok(details(CheckResult::new(
                C,
                Status::Warn,
                Json::Null,
                format!(
                    "this server is a standby whose WAL receiver is {receiver}: how far behind the primary it is cannot be known here{paused_note}"
                ),
            )));
        }
        let secs = match (gap, age) {
            (Some(0), _) => Some(0.0),
            (_, Some(a)) => Some(a.max(0.0)),
            _ => None,
        };
        let Some(secs) = secs.map(round1) else {
            return Ok(details(CheckResult::new(
                C,
                Status::Warn,
                Json::Null,
                format!(
                    "this server is a standby that has replayed no transaction yet: its lag is unknown{paused_note}"
                ),
            )));
        };
        let message = format!(
            "this server is a standby of {}: replay {} s behind ({} received and not yet replayed){paused_note}",
            if sender.is_empty() {
                "its primary"
            } else {
                &sender
            },
            num(secs),
            bytes(gap.unwrap_or(0).max(0) as u64)
        );
        Ok(details(graded(C, secs, self.opts, json!(secs), message)))
    }
}

#[cfg(test)]
mod tests {
    use super::Replica;

    fn replica(state: Option<&str>, bytes: Option<i64>, seconds: Option<f64>) -> Replica {
        Replica {
            name: "standby".to_owned(),
            address: "10.0.0.2".to_owned(),
            state: state.map(str::to_owned),
            sync_state: "async".to_owned(),
            replay_bytes: bytes,
            replay_seconds: seconds,
            write_seconds: None,
            flush_seconds: None,
        }
    }

    #[test]
    fn a_replica_lags_by_what_the_server_measured_unless_it_replayed_everything() {
        let s = Some("streaming");
        assert_eq!(replica(s, Some(100), Some(7.5)).lag(), Some(7.5));
        // Caught up: the server's figure is the last it measured, kept for a moment.
        assert_eq!(replica(s, Some(0), Some(7.5)).lag(), Some(0.0));
        assert_eq!(replica(s, Some(0), None).lag(), Some(0.0));
        // Behind, and not measured yet: unknown, never 0.
        assert_eq!(replica(s, Some(100), None).lag(), None);
        // Positions hidden from the role.
        assert_eq!(replica(None, None, None).lag(), None);
    }
}
