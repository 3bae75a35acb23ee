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
//!
//! The files: `model.rs` (a checked set and what applying it did), `error.rs`, `file.rs`
//! (finding and reading a set), `parse.rs` and `rows.rs` (checking a file, every problem
//! with its position), `secrets.rs` (secret columns: their spec, the values from the
//! environment, argon2id), `apply.rs` (the upserts in one transaction) over `tx.rs` and
//! `columns.rs`, which hand each dialect's SQL and binding to `postgres.rs` and `sqlite.rs`.

mod apply;
mod columns;
mod error;
mod file;
mod model;
mod parse;
mod postgres;
mod rows;
mod secrets;
mod sqlite;
mod tx;

pub use apply::apply;
pub use error::SeedError;
pub use file::{load, set_path};
pub use model::{Counts, Generated, SecretSpec, SeedReport, SeedRow, SeedSet, TableSeed};
pub use parse::parse;
pub use secrets::{MIN_SECRET_LEN, Secrets, hash_secret, verify_secret};

/// Kept at its old path: seed SQL quotes identifiers with the shared helper.
pub use crate::fmt::quote_ident;

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("createdAt"), "\"createdAt\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
