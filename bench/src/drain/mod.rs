//! The consume benchmark's drains that need no in-process host: the
//! settings from the environment, the telemetry modes, pre-filling the
//! topic, the raw rust-rdkafka loops and the report. The benchmark target
//! (`benches/consume/`) adds the brokers and the host drains, which need the
//! host's test support.

pub mod prefill;
pub mod raw;
pub mod report;
pub mod settings;
pub mod telemetry;

use std::time::Duration;

/// The topic the no-op handler subscribes to.
pub const TOPIC: &str = "bench";
/// Size of each event's payload (the host's JSON envelope).
pub const EVENT_BYTES: usize = 250;

/// The host sides: the no-op handler runs on every event; the skipping one
/// runs on none (the host decodes each event and stores its offset).
pub const NOOP: &str = "host, no-op handler";
pub const NOOP_QUIET: &str = "host, no-op, tracing+history off";
pub const NOOP_SAMPLED: &str = "host, no-op, every trace sampled";
pub const NOOP_BASELINE: &str = "host, no-op, baseline build";
pub const NOOP_NO_HISTORY: &str = "host, no-op, no call history";
pub const NOOP_REUSED: &str = "host, no-op, reused instances";
pub const PIPELINE: &str = "host, every event skipped";

/// Where a drain's events are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// A tansu process on its memory engine.
    Tansu,
    /// librdkafka's mock cluster, inside the host (the host's embedded
    /// broker): the host measured is the one holding it.
    Embedded,
}

/// One drain, raw or through the host.
pub struct Run {
    pub broker: BrokerKind,
    pub side: &'static str,
    pub partitions: i32,
    pub idle: usize,
    pub events: u64,
    pub bytes: u64,
    /// From the partitions being assigned to the last event seen (raw) or
    /// handled (host).
    pub time: Duration,
    /// Host on tansu only: RSS (KiB) once ready with its idle handlers,
    /// before the no-op handler starts; at the end of the drain; and the peak
    /// in between.
    pub rss: Option<(u64, u64, u64)>,
    /// CPU time of the consuming process (the host's, or this one's for the
    /// raw loops) and of the broker process (tansu only) during the drain.
    pub cpu: Duration,
    /// The part of `cpu` in user space (a host drain on tansu only).
    pub user_cpu: Option<Duration>,
    pub broker_cpu: Option<Duration>,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.time.as_secs_f64()
    }
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.time.as_secs_f64()
    }
    pub fn cpu_per_event(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.events as f64
    }
    pub fn user_cpu_per_event(&self) -> Option<f64> {
        Some(self.user_cpu?.as_secs_f64() * 1e6 / self.events as f64)
    }
    pub fn broker_cpu_per_event(&self) -> Option<f64> {
        self.broker_cpu
            .map(|c| c.as_secs_f64() * 1e6 / self.events as f64)
    }
}
