//! Backups and restores: pg_dump/pg_restore and SQLite `VACUUM INTO`, manifests, verification,
//! retention.
//!
//! A backup is an archive and a manifest next to it: `{stem}.dump` (pg_dump custom format),
//! `{stem}.dir` (pg_dump directory format) or `{stem}.sqlite`, and `{stem}.manifest.json`. The
//! stem names the database, the UTC time, the run and the step. The manifest (sha256, size,
//! versions, row count per table, run, mode, format, time) is what makes files a runbook
//! backup: verification, restore and retention deal only with archives that have one, and
//! retention never deletes anything else.
//!
//! What holds:
//! - An archive is written under a hidden `.partial` name and renamed when it is complete and
//!   hashed; the manifest is written last, atomically. A crash leaves at worst a `.partial`
//!   file, which nothing takes for a backup. A partial file is locked (`flock`) for as long as
//!   its writer lives; the next backup of the database and retention remove those whose lock
//!   they can take.
//! - A restore verifies the archive (sha256 against the manifest, then `pg_restore --list` or
//!   `PRAGMA integrity_check`) before it changes anything, and takes a verified pre-restore
//!   backup before the first destructive statement.
//! - Passwords never reach an argv (which `ps` shows to every user): pg_dump and pg_restore get
//!   a URL without it and the password in `PGPASSWORD`; their stderr is redacted.
//! - PostgreSQL row counts are taken in the snapshot pg_dump dumps (an exported snapshot), so
//!   they are the archive's exactly, even while the application writes; they are counted on the
//!   exporting transaction while pg_dump runs (without parallel workers, leaving the cores to
//!   pg_dump), not before it. SQLite counts are taken on the
//!   copy.
//! - The archive is read once after it is written, to hash it; the verification of a new
//!   backup checks the manifest read back against that sum and reads the archive with
//!   `pg_restore --list` (or `integrity_check`). A custom archive cannot be hashed while pg_dump
//!   writes it: pg_dump rewrites its table of contents at the start of the file last, with the
//!   data offsets (written to a pipe instead, the archive would lack them, and `pg_restore -j`
//!   needs them). Verifying an existing backup (`find_backup`, `restore`) rereads everything.
//! - runbook's own state and audit tables (present when the state store lives in the target)
//!   are neither dumped nor restored: a restore must not rewind the record of the run doing it.
//!
//! Typed confirmation is not this module's job: validation demands a `confirm` or approval gate
//! before a `restore` in protected environments, and the gate runs before the step.
//!
//! The folder, one concept per file: `take` (a backup step: request, dialect, finish),
//! `postgres` and `sqlite` (each dialect's catalog queries and backup writer), `manifest`,
//! `names` (file names), `files` (folder, placing, syncing), `hash`, `verify`, `restore` (the
//! shared flow) with `restore_postgres` (pg_restore) and `restore_sqlite` (the in-place copy),
//! `counts` (after a restore), `prune` (retention), `guard` (the step's deadline and
//! cancellation around statements and client programs), `pg_tools` and `libpq`; `find`
//! chooses the backup a restore takes (the newest that verifies) before any confirmation.

mod clear;
mod counts;
mod files;
mod find;
mod guard;
mod hash;
mod libpq;
mod manifest;
mod names;
mod pg_tools;
mod postgres;
mod prune;
mod restore;
mod restore_postgres;
mod restore_sqlite;
mod sqlite;
mod take;
mod verify;

pub use find::{FindRequest, Found, find_backup, newest_verified};
pub use libpq::LibpqTarget;
pub use manifest::{
    ArchiveFormat, FileSum, MANIFEST_LAYOUT, MANIFEST_SUFFIX, Manifest, Purpose, find_manifest,
    read_manifest,
};
pub use pg_tools::{PG_BIN_ENV, PgTools, find_pg_tools, installed_bin_dir};
pub use prune::{Pruned, Retention, prune};
pub use restore::{RestoreRequest, Restored, restore};
pub use take::{Backup, BackupRequest, backup};
pub use verify::{Verified, verify_archive};

/// The state store's tables (src/state.rs) and, by prefix, the audit log's (src/audit.rs).
const STATE_TABLES: &[&str] = &[
    "runbook_runs",
    "runbook_steps",
    "runbook_events",
    "runbook_approvals",
    "runbook_meta",
    "runbook_fleets",
    "runbook_fleet_targets",
];
const STATE_TABLE_PREFIX: &str = "runbook_audit";

/// Whether a table belongs to runbook's own records rather than to the application.
pub fn is_state_table(name: &str) -> bool {
    STATE_TABLES.contains(&name) || name.starts_with(STATE_TABLE_PREFIX)
}
