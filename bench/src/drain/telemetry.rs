//! What a host drain traces and records (`CONSUME_TELEMETRY`), and where
//! the sampled mode exports its spans.

use super::{NOOP, NOOP_BASELINE, NOOP_NO_HISTORY, NOOP_QUIET, NOOP_REUSED, NOOP_SAMPLED};

/// What a host drain traces and records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Telemetry {
    /// No trace layer and no call history.
    Off,
    /// As the host runs by default.
    Unsampled,
    /// Every trace sampled and exported.
    Sampled,
    /// Another build's host (`CONSUME_BASELINE_EXE`).
    Baseline,
    /// As by default, without the call history.
    NoHistory,
    /// As by default, the no-op handler on reused instances
    /// (`REUSE_INSTANCES` names it).
    Reused,
}

impl Telemetry {
    /// The side's name in the report.
    pub fn side(self) -> &'static str {
        match self {
            Telemetry::Off => NOOP_QUIET,
            Telemetry::Unsampled => NOOP,
            Telemetry::Sampled => NOOP_SAMPLED,
            Telemetry::Baseline => NOOP_BASELINE,
            Telemetry::NoHistory => NOOP_NO_HISTORY,
            Telemetry::Reused => NOOP_REUSED,
        }
    }

    /// The child host's environment for this mode.
    pub fn env(self, receiver: Option<&str>) -> Vec<(&'static str, String)> {
        match self {
            Telemetry::Off => vec![("EVENT_HOST_TELEMETRY", "off".into())],
            Telemetry::Unsampled | Telemetry::Baseline => vec![],
            Telemetry::NoHistory => vec![("CONSUME_NO_HISTORY", "1".into())],
            Telemetry::Reused => vec![("CONSUME_REUSE", "1".into())],
            Telemetry::Sampled => vec![
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    receiver.expect("a receiver").to_string(),
                ),
                ("OTEL_TRACES_SAMPLER", "always_on".into()),
                // Exported every 200 ms, without dropping any for a full
                // queue at drain rates.
                ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "262144".into()),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8192".into()),
            ],
        }
    }
}

/// An OTLP/HTTP endpoint that takes every export and discards it. Without
/// a body limit: a batch of spans can exceed axum's default 2 MB, and a
/// refused export (413) would cost the host less than a real one.
pub async fn discarding_otlp_receiver() -> String {
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(|_: axum::body::Bytes| async { "" }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    endpoint
}
