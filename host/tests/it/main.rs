//! The host's integration tests, in one test binary: each file under
//! `tests/` would be a binary of its own, linking wasmtime and librdkafka
//! again, so they are modules of this one instead.
//!
//! The tests that need a tansu broker process are `#[ignore]`d: run them
//! with `cargo test --workspace -- --include-ignored` (tansu on PATH).

mod support;

mod binary;
mod cluster;
mod compose;
mod compose_scale;
mod compose_service;
mod compose_watching;
mod consume_edges;
mod contract;
mod demo_embedded;
mod dev_loop;
mod e2e_tansu;
mod faults;
mod harness;
mod hot_reload;
mod image;
mod kafka_properties;
mod observe;
mod polyglot;
mod resilience;
mod reuse;
mod scaffold;
mod scale_out;
mod ui;
