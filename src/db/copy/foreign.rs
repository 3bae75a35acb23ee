//! Foreign keys, once every table is in. Each is added `NOT VALID` first (a moment's lock, no
//! scan of the rows), then validated, the largest child first, on both connections at once:
//! `VALIDATE CONSTRAINT` takes only SHARE UPDATE EXCLUSIVE on its table and ROW SHARE on the
//! parent, so two validations run side by side, two children of one parent included, where
//! adding each key whole (its check inside the `ADD`, which locks the parent against the other)
//! ran one after the other at the copy's end.
//!
//! The outcome of a key is what adding it whole gave: valid; kept `NOT VALID` when existing
//! rows break it (SQLite checks foreign keys only when told to, so old rows can; new rows are
//! checked, as SQLite with `foreign_keys` on would); left out when PostgreSQL refuses it or its
//! parent is not in the target, which fails the copy unless `allow_skip` names it.

use super::ddl::{MAX_IDENT, Names, truncate};
use super::report::Decision;
use super::schema::{SrcFk, SrcTable};
use super::target::target_exists;
use super::{OpError, db_error, describe};
use crate::fmt::quote_ident;
use sqlx::PgConnection;
use std::cell::RefCell;

/// A key added `NOT VALID`, waiting for its validation.
struct Pending {
    /// Its decision's place in the list.
    at: usize,
    table: String,
    name: String,
    /// The child's rows: the largest validates first.
    rows: u64,
    actions: String,
    /// Added NOT VALID by an earlier run that stopped before validating it.
    earlier: bool,
}

/// How a validation ended.
enum Validated {
    Valid,
    /// Existing rows break it: PostgreSQL's message.
    Broken(String),
    /// PostgreSQL refused it otherwise; the key was dropped.
    Refused(String),
}

/// Adds the foreign keys of `tables` (with their rows), each as its own decision, in the
/// tables' order; validates them on `pg` and, when given, `second` at once. A key that fails
/// the copy stops the adding, and the keys added before it are still validated before the
/// copy fails (as adding each whole left them valid).
pub(super) async fn add_foreign_keys(
    (pg, second): (&mut PgConnection, Option<&mut PgConnection>),
    tables: &[(&SrcTable, u64)],
    names: &Names,
    decisions: &mut Vec<Decision>,
) -> Result<(), OpError> {
    let mut pending = Vec::new();
    let mut failed = None;
    'tables: for (t, rows) in tables {
        for fk in &t.fks {
            let name = key_name(t, fk);
            let (d, added) = match add_not_valid(pg, t, fk, &name).await {
                Ok(x) => x,
                Err(e) => {
                    failed = Some(e);
                    break 'tables;
                }
            };
            if d.to == "not carried over"
                && let Err(e) = refuse_unless_named(&t.name, &d, &name, names)
            {
                failed = Some(e);
                break 'tables;
            }
            if let Some((actions, earlier)) = added {
                pending.push(Pending {
                    at: decisions.len(),
                    table: t.name.clone(),
                    name,
                    rows: *rows,
                    actions,
                    earlier,
                });
            }
            decisions.push(d);
        }
    }
    pending.sort_by_key(|p| std::cmp::Reverse(p.rows));
    let queue = RefCell::new(pending.into_iter());
    let mut results = match second {
        Some(b) => {
            let (x, y) =
                futures_util::future::join(validate_lane(pg, &queue), validate_lane(b, &queue))
                    .await;
            let mut all = x?;
            all.extend(y?);
            all
        }
        None => validate_lane(pg, &queue).await?,
    };
    // In the tables' order: the first key refused is the one the copy fails on.
    results.sort_by_key(|(p, _)| p.at);
    if let Some(e) = failed {
        return Err(e);
    }
    for (p, outcome) in results {
        let Some(d) = decisions.get_mut(p.at) else {
            continue;
        };
        match outcome {
            Validated::Valid if p.earlier => {
                d.reason = format!(
                    "added NOT VALID by an earlier run that stopped before validating it; \
                     validated now ({})",
                    p.actions
                );
            }
            Validated::Valid => {
                d.reason = format!("added after the load ({})", p.actions);
            }
            Validated::Broken(message) => {
                d.to = format!("{} NOT VALID", quote_ident(&p.name));
                d.reason = format!(
                    "existing rows break it ({message}): added NOT VALID, so new rows are \
                     checked; fix the rows, then `ALTER TABLE {} VALIDATE CONSTRAINT {}`",
                    quote_ident(&p.table),
                    quote_ident(&p.name)
                );
            }
            Validated::Refused(message) => {
                d.to = "not carried over".to_owned();
                d.reason = format!("PostgreSQL refused it: {message}");
                refuse_unless_named(&p.table, d, &p.name, names)?;
            }
        }
    }
    Ok(())
}

/// Validates keys from the queue on one connection until it is empty.
async fn validate_lane(
    pg: &mut PgConnection,
    queue: &RefCell<std::vec::IntoIter<Pending>>,
) -> Result<Vec<(Pending, Validated)>, OpError> {
    let mut done = Vec::new();
    loop {
        let Some(p) = queue.borrow_mut().next() else {
            return Ok(done);
        };
        let outcome = validate(pg, &p).await?;
        done.push((p, outcome));
    }
}

/// One key's validation; a key PostgreSQL refuses for another reason than its rows is dropped.
async fn validate(pg: &mut PgConnection, p: &Pending) -> Result<Validated, OpError> {
    let (table, name) = (quote_ident(&p.table), quote_ident(&p.name));
    let sql = format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name}");
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *pg)
        .await
    {
        Ok(_) => Ok(Validated::Valid),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23503") => {
            Ok(Validated::Broken(e.message().to_owned()))
        }
        Err(e) => {
            let message = describe(&e);
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}"
            )))
            .execute(&mut *pg)
            .await
            .map_err(db_error)?;
            Ok(Validated::Refused(message))
        }
    }
}

/// The name a key gets: `<table>_<columns>_fkey`, as Prisma names them, cut to fit.
fn key_name(t: &SrcTable, fk: &SrcFk) -> String {
    let plain: Vec<&str> = fk.from.iter().map(String::as_str).collect();
    truncate(&format!("{}_{}_fkey", t.name, plain.join("_")), MAX_IDENT)
}

/// A key left out fails the copy unless `allow_skip` names it.
fn refuse_unless_named(
    table: &str,
    d: &Decision,
    name: &str,
    names: &Names,
) -> Result<(), OpError> {
    if names.may_skip(name) {
        return Ok(());
    }
    Err(OpError::Failed(format!(
        "`{table}`: {} cannot be added: {}; copy its parent too, or let the copy leave it \
         out with `allow_skip: [{name}]`",
        d.from, d.reason
    )))
}

/// One foreign key, added `NOT VALID`: left out when its parent is not in the target or
/// PostgreSQL refuses it, kept when an earlier run added it. Gives the decision so far and,
/// when the key waits for its validation, its referential actions and whether an earlier run
/// added it (one that stopped between adding its keys and validating them).
async fn add_not_valid(
    pg: &mut PgConnection,
    t: &SrcTable,
    fk: &SrcFk,
    name: &str,
) -> Result<(Decision, Option<(String, bool)>), OpError> {
    let from: Vec<String> = fk.from.iter().map(|c| quote_ident(c)).collect();
    let mut decision = Decision {
        table: t.name.clone(),
        column: None,
        what: "foreign_key".to_owned(),
        from: format!(
            "FOREIGN KEY ({}) REFERENCES {}",
            from.join(", "),
            quote_ident(&fk.parent)
        ),
        to: String::new(),
        reason: String::new(),
    };
    if !target_exists(pg, &fk.parent).await? {
        decision.to = "not carried over".to_owned();
        decision.reason = format!("`{}` is not in the target", fk.parent);
        return Ok((decision, None));
    }
    let to = parent_columns(pg, fk).await?;
    let validated: Option<bool> = sqlx::query_scalar(
        "SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2",
    )
    .bind(quote_ident(&t.name))
    .bind(name)
    .fetch_optional(&mut *pg)
    .await
    .map_err(db_error)?;
    decision.to = quote_ident(name);
    let actions = format!(
        "ON UPDATE {}, ON DELETE {}",
        fk_action(&fk.on_update),
        fk_action(&fk.on_delete)
    );
    match validated {
        Some(true) => {
            decision.reason = "already added by an earlier run".to_owned();
            return Ok((decision, None));
        }
        Some(false) => return Ok((decision, Some((actions, true)))),
        None => {}
    }
    let sql = format!(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON UPDATE {} ON DELETE {} NOT VALID",
        quote_ident(&t.name),
        quote_ident(name),
        from.join(", "),
        quote_ident(&fk.parent),
        to.join(", "),
        fk_action(&fk.on_update),
        fk_action(&fk.on_delete)
    );
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *pg)
        .await
    {
        Ok(_) => Ok((decision, Some((actions, false)))),
        Err(e) => {
            decision.to = "not carried over".to_owned();
            decision.reason = format!("PostgreSQL refused it: {}", describe(&e));
            Ok((decision, None))
        }
    }
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
