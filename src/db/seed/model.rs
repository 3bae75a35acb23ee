//! The seed model: a checked seed set (tables, keys, generated and secret columns, rows) and
//! what applying it did.

use crate::source::{Pos, Source};
use serde_json::Value as Json;

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
    pub(super) fn add(&mut self, other: Counts) {
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

    pub(super) fn count(&mut self, table: &str, c: Counts) {
        match self.tables.iter_mut().find(|(t, _)| t == table) {
            Some((_, have)) => have.add(c),
            None => self.tables.push((table.to_owned(), c)),
        }
    }
}
