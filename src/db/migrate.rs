//! Schema migrations: discovery, history table, status, apply, revert, baseline, lint, rehearse.
