//! Tools that measure event-host from outside, kept out of the host
//! package: the open-loop load generator (`src/bin/loadgen.rs` over
//! [`loadgen`]). Results go in BENCHMARKS.md.

pub mod loadgen;
pub mod proc;
