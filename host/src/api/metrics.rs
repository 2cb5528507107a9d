//! `GET /metrics`, and the middleware that times every request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use super::AppState;
use super::views::status;
use crate::metrics::{HandlerSnapshot, Snapshot};
use crate::registry::HandlerInfo;
use crate::runtime::Instances;
use crate::telemetry;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use opentelemetry_semantic_conventions::attribute::{
    HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE, URL_PATH,
};

/// OpenMetrics text, which Prometheus scrapes natively.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`.
pub async fn metrics(State(app): State<AppState>) -> Response {
    let snapshot = Snapshot {
        handlers: app
            .registry()
            .list()
            .into_iter()
            .map(handler_snapshot)
            .collect(),
        producer_queue: app.bus().publisher().queued(),
        librdkafka: rdkafka::util::get_rdkafka_version().1,
        cluster: app.cluster().map(|c| super::cluster::snapshot(c)),
    };
    match app.bus().metrics().render(&snapshot) {
        Ok(text) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn handler_snapshot(h: HandlerInfo) -> HandlerSnapshot {
    HandlerSnapshot {
        status: status(h.status),
        version: h.version,
        contract: h.contract.map(|c| c.name()),
        instances: h.instances.unwrap_or(Instances::Fresh).as_str(),
        in_flight: h.counts.in_flight,
        waiting_for_capacity: h.counts.waiting_for_capacity,
        partitions: h.partitions,
        lag: h.lag.unwrap_or_default(),
        handed_over_unfinished: h.counts.handed_over_unfinished,
        instances_created: h.counts.instances_created,
        name: h.name,
    }
}

/// Makes each request a `{method} {route}` span (a child of the caller's
/// `traceparent`, if it sent one), so the events it publishes carry the
/// trace on; and records its method, route pattern (never the raw path,
/// whose ids would make the labels unbounded), status and duration.
pub async fn track(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let parent = telemetry::parent_from_http(request.headers());
    let span = telemetry::Span::start(SpanKind::Server, parent, || {
        let attributes = vec![
            KeyValue::new(HTTP_REQUEST_METHOD, method.clone()),
            KeyValue::new(HTTP_ROUTE, route.clone()),
            KeyValue::new(URL_PATH, request.uri().path().to_string()),
        ];
        (format!("{method} {route}"), attributes)
    });
    let log = tracing::info_span!(
        "request",
        trace_id = %span.trace_id(),
        span_id = %span.span_id(),
        method = %method,
        route = %route,
    );
    let response = span.clone().scope(next.run(request)).instrument(log).await;
    let status = response.status().as_u16();
    span.set_attribute(KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(status)));
    if response.status().is_server_error() {
        span.fail("server_error");
    }
    app.bus()
        .metrics()
        .http_request(&method, &route, status, started.elapsed());
    response
}
