//! Logs and traces. Logs go to stderr as text or, with `LOG_FORMAT=json`,
//! one JSON object per line carrying the trace and span ids of the handler
//! call or request it was written in. Traces follow an event through every
//! handler: W3C trace context travels in the `traceparent` header of each
//! Kafka message, and each API request and handler call is a span.
//!
//! Spans are exported over OTLP (HTTP/protobuf) only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set, with the standard `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG`. Otherwise there is no SDK span at all: trace
//! context still travels from event to event (see [`Span`]).
//!
//! Log lines inside a request or call are in a `tracing` span carrying the
//! trace and span ids, which the JSON format writes with every line.
//!
//! Attributes follow OpenTelemetry's semantic conventions 1.42.0 (see
//! [`SEMCONV_VERSION`]).

mod context;

use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub use context::{Span, TRACEPARENT, current_traceparent, parent_from_http, parent_from_kafka};

/// The semantic conventions the spans' attributes follow: those of the
/// pinned `opentelemetry-semantic-conventions`, whose names they use.
pub const SEMCONV_VERSION: &str = "1.42.0";

#[cfg(test)]
#[test]
fn the_pinned_conventions_are_the_ones_named() {
    assert!(
        opentelemetry_semantic_conventions::SCHEMA_URL.ends_with(&format!("/{SEMCONV_VERSION}")),
        "{}",
        opentelemetry_semantic_conventions::SCHEMA_URL
    );
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the current span's fields (trace and
    /// span ids included).
    Json,
}

/// Keeps the tracer provider, if spans are exported: dropping it exports
/// what is left.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(Err(e)) = self.provider.as_ref().map(SdkTracerProvider::shutdown) {
            eprintln!("traces: cannot export the last spans: {e}");
        }
    }
}

fn endpoint_set() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}

/// Installs logging and tracing for the process. `RUST_LOG` filters the log
/// lines (default `info,rdkafka=warn`); spans are made for the host's own
/// API requests and handler calls whatever it says.
pub fn init(format: LogFormat) -> anyhow::Result<Telemetry> {
    install(format, false)
}

/// Like [`init`], with log lines written where the test harness captures
/// them (for hosts run inside tests).
pub fn init_for_tests() -> anyhow::Result<Telemetry> {
    install(LogFormat::Text, true)
}

fn install(format: LogFormat, for_tests: bool) -> anyhow::Result<Telemetry> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let exporting = endpoint_set();
    let provider = if exporting {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        // The sampler and the resource (service name) come from the
        // standard OTEL_* variables.
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service_name())
                    .build(),
            )
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        Some(provider)
    } else {
        None
    };
    context::set_exporting(exporting);
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn"));
    // Text lines stay short: without the spans, whose fields the fmt layer
    // would otherwise also format, once per event. JSON lines carry the
    // current span (its trace and span ids).
    let fmt = match format {
        LogFormat::Text => {
            // Not `is_event`: `enabled!` checks (hints) must pass as events do.
            // The level hint keeps the filter's own (INFO by default): without
            // one, the `log` bridge would take every debug and trace record of
            // wasmtime and librdkafka's wrappers through tracing, per event.
            let events_only = tracing_subscriber::filter::filter_fn(|m| !m.is_span())
                .with_max_level_hint(LevelFilter::TRACE);
            let layer = tracing_subscriber::fmt::layer();
            if for_tests {
                layer
                    .with_test_writer()
                    .with_filter(filter.and(events_only))
                    .boxed()
            } else {
                layer.with_filter(filter.and(events_only)).boxed()
            }
        }
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry().with(fmt).try_init()?;
    Ok(Telemetry { provider })
}

/// `OTEL_SERVICE_NAME`, else `event-host`.
fn service_name() -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "event-host".to_string())
}
