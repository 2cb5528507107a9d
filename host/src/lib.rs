//! event-host: runs WebAssembly event handlers on Kafka topics.
//!
//! The binary is a thin shell over [`app::run`], which tests call too.
//! Dependencies point one way: `api` → `bus`, `registry`; `bus` → `runtime`;
//! `registry` → `runtime`; `supervisor` keeps one consume loop per
//! handler and applies changes from the folder watcher and the API; `app`
//! wires them.

pub mod api;
pub mod app;
pub mod bus;
pub mod calls;
pub mod cluster;
pub mod config;
mod devloop;
pub mod event;
mod handler_crates;
pub mod kafka_config;
pub mod metrics;
pub mod registry;
pub mod runtime;
pub mod scaffold;
pub mod stats;
pub mod supervisor;
pub mod telemetry;
pub mod testing;
mod watcher;

pub use app::run;
pub use config::Config;
