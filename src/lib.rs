//! runbook: executes declarative YAML playbooks for database production operations.
//!
//! Pipeline: load (`yaml`, `project`) -> validate (`schema`, `validate`) -> plan (`plan`,
//! `template`) -> execute -> record -> report. See ARCHITECTURE.md.

// Diagnostics are large by design (they carry the quoted source line) and travel only on the
// cold error path, so boxing them would add noise for nothing.
#![allow(clippy::result_large_err)]

pub mod approval;
pub mod audit;
pub mod cancel;
pub mod cli;
pub mod config;
pub mod db;
pub mod dburl;
pub mod diagnostic;
pub mod exec;
pub mod exit;
pub mod fleet;
pub mod fmt;
pub mod gate;
pub mod init;
pub mod lock;
pub mod metrics;
pub mod outcome;
pub mod percent;
pub mod pids;
pub mod plan;
pub mod playbook;
pub mod process;
pub mod project;
pub mod redact;
pub mod report;
pub mod run;
pub mod runkey;
pub mod schedule;
pub mod schema;
pub mod signers;
pub mod source;
pub mod state;
pub mod state_fleets;
pub mod state_layout;
pub mod state_sqlite;
pub mod state_write;
pub mod table;
pub mod template;
pub mod ui;
pub mod validate;
pub mod views;
pub mod watchdog;
pub mod yaml;
