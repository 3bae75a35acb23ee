//! The security checks of the guides (PostgreSQL): TLS in use for the sessions that come over
//! TCP and enforced by the server's host-based rules (read when the role may read
//! `pg_hba_file_rules`), and least privilege: the role runbook connects as is no superuser.

use super::CheckResult;
use super::grade::graded;
use super::postgres::Pg;
use crate::fmt::plural;
use crate::playbook::HealthCheck;
use serde_json::json;
use sqlx::Row;

impl Pg<'_> {
    pub(super) async fn tls(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows(
                "SELECT current_setting('ssl'), \
                        coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false), \
                        coalesce((SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()), ''), \
                        (SELECT count(*)::int8 FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                          WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL AND NOT s.ssl), \
                        (SELECT count(*)::int8 FROM pg_stat_activity \
                          WHERE backend_type = 'client backend' AND client_addr IS NOT NULL)",
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(CheckResult::skip(
                HealthCheck::Tls,
                "pg_stat_ssl returned nothing",
            ));
        };
        let (setting, mine, version, plain, tcp): (String, bool, String, i64, i64) = (
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
        );
        // Whether a `host` or `hostnossl` rule lets a client in without TLS: only a role that
        // may read the rules (superuser, pg_read_all_settings is not enough) can say.
        let enforced = match self
            .rows(
                "SELECT count(*)::int8 FROM pg_hba_file_rules \
                 WHERE type IN ('host', 'hostnossl') AND error IS NULL",
            )
            .await
        {
            Ok(rows) => rows
                .first()
                .map(|r| r.try_get::<i64, _>(0))
                .transpose()?
                .map(|n| setting == "on" && n == 0),
            Err(_) => None,
        };
        let this = if mine {
            format!("this session uses {version}")
        } else {
            "this session does not use TLS".to_owned()
        };
        let rules = match enforced {
            Some(true) => "TLS enforced (only hostssl rules for TCP)".to_owned(),
            Some(false) if setting != "on" => "the server has ssl off".to_owned(),
            Some(false) => "pg_hba.conf lets TCP clients in without TLS".to_owned(),
            None => {
                "whether pg_hba.conf enforces TLS is unknown (pg_hba_file_rules needs a superuser)"
                    .to_owned()
            }
        };
        Ok(graded(
            HealthCheck::Tls,
            plain as f64,
            self.opts,
            json!(plain),
            format!(
                "{} of {} without TLS; {this}; ssl = {setting}; {rules}",
                plural(plain, "TCP session", "TCP sessions"),
                tcp
            ),
        )
        .with("ssl", setting == "on")
        .with("session_tls", mine)
        .with("tls_version", version)
        .with("tcp_sessions", tcp)
        .with("without_tls", plain)
        .with("enforced", json!(enforced)))
    }

    pub(super) async fn superuser(&mut self) -> Result<CheckResult, sqlx::Error> {
        let rows = self
            .rows(
                "SELECT current_user::text, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls \
                 FROM pg_roles WHERE rolname = current_user",
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(CheckResult::skip(
                HealthCheck::Superuser,
                "the current role is not in pg_roles",
            ));
        };
        let (role, sup, createrole, createdb, bypassrls): (String, bool, bool, bool, bool) = (
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
        );
        let mut extra: Vec<&str> = Vec::new();
        if createrole {
            extra.push("CREATEROLE");
        }
        if createdb {
            extra.push("CREATEDB");
        }
        if bypassrls {
            extra.push("BYPASSRLS");
        }
        let message = if sup {
            format!(
                "role `{role}` is a superuser: give the application and migrations a role that owns only their objects"
            )
        } else if extra.is_empty() {
            format!("role `{role}` is not a superuser")
        } else {
            format!(
                "role `{role}` is not a superuser (has {})",
                extra.join(", ")
            )
        };
        Ok(graded(
            HealthCheck::Superuser,
            f64::from(u8::from(sup)),
            self.opts,
            json!(sup),
            message,
        )
        .with("role", role)
        .with("createrole", createrole)
        .with("createdb", createdb)
        .with("bypassrls", bypassrls))
    }
}
