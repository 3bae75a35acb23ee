//! The executor: turns a validated playbook into a durable run. Steps run in order; each
//! transition is recorded (audit chain, then state store) before the step acts (write-ahead);
//! a failure runs the compensations of completed steps in reverse order, then `on_failure`,
//! then `finally`. `resume` continues a run from its records.
//!
//! One concept per file: `request` (what the CLI asks), `session` (setup shared by run,
//! resume and approve/reject), `start` (`runbook run`), `resume`, `decide` (approve/reject),
//! `engine` (a run in progress), `units` (the flattened playbook), `context` (what templates
//! see, declared outputs), `execute` (the order units run in), `change` (whether a step changed
//! the target, for `rollback_when: changed`), `step` (one unit with `when`, retries, backoff and
//! timeout), `gates`, `journal` (the one writer of events), `children` (the run's child
//! processes, recorded for resume), `windows` (who runs outside maintenance windows),
//! `emergency` (the emergency path and its gate), `protections` (the rules a run is under,
//! following its database), `refusal` (refused attempts as audit records), `actions/` (one
//! file per action). What the entry points
//! return is `crate::outcome`.

pub mod actions;
mod approval_view;
mod change;
mod children;
mod context;
mod counting;
mod decide;
mod decide_live;
mod emergency;
mod engine;
mod execute;
mod gates;
mod inputs;
mod journal;
pub mod live;
mod protections;
mod refusal;
mod request;
mod resume;
mod same_target;
mod session;
mod signing;
mod start;
mod step;
mod units;
mod waiting;
mod what_changed;
mod windows;

pub use crate::cancel::wait_cancel;
pub use crate::outcome::{ExecError, Outcome};
pub use actions::ctx::{ActionCtx, ProjectDirs, StepError, StepResult, cap};
pub use decide::decide;
pub use emergency::status_lines;
pub use journal::audit_dir;
pub use request::{DecisionRequest, ResumeRequest, RunRequest};
pub use resume::resume;
pub use session::{find_run, open_state, state_spec, target_spec};
pub use start::run;
pub use waiting::waiting_lines;
