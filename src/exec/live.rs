//! The connected dry-run: `runbook plan` without `--offline` connects to the target read-only
//! (a PostgreSQL session with `default_transaction_read_only`, a SQLite file opened read-only),
//! so it cannot write, and adds what only the database knows: pending migrations with their
//! lint findings and live row estimates, and the current values behind condition gates. With
//! `--rehearse` it also rehearses the pending migrations in a transaction that is rolled back.

use crate::db::migrate::{self, Dialect, Settings};
use crate::db::{Db, TargetSpec};
use crate::playbook::{Action, Step};
use crate::project::Playbook;
use crate::template;
use serde_json::{Map, Value as Json, json};
use sqlx::ConnectOptions;
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;

/// Opens the target so that nothing can be written through the connection.
pub async fn connect_read_only(target: &TargetSpec) -> Result<Db, String> {
    match target {
        TargetSpec::Postgres(url) => {
            let opts = sqlx::postgres::PgConnectOptions::from_str(url)
                .map_err(|e| e.to_string())?
                .application_name("runbook plan")
                .options([("default_transaction_read_only", "on")]);
            opts.connect()
                .await
                .map(Db::Postgres)
                .map_err(|e| e.to_string())
        }
        TargetSpec::Sqlite(path) => {
            if !path.exists() {
                return Err(format!(
                    "`{}` does not exist yet (a run would create it)",
                    path.display()
                ));
            }
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .read_only(true);
            opts.connect()
                .await
                .map(Db::Sqlite)
                .map_err(|e| e.to_string())
        }
    }
}

/// What the live part of a plan found.
pub struct Live {
    pub text: String,
    pub json: Json,
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
) -> Result<Live, String> {
    if let TargetSpec::Sqlite(path) = target
        && !path.exists()
    {
        return Ok(Live {
            text: format!(
                "\n{} does not exist yet: there is nothing to inspect (a run creates it)\n",
                target.describe()
            ),
            json: json!({"exists": false}),
        });
    }
    let mut db = connect_read_only(target).await?;
    let mut text = String::new();
    let mut out = Map::new();
    let version = match &mut db {
        Db::Postgres(_) => migrate::server_version(&mut db)
            .await
            .map(|v| format!("PostgreSQL {v}")),
        Db::Sqlite(_) => db
            .execute("SELECT 'SQLite ' || sqlite_version()", &[], true)
            .await
            .ok()
            .and_then(|r| r.rows.first().and_then(|row| row.values().next().cloned()))
            .and_then(|v| v.as_str().map(str::to_owned)),
    };
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
        let dialect = Dialect::of(target);
        match migrate::discover(migrations_dir, dialect, root) {
            Ok(set) => match migrate::status(&mut db, &set).await {
                Ok(status) => {
                    let _ = writeln!(text, "pending migrations: {}", status.pending.len());
                    for p in &status.pending {
                        let _ = writeln!(text, "  {} {} ({})", p.version, p.name, p.file);
                    }
                    for d in &status.drifted {
                        let _ = writeln!(
                            text,
                            "  DRIFT {}",
                            serde_json::to_string(d).unwrap_or_default()
                        );
                    }
                    let pending: Vec<&migrate::Migration> = status
                        .pending
                        .iter()
                        .filter_map(|p| set.find(&p.version))
                        .collect();
                    let pg_version = match &mut db {
                        Db::Postgres(_) => migrate::server_version(&mut db).await,
                        Db::Sqlite(_) => None,
                    };
                    let lint_set;
                    let lint_targets: Vec<&migrate::Migration> = if dialect == Dialect::Postgres {
                        pending.clone()
                    } else {
                        // Lint reads PostgreSQL SQL: for a SQLite target, lint the postgres folder.
                        lint_set = migrate::discover(migrations_dir, Dialect::Postgres, root).ok();
                        lint_set
                            .as_ref()
                            .map(|s| s.migrations.iter().collect())
                            .unwrap_or_default()
                    };
                    let settings = Settings {
                        lock_timeout: None,
                        statement_timeout: None,
                        lock_retries: 0,
                    };
                    let mut findings =
                        migrate::lint(&lint_targets, pg_version.as_deref(), &settings);
                    let _ = migrate::annotate(&mut db, &mut findings).await;
                    if !findings.is_empty() {
                        let _ = writeln!(text, "lint findings: {}", findings.len());
                        for f in &findings {
                            let rows = f
                                .rows
                                .map(|r| format!(" (table holds ~{r} rows)"))
                                .unwrap_or_default();
                            let _ = writeln!(
                                text,
                                "  {}:{} {} [{:?}] {}{rows}",
                                f.file, f.line, f.rule, f.level, f.message
                            );
                        }
                    }
                    out.insert("migrations".into(), json!({
                        "pending": status.pending, "drifted": status.drifted, "missing": status.missing,
                        "current_version": status.current_version,
                    }));
                    out.insert("lint".into(), json!(findings));
                    if rehearse {
                        out.insert(
                            "rehearsal".into(),
                            rehearsal(target, &set, protected, &mut text).await,
                        );
                    }
                }
                Err(e) => {
                    let _ = writeln!(text, "migrations: cannot read the history: {e}");
                }
            },
            Err(e) => {
                let _ = writeln!(text, "migrations: {e}");
            }
        }
    } else if rehearse {
        let _ = writeln!(text, "rehearse: the playbook applies no migrations");
    }

    // Condition gates: evaluate them now when every step they read is a read-only query.
    let mut gates = Vec::new();
    let steps = &playbook.def.steps;
    for (i, s) in steps.iter().enumerate() {
        let Some(cond) = s.gate.as_ref().and_then(|g| g.condition.as_ref()) else {
            continue;
        };
        let id = s.id.clone().unwrap_or_default();
        let vars = template::expression_vars(&cond.expr).unwrap_or_default();
        let mut outputs = Map::new();
        let mut why_not = None;
        for v in vars.iter().filter(|v| v.starts_with("steps.")) {
            let sid = v.split('.').nth(1).unwrap_or_default();
            if outputs.contains_key(sid) {
                continue;
            }
            let Some(src) = steps[..i].iter().find(|x| x.id.as_deref() == Some(sid)) else {
                continue;
            };
            match src.action() {
                Some(Action::Sql(q)) if is_query(&q.query) => {
                    let params: Vec<Json> = q
                        .params
                        .iter()
                        .map(|p| match p {
                            Json::String(t) if template::is_template(t) => {
                                template::render_native(t, ctx).unwrap_or(Json::Null)
                            }
                            other => other.clone(),
                        })
                        .collect();
                    match db.execute(&q.query, &params, true).await {
                        Ok(r) => {
                            let scalar = r
                                .rows
                                .first()
                                .and_then(|row| r.columns.first().and_then(|c| row.get(c)))
                                .cloned()
                                .unwrap_or(Json::Null);
                            outputs.insert(sid.to_owned(), json!({"outputs": {"rows": r.rows, "scalar": scalar, "row_count": r.row_count}}));
                        }
                        Err(e) => {
                            why_not = Some(format!(
                                "step `{sid}` failed read-only: {}",
                                crate::db::describe(&e)
                            ))
                        }
                    }
                }
                _ => {
                    why_not = Some(format!(
                        "step `{sid}` is not a read-only query; its value is known only at run time"
                    ))
                }
            }
        }
        let entry = match why_not {
            Some(reason) => json!({"gate": id, "expr": cond.expr, "value": null, "note": reason}),
            None => {
                let mut c = ctx.clone();
                if let Json::Object(m) = &mut c {
                    m.insert("steps".into(), Json::Object(outputs));
                }
                match template::eval(&cond.expr, &c) {
                    Ok(v) => {
                        json!({"gate": id, "expr": cond.expr, "value": v, "holds": template::truthy(&v)})
                    }
                    Err(e) => json!({"gate": id, "expr": cond.expr, "value": null, "note": e}),
                }
            }
        };
        let _ = match entry.get("holds") {
            Some(h) => writeln!(
                text,
                "gate {id}: `{}` is currently {} ({})",
                cond.expr,
                if h == true { "true" } else { "FALSE" },
                entry["value"]
            ),
            None => writeln!(
                text,
                "gate {id}: `{}`: {}",
                cond.expr,
                entry["note"].as_str().unwrap_or_default()
            ),
        };
        gates.push(entry);
    }
    out.insert("condition_gates".into(), Json::Array(gates));
    db.close().await;
    Ok(Live {
        text,
        json: Json::Object(out),
    })
}

async fn rehearsal(
    target: &TargetSpec,
    set: &migrate::MigrationSet,
    protected: bool,
    text: &mut String,
) -> Json {
    if protected {
        let _ = writeln!(
            text,
            "rehearse: refused on a protected environment; rehearse on staging or a copy of the \
             database, or in a `migrate: {{ action: rehearse }}` step behind an approval or confirm gate"
        );
        return json!({"refused": "protected environment"});
    }
    // Rehearsal writes (and rolls back), so it needs an ordinary connection.
    let mut db = match Db::connect(target).await {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(text, "rehearse: cannot connect: {e}");
            return json!({"error": e.to_string()});
        }
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let silent = crate::db::op::Silent;
    let ctl = crate::db::op::Op::new(
        "plan-rehearsal",
        "rehearse",
        rx,
        None,
        crate::redact::global(),
        &silent,
    );
    let settings = Settings {
        lock_timeout: None,
        statement_timeout: None,
        lock_retries: 0,
    };
    let result = migrate::rehearse(&mut db, target, set, &settings, &ctl).await;
    db.close().await;
    match result {
        Ok(r) => {
            let _ = writeln!(text, "rehearsal (rolled back):");
            for f in &r.results {
                let locks: Vec<String> = f
                    .locks
                    .iter()
                    .map(|l| format!("{} {} {}", l.mode, l.kind, l.relation))
                    .collect();
                let _ = writeln!(
                    text,
                    "  {} {} {} in {} ms{}{}",
                    f.status,
                    f.version,
                    f.name,
                    f.duration_ms,
                    if locks.is_empty() {
                        String::new()
                    } else {
                        format!("; locks: {}", locks.join(", "))
                    },
                    f.error
                        .as_deref()
                        .map(|e| format!("; {e}"))
                        .unwrap_or_default()
                );
            }
            json!(r.results)
        }
        Err(e) => {
            let _ = writeln!(text, "rehearse: {e}");
            json!({"error": e.to_string()})
        }
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

/// A statement that only reads (as far as its first word says; the read-only session makes
/// sure of the rest).
fn is_query(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "SELECT" | "WITH" | "SHOW" | "VALUES" | "EXPLAIN"
    )
}
