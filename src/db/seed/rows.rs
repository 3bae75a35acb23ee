//! Checking a table entry's rows: each a mapping of columns to plain or JSON values, every
//! row with its natural key (present, plain, not null, once per entry), and no column that
//! `secrets` or `generated` already fills.

use super::model::{Generated, SecretSpec, SeedRow};
use super::parse::{Checker, article};
use crate::yaml::{Node, Value};
use serde_json::Value as Json;

/// Rows' key values seen so far in one entry, with the line of the row that gave them.
type Seen = Vec<(Vec<Json>, usize)>;

impl Checker<'_> {
    /// The entry's `rows`, checked against its `key`, `generated` and `secrets`.
    pub(super) fn rows(
        &mut self,
        entry: &Node,
        key: &[String],
        generated: &[(String, Generated)],
        secrets: &[SecretSpec],
    ) -> Vec<SeedRow> {
        let Some(node) = entry.get("rows") else {
            self.err(
                "seed-missing-key",
                entry,
                "the table entry has no `rows`".to_owned(),
                "add `rows:` with one mapping per row",
            );
            return Vec::new();
        };
        let Value::Seq(items) = &node.value else {
            self.err(
                "seed-type",
                node,
                format!("`rows` is a list of rows, not {}", article(node)),
                "write one mapping per row: `- { name: Basic, price: 29 }`",
            );
            return Vec::new();
        };
        self.sources(entry, key, generated, secrets);
        let mut out = Vec::new();
        let mut seen: Seen = Vec::new();
        for row in items {
            let Some(map) = row.as_map() else {
                self.err(
                    "seed-type",
                    row,
                    format!(
                        "a row is a mapping of columns to values, not {}",
                        article(row)
                    ),
                    "write `- { name: Basic, price: 29 }`",
                );
                continue;
            };
            let values = self.row_values(map, generated, secrets);
            self.row_key(row, map, &values, key, &mut seen);
            out.push(SeedRow {
                pos: row.pos,
                values,
            });
        }
        out
    }

    /// Refuses a column with two sources: a key that is generated or secret, a secret that is
    /// also generated.
    fn sources(
        &mut self,
        entry: &Node,
        key: &[String],
        generated: &[(String, Generated)],
        secrets: &[SecretSpec],
    ) {
        for (col, _) in generated {
            if key.contains(col) {
                self.err(
                    "seed-key-generated",
                    entry.get("generated").unwrap_or(entry),
                    format!("key column `{col}` cannot be generated"),
                    "a natural key identifies the row in every run; a generated value would differ each time",
                );
            }
        }
        for s in secrets {
            if key.contains(&s.column) {
                self.err(
                    "seed-key-secret",
                    entry.get("secrets").unwrap_or(entry),
                    format!("key column `{}` cannot be a secret", s.column),
                    "match rows by a column that is not secret, e.g. `email`",
                );
            }
            if generated.iter().any(|(g, _)| g == &s.column) {
                self.err(
                    "seed-duplicate",
                    entry.get("secrets").unwrap_or(entry),
                    format!("column `{}` is both generated and a secret", s.column),
                    "give the column one source",
                );
            }
        }
    }

    /// The row's values in file order, leaving out columns that `secrets` or `generated` fill.
    fn row_values(
        &mut self,
        map: &[(Node, Node)],
        generated: &[(String, Generated)],
        secrets: &[SecretSpec],
    ) -> Vec<(String, Json)> {
        let mut values = Vec::new();
        for (k, v) in map {
            let Some(col) = self.column_name(k, "quote the column name") else {
                continue;
            };
            if secrets.iter().any(|s| s.column == col) {
                self.err(
                    "seed-secret-in-row",
                    k,
                    format!("`{col}` comes from `secrets`; a row cannot give it"),
                    "remove it from the row: the value is read from the environment and stored hashed",
                );
                continue;
            }
            if generated.iter().any(|(g, _)| g == col) {
                self.err(
                    "seed-generated-in-row",
                    k,
                    format!("`{col}` is generated; a row cannot give it"),
                    format!("remove `{col}` from the row or from `generated`"),
                );
                continue;
            }
            match self.value(v) {
                Some(j) => values.push((col.to_owned(), j)),
                None => continue,
            }
        }
        values
    }

    /// Checks the row's natural key: every key column given as a plain, non-null value, and
    /// no other row of the entry with the same key.
    fn row_key(
        &mut self,
        row: &Node,
        map: &[(Node, Node)],
        values: &[(String, Json)],
        key: &[String],
        seen: &mut Seen,
    ) {
        let mut key_values = Vec::new();
        for col in key {
            match values.iter().find(|(c, _)| c == col) {
                None => self.err(
                    "seed-key-missing",
                    row,
                    format!("the row has no value for key column `{col}`"),
                    "every row gives its natural key; it is how a second run finds the row",
                ),
                Some((_, Json::Null)) => self.err(
                    "seed-key-missing",
                    map.iter()
                        .find(|(k, _)| k.as_str() == Some(col))
                        .map_or(row, |(_, v)| v),
                    format!("key column `{col}` is null"),
                    "a null never matches, so the row would be inserted again on every run",
                ),
                Some((_, Json::Array(_) | Json::Object(_))) => self.err(
                    "seed-type",
                    map.iter()
                        .find(|(k, _)| k.as_str() == Some(col))
                        .map_or(row, |(_, v)| v),
                    format!("key column `{col}` must be a plain value"),
                    "use a string, number or boolean for key columns",
                ),
                Some((_, v)) => key_values.push(v.clone()),
            }
        }
        if key_values.len() == key.len() && !key.is_empty() {
            if let Some((_, line)) = seen.iter().find(|(k, _)| *k == key_values) {
                let line = *line;
                self.err(
                    "seed-duplicate-row",
                    row,
                    "another row of this table entry has the same key".to_owned(),
                    format!("the first is at line {line}; each key appears once per table entry"),
                );
            } else {
                seen.push((key_values, row.pos.line));
            }
        }
    }
}
