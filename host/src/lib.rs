//! event-host: runs WebAssembly event handlers on Kafka topics.
//!
//! The binary is a thin shell over [`app::run`], which tests call too.
//! Dependencies point one way: `api` → `bus`, `registry`; `bus` → `runtime`;
//! `registry` → `runtime`; `app` wires them.

pub mod api;
pub mod app;
pub mod bus;
pub mod config;
pub mod event;
pub mod registry;
pub mod runtime;
pub mod stats;

pub use app::run;
pub use config::Config;
