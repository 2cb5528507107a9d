//! What one handler invocation owns: its WASI context (nothing preopened, no
//! environment, no network), its memory limit, what it logged and printed,
//! and what it asked to publish. A `HostState` lives as long as the `Store`
//! of one instance: one invocation, or several on a reused instance, which
//! [`HostState::begin_call`] sets back to what a fresh one starts with. It
//! serves the imports of every contract version: each version's calls land
//! on the same few methods.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{v0_1, v0_2};
use super::contract::Header;
use super::output::{CapturedOutput, Level};
use crate::event::{Event, EventType, Topic};

/// Most events and messages one invocation may publish.
const MAX_OUTBOX: usize = 1_000;

/// What a handler published, held until its invocation succeeds.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// An event in the host's envelope. Without an explicit key it is keyed
    /// by its user, else by its id; the host's headers come first.
    Event {
        topic: Topic,
        event: Event,
        key: Option<Vec<u8>>,
        headers: Vec<Header>,
    },
    /// A message published as it is.
    Message {
        topic: Topic,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<Header>,
    },
}

impl Outgoing {
    pub fn topic(&self) -> &Topic {
        match self {
            Outgoing::Event { topic, .. } | Outgoing::Message { topic, .. } => topic,
        }
    }
}

pub struct HostState {
    /// Built on the handler's first WASI call: most calls make none, and
    /// building it is a good part of an event's fixed cost.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(super) limits: Limiter,
    pub(super) outbox: Vec<Outgoing>,
    pub(super) output: CapturedOutput,
    /// When the running call must stop (read by the epoch callback).
    pub(super) deadline: Instant,
}

/// The store's memory and table limits, noting how large a linear memory
/// has grown: a reused instance whose memory grew too far is replaced.
pub(super) struct Limiter {
    limits: StoreLimits,
    largest_memory: usize,
}

impl Limiter {
    /// Bytes of the largest linear memory of the instance.
    pub fn largest_memory(&self) -> usize {
        self.largest_memory
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.largest_memory = self.largest_memory.max(desired);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl HostState {
    pub fn new(memory_bytes: usize) -> Self {
        Self {
            wasi: None,
            table: ResourceTable::new(),
            limits: Limiter {
                limits: StoreLimitsBuilder::new()
                    .memory_size(memory_bytes)
                    .trap_on_grow_failure(true)
                    .build(),
                largest_memory: 0,
            },
            outbox: Vec::new(),
            output: CapturedOutput::default(),
            deadline: Instant::now(),
        }
    }

    /// Starts a call with `timeout`: nothing published, nothing logged yet,
    /// whatever calls this store made before.
    pub(super) fn begin_call(&mut self, timeout: Duration) {
        self.outbox.clear();
        drop(self.output.finish());
        self.deadline = Instant::now() + timeout;
    }

    fn queue_event(
        &mut self,
        topic: &str,
        event_type: &str,
        user_id: Option<String>,
        data: String,
        key: Option<Vec<u8>>,
        headers: Vec<Header>,
    ) -> Result<String, String> {
        self.room()?;
        let topic = parse_topic(topic)?;
        let event_type =
            EventType::parse(event_type).map_err(|e| format!("event type {event_type:?} {e}"))?;
        let data = RawValue::from_string(data).map_err(|e| format!("data is not JSON: {e}"))?;
        let event = Event::new(event_type, user_id, data);
        let id = event.id.clone();
        self.outbox.push(Outgoing::Event {
            topic,
            event,
            key,
            headers,
        });
        Ok(id)
    }

    fn room(&self) -> Result<(), String> {
        if self.outbox.len() >= MAX_OUTBOX {
            return Err(format!(
                "at most {MAX_OUTBOX} events and messages per invocation"
            ));
        }
        Ok(())
    }
}

fn parse_topic(topic: &str) -> Result<Topic, String> {
    Topic::parse(topic).map_err(|e| format!("topic {topic:?} {e}"))
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let output = &self.output;
        let ctx = self.wasi.get_or_insert_with(|| {
            WasiCtx::builder()
                .stdout(output.clone())
                .stderr(output.stderr())
                .build()
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

// Contract 0.1.0.

impl v0_1::event_host::handler::publisher::Host for HostState {
    fn publish(
        &mut self,
        out: v0_1::event_host::handler::types::OutgoingEvent,
    ) -> Result<String, String> {
        self.queue_event(
            &out.topic,
            &out.event_type,
            out.user_id,
            out.data,
            None,
            Vec::new(),
        )
    }
}

impl v0_1::event_host::handler::types::Host for HostState {}

// Contract 0.2.0.

impl v0_2::event_host::handler::publisher::Host for HostState {
    fn publish(
        &mut self,
        out: v0_2::event_host::handler::types::OutgoingEvent,
    ) -> Result<String, String> {
        self.queue_event(
            &out.topic,
            &out.event_type,
            out.user_id,
            out.data,
            out.key,
            out.headers.into_iter().map(Header::from).collect(),
        )
    }

    fn publish_message(
        &mut self,
        out: v0_2::event_host::handler::types::OutgoingMessage,
    ) -> Result<(), String> {
        self.room()?;
        let topic = parse_topic(&out.topic)?;
        self.outbox.push(Outgoing::Message {
            topic,
            key: out.key,
            value: out.value,
            headers: out.headers.into_iter().map(Header::from).collect(),
        });
        Ok(())
    }
}

impl v0_2::event_host::handler::types::Host for HostState {}

/// The `host` interface is the same in every version; only its generated
/// types differ.
macro_rules! host_interface {
    ($version:ident) => {
        impl $version::event_host::handler::host::Host for HostState {
            fn log(&mut self, level: $version::event_host::handler::host::Level, message: String) {
                use $version::event_host::handler::host::Level as L;
                let level = match level {
                    L::Debug => Level::Debug,
                    L::Info => Level::Info,
                    L::Warn => Level::Warn,
                    L::Error => Level::Error,
                };
                self.output.log(level, &message);
            }

            fn now_ms(&mut self) -> u64 {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }

            fn new_id(&mut self) -> String {
                uuid::Uuid::new_v4().to_string()
            }
        }
    };
}

host_interface!(v0_1);
host_interface!(v0_2);
