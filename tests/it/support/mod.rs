//! What the integration tests stand on: the `runbook` binary as a user runs it (`cli`), a
//! throwaway PostgreSQL cluster (`pg`), SQLite files read directly (`sqlite`), project fixtures
//! with a target (`project`), runbook at a real terminal (`terminal`), and the one table of
//! snapshot filters (`filters`).

pub mod cli;
pub mod filters;
pub mod pg;
pub mod project;
pub mod sqlite;
pub mod terminal;

pub use cli::{Output, Runbook, Running, repo};
pub use project::{Project, Target, copy_dir};
pub use sqlite::sqlite_exec;
pub use terminal::Terminal;
