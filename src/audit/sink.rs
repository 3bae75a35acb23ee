//! The central sink: an append-only PostgreSQL table every record is copied to. An
//! administrator sets it up as the table's owner (`schemas/audit-sink.sql`, printed by
//! `runbook audit sink-setup`): triggers reject UPDATE, DELETE and TRUNCATE, and runbook's
//! role may only INSERT and SELECT. Before it writes, runbook checks that its role cannot turn
//! that protection off (`check_protected`), and refuses the sink otherwise.

use super::error::AuditError;
use serde_json::Value as Json;
use sqlx::Row;

/// The setup script, with the writer role as the psql variable `:"writer"`.
const SETUP_SQL: &str = include_str!("../../schemas/audit-sink.sql");

/// The setup script for `writer`, ready for psql as the owner role.
pub fn sink_setup_sql(writer: &str) -> String {
    SETUP_SQL.replace(":\"writer\"", &crate::fmt::quote_ident(writer))
}

/// A connection to the sink's table.
pub struct Sink {
    conn: sqlx::PgConnection,
}

/// What the sink's protection looks like from the role runbook connects as.
const PROTECTION: &str = "
SELECT current_user::text AS me,
       pg_get_userbyid(c.relowner)::text AS owner,
       r.rolsuper AS superuser,
       pg_has_role(current_user, c.relowner, 'MEMBER') AS owns_table,
       pg_has_role(current_user, n.nspowner, 'MEMBER') AS owns_schema,
       COALESCE((SELECT bool_or(pg_has_role(current_user, p.proowner, 'MEMBER'))
                 FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                 WHERE t.tgrelid = c.oid AND NOT t.tgisinternal), false) AS owns_function,
       has_table_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE')
           OR has_table_privilege(c.oid, 'TRUNCATE') AS may_change,
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgenabled IN ('O', 'A')
            AND t.tgname IN ('runbook_audit_no_change', 'runbook_audit_no_truncate')) AS triggers
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_roles r ON r.rolname = current_user
WHERE c.oid = to_regclass('runbook_audit_log')";

impl Sink {
    /// Connects to the sink and checks its protection holds against this role.
    pub async fn connect(url: &str) -> Result<Sink, AuditError> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| AuditError::Sink(e.to_string()))?;
        check_protected(&mut conn).await?;
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

/// Refuses a sink whose protection the connecting role could turn off: it owns the table, its
/// schema or the triggers' function (or is a member of their owner), is a superuser, may
/// UPDATE, DELETE or TRUNCATE the table, or a trigger is missing or disabled. A sink without
/// the table is refused too: runbook's role must not create it (it would own it).
async fn check_protected(conn: &mut sqlx::PgConnection) -> Result<(), AuditError> {
    let setup = "an administrator sets the sink up as the table's owner: `runbook audit sink-setup --writer ROLE | psql OWNER_URL` (see schemas/audit-sink.sql), and runbook connects as the writer role";
    let refuse = |why: String| AuditError::Sink(format!("refusing the audit sink: {why}; {setup}"));
    let row = sqlx::query(PROTECTION)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| AuditError::Sink(e.to_string()))?;
    let Some(row) = row else {
        return Err(refuse("it has no table `runbook_audit_log`".to_owned()));
    };
    let get = |col: &str| row.try_get::<bool, _>(col).unwrap_or(true);
    let me: String = row.try_get("me").unwrap_or_default();
    let owner: String = row.try_get("owner").unwrap_or_default();
    let triggers: i64 = row.try_get("triggers").unwrap_or(0);
    let who = crate::fmt::quote_ident(&me);
    let why = if get("superuser") {
        format!("the role {who} runbook connects as is a superuser, which can disable its triggers")
    } else if get("owns_table") {
        format!(
            "the role {who} runbook connects as owns `runbook_audit_log` (or is a member of its owner {}), so it could disable or drop the triggers that keep it append-only",
            crate::fmt::quote_ident(&owner)
        )
    } else if get("owns_schema") {
        format!(
            "the role {who} runbook connects as owns the table's schema, so it could drop the table"
        )
    } else if get("owns_function") {
        format!(
            "the role {who} runbook connects as owns the triggers' function, so it could replace it with one that allows everything"
        )
    } else if get("may_change") {
        format!(
            "the role {who} runbook connects as may UPDATE, DELETE or TRUNCATE `runbook_audit_log`; grant it INSERT and SELECT only"
        )
    } else if triggers < 2 {
        "a trigger that keeps `runbook_audit_log` append-only is missing or disabled".to_owned()
    } else {
        return Ok(());
    };
    Err(refuse(why))
}
