//! The state store's fleet tables: a fleet run (`FleetRecord`) and each of its targets
//! (`FleetTarget`): the target's run, status, the exit code of its child and why it failed
//! (the child's last error, kept also when the child never started a run).

use crate::state::{StateError, StateStore};
use sqlx::Row;

impl StateStore {
    /// Records a new fleet run and its targets (all `pending`).
    pub async fn create_fleet(&self, f: &FleetRecord) -> Result<(), StateError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO runbook_fleets (id, playbook, env, selector, options, targets, operator, status, started_at, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
        )
        .bind(&f.id)
        .bind(&f.playbook)
        .bind(&f.env)
        .bind(&f.selector)
        .bind(f.options.to_string())
        .bind(serde_json::to_string(&f.targets).unwrap_or_default())
        .bind(&f.operator)
        .bind(&f.status)
        .bind(f.started_at)
        .execute(&mut *tx)
        .await?;
        for t in &f.targets {
            sqlx::query("INSERT INTO runbook_fleet_targets (fleet_id, target, run_id, status, exit_code) VALUES ($1, $2, NULL, 'pending', NULL)")
                .bind(&f.id)
                .bind(t)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets one target's run and status in a fleet, with why it failed (`None` clears it).
    pub async fn fleet_target(
        &self,
        fleet_id: &str,
        target: &str,
        run_id: Option<&str>,
        (status, exit_code, reason): (&str, Option<i64>, Option<&str>),
    ) -> Result<(), StateError> {
        sqlx::query(
            "UPDATE runbook_fleet_targets SET run_id = COALESCE($3, run_id), status = $4, exit_code = $5, reason = $6 WHERE fleet_id = $1 AND target = $2",
        )
        .bind(fleet_id)
        .bind(target)
        .bind(run_id.map(str::to_owned))
        .bind(status)
        .bind(exit_code)
        .bind(reason.map(str::to_owned))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn finish_fleet(&self, fleet_id: &str, status: &str) -> Result<(), StateError> {
        sqlx::query("UPDATE runbook_fleets SET status = $2, finished_at = $3 WHERE id = $1")
            .bind(fleet_id)
            .bind(status)
            .bind(crate::run::now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn load_fleet(&self, id: &str) -> Result<Option<FleetRecord>, StateError> {
        let row = sqlx::query("SELECT id, playbook, env, selector, options, targets, operator, status, started_at FROM runbook_fleets WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let options: String = r.try_get(4)?;
            let targets: String = r.try_get(5)?;
            Ok(FleetRecord {
                id: r.try_get(0)?,
                playbook: r.try_get(1)?,
                env: r.try_get(2)?,
                selector: r.try_get(3)?,
                options: serde_json::from_str(&options).unwrap_or_default(),
                targets: serde_json::from_str(&targets).unwrap_or_default(),
                operator: r.try_get(6)?,
                status: r.try_get(7)?,
                started_at: r.try_get(8)?,
            })
        })
        .transpose()
    }

    /// Each target of a fleet with its run id, status, exit code and reason, in the fleet's
    /// order of rows.
    pub async fn fleet_targets(&self, fleet_id: &str) -> Result<Vec<FleetTarget>, StateError> {
        let rows = sqlx::query("SELECT target, run_id, status, exit_code, reason FROM runbook_fleet_targets WHERE fleet_id = $1")
            .bind(fleet_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(FleetTarget {
                    target: r.try_get(0)?,
                    run_id: r.try_get(1)?,
                    status: r.try_get(2)?,
                    exit_code: r.try_get(3)?,
                    reason: r.try_get(4)?,
                })
            })
            .collect()
    }
}

/// A fleet run: one playbook across many targets, each with its own run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetRecord {
    pub id: String,
    pub playbook: String,
    pub env: String,
    pub selector: String,
    pub options: serde_json::Value,
    pub targets: Vec<String>,
    pub operator: String,
    pub status: String,
    pub started_at: i64,
}

/// One target of a fleet, as the state store keeps it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetTarget {
    pub target: String,
    pub run_id: Option<String>,
    pub status: String,
    pub exit_code: Option<i64>,
    /// Why the target failed: the last error its child printed.
    pub reason: Option<String>,
}
