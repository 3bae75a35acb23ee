//! The central sink: an append-only PostgreSQL table every record is copied to; a trigger
//! rejects UPDATE, DELETE and TRUNCATE, so even its owner cannot quietly rewrite history
//! through SQL.

use super::error::AuditError;
use serde_json::Value as Json;

/// A connection to the sink's table.
pub struct Sink {
    conn: sqlx::PgConnection,
}

impl Sink {
    pub async fn connect(url: &str) -> Result<Sink, AuditError> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| AuditError::Sink(e.to_string()))?;
        for stmt in [
            "CREATE TABLE IF NOT EXISTS runbook_audit_log (
                run_id TEXT NOT NULL, seq BIGINT NOT NULL, hash TEXT NOT NULL, record JSONB NOT NULL,
                received_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (run_id, seq))",
            "CREATE OR REPLACE FUNCTION runbook_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'runbook_audit_log is append-only: % is not allowed', TG_OP; END $$",
            "DROP TRIGGER IF EXISTS runbook_audit_no_change ON runbook_audit_log",
            "CREATE TRIGGER runbook_audit_no_change BEFORE UPDATE OR DELETE ON runbook_audit_log
             FOR EACH ROW EXECUTE FUNCTION runbook_audit_append_only()",
            "DROP TRIGGER IF EXISTS runbook_audit_no_truncate ON runbook_audit_log",
            "CREATE TRIGGER runbook_audit_no_truncate BEFORE TRUNCATE ON runbook_audit_log
             FOR EACH STATEMENT EXECUTE FUNCTION runbook_audit_append_only()",
        ] {
            // Several runs may set the sink up at once; the second `CREATE` may race.
            if let Err(e) = sqlx::query(stmt).execute(&mut conn).await {
                let msg = e.to_string();
                if !msg.contains("already exists") && !msg.contains("duplicate key") && !msg.contains("tuple concurrently updated") {
                    return Err(AuditError::Sink(msg));
                }
            }
        }
        Ok(Sink { conn })
    }

    pub(super) async fn insert(
        &mut self,
        run_id: &str,
        seq: i64,
        hash: &str,
        record: &Json,
    ) -> Result<(), AuditError> {
        sqlx::query(
            "INSERT INTO runbook_audit_log (run_id, seq, hash, record) VALUES ($1, $2, $3, $4)",
        )
        .bind(run_id)
        .bind(seq)
        .bind(hash)
        .bind(sqlx::types::Json(record))
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(|e| AuditError::Sink(e.to_string()))
    }
}
