//! The tamper-evident audit log. Each run has its own chain, `<run id>.jsonl` under the audit
//! folder (default `.runbook/audit/`): one JSON record per line, each hashed (sha256) over its
//! canonical bytes and linked to the previous record's hash, with a gapless sequence number.
//! `index.jsonl` lists the runs. The state store keeps each run's head (sequence and hash), so
//! a log cut short is told apart from one that was never longer.
//!
//! A run's records are written to the chain before the state store commits them with their
//! lines; that commit is durable before the action a record announces (write-ahead), and the
//! chain is fsynced when the run stops. A crash in the middle of a write leaves a torn last
//! line: a prefix of a record without its newline. `verify` reports that as a torn write, not as
//! tampering, and the next append repairs it (and says so in the chain). Records a system crash
//! took from a chain are written back from the state store (`restore.rs`) before it is opened
//! again.
//!
//! The auditor's tools read the chains back: `verify_run` (a `Verdict`), the `timeline` of a
//! run, and its renderings (`show`, `csv`, `html`).

mod aftermath;
mod approvals;
mod canonical;
mod chain;
mod changes;
mod csv;
mod error;
mod git;
mod head;
mod html;
mod index;
mod record;
mod restore;
mod show;
mod sign;
mod sink;
mod timeline;
mod trust;
mod verdict;
mod verify;

pub use approvals::{ChainFacts, chain_facts};
pub use canonical::{canonical, record_hash};
pub use chain::AuditLog;
pub use csv::csv;
pub use error::AuditError;
pub use git::{git_commit, git_state};
pub use head::{GENESIS, Head, Written};
pub use html::html;
pub use index::{chains, index, read_index};
pub use record::{body_from_event, excerpt};
pub use restore::{complete_records, write_back};
pub use show::show;
pub use sign::{keygen, sign, signed_head};
pub use sink::{Sink, sink_setup_sql};
pub use timeline::{Span, header, run_status, timeline};
pub use trust::{HeadCheck, SigPolicy, Signature};
pub use verdict::{Recorded, Verdict, verify_run};
pub use verify::{Problem, Report, verify_bytes};
