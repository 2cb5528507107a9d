//! What an operator sees: `/metrics` after the demo's flows, a
//! registration's causal chain, and one trace through both handlers,
//! exported over OTLP to a receiver in the test, with the JSON log lines
//! carrying the same trace id.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::{Value, json};

use crate::support::{
    self, HostProcess, PATIENCE, TestHost, config, echo_dir, install_demo_handlers, read_until,
    temp_handlers_dir,
};

const DEMO: [&str; 3] = ["user-handler", "order-handler", "notification-analytics"];

async fn demo_host(test: &str) -> TestHost {
    let dir = temp_handlers_dir(test);
    install_demo_handlers(&dir, &DEMO);
    TestHost::start(config(&dir, None)).await
}

/// Waits until each handler has handled at least `counts[handler]` events.
async fn wait_handled(host: &TestHost, counts: &[(&str, u64)]) {
    for (handler, n) in counts {
        host.wait_for_handler(handler, &format!("{n} handled"), |h| {
            h["stats"]["handled"].as_u64() >= Some(*n)
        })
        .await;
    }
}

async fn metrics_text(host: &TestHost) -> String {
    let r = host.http.get(host.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    r.text().await.unwrap()
}

/// The value of the sample written exactly as `sample` (name and labels).
fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_the_demo_flows() {
    let host = demo_host("metrics-flows").await;
    support::flows::check_demo_flows(&host).await;
    wait_handled(
        &host,
        &[
            ("user-handler", 2),
            ("order-handler", 2),
            ("notification-analytics", 4),
        ],
    )
    .await;
    let text = metrics_text(&host).await;
    let expect = [
        // The four flows: two user events, two order events, each
        // published by the API, each handled once and making one
        // notification, which notification-analytics handles.
        (
            r#"messaging_client_sent_messages_total{source="api",result="ok"}"#,
            4.0,
        ),
        (
            r#"messaging_client_sent_messages_total{source="handler",result="ok"}"#,
            4.0,
        ),
        (
            r#"event_host_events_total{handler="user-handler",topic="user-events",outcome="handled"}"#,
            2.0,
        ),
        (
            r#"event_host_events_total{handler="order-handler",topic="order-events",outcome="handled"}"#,
            2.0,
        ),
        (
            r#"event_host_events_total{handler="notification-analytics",topic="notification-events",outcome="handled"}"#,
            4.0,
        ),
        (
            r#"event_host_events_total{handler="user-handler",topic="user-events",outcome="dead_lettered"}"#,
            0.0,
        ),
        (
            r#"messaging_client_consumed_messages_total{handler="user-handler",topic="user-events"}"#,
            2.0,
        ),
        (
            r#"messaging_process_duration_seconds_count{handler="user-handler",topic="user-events",outcome="ok"}"#,
            2.0,
        ),
        (
            r#"messaging_process_duration_seconds_count{handler="notification-analytics",topic="notification-events",outcome="ok"}"#,
            4.0,
        ),
        (
            r#"event_host_event_age_seconds_count{handler="order-handler",topic="order-events"}"#,
            2.0,
        ),
        (
            r#"event_host_handler_failures_total{handler="user-handler",topic="user-events",kind="trap"}"#,
            0.0,
        ),
        (
            r#"event_host_retries_total{handler="user-handler",topic="user-events"}"#,
            0.0,
        ),
        (
            r#"event_host_reloads_total{handler="user-handler",result="added"}"#,
            1.0,
        ),
        (
            r#"http_server_request_duration_seconds_count{method="POST",route="/users",status="200"}"#,
            1.0,
        ),
        (
            r#"http_server_request_duration_seconds_count{method="PUT",route="/users/{user_id}",status="200"}"#,
            1.0,
        ),
        (
            r#"http_server_request_duration_seconds_count{method="POST",route="/orders",status="200"}"#,
            1.0,
        ),
        (
            r#"http_server_request_duration_seconds_count{method="PUT",route="/orders/{order_id}/complete",status="200"}"#,
            1.0,
        ),
        (
            r#"messaging_client_operation_duration_seconds_count{source="api",result="ok"}"#,
            4.0,
        ),
        (
            r#"event_host_handler_calls_in_flight{handler="user-handler"}"#,
            0.0,
        ),
        (
            r#"event_host_handler_partitions{handler="user-handler"}"#,
            3.0,
        ),
        (r#"event_host_producer_queue_messages"#, 0.0),
    ];
    let wrong: Vec<String> = expect
        .iter()
        .filter(|(s, v)| sample(&text, s) != Some(*v))
        .map(|(s, v)| format!("{s}: expected {v}, found {:?}", sample(&text, s)))
        .collect();
    assert!(wrong.is_empty(), "{}\n\n{text}", wrong.join("\n"));
    // The version served, named by its digest, and the build.
    let (_, user) = host.get("/handlers/user-handler").await;
    let digest = user["version"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            r#"event_host_handler_version{{handler="user-handler",version="{digest}",contract="event-host:handler@0.2.0",status="running",instances="reused"}} 1"#
        )),
        "{text}"
    );
    assert!(text.contains("event_host_build_info{"), "{text}");
    // No label carries an event or user id: no label value is a UUID.
    let ids: Vec<&str> = text
        .split("=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|v| uuid::Uuid::parse_str(v).is_ok())
        .collect();
    assert!(ids.is_empty(), "ids in labels: {ids:?}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs python3 with prometheus_client (pip install prometheus-client, or PROMETHEUS_PYTHON=path/to/python); run with: cargo test --workspace -- --include-ignored"]
async fn metrics_parse_with_the_prometheus_projects_own_parser() {
    let dir = temp_handlers_dir("metrics-parse");
    install_demo_handlers(&dir, &DEMO);
    let mut settings = config(&dir, None);
    settings.lag_interval_ms = 100;
    let host = TestHost::start(settings).await;
    host.register("Parse").await;
    wait_handled(&host, &[("user-handler", 1), ("notification-analytics", 1)]).await;
    // The lag gauges appear with librdkafka's first report.
    host.wait_for_handler("user-handler", "its lag reported", |h| {
        !h["stats"]["lag"].is_null()
    })
    .await;
    let text = metrics_text(&host).await;
    host.stop().await;
    // The reference OpenMetrics parser: strict about types, units,
    // suffixes, label syntax and the closing `# EOF`.
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(sys.stdin.read()))
names = sorted(f.name for f in families)
print(len(families), "families:", " ".join(names))
"#;
    // `.ci/run` installs it in a venv of its own and names its python here.
    let python = std::env::var("PROMETHEUS_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = std::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused /metrics: {stderr}\n{text}"
    );
    println!("{stdout}");
    for family in [
        "messaging_process_duration_seconds",
        "event_host_events",
        "http_server_request_duration_seconds",
        "event_host_consumer_lag",
        "event_host_build",
    ] {
        assert!(
            stdout.split_whitespace().any(|n| n == family),
            "{family} not parsed: {stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_s_chain_shows_the_welcome_it_caused_and_who_handled_it() {
    let host = demo_host("chain").await;
    let user = host.register("Chain").await;
    wait_handled(&host, &[("user-handler", 1), ("notification-analytics", 1)]).await;
    let (_, calls) = host.get("/calls?limit=10").await;
    let registration = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["handler"] == "user-handler")
        .unwrap_or_else(|| panic!("no user-handler call: {calls}"))
        .clone();
    assert_eq!(registration["eventType"], "USER_REGISTERED");
    let id = registration["eventId"].as_str().unwrap();
    let (status, chain) = host.get(&format!("/events/{id}/chain")).await;
    assert_eq!(status, 200, "{chain}");
    assert_eq!(chain["eventId"], id);
    let call = &chain["calls"][0];
    assert_eq!(call["handler"], "user-handler");
    assert_eq!(call["topic"], "user-events");
    assert_eq!(call["outcome"], "handled");
    assert_eq!(call["attempts"], 1);
    assert!(call["version"].as_str().unwrap().len() == 64, "{call}");
    assert!(call["offset"].is_i64() && call["partition"].is_i64());
    assert!(call["durationMs"].as_f64().unwrap() > 0.0);
    let welcome = &call["published"][0];
    assert_eq!(welcome["topic"], "notification-events");
    assert_eq!(welcome["eventType"], "NOTIFICATION_SENT");
    let analytics = &welcome["calls"][0];
    assert_eq!(analytics["handler"], "notification-analytics", "{chain}");
    assert_eq!(analytics["eventId"], welcome["eventId"]);
    assert_eq!(analytics["outcome"], "handled");
    // The registration itself came from the API, under the user's id.
    assert_eq!(user["id"].as_str().map(|s| s.len()), Some(36));
    // The same chain by trace id.
    let trace = call["traceId"].as_str().unwrap();
    let (status, by_trace) = host.get(&format!("/traces/{trace}")).await;
    assert_eq!(status, 200);
    assert_eq!(by_trace["roots"][0]["eventId"], id, "{by_trace}");
    let (status, missing) = host.get("/events/no-such-event/chain").await;
    assert_eq!(status, 404, "{missing}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_carries_the_trace_of_the_request_that_caused_it() {
    let host = TestHost::start(config(&echo_dir("dlq-trace"), None)).await;
    let bootstrap = host.bootstrap().await;
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = host
        .http
        .post(host.url("/events/faults"))
        .header("traceparent", caller)
        .json(&json!({"type": "FAULT", "data": {"action": "fatal"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let letters = read_until(&bootstrap, "faults.dlq", "the dead letter", |s| {
        !s.is_empty()
    })
    .await;
    let headers: Vec<&str> = letters[0]
        .headers
        .iter()
        .filter(|(k, _)| k == "traceparent")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        headers.len(),
        1,
        "one traceparent: {:?}",
        letters[0].headers
    );
    let parts: Vec<&str> = headers[0].split('-').collect();
    assert_eq!(
        parts[1], "4bf92f3577b34da6a3ce929d0e0e4736",
        "the caller's trace"
    );
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "its parent is the handler call, not the caller"
    );
    host.stop().await;
}

/// A minimal OTLP/HTTP receiver: decodes each export into its spans.
struct Receiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Receiver {
    async fn start() -> Self {
        use axum::routing::post;
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let store = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            post(move |body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).unwrap();
                    let mut spans = store.lock().unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            spans.extend(scope.spans);
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, spans }
    }

    /// Waits until a span matching `find` arrived and returns it.
    async fn wait_for(&self, what: &str, find: impl Fn(&Span) -> bool) -> Span {
        let started = Instant::now();
        loop {
            if let Some(span) = self.spans.lock().unwrap().iter().find(|s| find(s)) {
                return span.clone();
            }
            assert!(
                started.elapsed() < PATIENCE,
                "no span {what}; received: {:#?}",
                self.spans
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|s| &s.name)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn attributes(span: &Span) -> BTreeMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|kv| {
            let v = match kv.value.as_ref()?.value.as_ref()? {
                Any::StringValue(s) => s.clone(),
                Any::IntValue(i) => i.to_string(),
                Any::BoolValue(b) => b.to_string(),
                Any::DoubleValue(d) => d.to_string(),
                _ => return None,
            };
            Some((kv.key.clone(), v))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_registration_is_one_trace_through_both_handlers_exported_over_otlp() {
    let receiver = Receiver::start().await;
    let dir = temp_handlers_dir("otlp");
    install_demo_handlers(&dir, &DEMO);
    let mut host = HostProcess::spawn(&[
        ("HANDLERS_DIR", dir.to_str().unwrap()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "event-host-test"),
        // Export every 100 ms instead of every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("LOG_FORMAT", "json"),
    ]);
    host.wait_for("ready: every handler is consuming");
    let r = reqwest::Client::new()
        .post(format!("http://{}/users", host.addr))
        .json(&json!({"name": "Trace", "email": "trace@example.com", "age": 40}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let request = receiver
        .wait_for("POST /users", |s| s.name == "POST /users")
        .await;
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(attributes(&request)["http.route"], "/users");
    assert_eq!(attributes(&request)["http.response.status_code"], "200");
    let trace = request.trace_id.clone();
    let in_trace = |name: &'static str, group: &'static str| {
        let trace = trace.clone();
        move |s: &Span| {
            s.trace_id == trace
                && s.name == name
                && attributes(s)
                    .get("messaging.consumer.group.name")
                    .map(String::as_str)
                    == Some(group)
        }
    };
    let user = receiver
        .wait_for(
            "process user-events of user-handler",
            in_trace("process user-events", "user-handler"),
        )
        .await;
    let analytics = receiver
        .wait_for(
            "process notification-events of notification-analytics",
            in_trace("process notification-events", "notification-analytics"),
        )
        .await;
    assert_eq!(
        user.parent_span_id, request.span_id,
        "request → user-handler"
    );
    assert_eq!(
        analytics.parent_span_id, user.span_id,
        "user-handler → notification-analytics"
    );
    for span in [&user, &analytics] {
        assert_eq!(span.kind, SpanKind::Consumer as i32);
        let a = attributes(span);
        assert_eq!(a["messaging.system"], "kafka");
        assert_eq!(a["messaging.operation.type"], "process");
        assert!(
            a.contains_key("messaging.destination.partition.id"),
            "{a:?}"
        );
        assert!(a.contains_key("messaging.kafka.offset"), "{a:?}");
        assert!(a.contains_key("messaging.message.id"), "{a:?}");
    }
    assert_eq!(
        attributes(&user)["messaging.destination.name"],
        "user-events"
    );

    // The JSON log lines written inside the calls carry the same ids.
    let trace_id = hex(&trace);
    let started = Instant::now();
    let welcome = loop {
        host.drain();
        let line = host
            .log
            .iter()
            .find(|l| l.contains("sending welcome"))
            .cloned();
        if let Some(line) = line {
            break line;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "no welcome line: {:?}",
            host.log
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let line: Value = serde_json::from_str(&welcome).unwrap();
    assert_eq!(line["span"]["trace_id"], trace_id.as_str(), "{line}");
    assert_eq!(
        line["span"]["span_id"],
        hex(&user.span_id).as_str(),
        "{line}"
    );
    host.signal("-TERM");
    assert!(host.wait_exit().success());
}
