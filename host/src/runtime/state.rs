//! What one handler invocation owns: its WASI context (nothing preopened, no
//! environment, no network), its memory limit, its captured output, and the
//! events it asked to publish. A `HostState` lives exactly as long as the
//! `Store` of one event.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::OutgoingEvent;
use super::bindings::event_host::handler::publisher;
use crate::event::{Event, EventType, Topic};

/// Most events one invocation may publish.
const MAX_OUTBOX: usize = 1_000;
/// Most bytes of stdout plus stderr kept per invocation; the rest is dropped.
const MAX_OUTPUT: usize = 16 * 1024;

/// An event a handler published, held until its invocation succeeds.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: Topic,
    pub event: Event,
}

pub struct HostState {
    /// Built on the handler's first WASI call: most calls make none, and
    /// building it is a good part of an event's fixed cost.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(super) limits: StoreLimits,
    pub(super) outbox: Vec<Outgoing>,
    pub(super) output: CapturedOutput,
}

impl HostState {
    pub fn new(memory_bytes: usize) -> Self {
        Self {
            wasi: None,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            outbox: Vec::new(),
            output: CapturedOutput::default(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let output = &self.output;
        let ctx = self.wasi.get_or_insert_with(|| {
            WasiCtx::builder()
                .stdout(output.clone())
                .stderr(output.clone())
                .build()
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

impl publisher::Host for HostState {
    fn publish(&mut self, out: OutgoingEvent) -> Result<String, String> {
        if self.outbox.len() >= MAX_OUTBOX {
            return Err(format!("at most {MAX_OUTBOX} events per invocation"));
        }
        let topic = Topic::parse(&out.topic).map_err(|e| format!("topic {:?} {e}", out.topic))?;
        let event_type = EventType::parse(&out.event_type)
            .map_err(|e| format!("event type {:?} {e}", out.event_type))?;
        let data = RawValue::from_string(out.data).map_err(|e| format!("data is not JSON: {e}"))?;
        let event = Event::new(event_type, out.user_id, data);
        let id = event.id.clone();
        self.outbox.push(Outgoing { topic, event });
        Ok(id)
    }
}

impl super::bindings::event_host::handler::types::Host for HostState {}

/// The guest's stdout and stderr, kept in memory for the host to log with the
/// handler's name and the event's id. Past [`MAX_OUTPUT`] bytes, writes still
/// succeed but are dropped, so a chatty handler neither fails nor floods.
#[derive(Clone, Default)]
pub struct CapturedOutput(Arc<Mutex<Vec<u8>>>);

impl CapturedOutput {
    /// The captured text, one entry per line.
    pub fn lines(&self) -> Vec<String> {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// Written to directly: the default adapter from `AsyncWrite` starts a
    /// task per stream, which cost more than the handler call itself.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl CapturedOutput {
    fn keep(&self, bytes: &[u8]) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let room = MAX_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready; what does not fit is dropped.
        Ok(MAX_OUTPUT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.keep(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
