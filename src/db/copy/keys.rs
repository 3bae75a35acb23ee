//! What is added after a table's rows: its primary key, UNIQUE constraints and indexes, and
//! the identity sequence moved past the highest key (foreign keys, once every table is in:
//! `foreign.rs`).

use super::ddl::{IndexPlan, Names};
use super::report::Decision;
use super::schema::SrcTable;
use super::sqltext::{check_exprs, quote_columns};
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
        to: match (called, value.checked_add(1)) {
            (true, Some(next)) => format!("identity sequence at {value}; the next key is {next}"),
            (true, None) => format!("identity sequence at {value}; it has no next key"),
            (false, _) => "identity sequence starts at 1".to_owned(),
        },
        reason: "keys given after the copy do not collide with copied ones".to_owned(),
    })
}
