//! Applying a seed set: one transaction; each row is looked up by its natural key and then
//! upserted (`INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE` a column differs), so a second
//! run changes nothing. Any error, or the run stopping, leaves nothing written.

use super::SeedError;
use super::columns::{Bind, Columns};
use super::error::failed;
use super::model::{Counts, Generated, SecretSpec, SeedReport, SeedRow, SeedSet, TableSeed};
use super::parse::list;
use super::secrets::{Secrets, hash_blocking, verify_blocking};
use super::tx::Tx;
use crate::db::op::{Op, OpError};
use crate::db::{Db, describe};
use crate::diagnostic::did_you_mean;
use crate::fmt::quote_ident;
use crate::source::Pos;
use serde_json::Value as Json;
use std::sync::atomic::{AtomicBool, Ordering};

/// A row as found before the upsert: its stored secrets as text, in `secrets` order.
type Existing = Option<Vec<Option<String>>>;

/// Applies the set in one transaction: all of it, or (on any error, or when the run is
/// cancelled or out of time) none of it. A failure says so (`OpError::NothingCommitted`, or a
/// timeout) unless it came while committing, when whether the commit took is unknown.
pub async fn apply(
    db: &mut Db,
    set: &SeedSet,
    secrets: &Secrets,
    op: &Op<'_>,
) -> Result<SeedReport, SeedError> {
    let committing = AtomicBool::new(false);
    // Dropping the unfinished work drops its transaction, which rolls it back; a run that has
    // already stopped starts nothing.
    tokio::select! {
        biased;
        stopped = op.stopped() => Err(SeedError::Op(match stopped {
            OpError::TimedOut(t) if committing.load(Ordering::SeqCst) => OpError::failed(format!(
                "seed set `{}` timed out after {} while committing: whether it was written is unknown; check the target",
                set.name,
                crate::fmt::duration(t)
            )),
            other => other,
        })),
        r = apply_all(db, set, secrets, &committing) => r,
    }
}

async fn apply_all(
    db: &mut Db,
    set: &SeedSet,
    secrets: &Secrets,
    committing: &AtomicBool,
) -> Result<SeedReport, SeedError> {
    let mut tx = Tx::begin(db)
        .await
        .map_err(|e| failed(format!("cannot start a transaction: {e}")).nothing_committed())?;
    let mut report = SeedReport::default();
    for t in &set.tables {
        // An error drops the transaction unfinished: nothing of it commits.
        let counts = apply_table(&mut tx, set, t, secrets)
            .await
            .map_err(SeedError::nothing_committed)?;
        report.count(&t.table, counts);
    }
    committing.store(true, Ordering::SeqCst);
    tx.commit().await.map_err(|e| {
        let err = failed(format!(
            "seed set `{}`: commit failed: {}",
            set.name,
            describe(&e)
        ));
        // The server refused the commit: nothing committed. A lost connection leaves it
        // unknown.
        if e.as_database_error().is_some() {
            err.nothing_committed()
        } else {
            err
        }
    })?;
    Ok(report)
}

/// Where `pos` is in the seed file, as `file:line:column`.
fn at(set: &SeedSet, pos: Pos) -> String {
    format!("{}:{}:{}", set.source.display_path(), pos.line, pos.col)
}

async fn apply_table(
    tx: &mut Tx<'_>,
    set: &SeedSet,
    t: &TableSeed,
    secrets: &Secrets,
) -> Result<Counts, SeedError> {
    let entry = Entry {
        set,
        t,
        columns: table_columns(tx, set, t).await?,
    };
    let mut counts = Counts::default();
    for row in &t.rows {
        // Does the row exist, and what secrets does it hold?
        let existing = entry.probe(tx, row).await?;
        let (upsert, binds) = entry.upsert(row, secrets, &existing).await?;
        let changed = tx.first(&upsert, &binds, 0).await.map_err(|e| {
            let mut msg = describe(&e);
            if let Some(hint) = hint_for(&e, t) {
                msg.push_str(&format!(" (hint: {hint})"));
            }
            entry.fail(row, msg)
        })?;
        match (changed.is_some(), existing.is_some()) {
            (true, false) => counts.inserted += 1,
            (true, true) => counts.updated += 1,
            (false, _) => counts.unchanged += 1,
        }
    }
    Ok(counts)
}

/// The table's columns, once the table and every column the entry names are known to exist.
async fn table_columns(
    tx: &mut Tx<'_>,
    set: &SeedSet,
    t: &TableSeed,
) -> Result<Columns, SeedError> {
    let columns = tx.columns(&t.table).await.map_err(|e| {
        failed(format!(
            "{}: cannot read the columns of `{}`: {}",
            at(set, t.pos),
            t.table,
            describe(&e)
        ))
    })?;
    let Some(columns) = columns else {
        let names = tx.table_names().await;
        let hint = match did_you_mean(&t.table, names.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "apply the migrations first, or check the spelling (names are case-sensitive)"
                .to_owned(),
        };
        return Err(failed(format!(
            "{}: table `{}` does not exist (hint: {hint})",
            at(set, t.pos),
            t.table
        )));
    };
    let mut all_cols: Vec<(&str, Pos)> = Vec::new();
    for r in &t.rows {
        for (c, _) in &r.values {
            all_cols.push((c, r.pos));
        }
    }
    all_cols.extend(t.generated.iter().map(|(c, _)| (c.as_str(), t.pos)));
    all_cols.extend(t.secrets.iter().map(|s| (s.column.as_str(), t.pos)));
    for (c, pos) in all_cols {
        if !columns.has(c) {
            let names = columns.names();
            let hint = match did_you_mean(c, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("its columns are {}", list(&names)),
            };
            return Err(failed(format!(
                "{}: table `{}` has no column `{c}` (hint: {hint})",
                at(set, pos),
                t.table
            )));
        }
    }
    Ok(columns)
}

/// One table entry being applied: its columns, and where its messages point.
struct Entry<'a> {
    set: &'a SeedSet,
    t: &'a TableSeed,
    columns: Columns,
}

/// The columns, SQL expressions and bound values of one upsert, in order, and the columns
/// it may update.
#[derive(Default)]
struct Statement {
    names: Vec<String>,
    exprs: Vec<String>,
    binds: Vec<Bind>,
    update: Vec<String>,
}

impl Statement {
    fn push(
        &mut self,
        columns: &Columns,
        col: &str,
        v: &Json,
        updatable: bool,
    ) -> Result<(), String> {
        let (b, expr) = columns.bind(col, v, self.binds.len() + 1)?;
        self.names.push(col.to_owned());
        self.exprs.push(expr);
        self.binds.push(b);
        if updatable {
            self.update.push(col.to_owned());
        }
        Ok(())
    }
}

impl Entry<'_> {
    /// A failure of `row`, with its position and table.
    fn fail(&self, row: &SeedRow, e: String) -> SeedError {
        failed(format!(
            "{}: `{}`: {e}",
            at(self.set, row.pos),
            self.t.table
        ))
    }

    /// Looks the row up by its natural key: `None` when it is new, else its stored secrets.
    async fn probe(&self, tx: &mut Tx<'_>, row: &SeedRow) -> Result<Existing, SeedError> {
        let t = self.t;
        let mut where_sql = Vec::new();
        let mut where_binds = Vec::new();
        for (i, k) in t.key.iter().enumerate() {
            let v = row
                .values
                .iter()
                .find(|(c, _)| c == k)
                .map(|(_, v)| v)
                .unwrap_or(&Json::Null);
            let (b, expr) = self
                .columns
                .bind(k, v, i + 1)
                .map_err(|e| self.fail(row, e))?;
            where_sql.push(format!("{} = {expr}", quote_ident(k)));
            where_binds.push(b);
        }
        let select_cols: Vec<String> = if t.secrets.is_empty() {
            vec!["1".to_owned()]
        } else {
            t.secrets
                .iter()
                .map(|s| self.columns.read_text(&s.column))
                .collect()
        };
        let probe = format!(
            "SELECT {} FROM {} WHERE {}",
            select_cols.join(", "),
            quote_ident(&t.table),
            where_sql.join(" AND ")
        );
        tx.first(&probe, &where_binds, t.secrets.len())
            .await
            .map_err(|e| self.fail(row, describe(&e)))
    }

    /// The upsert of `row` and its bound values: the given columns, the secrets, the
    /// generated values; on conflict, an update only where a column differs.
    async fn upsert(
        &self,
        row: &SeedRow,
        secrets: &Secrets,
        existing: &Existing,
    ) -> Result<(String, Vec<Bind>), SeedError> {
        let t = self.t;
        let mut st = Statement::default();
        for (c, v) in &row.values {
            st.push(&self.columns, c, v, !t.key.contains(c))
                .map_err(|e| self.fail(row, e))?;
        }
        for (i, s) in t.secrets.iter().enumerate() {
            let stored = existing.as_ref().map(|r| r.get(i).cloned().flatten());
            let (value, updatable) = secret_value(s, secrets.get(&s.env)?, stored).await?;
            st.push(&self.columns, &s.column, &value, updatable)
                .map_err(|e| self.fail(row, e))?;
        }
        let mut set_cols: Vec<String> = st
            .update
            .iter()
            .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
            .collect();
        for (c, g) in &t.generated {
            st.names.push(c.clone());
            st.exprs.push(self.columns.generated(c, *g));
            if *g == Generated::Now {
                set_cols.push(format!("{0} = EXCLUDED.{0}", quote_ident(c)));
            }
        }
        let quoted: Vec<String> = st.names.iter().map(|c| quote_ident(c)).collect();
        let keys: Vec<String> = t.key.iter().map(|c| quote_ident(c)).collect();
        let conflict = if st.update.is_empty() {
            "DO NOTHING".to_owned()
        } else {
            let differs: Vec<String> = st
                .update
                .iter()
                .map(|c| self.columns.differs(&t.table, c))
                .collect();
            format!(
                "DO UPDATE SET {} WHERE {}",
                set_cols.join(", "),
                differs.join(" OR ")
            )
        };
        let upsert = format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {conflict} RETURNING 1",
            quote_ident(&t.table),
            quoted.join(", "),
            st.exprs.join(", "),
            keys.join(", ")
        );
        Ok((upsert, st.binds))
    }
}

/// The value a secret column gets, and whether an existing row's value may be replaced.
/// `stored` is `None` for a new row, else the row's stored hash (if any).
async fn secret_value(
    s: &SecretSpec,
    value: &str,
    stored: Option<Option<String>>,
) -> Result<(Json, bool), SeedError> {
    // The proposed row of an upsert is checked (NOT NULL) before the conflict is, so a kept
    // secret is still given: as the stored value, and left out of the update.
    Ok(match stored {
        Some(stored) if !s.update => (stored.map_or(Json::Null, Json::String), false),
        Some(Some(h)) if verify_blocking(value, &h).await => (Json::String(h), true),
        _ => (Json::String(hash_blocking(value).await?), true),
    })
}

/// A hint for the errors a seed file causes most: a `key` that is no unique index, and a
/// required column no row gives.
fn hint_for(e: &sqlx::Error, t: &TableSeed) -> Option<String> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let message = db.message();
    let keys = list(&t.key.iter().map(String::as_str).collect::<Vec<_>>());
    if code == "42P10" || message.contains("does not match any PRIMARY KEY or UNIQUE") {
        return Some(format!(
            "`key` ({keys}) must be exactly the columns of a primary key or unique index of `{}`",
            t.table
        ));
    }
    if code == "23502" || message.contains("NOT NULL constraint failed") {
        return Some(
            "give the column in every row, or let the database make it: `generated: { id: uuid }` or `generated: { updatedAt: now }`"
                .to_owned(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::{Secrets, SeedError, parse};
    use super::apply;
    use crate::db::op::OpError;
    use crate::db::op::testing::cancelled_on_sqlite;
    use crate::source::Source;

    #[test]
    fn a_cancelled_run_stops_the_set_and_writes_nothing() {
        cancelled_on_sqlite("seed", async |db, op| {
            db.execute("CREATE TABLE T (k TEXT PRIMARY KEY)", &[], false)
                .await
                .unwrap();
            let text = "- table: T\n  key: [k]\n  rows: [{ k: a }]\n";
            let set = parse("t", Source::new("seeds/t.yaml", text)).unwrap();
            let secrets = Secrets::resolve(&set, |_| None, |_| {}).unwrap();
            let r = apply(db, &set, &secrets, op).await;
            assert!(
                matches!(r, Err(SeedError::Op(OpError::Interrupted))),
                "{:?}",
                r.map(|_| ())
            );
            let rows = db.execute("SELECT k FROM T", &[], false).await.unwrap();
            assert_eq!(rows.row_count, 0);
        });
    }
}
