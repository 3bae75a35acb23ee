//! Signed approvals: what an approver signs (`statement.rs`), signing it in the SSHSIG format
//! `ssh-keygen -Y sign` writes with a key file or ssh-agent and verifying it against the listed
//! approvers (`sshsig.rs`), and the agent's protocol (`agent.rs`). Who is listed is
//! `crate::signers`; whether an approval counts is decided in `exec/counting.rs`.

mod agent;
mod sshsig;
mod statement;

pub use agent::Agent;
pub use sshsig::{NoKey, SigningKey, Unproven, operator_key, signing_key, verify};
pub use statement::{Statement, time};
