//! W3C trace context in and out of Kafka headers and HTTP requests, and the
//! ids of the current span.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use rdkafka::message::{Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header W3C trace context travels in.
pub const TRACEPARENT: &str = "traceparent";

/// A Kafka message's headers, read for trace context.
struct KafkaHeaders<'a>(&'a OwnedHeaders);

impl Extractor for KafkaHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .and_then(|h| std::str::from_utf8(h.value?).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
    }
}

/// An HTTP request's headers, read for trace context.
pub struct HeaderExtractor<'a>(pub &'a axum::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the trace context `headers` carry, if any.
pub fn parent_from_kafka(span: &tracing::Span, headers: Option<&OwnedHeaders>) {
    if let Some(headers) = headers {
        set_parent(span, &KafkaHeaders(headers));
    }
}

/// Makes `span` a child of the trace context of an HTTP request, if any.
pub fn parent_from_http(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    set_parent(span, &HeaderExtractor(headers));
}

fn set_parent(span: &tracing::Span, carrier: &dyn Extractor) {
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier));
    if parent.span().span_context().is_valid() {
        // Fails only for a span already started (never here) or disabled.
        let _ = span.set_parent(parent);
    }
}

/// A single `traceparent` value.
#[derive(Default)]
struct One(Option<String>);

impl Injector for One {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

/// The `traceparent` of the current span (an API request, a handler call),
/// for the events published inside it; `None` outside of one.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut one = One::default();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut one));
    one.0
}

/// The trace id of `span`, if it belongs to a trace.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Fills `span`'s `trace_id` and `span_id` fields, so every log line written
/// inside it carries them.
pub fn record_ids(span: &tracing::Span) {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.record("trace_id", tracing::field::display(sc.trace_id()));
        span.record("span_id", tracing::field::display(sc.span_id()));
    }
}
