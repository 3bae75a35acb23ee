//! Integration tests: one binary, one module per area.

mod audit;
mod backup;
mod cli;
mod compensate;
mod copy;
mod corpus;
mod crash;
mod disk;
mod e2e;
mod exec;
mod fleet;
mod gates;
mod health;
mod live;
mod migrate;
mod output;
mod pg;
mod reap;
mod redaction;
mod restore_exact;
mod rollback;
mod schema;
mod seed;
mod support;
mod tidy;
mod units;
