//! Where a chain ends: its `Head` (the last record's sequence number and hash) and the
//! `GENESIS` hash the first record links to. Both the writer (`chain.rs`) and the verifier
//! (`verify.rs`) speak of them, so they live apart from either.

/// The previous hash of a chain's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The head of a chain: the last record's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// A record written to a chain: the chain's new head and the record's line (without its
/// newline), which the state store keeps so that a chain a system crash cut short can be
/// written back (`restore.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub head: Head,
    pub line: String,
    /// The chain was fsynced through this record before the state store commits it: that
    /// commit then notes the chain as durable through it (a chain later found shorter was
    /// cut). Set by the writer that synced it; `AuditLog::write` leaves it false.
    pub synced: bool,
}
