//! The connected dry-run: `runbook plan` without `--offline` connects to the target read-only
//! (a PostgreSQL session with `default_transaction_read_only`, a SQLite file opened read-only),
//! so it cannot write, and adds what only the database knows: pending migrations with their
//! lint findings and live row estimates (`migrations.rs`), and the current values behind
//! condition gates (`gates.rs`). With `--rehearse` it also rehearses the pending migrations in
//! a transaction that is rolled back.

mod gates;
mod migrations;

use crate::db::migrate;
use crate::db::{Db, TargetSpec};
use crate::playbook::{MigrateOp, Step};
use crate::project::Playbook;
use migrations::MigrationCheck;
use serde_json::{Map, Value as Json, json};
use sqlx::ConnectOptions;
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;

use crate::db::reach::ConnectError;

/// Opens the target so that nothing can be written through the connection.
pub async fn connect_read_only(target: &TargetSpec) -> Result<Db, ConnectError> {
    match target {
        TargetSpec::Postgres(url) => {
            let opts = sqlx::postgres::PgConnectOptions::from_str(url)?
                .application_name("runbook plan")
                .options([("default_transaction_read_only", "on")]);
            Ok(opts.connect().await.map(Db::Postgres)?)
        }
        TargetSpec::Sqlite(path) => {
            if !path.exists() {
                return Err(ConnectError::from(format!(
                    "`{}` does not exist yet (a run would create it)",
                    path.display()
                )));
            }
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .read_only(true);
            Ok(opts.connect().await.map(Db::Sqlite)?)
        }
    }
}

/// What the live part of a plan found.
pub struct Live {
    pub text: String,
    pub json: Json,
    /// Which database it is (`db::identity`): a connected plan's hash is bound to it, as a
    /// run's is, so the hash `runbook plan` shows is the one a run on this database records.
    pub identity: Option<String>,
}

/// Builds the live part of a plan. `rehearse` also runs the pending migrations in a rolled-back
/// transaction (which needs a writable connection; refused on protected environments).
pub async fn inspect(
    playbook: &Playbook,
    target: &TargetSpec,
    root: &Path,
    migrations_dir: &Path,
    protected: bool,
    rehearse: bool,
    ctx: &Json,
) -> Result<Live, ConnectError> {
    if let TargetSpec::Sqlite(path) = target
        && !path.exists()
    {
        return Ok(Live {
            text: format!(
                "\n{} does not exist yet: there is nothing to inspect (a run creates it)\n",
                target.describe()
            ),
            json: json!({"exists": false}),
            identity: None,
        });
    }
    let identity = crate::db::identity::identity(target).await.ok();
    let mut db = connect_read_only(target).await?;
    let mut text = String::new();
    let mut out = Map::new();
    let version = server_version(&mut db).await;
    let _ = writeln!(
        text,
        "\nconnected read-only to {} ({})",
        target.describe(),
        version.clone().unwrap_or_default()
    );
    out.insert("server_version".into(), json!(version));

    // Migrations: only when the playbook migrates.
    let migrates = all_steps(playbook).iter().any(|s| s.migrate.is_some());
    if migrates {
        let check = MigrationCheck {
            target,
            root,
            dir: migrations_dir,
            protected,
            rehearse,
            settings: apply_settings(playbook),
        };
        check.run(&mut db, &mut text, &mut out).await;
    } else if rehearse {
        let _ = writeln!(text, "rehearse: the playbook applies no migrations");
    }

    let gates = gates::condition_gates(&mut db, playbook, ctx, &mut text).await;
    out.insert("condition_gates".into(), Json::Array(gates));
    db.close().await;
    Ok(Live {
        text,
        json: Json::Object(out),
        identity,
    })
}

/// The part of an offline plan that needs no database: the migrations linted against an empty
/// schema, when the playbook migrates. `None` when it does not.
pub fn offline(playbook: &Playbook, root: &Path, migrations_dir: &Path) -> Option<Live> {
    if !all_steps(playbook).iter().any(|s| s.migrate.is_some()) {
        return None;
    }
    let mut text = String::new();
    let settings = apply_settings(playbook);
    let findings = migrations::offline_lint(root, migrations_dir, &settings, &mut text);
    Some(Live {
        text,
        json: json!({"connected": false, "lint": findings}),
        identity: None,
    })
}

/// The server's name and version, as the plan shows it.
async fn server_version(db: &mut Db) -> Option<String> {
    match db {
        Db::Postgres(_) => migrate::server_version(db)
            .await
            .map(|v| format!("PostgreSQL {v}")),
        Db::Sqlite(_) => db
            .execute("SELECT 'SQLite ' || sqlite_version()", &[], true)
            .await
            .ok()
            .and_then(|r| r.rows.first().and_then(|row| row.values().next().cloned()))
            .and_then(|v| v.as_str().map(str::to_owned)),
    }
}

/// Every step of the playbook and its includes, handlers included.
/// The timeouts the playbook's `apply` steps run migrations under, as lint judges them: a
/// timeout counts when every `apply` step sets it (runbook sets it per migration, so squawk's
/// `require-lock-timeout` and `require-statement-timeout` do not apply to those files).
fn apply_settings(pb: &Playbook) -> migrate::Settings {
    let applies: Vec<_> = all_steps(pb)
        .into_iter()
        .filter_map(|s| s.migrate.as_ref())
        .filter(|m| m.action == MigrateOp::Apply)
        .collect();
    let every = |get: &dyn Fn(&crate::playbook::MigrateAction) -> Option<std::time::Duration>| {
        let all: Option<Vec<_>> = applies.iter().map(|m| get(m)).collect();
        all.filter(|v| !v.is_empty())
            .and_then(|v| v.into_iter().min())
    };
    migrate::Settings {
        lock_timeout: every(&|m| m.lock_timeout.as_ref().and_then(|d| d.parse())),
        statement_timeout: every(&|m| m.statement_timeout.as_ref().and_then(|d| d.parse())),
        lock_retries: 0,
        on_blocked: None,
    }
}

fn all_steps(pb: &Playbook) -> Vec<&Step> {
    let mut out: Vec<&Step> = pb
        .def
        .steps
        .iter()
        .chain(&pb.def.on_failure)
        .chain(&pb.def.finally)
        .collect();
    for inc in pb.includes.values() {
        out.extend(all_steps(inc));
    }
    out
}
