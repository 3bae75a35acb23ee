//! What is added after a table's rows: its primary key, UNIQUE constraints and indexes, the
//! identity sequence moved past the highest key, and, once every table is in, foreign keys.

use super::ddl::{IndexPlan, MAX_IDENT, Names, truncate};
use super::report::Decision;
use super::schema::{SrcFk, SrcTable};
use super::sqltext::{check_exprs, quote_columns};
use super::target::target_exists;
use super::{OpError, db_error, describe};
use crate::fmt::quote_ident;
use sqlx::PgConnection;
use std::cell::RefCell;

/// Adds the table's primary key, UNIQUE constraints and indexes. An index SQLite defines by
/// expressions or a WHERE clause runs in a savepoint: PostgreSQL may refuse its SQL, which is
/// then reported rather than failing the table.
pub(super) async fn add_indexes(
    pg: &mut PgConnection,
    plans: Vec<IndexPlan>,
    names: &RefCell<Names>,
    decisions: &mut Vec<Decision>,
) -> Result<(), OpError> {
    for ix in plans {
        if ix.optional {
            sqlx::raw_sql("SAVEPOINT runbook_index")
                .execute(&mut *pg)
                .await
                .map_err(db_error)?;
            match sqlx::raw_sql(sqlx::AssertSqlSafe(ix.sql.clone()))
                .execute(&mut *pg)
                .await
            {
                Ok(_) => {
                    sqlx::raw_sql("RELEASE SAVEPOINT runbook_index")
                        .execute(&mut *pg)
                        .await
                        .map_err(db_error)?;
                    decisions.push(ix.decision);
                }
                Err(e) => {
                    sqlx::raw_sql("ROLLBACK TO SAVEPOINT runbook_index")
                        .execute(&mut *pg)
                        .await
                        .map_err(db_error)?;
                    let name = ix.name.clone();
                    if !names.borrow().may_skip(&name) {
                        return Err(OpError::Failed(format!(
                            "index `{name}` cannot be created in PostgreSQL ({}): `{}`; fix \
                             it in the source, or let the copy leave it out with \
                             `allow_skip: [{name}]`",
                            describe(&e),
                            ix.sql
                        )));
                    }
                    let mut d = ix.decision;
                    d.to = "not carried over".to_owned();
                    d.reason = format!("{}; PostgreSQL refused it: {}", d.reason, describe(&e));
                    decisions.push(d);
                }
            }
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(ix.sql.clone()))
            .execute(&mut *pg)
            .await
            .map_err(|e| OpError::Failed(describe(&e)))?;
        decisions.push(ix.decision);
    }
    Ok(())
}

/// Adds the table's CHECK constraints, their SQLite expressions with the columns quoted as
/// created; one PostgreSQL refuses (SQL it does not have, rows that break it) fails the table
/// unless `allow_skip` names it.
/// The table's CHECK expressions with the constraint names they take, in order.
/// A table's indexes and CHECK constraints with the names they take, chosen for every table
/// before any loads, in table order: the same names whichever lane finishes first.
pub(super) struct Keys {
    pub(super) indexes: Vec<IndexPlan>,
    pub(super) checks: Vec<(String, String)>,
}

impl Keys {
    pub(super) fn plan(t: &SrcTable, names: &mut Names) -> Keys {
        let indexes = super::ddl::index_plans(t, names);
        Keys {
            indexes,
            checks: check_plans(t, names),
        }
    }
}

fn check_plans(t: &SrcTable, names: &mut Names) -> Vec<(String, String)> {
    check_exprs(&t.sql)
        .into_iter()
        .map(|expr| (names.take(&format!("{}_check", t.name)), expr))
        .collect()
}

pub(super) async fn add_checks(
    pg: &mut PgConnection,
    t: &SrcTable,
    checks: Vec<(String, String)>,
    names: &RefCell<Names>,
    decisions: &mut Vec<Decision>,
) -> Result<(), OpError> {
    let cols: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    for (name, expr) in checks {
        let translated = quote_columns(&expr, &cols);
        let sql = format!(
            "ALTER TABLE {} ADD CONSTRAINT {} CHECK ({translated})",
            quote_ident(&t.name),
            quote_ident(&name)
        );
        let mut decision = Decision {
            table: t.name.clone(),
            column: None,
            what: "constraint".to_owned(),
            from: format!("CHECK ({expr})"),
            to: format!("{} CHECK ({translated})", quote_ident(&name)),
            reason: "the expression with the columns quoted as created".to_owned(),
        };
        sqlx::raw_sql("SAVEPOINT runbook_check")
            .execute(&mut *pg)
            .await
            .map_err(db_error)?;
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *pg)
            .await
        {
            Ok(_) => {}
            Err(e) => {
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT runbook_check")
                    .execute(&mut *pg)
                    .await
                    .map_err(db_error)?;
                if !names.borrow().may_skip(&name) {
                    return Err(OpError::Failed(format!(
                        "CHECK ({expr}) cannot be added in PostgreSQL as `{name}` ({}); fix it \
                         in the source, or let the copy leave it out with `allow_skip: [{name}]`",
                        describe(&e)
                    )));
                }
                decision.to = "not carried over".to_owned();
                decision.reason = format!("PostgreSQL refused it: {}", describe(&e));
            }
        }
        sqlx::raw_sql("RELEASE SAVEPOINT runbook_check")
            .execute(&mut *pg)
            .await
            .map_err(db_error)?;
        decisions.push(decision);
    }
    Ok(())
}

/// Moves the identity sequence past the highest key, and past every key AUTOINCREMENT ever
/// gave.
pub(super) async fn move_sequence(
    pg: &mut PgConnection,
    t: &SrcTable,
    i: usize,
) -> Result<Decision, OpError> {
    let col = &t.columns[i];
    let max: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT max({}) FROM {}",
        quote_ident(&col.name),
        quote_ident(&t.name)
    )))
    .fetch_one(&mut *pg)
    .await
    .map_err(db_error)?;
    // AUTOINCREMENT never reuses a key, not even of deleted rows: sqlite_sequence remembers
    // the highest ever given, and the sequence must start past it.
    let high = match (max, t.sequence) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let (value, called) = match high {
        Some(h) if h >= 1 => (h, true),
        _ => (1, false),
    };
    sqlx::query("SELECT setval(pg_get_serial_sequence($1, $2), $3, $4)")
        .bind(quote_ident(&t.name))
        .bind(&col.name)
        .bind(value)
        .bind(called)
        .execute(&mut *pg)
        .await
        .map_err(db_error)?;
    Ok(Decision {
        table: t.name.clone(),
        column: Some(col.name.clone()),
        what: "sequence".to_owned(),
        from: if t.autoincrement {
            format!(
                "AUTOINCREMENT (sqlite_sequence {})",
                t.sequence
                    .map_or_else(|| "empty".to_owned(), |s| s.to_string())
            )
        } else {
            "rowid".to_owned()
        },
        to: if called {
            format!(
                "identity sequence at {value}; the next key is {}",
                value + 1
            )
        } else {
            "identity sequence starts at 1".to_owned()
        },
        reason: "keys given after the copy do not collide with copied ones".to_owned(),
    })
}

/// Adds the table's foreign keys, each as its own decision; one whose parent is not in the
/// target fails unless `allow_skip` names it.
pub(super) async fn add_foreign_keys(
    pg: &mut PgConnection,
    t: &SrcTable,
    names: &Names,
    decisions: &mut Vec<Decision>,
) -> Result<(), OpError> {
    for fk in &t.fks {
        let d = add_foreign_key(pg, t, fk).await?;
        let plain: Vec<&str> = fk.from.iter().map(String::as_str).collect();
        let name = truncate(&format!("{}_{}_fkey", t.name, plain.join("_")), MAX_IDENT);
        if d.to == "not carried over" && !names.may_skip(&name) {
            return Err(OpError::Failed(format!(
                "`{}`: {} cannot be added: {}; copy its parent too, or let the copy leave it \
                 out with `allow_skip: [{name}]`",
                t.name, d.from, d.reason
            )));
        }
        decisions.push(d);
    }
    Ok(())
}

/// One foreign key: left out when its parent is not in the target, kept when an earlier run
/// added it, added NOT VALID when existing rows break it.
async fn add_foreign_key(
    pg: &mut PgConnection,
    t: &SrcTable,
    fk: &SrcFk,
) -> Result<Decision, OpError> {
    let from: Vec<String> = fk.from.iter().map(|c| quote_ident(c)).collect();
    let described = format!(
        "FOREIGN KEY ({}) REFERENCES {}",
        from.join(", "),
        quote_ident(&fk.parent)
    );
    let mut decision = Decision {
        table: t.name.clone(),
        column: None,
        what: "foreign_key".to_owned(),
        from: described,
        to: String::new(),
        reason: String::new(),
    };
    if !target_exists(pg, &fk.parent).await? {
        decision.to = "not carried over".to_owned();
        decision.reason = format!("`{}` is not in the target", fk.parent);
        return Ok(decision);
    }
    let to = parent_columns(pg, fk).await?;
    let plain: Vec<&str> = fk.from.iter().map(String::as_str).collect();
    let name = truncate(&format!("{}_{}_fkey", t.name, plain.join("_")), MAX_IDENT);
    let exists: bool = sqlx::query_scalar(
        "SELECT count(*) > 0 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2",
    )
    .bind(quote_ident(&t.name))
    .bind(&name)
    .fetch_one(&mut *pg)
    .await
    .map_err(db_error)?;
    decision.to = quote_ident(&name);
    if exists {
        decision.reason = "already added by an earlier run".to_owned();
        return Ok(decision);
    }
    let sql = format!(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON UPDATE {} ON DELETE {}",
        quote_ident(&t.name),
        quote_ident(&name),
        from.join(", "),
        quote_ident(&fk.parent),
        to.join(", "),
        fk_action(&fk.on_update),
        fk_action(&fk.on_delete)
    );
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(&mut *pg)
        .await
    {
        Ok(_) => {
            decision.reason = format!(
                "added after the load (ON UPDATE {}, ON DELETE {})",
                fk_action(&fk.on_update),
                fk_action(&fk.on_delete)
            );
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23503") => {
            // SQLite does not check foreign keys unless told to, so old rows can break them.
            // NOT VALID keeps the key for new rows, as SQLite with `foreign_keys` on would.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{sql} NOT VALID")))
                .execute(&mut *pg)
                .await
                .map_err(db_error)?;
            decision.to = format!("{} NOT VALID", quote_ident(&name));
            decision.reason = format!(
                "existing rows break it ({}): added NOT VALID, so new rows are checked; fix \
                 the rows, then `ALTER TABLE {} VALIDATE CONSTRAINT {}`",
                e.message(),
                quote_ident(&t.name),
                quote_ident(&name)
            );
        }
        Err(e) => {
            decision.to = "not carried over".to_owned();
            decision.reason = format!("PostgreSQL refused it: {}", describe(&e));
        }
    }
    Ok(decision)
}

/// The parent's columns a key references, quoted: `REFERENCES parent` without columns means
/// the parent's primary key.
async fn parent_columns(pg: &mut PgConnection, fk: &SrcFk) -> Result<Vec<String>, OpError> {
    Ok(if fk.to.iter().all(Option::is_some) {
        fk.to.iter().flatten().map(|c| quote_ident(c)).collect()
    } else {
        sqlx::query_scalar::<_, String>(
            "SELECT a.attname::text FROM pg_constraint c \
         JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) ON true \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum \
         WHERE c.conrelid = to_regclass($1) AND c.contype = 'p' ORDER BY k.ord",
        )
        .bind(quote_ident(&fk.parent))
        .fetch_all(&mut *pg)
        .await
        .map_err(db_error)?
        .iter()
        .map(|c| quote_ident(c))
        .collect()
    })
}

/// A referential action as PostgreSQL spells it; anything else is NO ACTION.
fn fk_action(a: &str) -> &'static str {
    match a.to_ascii_uppercase().as_str() {
        "CASCADE" => "CASCADE",
        "SET NULL" => "SET NULL",
        "SET DEFAULT" => "SET DEFAULT",
        "RESTRICT" => "RESTRICT",
        _ => "NO ACTION",
    }
}
