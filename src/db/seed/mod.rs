//! Seed data: baseline rows applied as upserts by natural key, secrets hashed with argon2id.
//!
//! A seed set is one YAML file under the seeds folder, `seeds/<set>.yaml`: a list of table
//! entries, applied in order, all in one transaction.
//!
//! ```yaml
//! - table: Plan                    # the table, quoted as written ("Plan", "createdAt")
//!   key: [name]                    # natural key: a primary key or unique index of the table
//!   generated:                     # optional: values the database makes
//!     id: uuid                     #   a random UUID, on insert only
//!     updatedAt: now               #   the current time, on insert and whenever the row changes
//!   rows:
//!     - { name: Basic Monthly, price: 29.99, interval: MONTHLY, isActive: true,
//!         features: [Video visits, Lab results], limits: { visits: 5 } }
//! - table: User
//!   key: [email]
//!   secrets:                       # optional: a column filled from the environment, hashed
//!     password: { env: ADMIN_DEFAULT_PASSWORD, hash: argon2id }
//!   rows:
//!     - { email: admin@example.com, role: ADMIN, firstName: System }
//! ```
//!
//! `key` names the columns rows are matched by (`key: email` for one); they must be exactly a
//! primary key or unique index of the table, which `ON CONFLICT` needs. `secrets` takes
//! `env` (the variable's name), `hash` (only `argon2id`, the default) and `update` (default
//! `false`). A table may appear in several entries (rows with different secrets, say).
//!
//! Values: strings, numbers, booleans and `null` go to any column and are converted by the
//! database to the column's type (so enum labels, timestamps, UUIDs and decimals are written
//! as strings or numbers). A list goes to an array column (PostgreSQL `text[]`, enum arrays)
//! or a JSON column; a mapping goes to a JSON column. On SQLite lists and mappings are stored
//! as JSON text.
//!
//! Semantics: a row is inserted when no row has its natural key; otherwise the columns it
//! lists (other than the key) are updated, but only when one of them differs, so a second run
//! changes nothing. Columns a row does not list are left alone, and get the table's default
//! on insert. Secrets are read from the environment (refused when missing or shorter than
//! [`MIN_SECRET_LEN`] characters) and stored as argon2id PHC strings; by default only when the
//! row is inserted, so a password changed after the first login survives re-seeding. With
//! `update: true` the stored hash is replaced when it does not verify against the variable,
//! and kept when it does (a fresh salt every run would make every run an update).

use crate::db::{Db, describe};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::source::{Pos, Source};
use crate::yaml::{self, Node, Value};
use serde_json::Value as Json;
use sqlx::{Connection, Row};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Secrets shorter than this many characters are refused.
pub const MIN_SECRET_LEN: usize = 16;

/// A parsed and checked seed file.
#[derive(Debug, Clone)]
pub struct SeedSet {
    pub name: String,
    pub source: Source,
    pub tables: Vec<TableSeed>,
}

/// One entry of a seed file: rows for one table.
#[derive(Debug, Clone)]
pub struct TableSeed {
    pub table: String,
    pub pos: Pos,
    pub key: Vec<String>,
    pub generated: Vec<(String, Generated)>,
    pub secrets: Vec<SecretSpec>,
    pub rows: Vec<SeedRow>,
}

/// A value the database makes for a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generated {
    /// A random UUID, on insert only (Prisma's client-side `@default(uuid())`/`cuid()` ids).
    Uuid,
    /// The current time, on insert and on every change (Prisma's `@updatedAt`).
    Now,
}

/// A column whose value comes from an environment variable, stored hashed.
#[derive(Debug, Clone)]
pub struct SecretSpec {
    pub column: String,
    pub env: String,
    /// Replace the stored hash when it does not verify against the variable.
    pub update: bool,
}

#[derive(Debug, Clone)]
pub struct SeedRow {
    pub pos: Pos,
    /// Columns in the order the file gives them.
    pub values: Vec<(String, Json)>,
}

/// Rows inserted, updated and left unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
    }
}

/// What applying a set did, per table in file order (a table listed twice is summed).
#[derive(Debug, Clone, Default)]
pub struct SeedReport {
    pub tables: Vec<(String, Counts)>,
}

impl SeedReport {
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for (_, c) in &self.tables {
            t.add(*c);
        }
        t
    }

    fn count(&mut self, table: &str, c: Counts) {
        match self.tables.iter_mut().find(|(t, _)| t == table) {
            Some((_, have)) => have.add(c),
            None => self.tables.push((table.to_owned(), c)),
        }
    }
}

/// Why a seed set could not be applied.
#[derive(Debug)]
pub enum SeedError {
    /// The file is invalid: every problem, each with its position.
    Invalid(Vec<Diagnostic>),
    /// Anything else, as one message (never containing a secret value).
    Failed(String),
}

impl SeedError {
    /// The human form: rendered diagnostics, or the message.
    pub fn render(&self) -> String {
        match self {
            SeedError::Invalid(diags) => {
                let n = diags.len();
                let mut out = format!(
                    "the seed file is invalid ({n} problem{})",
                    if n == 1 { "" } else { "s" }
                );
                for d in diags {
                    out.push('\n');
                    out.push_str(d.render(false).trim_end());
                }
                out
            }
            SeedError::Failed(m) => m.clone(),
        }
    }
}

/// The file of seed set `set` in `dir`: `<set>.yaml`, else `<set>.yml`.
pub fn set_path(dir: &Path, set: &str) -> Result<PathBuf, SeedError> {
    let plain = !set.is_empty()
        && !set.starts_with('.')
        && set
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plain {
        return Err(SeedError::Failed(format!(
            "`{set}` is not a seed set name; give a file name under the seeds folder without its extension, like `production`"
        )));
    }
    for ext in ["yaml", "yml"] {
        let p = dir.join(format!("{set}.{ext}"));
        if p.is_file() {
            return Ok(p);
        }
    }
    let available = available_sets(dir);
    let hint = match did_you_mean(set, available.iter().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`?"),
        None if available.is_empty() => format!(
            "`{}` holds no seed files; create `{set}.yaml` there",
            crate::source::display_path(dir)
        ),
        None => format!("available sets: {}", available.join(", ")),
    };
    Err(SeedError::Failed(format!(
        "no seed set `{set}`: `{}` does not exist; {hint}",
        crate::source::display_path(&dir.join(format!("{set}.yaml")))
    )))
}

fn available_sets(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".yaml")
                .or_else(|| name.strip_suffix(".yml"))
                .map(str::to_owned)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Reads and checks seed set `set` from `dir`. Touches no database.
pub fn load(dir: &Path, set: &str) -> Result<SeedSet, SeedError> {
    let path = set_path(dir, set)?;
    let bytes = std::fs::read(&path).map_err(|e| {
        SeedError::Failed(format!(
            "cannot read `{}`: {e}",
            crate::source::display_path(&path)
        ))
    })?;
    let source = yaml::decode(&path, bytes).map_err(|d| SeedError::Invalid(vec![d]))?;
    parse(set, source)
}

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
const SECRET_KEYS: &[&str] = &["env", "hash", "update"];

struct Checker<'a> {
    source: &'a Source,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn err(&mut self, code: &'static str, node: &Node, message: String, hint: impl Into<String>) {
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
        let Some(node) = entry.get("generated") else {
            return Vec::new();
        };
        let Some(map) = node.as_map() else {
            self.err(
                "seed-type",
                node,
                format!(
                    "`generated` maps columns to `uuid` or `now`, not {}",
                    article(node)
                ),
                "write `generated: { id: uuid, updatedAt: now }`",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in map {
            let Some(col) = k.as_str() else {
                self.err(
                    "seed-type",
                    k,
                    "a column name is a string".to_owned(),
                    "write `generated: { id: uuid }`",
                );
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

    fn secrets(&mut self, entry: &Node) -> Vec<SecretSpec> {
        let Some(node) = entry.get("secrets") else {
            return Vec::new();
        };
        let Some(map) = node.as_map() else {
            self.err(
                "seed-type",
                node,
                format!("`secrets` maps columns to variables, not {}", article(node)),
                "write `secrets: { password: { env: ADMIN_DEFAULT_PASSWORD, hash: argon2id } }`",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in map {
            let Some(col) = k.as_str() else {
                self.err(
                    "seed-type",
                    k,
                    "a column name is a string".to_owned(),
                    "write `secrets: { password: { env: VAR } }`",
                );
                continue;
            };
            let Some(spec) = v.as_map() else {
                self.err(
                    "seed-type",
                    v,
                    format!("`secrets.{col}` is a mapping, not {}", article(v)),
                    format!("write `{col}: {{ env: VARIABLE, hash: argon2id }}`"),
                );
                continue;
            };
            for (sk, _) in spec {
                let name = sk.as_str().unwrap_or("");
                if !SECRET_KEYS.contains(&name) {
                    let hint = match did_you_mean(name, SECRET_KEYS.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("a secret has {}", list(SECRET_KEYS)),
                    };
                    self.diags.push(
                        Diagnostic::error("unknown-key", format!("unknown key `{name}`"))
                            .at(self.source, sk.pos)
                            .with_width(name.chars().count())
                            .with_hint(hint),
                    );
                }
            }
            let env = match v.get("env") {
                Some(e) => match e.as_str() {
                    Some(s) if is_env_name(s) => Some(s.to_owned()),
                    _ => {
                        self.err(
                            "seed-type",
                            e,
                            "`env` is the name of an environment variable".to_owned(),
                            "write the variable's name, e.g. `env: ADMIN_DEFAULT_PASSWORD`; the value never goes in the file",
                        );
                        None
                    }
                },
                None => {
                    self.err(
                        "seed-missing-key",
                        v,
                        format!("`secrets.{col}` has no `env`"),
                        "name the environment variable that holds the value, e.g. `env: ADMIN_DEFAULT_PASSWORD`",
                    );
                    None
                }
            };
            if let Some(h) = v.get("hash")
                && h.as_str() != Some("argon2id")
            {
                self.err(
                    "seed-type",
                    h,
                    "secrets are stored as `argon2id` hashes".to_owned(),
                    "write `hash: argon2id` or leave `hash` out; secrets are never stored in plain text",
                );
            }
            let update = match v.get("update") {
                Some(u) => match u.value {
                    Value::Bool(b) => b,
                    _ => {
                        self.err(
                            "seed-type",
                            u,
                            format!("`update` is `true` or `false`, not {}", article(u)),
                            "`update: true` replaces a stored hash that does not match the variable",
                        );
                        false
                    }
                },
                None => false,
            };
            // Kept even when `env` is invalid, so rows that give the column are still caught.
            out.push(SecretSpec {
                column: col.to_owned(),
                env: env.unwrap_or_default(),
                update,
            });
        }
        out
    }

    fn rows(
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
        let mut out = Vec::new();
        let mut seen: Vec<(Vec<Json>, usize)> = Vec::new();
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
            let mut values = Vec::new();
            for (k, v) in map {
                let Some(col) = k.as_str() else {
                    self.err(
                        "seed-type",
                        k,
                        "a column name is a string".to_owned(),
                        "quote the column name",
                    );
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
                        format!(
                            "the first is at line {line}; each key appears once per table entry"
                        ),
                    );
                } else {
                    seen.push((key_values, row.pos.line));
                }
            }
            out.push(SeedRow {
                pos: row.pos,
                values,
            });
        }
        out
    }

    /// A row value as JSON; floats that JSON cannot hold are refused.
    fn value(&mut self, node: &Node) -> Option<Json> {
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

fn article(node: &Node) -> String {
    crate::diagnostic::article(node.kind())
}

fn list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Secret values by environment variable name. Not `Debug`: it holds the plain values.
pub struct Secrets {
    values: HashMap<String, String>,
}

impl Secrets {
    /// The variables the set needs, read through `lookup`. Refuses a missing, empty or short
    /// value with a message naming the variable and never the value. `register` sees each
    /// value before anything else could print it (the run's redactor).
    pub fn resolve(
        set: &SeedSet,
        lookup: impl Fn(&str) -> Option<String>,
        register: impl Fn(&str),
    ) -> Result<Secrets, SeedError> {
        let mut values = HashMap::new();
        let mut problems = Vec::new();
        for t in &set.tables {
            for s in &t.secrets {
                if values.contains_key(&s.env) || problems.iter().any(|(e, _)| e == &s.env) {
                    continue;
                }
                let needed_for = format!("`{}.{}`", t.table, s.column);
                match lookup(&s.env) {
                    Some(v) if !v.is_empty() => {
                        register(&v);
                        if v.chars().count() < MIN_SECRET_LEN {
                            problems.push((
                                s.env.clone(),
                                format!(
                                    "`{}` is shorter than {MIN_SECRET_LEN} characters; seed set `{}` stores it as {needed_for}",
                                    s.env, set.name
                                ),
                            ));
                        } else {
                            values.insert(s.env.clone(), v);
                        }
                    }
                    _ => problems.push((
                        s.env.clone(),
                        format!(
                            "`{}` is not set; seed set `{}` needs it for {needed_for}",
                            s.env, set.name
                        ),
                    )),
                }
            }
        }
        if problems.is_empty() {
            Ok(Secrets { values })
        } else {
            let msgs: Vec<String> = problems.into_iter().map(|(_, m)| m).collect();
            Err(SeedError::Failed(format!(
                "{} (hint: export a value of at least {MIN_SECRET_LEN} characters before the run; it is stored only as an argon2id hash)",
                msgs.join("; ")
            )))
        }
    }

    fn get(&self, env: &str) -> Result<&str, SeedError> {
        self.values
            .get(env)
            .map(String::as_str)
            .ok_or_else(|| SeedError::Failed(format!("`{env}` was not resolved")))
    }
}

/// An argon2id PHC string of `secret` with a fresh salt.
pub fn hash_secret(secret: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("argon2id hashing failed: {e}"))
}

/// Whether `stored` is a PHC hash that `secret` verifies against.
pub fn verify_secret(secret: &str, stored: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::PasswordHash::new(stored).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(secret.as_bytes(), &h)
            .is_ok()
    })
}

/// Hashing takes tens of milliseconds by design; it runs off the executor's only thread.
async fn hash_blocking(secret: &str) -> Result<String, SeedError> {
    let s = secret.to_owned();
    tokio::task::spawn_blocking(move || hash_secret(&s))
        .await
        .map_err(|e| SeedError::Failed(format!("argon2id hashing did not finish: {e}")))?
        .map_err(SeedError::Failed)
}

async fn verify_blocking(secret: &str, stored: &str) -> bool {
    let (s, h) = (secret.to_owned(), stored.to_owned());
    tokio::task::spawn_blocking(move || verify_secret(&s, &h))
        .await
        .unwrap_or(false)
}

/// `"name"` with inner quotes doubled: safe for any identifier in both dialects.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A value as it is bound.
#[derive(Debug, Clone)]
enum Bind {
    Null,
    Text(String),
    TextArray(Vec<Option<String>>),
    Json(Json),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// How a PostgreSQL column takes values.
#[derive(Debug, Clone)]
struct PgColumn {
    /// `format_type` of the column: safe SQL from the catalog, quoted where needed.
    ty: String,
    array: bool,
    json: bool,
    /// `json` (not `jsonb`) has no equality operator; comparisons go through `jsonb`.
    plain_json: bool,
}

enum Columns {
    Pg(BTreeMap<String, PgColumn>),
    /// SQLite: declared types, upper-cased.
    Sqlite(BTreeMap<String, String>),
}

impl Columns {
    fn names(&self) -> Vec<&str> {
        match self {
            Columns::Pg(m) => m.keys().map(String::as_str).collect(),
            Columns::Sqlite(m) => m.keys().map(String::as_str).collect(),
        }
    }

    fn has(&self, col: &str) -> bool {
        match self {
            Columns::Pg(m) => m.contains_key(col),
            Columns::Sqlite(m) => m.contains_key(col),
        }
    }

    /// The bound value and the SQL that reads it at placeholder `n` (1-based).
    fn bind(&self, col: &str, v: &Json, n: usize) -> Result<(Bind, String), String> {
        match self {
            Columns::Sqlite(_) => {
                let b = match v {
                    Json::Null => Bind::Null,
                    Json::Bool(b) => Bind::Bool(*b),
                    Json::Number(x) => match x.as_i64() {
                        Some(i) => Bind::Int(i),
                        None => Bind::Float(x.as_f64().unwrap_or_default()),
                    },
                    Json::String(s) => Bind::Text(s.clone()),
                    other => Bind::Text(other.to_string()),
                };
                Ok((b, format!("?{n}")))
            }
            Columns::Pg(m) => {
                let c = m.get(col).ok_or_else(|| format!("no column `{col}`"))?;
                let ty = &c.ty;
                Ok(match v {
                    Json::Null => (Bind::Null, format!("${n}::text::{ty}")),
                    _ if c.json => (Bind::Json(v.clone()), format!("${n}::jsonb::{ty}")),
                    Json::Array(items) if c.array => {
                        let mut out = Vec::with_capacity(items.len());
                        for i in items {
                            out.push(match i {
                                Json::Null => None,
                                Json::String(s) => Some(s.clone()),
                                Json::Bool(_) | Json::Number(_) => Some(i.to_string()),
                                _ => {
                                    return Err(format!(
                                        "column `{col}` is `{ty}`; its items must be plain values, not lists or mappings"
                                    ));
                                }
                            });
                        }
                        (Bind::TextArray(out), format!("${n}::text[]::{ty}"))
                    }
                    Json::Array(_) | Json::Object(_) => {
                        return Err(format!(
                            "column `{col}` is `{ty}`; a {} fits only array and JSON columns",
                            if v.is_array() { "list" } else { "mapping" }
                        ));
                    }
                    _ if c.array => {
                        return Err(format!(
                            "column `{col}` is an array (`{ty}`); give a list, like `[a, b]`"
                        ));
                    }
                    Json::String(s) => (Bind::Text(s.clone()), format!("${n}::text::{ty}")),
                    other => (Bind::Text(other.to_string()), format!("${n}::text::{ty}")),
                })
            }
        }
    }

    /// SQL for a generated value of column `col`.
    fn generated(&self, col: &str, g: Generated) -> String {
        match (self, g) {
            (Columns::Pg(m), g) => {
                let ty = m.get(col).map_or("text", |c| c.ty.as_str());
                match g {
                    Generated::Uuid => format!("CAST(gen_random_uuid() AS {ty})"),
                    Generated::Now => format!("CAST(CURRENT_TIMESTAMP AS {ty})"),
                }
            }
            (Columns::Sqlite(_), Generated::Uuid) => "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))".to_owned(),
            (Columns::Sqlite(m), Generated::Now) => {
                // Prisma keeps SQLite dates as epoch milliseconds in integer columns and
                // ISO 8601 text elsewhere; follow the column's declared type.
                if m.get(col).is_some_and(|t| t.contains("INT")) {
                    "CAST(unixepoch('subsec') * 1000 AS INTEGER)".to_owned()
                } else {
                    "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')".to_owned()
                }
            }
        }
    }

    /// `a IS DISTINCT FROM b` for column `col` of `table`.
    fn differs(&self, table: &str, col: &str) -> String {
        let (t, c) = (quote_ident(table), quote_ident(col));
        match self {
            Columns::Pg(m) if m.get(col).is_some_and(|x| x.plain_json) => {
                format!("{t}.{c}::jsonb IS DISTINCT FROM EXCLUDED.{c}::jsonb")
            }
            Columns::Pg(_) => format!("{t}.{c} IS DISTINCT FROM EXCLUDED.{c}"),
            Columns::Sqlite(_) => format!("{t}.{c} IS NOT excluded.{c}"),
        }
    }

    /// How a stored secret is read back as text.
    fn read_text(&self, col: &str) -> String {
        match self {
            Columns::Pg(_) => format!("{}::text", quote_ident(col)),
            Columns::Sqlite(_) => format!("CAST({} AS TEXT)", quote_ident(col)),
        }
    }
}

/// The open transaction, either dialect.
enum Tx<'c> {
    Pg(sqlx::Transaction<'c, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'c, sqlx::Sqlite>),
}

impl Tx<'_> {
    /// The first row of a statement, each column read as optional text.
    async fn first(
        &mut self,
        sql: &str,
        binds: &[Bind],
        columns: usize,
    ) -> Result<Option<Vec<Option<String>>>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Tx::Pg(tx) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = match b {
                        Bind::Null => q.bind(None::<String>),
                        Bind::Text(s) => q.bind(s.clone()),
                        Bind::TextArray(v) => q.bind(v.clone()),
                        Bind::Json(j) => q.bind(sqlx::types::Json(j.clone())),
                        Bind::Int(i) => q.bind(*i),
                        Bind::Float(f) => q.bind(*f),
                        Bind::Bool(x) => q.bind(*x),
                    };
                }
                let row = q.fetch_optional(&mut **tx).await?;
                Ok(row.map(|r| {
                    (0..columns)
                        .map(|i| r.try_get::<Option<String>, _>(i).ok().flatten())
                        .collect()
                }))
            }
            Tx::Sqlite(tx) => {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = match b {
                        Bind::Null => q.bind(None::<String>),
                        Bind::Text(s) => q.bind(s.clone()),
                        Bind::TextArray(v) => q.bind(serde_json::to_string(v).unwrap_or_default()),
                        Bind::Json(j) => q.bind(j.to_string()),
                        Bind::Int(i) => q.bind(*i),
                        Bind::Float(f) => q.bind(*f),
                        Bind::Bool(x) => q.bind(*x),
                    };
                }
                let row = q.fetch_optional(&mut **tx).await?;
                Ok(row.map(|r| {
                    (0..columns)
                        .map(|i| r.try_get::<Option<String>, _>(i).ok().flatten())
                        .collect()
                }))
            }
        }
    }

    async fn columns(&mut self, table: &str) -> Result<Option<Columns>, sqlx::Error> {
        match self {
            Tx::Pg(tx) => {
                let rows = sqlx::query(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                            t.typcategory::text, t.typname::text \
                     FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                )
                .bind(quote_ident(table))
                .fetch_all(&mut **tx)
                .await?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let mut m = BTreeMap::new();
                for r in rows {
                    let name: String = r.try_get(0)?;
                    let ty: String = r.try_get(1)?;
                    let category: String = r.try_get(2)?;
                    let typname: String = r.try_get(3)?;
                    m.insert(
                        name,
                        PgColumn {
                            ty,
                            array: category == "A",
                            json: typname == "json" || typname == "jsonb",
                            plain_json: typname == "json",
                        },
                    );
                }
                Ok(Some(Columns::Pg(m)))
            }
            Tx::Sqlite(tx) => {
                let rows = sqlx::query("SELECT name, upper(type) FROM pragma_table_info(?1)")
                    .bind(table.to_owned())
                    .fetch_all(&mut **tx)
                    .await?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let mut m = BTreeMap::new();
                for r in rows {
                    m.insert(r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?);
                }
                Ok(Some(Columns::Sqlite(m)))
            }
        }
    }

    async fn table_names(&mut self) -> Vec<String> {
        let sql = match self {
            Tx::Pg(_) => {
                "SELECT relname::text FROM pg_class WHERE relkind IN ('r', 'p') AND pg_table_is_visible(oid)"
            }
            Tx::Sqlite(_) => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            }
        };
        let rows = match self {
            Tx::Pg(tx) => sqlx::query(sql)
                .fetch_all(&mut **tx)
                .await
                .map(|rs| rs.iter().filter_map(|r| r.try_get(0).ok()).collect()),
            Tx::Sqlite(tx) => sqlx::query(sql)
                .fetch_all(&mut **tx)
                .await
                .map(|rs| rs.iter().filter_map(|r| r.try_get(0).ok()).collect()),
        };
        rows.unwrap_or_default()
    }

    async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
    }
}

/// Applies the set in one transaction: all of it, or (on any error) none of it.
pub async fn apply(db: &mut Db, set: &SeedSet, secrets: &Secrets) -> Result<SeedReport, SeedError> {
    let begin = |e: sqlx::Error| SeedError::Failed(format!("cannot start a transaction: {e}"));
    let mut tx = match db {
        Db::Postgres(c) => Tx::Pg(c.begin().await.map_err(begin)?),
        Db::Sqlite(c) => Tx::Sqlite(c.begin().await.map_err(begin)?),
    };
    let mut report = SeedReport::default();
    for t in &set.tables {
        let counts = apply_table(&mut tx, set, t, secrets).await?;
        report.count(&t.table, counts);
    }
    tx.commit().await.map_err(|e| {
        SeedError::Failed(format!(
            "seed set `{}`: commit failed: {}",
            set.name,
            describe(&e)
        ))
    })?;
    Ok(report)
}

async fn apply_table(
    tx: &mut Tx<'_>,
    set: &SeedSet,
    t: &TableSeed,
    secrets: &Secrets,
) -> Result<Counts, SeedError> {
    let at = |pos: Pos| format!("{}:{}:{}", set.source.display_path(), pos.line, pos.col);
    let columns = tx.columns(&t.table).await.map_err(|e| {
        SeedError::Failed(format!(
            "{}: cannot read the columns of `{}`: {}",
            at(t.pos),
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
        return Err(SeedError::Failed(format!(
            "{}: table `{}` does not exist (hint: {hint})",
            at(t.pos),
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
            return Err(SeedError::Failed(format!(
                "{}: table `{}` has no column `{c}` (hint: {hint})",
                at(pos),
                t.table
            )));
        }
    }

    let table = quote_ident(&t.table);
    let mut counts = Counts::default();
    for row in &t.rows {
        let fail = |e: String| SeedError::Failed(format!("{}: `{}`: {e}", at(row.pos), t.table));

        // Does the row exist, and what secrets does it hold?
        let mut where_sql = Vec::new();
        let mut where_binds = Vec::new();
        for (i, k) in t.key.iter().enumerate() {
            let v = row
                .values
                .iter()
                .find(|(c, _)| c == k)
                .map(|(_, v)| v)
                .unwrap_or(&Json::Null);
            let (b, expr) = columns.bind(k, v, i + 1).map_err(fail)?;
            where_sql.push(format!("{} = {expr}", quote_ident(k)));
            where_binds.push(b);
        }
        let select_cols: Vec<String> = if t.secrets.is_empty() {
            vec!["1".to_owned()]
        } else {
            t.secrets
                .iter()
                .map(|s| columns.read_text(&s.column))
                .collect()
        };
        let probe = format!(
            "SELECT {} FROM {table} WHERE {}",
            select_cols.join(", "),
            where_sql.join(" AND ")
        );

        let existing = tx
            .first(&probe, &where_binds, t.secrets.len())
            .await
            .map_err(|e| fail(describe(&e)))?;

        // The statement: given columns, secrets, generated values.
        let mut names = Vec::new();
        let mut exprs = Vec::new();
        let mut binds = Vec::new();
        let mut update = Vec::new();
        for (c, v) in &row.values {
            let (b, expr) = columns.bind(c, v, binds.len() + 1).map_err(fail)?;
            names.push(c.clone());
            exprs.push(expr);
            binds.push(b);
            if !t.key.contains(c) {
                update.push(c.clone());
            }
        }
        for (i, s) in t.secrets.iter().enumerate() {
            let value = secrets.get(&s.env)?;
            let stored = existing.as_ref().and_then(|r| r.get(i).cloned().flatten());
            // The proposed row of an upsert is checked (NOT NULL) before the conflict is, so
            // a kept secret is still given: as the stored value, and left out of the update.
            let (value, updatable) = match (&existing, stored) {
                (Some(_), stored) if !s.update => (stored.map_or(Json::Null, Json::String), false),
                (Some(_), Some(h)) if verify_blocking(value, &h).await => (Json::String(h), true),
                _ => (Json::String(hash_blocking(value).await?), true),
            };
            let (b, expr) = columns
                .bind(&s.column, &value, binds.len() + 1)
                .map_err(fail)?;
            names.push(s.column.clone());
            exprs.push(expr);
            binds.push(b);
            if updatable {
                update.push(s.column.clone());
            }
        }
        let mut set_cols: Vec<String> = update
            .iter()
            .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
            .collect();
        for (c, g) in &t.generated {
            names.push(c.clone());
            exprs.push(columns.generated(c, *g));
            if *g == Generated::Now {
                set_cols.push(format!("{0} = EXCLUDED.{0}", quote_ident(c)));
            }
        }
        let quoted: Vec<String> = names.iter().map(|c| quote_ident(c)).collect();
        let keys: Vec<String> = t.key.iter().map(|c| quote_ident(c)).collect();
        let conflict = if update.is_empty() {
            "DO NOTHING".to_owned()
        } else {
            let differs: Vec<String> = update
                .iter()
                .map(|c| columns.differs(&t.table, c))
                .collect();
            format!(
                "DO UPDATE SET {} WHERE {}",
                set_cols.join(", "),
                differs.join(" OR ")
            )
        };
        let upsert = format!(
            "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) {conflict} RETURNING 1",
            quoted.join(", "),
            exprs.join(", "),
            keys.join(", ")
        );
        let changed = tx.first(&upsert, &binds, 0).await.map_err(|e| {
            let mut msg = describe(&e);
            if let Some(hint) = hint_for(&e, t) {
                msg.push_str(&format!(" (hint: {hint})"));
            }
            fail(msg)
        })?;
        match (changed.is_some(), existing.is_some()) {
            (true, false) => counts.inserted += 1,
            (true, true) => counts.updated += 1,
            (false, _) => counts.unchanged += 1,
        }
    }
    Ok(counts)
}

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
    use super::*;

    fn parse_text(text: &str) -> Result<SeedSet, SeedError> {
        parse("t", Source::new("seeds/t.yaml", text))
    }

    fn codes(r: Result<SeedSet, SeedError>) -> Vec<(String, usize, usize)> {
        match r {
            Err(SeedError::Invalid(d)) => d
                .into_iter()
                .map(|d| (d.code.to_owned(), d.line, d.column))
                .collect(),
            Err(SeedError::Failed(m)) => panic!("unexpected failure {m}"),
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

    #[test]
    fn secrets_are_refused_when_missing_or_short_without_their_value() {
        let set = parse_text(
            "- table: U\n  key: [e]\n  secrets: { p: { env: PW } }\n  rows: [{ e: a }]\n",
        )
        .unwrap();
        let err = Secrets::resolve(&set, |_| None, |_| {})
            .err()
            .unwrap()
            .render();
        assert!(err.contains("`PW` is not set"), "{err}");
        let short = "tooshort-9";
        let seen = std::cell::RefCell::new(Vec::new());
        let err = Secrets::resolve(
            &set,
            |_| Some(short.to_owned()),
            |v| seen.borrow_mut().push(v.to_owned()),
        )
        .err()
        .unwrap()
        .render();
        assert!(err.contains("shorter than 16 characters"), "{err}");
        assert!(!err.contains(short), "{err}");
        assert_eq!(*seen.borrow(), vec![short.to_owned()]);
        assert!(Secrets::resolve(&set, |_| Some("x".repeat(16)), |_| {}).is_ok());
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash_secret("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_secret("correct horse battery", &h));
        assert!(!verify_secret("wrong horse battery!", &h));
        assert!(!verify_secret("correct horse battery", "plain text"));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("createdAt"), "\"createdAt\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
