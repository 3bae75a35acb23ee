//! Fleets: one playbook across many databases (tenants, shards). Each target gets its own run
//! (run id, lock, checkpoints, audit chain) in a child `runbook run` process, grouped under a
//! fleet run in the state store; a concurrency limit, an optional canary and a stop threshold
//! decide which start. `runbook resume FLEET` resumes or restarts only the unfinished targets.
//!
//! Child processes rather than tasks: a target's run is exactly a single run, with all its
//! guarantees, and one target's crash cannot take the others down.

mod child;
mod options;
mod outcome;
mod resume;
mod scheduler;
mod start;
mod targets;

pub use child::ChildArgs;
pub use options::{FleetOptions, StopAfter, parse_stop_after};
pub use outcome::FleetOutcome;
pub use resume::resume;
pub use start::run;
pub use targets::{select, targets};
