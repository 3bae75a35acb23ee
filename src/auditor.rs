//! The auditor's tools (verify chains and signatures, list runs, a run's timeline, CSV export,
//! the HTML report) under their own name. They live in `audit/` beside the chain they read.

pub use crate::audit::{Span, Verdict, chains, csv, header, html, show, timeline, verify_run};
