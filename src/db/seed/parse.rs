//! Checking a seed document: the list of table entries, each entry's keys, its natural key
//! and generated columns, and row values. Every problem becomes a diagnostic with its
//! position; checking goes on after one. Rows are checked in `rows.rs`, secret specs in
//! `secrets.rs`.

use super::SeedError;
use super::model::{Generated, SeedSet, TableSeed};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::source::Source;
use crate::yaml::{self, Node, Value};
use serde_json::Value as Json;

/// Checks a seed document, collecting every problem.
pub fn parse(set: &str, source: Source) -> Result<SeedSet, SeedError> {
    let root = yaml::parse(&source).map_err(|d| SeedError::Invalid(vec![d]))?;
    let mut c = Checker {
        source: &source,
        diags: Vec::new(),
    };
    let tables = c.document(&root);
    if c.diags.is_empty() {
        Ok(SeedSet {
            name: set.to_owned(),
            source: source.clone(),
            tables,
        })
    } else {
        crate::diagnostic::sort(&mut c.diags);
        Err(SeedError::Invalid(c.diags))
    }
}

const ENTRY_KEYS: &[&str] = &["table", "key", "rows", "secrets", "generated"];

/// Collects the diagnostics of one seed document.
pub(super) struct Checker<'a> {
    pub source: &'a Source,
    pub diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    pub(super) fn err(
        &mut self,
        code: &'static str,
        node: &Node,
        message: String,
        hint: impl Into<String>,
    ) {
        self.diags.push(
            Diagnostic::error(code, message)
                .at(self.source, node.pos)
                .with_hint(hint),
        );
    }

    fn document(&mut self, root: &Node) -> Vec<TableSeed> {
        let items = match &root.value {
            Value::Seq(items) if !items.is_empty() => items,
            Value::Null | Value::Seq(_) => {
                self.err(
                    "seed-empty",
                    root,
                    "the seed file has no tables".to_owned(),
                    "list tables with their rows: `- table: Plan`, `key: [name]`, `rows: [...]`",
                );
                return Vec::new();
            }
            _ => {
                self.err(
                    "seed-not-list",
                    root,
                    format!("a seed file is a list of tables, not {}", article(root)),
                    "start each table with `- table: NAME`",
                );
                return Vec::new();
            }
        };
        items.iter().filter_map(|item| self.entry(item)).collect()
    }

    fn entry(&mut self, node: &Node) -> Option<TableSeed> {
        let Some(map) = node.as_map() else {
            self.err(
                "seed-type",
                node,
                format!("a table entry is a mapping, not {}", article(node)),
                "write `- table: NAME` with `key:` and `rows:` under it",
            );
            return None;
        };
        let before = self.diags.len();
        for (k, _) in map {
            match k.as_str() {
                Some(name) if ENTRY_KEYS.contains(&name) => {}
                Some(name) => {
                    let hint = match did_you_mean(name, ENTRY_KEYS.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("a table entry has {}", list(ENTRY_KEYS)),
                    };
                    self.diags.push(
                        Diagnostic::error("unknown-key", format!("unknown key `{name}`"))
                            .at(self.source, k.pos)
                            .with_width(name.chars().count())
                            .with_hint(hint),
                    );
                }
                None => self.err(
                    "seed-type",
                    k,
                    "keys are names".to_owned(),
                    format!("a table entry has {}", list(ENTRY_KEYS)),
                ),
            }
        }
        let table = match node.get("table") {
            Some(t) => match t.as_str() {
                Some(s) if !s.trim().is_empty() && !s.contains('\0') => Some(s.to_owned()),
                _ => {
                    self.err(
                        "seed-type",
                        t,
                        format!("`table` is a table name, not {}", article(t)),
                        "write the name as the schema spells it, e.g. `table: User`",
                    );
                    None
                }
            },
            None => {
                self.err(
                    "seed-missing-key",
                    node,
                    "the table entry has no `table`".to_owned(),
                    "add `table: NAME`",
                );
                None
            }
        };
        let key = self.key(node);
        let generated = self.generated(node);
        let secrets = self.secrets(node);
        let rows = self.rows(node, &key, &generated, &secrets);
        if self.diags.len() > before {
            return None;
        }
        Some(TableSeed {
            table: table?,
            pos: node.pos,
            key,
            generated,
            secrets,
            rows,
        })
    }

    fn name_list(&mut self, node: &Node, what: &str) -> Vec<String> {
        let items: Vec<&Node> = match &node.value {
            Value::Str(_) => vec![node],
            Value::Seq(items) => items.iter().collect(),
            _ => {
                self.err(
                    "seed-type",
                    node,
                    format!("`{what}` is a list of column names, not {}", article(node)),
                    format!("write `{what}: [name]`"),
                );
                return Vec::new();
            }
        };
        let mut out: Vec<String> = Vec::new();
        for item in items {
            match item.as_str() {
                Some(s) if !s.is_empty() && !s.contains('\0') => {
                    if out.iter().any(|o| o == s) {
                        self.err(
                            "seed-duplicate",
                            item,
                            format!("column `{s}` is listed twice in `{what}`"),
                            "list each column once",
                        );
                    } else {
                        out.push(s.to_owned());
                    }
                }
                _ => self.err(
                    "seed-type",
                    item,
                    format!("a column name is a string, not {}", article(item)),
                    format!("write `{what}: [name]`"),
                ),
            }
        }
        out
    }

    fn key(&mut self, entry: &Node) -> Vec<String> {
        let Some(node) = entry.get("key") else {
            self.err(
                "seed-missing-key",
                entry,
                "the table entry has no `key`".to_owned(),
                "name the natural key columns (a primary key or unique index), e.g. `key: [email]`; rows are matched by them",
            );
            return Vec::new();
        };
        let key = self.name_list(node, "key");
        if key.is_empty() && matches!(node.value, Value::Seq(_)) {
            self.err(
                "seed-type",
                node,
                "`key` is empty".to_owned(),
                "name at least one column, e.g. `key: [email]`",
            );
        }
        key
    }

    fn generated(&mut self, entry: &Node) -> Vec<(String, Generated)> {
        let Some(map) = self.column_map(
            entry,
            "generated",
            "maps columns to `uuid` or `now`",
            "write `generated: { id: uuid, updatedAt: now }`",
        ) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in map {
            let Some(col) = self.column_name(k, "write `generated: { id: uuid }`") else {
                continue;
            };
            match v.as_str() {
                Some("uuid") => out.push((col.to_owned(), Generated::Uuid)),
                Some("now") => out.push((col.to_owned(), Generated::Now)),
                _ => {
                    let hint = match v.as_str().and_then(|s| did_you_mean(s, ["uuid", "now"])) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "`uuid` makes a random id on insert; `now` sets the time on insert and on every change".to_owned(),
                    };
                    self.err(
                        "seed-type",
                        v,
                        format!("`generated.{col}` is `uuid` or `now`"),
                        hint,
                    );
                }
            }
        }
        out
    }

    /// The mapping of columns under `key` of an entry (`generated`, `secrets`); `None` when
    /// there is none, or when it is not a mapping, which is an error saying what it `maps`.
    pub(super) fn column_map<'n>(
        &mut self,
        entry: &'n Node,
        key: &str,
        maps: &str,
        hint: &str,
    ) -> Option<&'n [(Node, Node)]> {
        let node = entry.get(key)?;
        let map = node.as_map();
        if map.is_none() {
            self.err(
                "seed-type",
                node,
                format!("`{key}` {maps}, not {}", article(node)),
                hint,
            );
        }
        map
    }

    /// A mapping key as a column name; a key that is not a string is an error.
    pub(super) fn column_name<'n>(&mut self, k: &'n Node, hint: &str) -> Option<&'n str> {
        let col = k.as_str();
        if col.is_none() {
            self.err("seed-type", k, "a column name is a string".to_owned(), hint);
        }
        col
    }

    /// A row value as JSON; floats that JSON cannot hold are refused.
    pub(super) fn value(&mut self, node: &Node) -> Option<Json> {
        if !self.finite(node) {
            return None;
        }
        match node.to_json() {
            Ok(j) => Some(j),
            Err(pos) => {
                self.diags.push(
                    Diagnostic::error("seed-type", "mapping keys must be strings")
                        .at(self.source, pos)
                        .with_hint("quote the key"),
                );
                None
            }
        }
    }

    fn finite(&mut self, node: &Node) -> bool {
        match &node.value {
            Value::Float(f) if !f.is_finite() => {
                self.err(
                    "seed-type",
                    node,
                    "the value is not a finite number".to_owned(),
                    "write a number, or quote it to store the text",
                );
                false
            }
            Value::Seq(items) => {
                let mut ok = true;
                for i in items {
                    ok &= self.finite(i);
                }
                ok
            }
            Value::Map(entries) => {
                let mut ok = true;
                for (_, v) in entries {
                    ok &= self.finite(v);
                }
                ok
            }
            _ => true,
        }
    }
}

pub(super) fn article(node: &Node) -> String {
    crate::diagnostic::article(node.kind())
}

pub(super) fn list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

pub(super) fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{Generated, SeedError, SeedSet};
    use super::parse;
    use crate::source::Source;

    pub(in crate::db::seed) fn parse_text(text: &str) -> Result<SeedSet, SeedError> {
        parse("t", Source::new("seeds/t.yaml", text))
    }

    fn codes(r: Result<SeedSet, SeedError>) -> Vec<(String, usize, usize)> {
        match r {
            Err(SeedError::Invalid(d)) => d
                .into_iter()
                .map(|d| (d.code.to_owned(), d.line, d.column))
                .collect(),
            Err(SeedError::Op(e)) => panic!("unexpected failure {e}"),
            Ok(_) => panic!("expected diagnostics"),
        }
    }

    #[test]
    fn a_production_like_set_parses() {
        let set = parse_text(
            r#"
- table: Plan
  key: [name]
  generated: { id: uuid, updatedAt: now }
  rows:
    - { name: Basic Monthly, price: 29.99, features: [a, b], limits: { visits: 5 }, active: true, note: null }
- table: User
  key: email
  secrets:
    password: { env: ADMIN_DEFAULT_PASSWORD, hash: argon2id }
  rows:
    - { email: admin@example.com, role: ADMIN }
"#,
        )
        .unwrap();
        assert_eq!(set.tables.len(), 2);
        assert_eq!(set.tables[0].rows[0].values.len(), 6);
        assert_eq!(
            set.tables[0].generated[1],
            ("updatedAt".into(), Generated::Now)
        );
        assert_eq!(set.tables[1].key, vec!["email".to_owned()]);
        assert!(!set.tables[1].secrets[0].update);
    }

    #[test]
    fn problems_are_all_reported_with_positions() {
        let got = codes(parse_text(
            "- table: Plan\n  kye: [name]\n  rows:\n    - { price: 1 }\n- table: User\n  key: [email]\n  secrets: { password: { env: 'not a var' } }\n  rows:\n    - { email: a, password: x }\n    - { email: a }\n",
        ));
        assert_eq!(
            got,
            vec![
                ("seed-missing-key".to_owned(), 1, 3),
                ("unknown-key".to_owned(), 2, 3),
                ("seed-type".to_owned(), 7, 31),
                ("seed-secret-in-row".to_owned(), 9, 19),
                ("seed-duplicate-row".to_owned(), 10, 7),
            ]
        );
    }

    #[test]
    fn yaml_errors_and_empty_files_are_diagnostics() {
        assert_eq!(codes(parse_text("- table: [Plan\n"))[0].0, "yaml-syntax");
        assert_eq!(codes(parse_text("# nothing\n"))[0].0, "seed-empty");
        assert_eq!(codes(parse_text("table: Plan\n"))[0].0, "seed-not-list");
    }

    #[test]
    fn null_keys_and_generated_keys_are_refused() {
        let got = codes(parse_text(
            "- table: T\n  key: [id]\n  generated: { id: uuid }\n  rows: [{ name: x }]\n- table: U\n  key: [k]\n  rows: [{ k: null }]\n",
        ));
        let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert!(names.contains(&"seed-key-generated"), "{got:?}");
        assert!(names.contains(&"seed-key-missing"), "{got:?}");
    }
}
