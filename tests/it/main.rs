//! Integration tests: one binary, one module per area.

mod audit;
mod backup;
mod cli;
mod common;
mod copy;
mod corpus;
mod e2e;
mod crash;
mod exec;
mod fleet;
mod gates;
mod live;
mod health;
mod migrate;
mod pg;
mod redaction;
mod schema;
mod seed;
mod units;
