//! Tools that measure event-host from outside, kept out of the host
//! package: the open-loop load generator (`src/bin/loadgen.rs` over
//! [`loadgen`]) and the consume benchmark (`benches/consume/` over
//! [`drain`]). Results go in BENCHMARKS.md.
//!
//! What needs the host's test support (`host/tests/it/support`: a tansu
//! process, an in-process host) lives in the benchmark target, not here:
//! that module reads `CARGO_TARGET_TMPDIR`, which cargo sets only for
//! tests and benchmarks.

pub mod drain;
pub mod loadgen;
pub mod proc;
