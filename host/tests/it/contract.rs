//! The WIT contract grows without breaking handlers already built: a
//! component built against the first release of the `handler` world (its WIT
//! frozen in tests/handlers/first-world/wit) loads, handles events and
//! publishes in the current host, beside one built against 0.2.0 that sees
//! headers, reads raw messages a plain producer wrote and publishes raw ones.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use crate::support::{
    self, PATIENCE, Tansu, TestHost, config, read_until, temp_handlers_dir, test_component,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_built_against_the_first_world_still_runs() {
    let dir = temp_handlers_dir("contract-first-world");
    std::fs::copy(test_component("first-world"), dir.join("first.wasm")).unwrap();
    let host = TestHost::start(config(&dir, None)).await;
    let bootstrap = host.bootstrap().await;

    let (_, h) = host.get("/handlers/first").await;
    assert_eq!(h["status"], "running", "{h}");
    assert_eq!(h["contract"], "event-host:handler@0.1.0", "{h}");
    let id = host.fault("anything", Some("u-1"), json!({"n": 7})).await;
    host.wait_for_handler("first", "handle the event", |h| h["stats"]["handled"] == 1)
        .await;

    let out = read_until(&bootstrap, "faults-out", "the echo", |s| !s.is_empty()).await;
    assert_eq!(out[0].value["type"], "ECHO");
    assert_eq!(out[0].value["userId"], "u-1");
    assert_eq!(out[0].value["data"], json!({"action": "anything", "n": 7}));
    assert_ne!(
        out[0].value["id"],
        id.as_str(),
        "a new event with its own id"
    );
    host.stop().await;
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    value: Option<&[u8]>,
    headers: &[(&str, &str)],
) {
    let mut all = OwnedHeaders::new();
    for (name, value) in headers {
        all = all.insert(Header {
            key: name,
            value: Some(*value),
        });
    }
    let mut record = FutureRecord::<str, [u8]>::to(topic).key(key).headers(all);
    if let Some(value) = value {
        record = record.payload(value);
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// Waits until `topic` exists: a reader subscribed to a missing topic looks
/// again only minutes later.
async fn wait_for_topic(bootstrap: &str, topic: &str) {
    let started = Instant::now();
    while support::try_message_count(bootstrap, topic).await < Some(1) {
        assert!(started.elapsed() < PATIENCE, "{topic} never got a message");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_0_1_and_a_0_2_handler_run_side_by_side_and_0_2_sees_headers() {
    let dir = temp_handlers_dir("contract-side-by-side");
    std::fs::copy(test_component("first-world"), dir.join("first.wasm")).unwrap();
    std::fs::copy(test_component("next-world"), dir.join("next.wasm")).unwrap();
    let host = TestHost::start(config(&dir, None)).await;
    let bootstrap = host.bootstrap().await;

    let (_, next) = host.get("/handlers/next").await;
    assert_eq!(next["status"], "running", "{next}");
    assert_eq!(next["contract"], "event-host:handler@0.2.0", "{next}");
    assert_eq!(next["stateless"], true, "{next}");
    let formats: Vec<_> = next["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["topic"].as_str().unwrap(), s["format"].as_str().unwrap()))
        .collect();
    assert_eq!(formats, [("faults", "envelope"), ("plain-in", "raw")]);
    let (_, first) = host.get("/handlers/first").await;
    assert_eq!(first["stateless"], false, "{first}");

    // An envelope event from a plain producer, with headers of its own.
    let envelope = json!({
        "id": "e-side-by-side", "type": "FAULT", "timestamp": "2026-12-01T00:00:00.000Z",
        "userId": "u-9", "data": {"action": "echo", "n": 1},
    })
    .to_string();
    send(
        &producer(&bootstrap),
        "faults",
        "u-9",
        Some(envelope.as_bytes()),
        &[("x-trace", "t-1"), ("other", "not copied")],
    )
    .await;

    let out = read_until(&bootstrap, "faults-out", "both echoes", |s| s.len() >= 2).await;
    let (from_next, from_first): (Vec<_>, Vec<_>) =
        out.iter().partition(|m| m.header("echo.of").is_some());
    assert_eq!((from_next.len(), from_first.len()), (1, 1), "{out:#?}");
    for m in [from_next[0], from_first[0]] {
        assert_eq!(m.value["type"], "ECHO");
        assert_eq!(m.value["data"], json!({"action": "echo", "n": 1}));
        assert_eq!(m.key.as_deref(), Some("u-9"), "keyed by user");
        assert_eq!(m.header("eventType"), Some("ECHO"), "the host's headers");
    }
    let next = from_next[0];
    assert_eq!(next.header("echo.of"), Some("e-side-by-side"));
    assert_eq!(next.header("x-trace"), Some("t-1"));
    assert_eq!(next.header("other"), None);
    // Host headers first (trace context and version included), then the
    // handler's.
    let names: Vec<_> = next.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "eventType",
            "userId",
            "eventId",
            "traceparent",
            "handlerVersion",
            "echo.of",
            "x-trace"
        ]
    );
    let (_, view) = host.get("/handlers/next").await;
    assert_eq!(next.header("handlerVersion"), view["version"].as_str());
    host.stop().await;
}

/// A raw subscription takes whatever a plain producer wrote (JSON that is
/// not an envelope, text, a tombstone) with its key and headers, and the
/// handler's raw messages arrive as it published them.
async fn raw_messages_in_and_out(brokers: Option<&str>, test: &str) {
    let dir = temp_handlers_dir(test);
    std::fs::copy(test_component("next-world"), dir.join("next.wasm")).unwrap();
    let host = TestHost::start(config(&dir, brokers)).await;
    let bootstrap = host.bootstrap().await;
    let producer = producer(&bootstrap);
    send(
        &producer,
        "plain-in",
        "k-1",
        Some(br#"{"plain":true}"#),
        &[("x-a", "1")],
    )
    .await;
    send(&producer, "plain-in", "k-1", Some(b"hello"), &[]).await;
    send(&producer, "plain-in", "k-1", None, &[("x-b", "2")]).await;

    wait_for_topic(&bootstrap, "plain-out").await;
    let out = read_until(&bootstrap, "plain-out", "three raw messages", |s| {
        s.len() >= 3
    })
    .await;
    assert_eq!(out.len(), 3, "{out:#?}");
    assert_eq!(out[0].raw, br#"seen:{"plain":true}"#);
    assert_eq!(out[1].raw, b"seen:hello");
    assert!(
        out[2].tombstone,
        "a tombstone stays a tombstone: {:?}",
        out[2]
    );
    for m in &out {
        assert_eq!(m.key.as_deref(), Some("k-1"));
        let ts: i64 = m
            .header("seen.timestamp")
            .expect("the consumed message's timestamp")
            .parse()
            .unwrap();
        assert!(ts > 1_700_000_000_000, "{ts}");
        assert_eq!(m.header("eventType"), None, "no envelope headers: {m:?}");
    }
    assert_eq!(out[0].header("x-a"), Some("1"));
    assert_eq!(out[2].header("x-b"), Some("2"));
    let (_, h) = host.get("/handlers/next").await;
    assert_eq!(h["stats"]["handled"], 3, "{h}");
    assert_eq!(h["stats"]["deadLettered"], 0, "{h}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_raw_subscription_reads_what_a_plain_producer_wrote() {
    raw_messages_in_and_out(None, "contract-raw").await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn a_raw_subscription_reads_what_a_plain_producer_wrote_on_a_real_broker() {
    let broker = Tansu::start();
    raw_messages_in_and_out(Some(&broker.bootstrap), "contract-raw-tansu").await;
}
