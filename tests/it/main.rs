//! Integration tests: one binary, one module per area.

mod cli;
mod common;
mod corpus;
mod crash;
mod exec;
mod gates;
mod pg;
mod schema;
mod units;
