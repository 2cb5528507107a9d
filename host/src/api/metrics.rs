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
use crate::telemetry;

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
        instances: "fresh",
        in_flight: h.counts.in_flight,
        waiting_for_capacity: h.counts.waiting_for_capacity,
        partitions: h.partitions,
        lag: h.lag.unwrap_or_default(),
        handed_over_unfinished: h.counts.handed_over_unfinished,
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
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        "http.request.method" = %method,
        "http.route" = %route,
        "http.response.status_code" = tracing::field::Empty,
        "url.path" = request.uri().path(),
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    telemetry::parent_from_http(&span, request.headers());
    telemetry::record_ids(&span);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    app.bus()
        .metrics()
        .http_request(&method, &route, status, started.elapsed());
    response
}
