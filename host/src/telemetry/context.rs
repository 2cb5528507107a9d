//! W3C trace context in and out of Kafka headers and HTTP requests, and the
//! span of the request or handler call running now.
//!
//! A span here is an OpenTelemetry [`Context`] holding it. When spans are
//! exported, it is a real SDK span (recording only if sampled). Otherwise it
//! is only a context: the caller's trace id (or a new one) and a new span
//! id, made without the SDK, so that carrying trace context from event to
//! event costs next to nothing.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::{Headers, OwnedHeaders};

/// The header W3C trace context travels in.
pub const TRACEPARENT: &str = "traceparent";

/// Whether spans are exported (set once, at start-up).
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub(super) fn set_exporting(on: bool) {
    EXPORTING.store(on, Ordering::Relaxed);
}

tokio::task_local! {
    /// The span of the request or handler call this task works for.
    static CURRENT: Span;
}

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
struct HttpHeaders<'a>(&'a axum::http::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

fn extract(carrier: &dyn Extractor) -> Option<SpanContext> {
    carrier.get(TRACEPARENT)?;
    // W3C trace context is what travels here, whatever else is installed.
    let cx = TraceContextPropagator::new().extract(carrier);
    let parent = cx.span().span_context().clone();
    parent.is_valid().then_some(parent)
}

/// The trace context a Kafka message carries, if any.
pub fn parent_from_kafka(headers: Option<&OwnedHeaders>) -> Option<SpanContext> {
    extract(&KafkaHeaders(headers?))
}

/// The trace context an HTTP request carries, if any.
pub fn parent_from_http(headers: &axum::http::HeaderMap) -> Option<SpanContext> {
    extract(&HttpHeaders(headers))
}

/// One request's or handler call's span. Clones share it; it ends when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Span(Context);

impl Span {
    /// Starts a span, a child of `parent` if there is one. `describe` gives
    /// its name and attributes, asked for only when spans are exported.
    pub fn start(
        kind: SpanKind,
        parent: Option<SpanContext>,
        describe: impl FnOnce() -> (String, Vec<KeyValue>),
    ) -> Self {
        if EXPORTING.load(Ordering::Relaxed) {
            let parent_cx = match parent {
                Some(p) => Context::new().with_remote_span_context(p),
                None => Context::new(),
            };
            let tracer = opentelemetry::global::tracer("event-host");
            let (name, attributes) = describe();
            let span = tracer
                .span_builder(name)
                .with_kind(kind)
                .start_with_context(&tracer, &parent_cx);
            let cx = parent_cx.with_span(span);
            // The sampler has decided: attributes only for a span it keeps.
            if cx.span().is_recording() {
                cx.span().set_attributes(attributes);
            }
            return Self(cx);
        }
        let (trace_id, flags) = match &parent {
            Some(p) => (p.trace_id(), p.trace_flags()),
            None => (TraceId::from(fastrand::u128(1..)), TraceFlags::default()),
        };
        let context = SpanContext::new(
            trace_id,
            SpanId::from(fastrand::u64(1..)),
            flags,
            false,
            TraceState::default(),
        );
        Self(Context::new().with_remote_span_context(context))
    }

    /// The trace id as a number.
    pub fn trace_id_number(&self) -> u128 {
        u128::from_be_bytes(self.0.span().span_context().trace_id().to_bytes())
    }

    pub fn trace_id(&self) -> String {
        self.0.span().span_context().trace_id().to_string()
    }

    pub fn span_id(&self) -> String {
        self.0.span().span_context().span_id().to_string()
    }

    /// Adds an attribute (kept only by a recording span).
    pub fn set_attribute(&self, attribute: KeyValue) {
        let span = self.0.span();
        if span.is_recording() {
            span.set_attribute(attribute);
        }
    }

    /// Marks the span failed, with `error.type`.
    pub fn fail(&self, error_type: &'static str) {
        let span = self.0.span();
        if span.is_recording() {
            span.set_attribute(KeyValue::new(
                opentelemetry_semantic_conventions::attribute::ERROR_TYPE,
                error_type,
            ));
            span.set_status(Status::error(error_type));
        }
    }

    /// Runs `f` as this span's work: events published inside carry it.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }

    /// Runs `f` as this span's work, synchronously.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self.clone(), f)
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

/// The `traceparent` of the span this task works for (an API request, a
/// handler call), for the events published in it; `None` outside of one.
pub fn current_traceparent() -> Option<String> {
    CURRENT
        .try_with(|span| {
            let mut one = One::default();
            TraceContextPropagator::new().inject_context(&span.0, &mut one);
            one.0
        })
        .ok()
        .flatten()
}
