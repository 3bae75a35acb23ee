//! runbook: executes declarative YAML playbooks for database production operations.

pub mod diagnostic;
pub mod source;
pub mod config;
pub mod playbook;
pub mod project;
pub mod schema;
pub mod template;
pub mod validate;
pub mod yaml;
