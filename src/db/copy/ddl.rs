//! The statements that recreate a table in PostgreSQL: `CREATE TABLE` with types, NOT NULL and
//! defaults, then its primary key, UNIQUE constraints and indexes, under names that fit.

use super::defaults::translate_default;
use super::plan::Planned;
use super::report::Decision;
use super::schema::{SrcIndex, SrcTable};
use super::sqltext::quote_columns;
use super::types::Kind;
use crate::fmt::quote_ident;
use std::collections::HashSet;

/// PostgreSQL identifiers longer than this are truncated by the server.
pub(super) const MAX_IDENT: usize = 63;

/// Allocates PostgreSQL names for indexes and constraints, which share one namespace per
/// schema, within the 63-byte limit.
#[derive(Default)]
pub(super) struct Names {
    used: HashSet<String>,
    /// `allow_skip`: indexes and constraints that may be left out when PostgreSQL refuses
    /// them (names, or `all`). With the source's time zone, the settings every table shares.
    pub(super) allow_skip: Vec<String>,
    /// The zone of the source's date-time text without an offset (`None`: UTC).
    pub(super) zone: Option<chrono_tz::Tz>,
}

impl Names {
    /// Whether the index or constraint `name` may be left out when it cannot be translated.
    pub(super) fn may_skip(&self, name: &str) -> bool {
        self.allow_skip.iter().any(|a| a == name || a == "all")
    }

    /// `wanted`, cut to fit and made unique with a `_N` suffix when taken.
    pub(super) fn take(&mut self, wanted: &str) -> String {
        let base = truncate(wanted, MAX_IDENT);
        if self.used.insert(base.clone()) {
            return base;
        }
        for n in 1.. {
            let suffix = format!("_{n}");
            let candidate = format!("{}{suffix}", truncate(wanted, MAX_IDENT - suffix.len()));
            if self.used.insert(candidate.clone()) {
                return candidate;
            }
        }
        base
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Index and constraint statements of a table, and decisions for what is left out.
pub(super) struct IndexPlan {
    pub(super) name: String,
    pub(super) sql: String,
    /// Tried in a savepoint: PostgreSQL may refuse SQLite's SQL, which fails the table unless
    /// `allow_skip` lets it be left out.
    pub(super) optional: bool,
    pub(super) decision: Decision,
}

/// The table's primary key, UNIQUE constraints and indexes, oldest first.
pub(super) fn index_plans(t: &SrcTable, names: &mut Names) -> Vec<IndexPlan> {
    let mut out = Vec::new();
    if !t.pk.is_empty() {
        out.push(pk_plan(t, names));
    }
    // pragma_index_list lists the newest index first; oldest first keeps names stable.
    for ix in t.indexes.iter().rev() {
        if ix.origin == "pk" {
            continue;
        }
        let expression = ix.columns.iter().any(Option::is_none);
        if expression || ix.partial {
            let Some(sql) = &ix.sql else { continue };
            names.used.insert(ix.name.clone());
            out.push(IndexPlan {
                name: ix.name.clone(),
                sql: translated_index(t, ix, sql),
                optional: true,
                decision: Decision {
                    table: t.name.clone(),
                    column: None,
                    what: if ix.unique { "unique" } else { "index" }.to_owned(),
                    from: sql.clone(),
                    to: translated_index(t, ix, sql),
                    reason: if expression {
                        "an index on expressions: its SQL with the columns quoted as created"
                            .to_owned()
                    } else {
                        "a partial index: its SQL with the columns quoted as created".to_owned()
                    },
                },
            });
            continue;
        }
        out.push(column_index_plan(t, ix, names));
    }
    out
}

/// An index SQLite defines by expressions or a WHERE clause, for PostgreSQL: its name and
/// table quoted, and in its expressions and predicate the columns named as they were created.
fn translated_index(t: &SrcTable, ix: &SrcIndex, sql: &str) -> String {
    let cols: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    let rest = sql.find('(').map_or("", |at| &sql[at..]);
    format!(
        "CREATE {}INDEX {} ON {} {}",
        if ix.unique { "UNIQUE " } else { "" },
        quote_ident(&ix.name),
        quote_ident(&t.name),
        quote_columns(rest, &cols)
    )
}

/// `PRIMARY KEY`, added as a named constraint.
fn pk_plan(t: &SrcTable, names: &mut Names) -> IndexPlan {
    let table = quote_ident(&t.name);
    let cols: Vec<String> =
        t.pk.iter()
            .map(|&i| quote_ident(&t.columns[i].name))
            .collect();
    let name = names.take(&format!("{}_pkey", t.name));
    IndexPlan {
        name: name.clone(),
        sql: format!(
            "ALTER TABLE {table} ADD CONSTRAINT {} PRIMARY KEY ({})",
            quote_ident(&name),
            cols.join(", ")
        ),
        optional: false,
        decision: Decision {
            table: t.name.clone(),
            column: None,
            what: "primary_key".to_owned(),
            from: format!("PRIMARY KEY ({})", cols.join(", ")),
            to: format!(
                "PRIMARY KEY ({}) as {}",
                cols.join(", "),
                quote_ident(&name)
            ),
            reason: "added after the load".to_owned(),
        },
    }
}

/// An index or UNIQUE constraint on plain columns, rebuilt for PostgreSQL.
fn column_index_plan(t: &SrcTable, ix: &SrcIndex, names: &mut Names) -> IndexPlan {
    let table = quote_ident(&t.name);
    let cols: Vec<(String, bool, String)> = ix.columns.iter().flatten().cloned().collect();
    let list: Vec<String> = cols
        .iter()
        .map(|(c, desc, _)| format!("{}{}", quote_ident(c), if *desc { " DESC" } else { "" }))
        .collect();
    let collations: Vec<&str> = cols
        .iter()
        .map(|(_, _, coll)| coll.as_str())
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("BINARY"))
        .collect();
    let mut reason = "added after the load".to_owned();
    if !collations.is_empty() {
        reason = format!(
            "added after the load; collation {} is not carried over, so comparisons in \
             this index are case- and byte-exact",
            collations.join(", ")
        );
    }
    let (sql, what, name) = if ix.origin == "u" {
        let plain: Vec<&str> = cols.iter().map(|(c, _, _)| c.as_str()).collect();
        let name = names.take(&format!("{}_{}_key", t.name, plain.join("_")));
        (
            format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} UNIQUE ({})",
                quote_ident(&name),
                list.join(", ")
            ),
            "unique",
            name,
        )
    } else {
        let name = names.take(&ix.name);
        (
            format!(
                "CREATE {}INDEX {} ON {table} ({})",
                if ix.unique { "UNIQUE " } else { "" },
                quote_ident(&name),
                list.join(", ")
            ),
            if ix.unique { "unique" } else { "index" },
            name,
        )
    };
    IndexPlan {
        name: name.clone(),
        sql,
        optional: false,
        decision: Decision {
            table: t.name.clone(),
            column: None,
            what: what.to_owned(),
            from: ix
                .sql
                .clone()
                .unwrap_or_else(|| format!("UNIQUE ({})", list.join(", "))),
            to: quote_ident(&name),
            reason,
        },
    }
}

/// `CREATE TABLE` with types, NOT NULL and defaults; keys and indexes come after the load.
pub(super) fn create_sql(
    t: &SrcTable,
    plan: &Planned<'_>,
    decisions: &mut Vec<Decision>,
) -> String {
    let mut cols = Vec::new();
    for (i, c) in t.columns.iter().enumerate() {
        let kind = plan.cols[i].kind;
        let mut def = format!("{} {}", quote_ident(&c.name), plan.cols[i].ddl());
        // The identity column is NOT NULL by definition; SQLite's rowid cannot be NULL either.
        if c.notnull && kind != Kind::Identity {
            def.push_str(" NOT NULL");
        }
        if let Some(d) = &c.default
            && kind != Kind::Identity
        {
            match translate_default(d, kind) {
                Ok(Some(pg)) => {
                    def.push_str(&format!(" DEFAULT {pg}"));
                    decisions.push(Decision {
                        table: t.name.clone(),
                        column: Some(c.name.clone()),
                        what: "default".to_owned(),
                        from: d.clone(),
                        to: pg,
                        reason: "translated".to_owned(),
                    });
                }
                Ok(None) => {}
                Err(why) => decisions.push(Decision {
                    table: t.name.clone(),
                    column: Some(c.name.clone()),
                    what: "default".to_owned(),
                    from: d.clone(),
                    to: "not carried over".to_owned(),
                    reason: why,
                }),
            }
        }
        cols.push(def);
    }
    format!(
        "CREATE TABLE {} ({})",
        quote_ident(&t.name),
        cols.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::Names;

    #[test]
    fn names_stay_within_the_limit_and_unique() {
        let mut n = Names::default();
        let long = "x".repeat(70);
        let a = n.take(&long);
        let b = n.take(&long);
        assert_eq!(a.len(), 63);
        assert!(b.len() <= 63);
        assert_ne!(a, b);
    }
}
