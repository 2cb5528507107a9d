//! Misbehaving handlers are contained: a trap, an endless loop or a failure
//! costs the event its attempts and sends it to the dead-letter topic; the
//! host, the other handlers and the events behind it carry on.

use serde_json::json;

use crate::support::{
    self, TestHost, config, install_demo_handlers, read_until, temp_handlers_dir, test_component,
};

async fn fault_host(test: &str) -> TestHost {
    let dir = temp_handlers_dir(test);
    std::fs::copy(test_component("fault-handler"), dir.join("faulty.wasm")).unwrap();
    install_demo_handlers(&dir, &["user-handler", "notification-analytics"]);
    std::fs::write(dir.join("garbage.wasm"), b"this is not wasm").unwrap();
    let mut c = config(&dir, None);
    c.max_attempts = 3;
    c.handler_timeout_ms = 300;
    c.handler_memory_mb = 16;
    TestHost::start(c).await
}

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_handlers_are_contained_and_dead_lettered() {
    let host = fault_host("contained").await;
    let bootstrap = host.bootstrap().await;

    // Each bad event is tried 4 times, as the handler's own retry policy
    // says (the host's default is 3; fatal: once), then dead-lettered;
    // the `ok` events behind each are handled.
    let bad = ["trap", "loop", "alloc", "fail", "fatal"];
    let mut ids = Vec::new();
    for action in bad {
        ids.push((action, host.fault(action, None, json!({})).await));
        host.fault("ok", None, json!({})).await;
    }
    let h = host
        .wait_for_handler("faulty", "dead-letter 5 and handle 5", |h| {
            h["stats"]["deadLettered"] == 5 && h["stats"]["handled"] == 5
        })
        .await;
    assert_eq!(h["stats"]["failed"], 4 * 4 + 1, "{h}");
    assert_eq!(h["retry"], json!({"maxAttempts": 4, "backoff": 10}));
    assert_eq!(h["status"], "running");

    let letters = read_until(&bootstrap, "faults.dlq", "5 dead letters", |s| s.len() >= 5).await;
    for (action, id) in &ids {
        let letter = letters
            .iter()
            .find(|l| l.value["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{action} was not dead-lettered"));
        assert_eq!(letter.value["data"]["action"], *action, "payload unchanged");
        assert_eq!(letter.header("dlq.handler"), Some("faulty"));
        assert_eq!(letter.header("dlq.topic"), Some("faults"));
        assert_eq!(
            letter.header("eventType"),
            Some("FAULT"),
            "original headers kept"
        );
        let attempts = if *action == "fatal" { "1" } else { "4" };
        assert_eq!(letter.header("dlq.attempts"), Some(attempts), "{action}");
        assert!(
            letter
                .header("dlq.offset")
                .is_some_and(|o| o.parse::<i64>().is_ok())
        );
        let error = letter.header("dlq.error").unwrap_or_default();
        let expected = match *action {
            "loop" => "still running after",
            "fatal" => "fatal error",
            "fail" => "retryable error",
            _ => "trapped",
        };
        assert!(error.contains(expected), "{action}: {error}");
    }

    // A message that is not an event envelope at all is dead-lettered at
    // once, unchanged.
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            rdkafka::producer::FutureRecord::<str, _>::to("faults").payload("not json"),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    host.wait_for_handler("faulty", "dead-letter the malformed message", |h| {
        h["stats"]["deadLettered"] == 6
    })
    .await;
    let letters = read_until(&bootstrap, "faults.dlq", "the malformed letter", |s| {
        s.len() >= 6
    })
    .await;
    let malformed = letters
        .iter()
        .find(|l| l.raw == b"not json")
        .expect("the malformed letter");
    assert_eq!(malformed.header("dlq.attempts"), Some("0"));
    assert!(
        malformed
            .header("dlq.error")
            .unwrap()
            .contains("not an event envelope")
    );

    // The other handlers were not affected.
    host.register("Bo").await;
    host.wait_for_handler("notification-analytics", "handle the welcome", |h| {
        h["stats"]["handled"] == 1
    })
    .await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_that_fails_a_few_times_succeeds_on_retry() {
    let host = fault_host("retry").await;
    host.fault("fail-first", None, json!({"attempts": 3})).await;
    let h = host
        .wait_for_handler("faulty", "handle on the third attempt", |h| {
            h["stats"]["handled"] == 1
        })
        .await;
    assert_eq!(h["stats"]["failed"], 2);
    assert_eq!(h["stats"]["deadLettered"], 0);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_attempt_publishes_nothing() {
    let host = fault_host("publish").await;
    let bootstrap = host.bootstrap().await;
    host.fault("publish-then-fail", None, json!({})).await;
    host.wait_for_handler("faulty", "dead-letter the event", |h| {
        h["stats"]["deadLettered"] == 1
    })
    .await;
    // faults-out was never created, let alone written: publishing to it
    // would have created it.
    let out = support::try_message_count(&bootstrap, "faults-out").await;
    assert_eq!(out.unwrap_or(0), 0);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_is_not_a_handler_is_reported_and_the_rest_run() {
    let host = fault_host("garbage").await;
    let (status, h) = host.get("/handlers/garbage").await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "failed");
    assert_eq!(h["version"], serde_json::Value::Null);
    assert!(
        h["lastError"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly file"),
        "{h}"
    );
    let (_, health) = host.get("/health").await;
    assert_eq!(health["status"], "healthy");
    assert_eq!(
        health["handlers"],
        json!({"running": 3, "idle": 0, "total": 4})
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_redriven_to_their_handler_only() {
    redrive(None).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn dead_letters_are_redriven_on_a_real_broker() {
    let broker = support::Tansu::start();
    redrive(Some(&broker.bootstrap)).await;
}

async fn redrive(brokers: Option<&str>) {
    let dir = temp_handlers_dir(&format!("redrive-{}", brokers.is_some()));
    std::fs::copy(test_component("fault-handler"), dir.join("faulty.wasm")).unwrap();
    std::fs::copy(test_component("fault-handler"), dir.join("other.wasm")).unwrap();
    let host = TestHost::start(config(&dir, brokers)).await;

    // Both handlers of `faults` give up on a fatal event: two letters.
    host.fault("fatal", None, json!({})).await;
    for name in ["faulty", "other"] {
        host.wait_for_handler(name, "dead-letter the event", |h| {
            h["stats"]["deadLettered"] == 1
        })
        .await;
    }
    // tansu 0.6 reports a partition's end as its last batch's first offset
    // + 1 (`tansu_ends_a_partition_inside_its_last_batch`), and the two
    // letters may share a batch: a letter of a third handler, in a batch
    // of its own after them, makes the end right.
    let after = usize::from(brokers.is_some());
    if let Some(bootstrap) = brokers {
        let letters = read_until(bootstrap, "faults.dlq", "both letters", |s| s.len() == 2).await;
        support::produce_dead_letter(bootstrap, "faults.dlq", letters[0].partition, "nobody").await;
    }
    let (status, report) = host.post("/handlers/faulty/redrive", &json!(null)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["redriven"], 1, "{report}");
    assert_eq!(report["passedOver"], 1 + after, "{report}");

    // Only faulty gets it again (and, still fatal, dead-letters it again);
    // other skips it.
    host.wait_for_handler("faulty", "dead-letter the redriven event", |h| {
        h["stats"]["deadLettered"] == 2
    })
    .await;
    host.wait_for_handler("other", "skip the redriven event", |h| {
        h["stats"]["skipped"] == 1
    })
    .await;
    assert_eq!(host.stats("other").await["deadLettered"], 1);

    // A second redrive takes only the new letter.
    let (_, report) = host.post("/handlers/faulty/redrive", &json!(null)).await;
    assert_eq!(report["redriven"], 1, "{report}");
    assert_eq!(report["passedOver"], 0, "{report}");
    assert_eq!(
        host.post("/handlers/nope/redrive", &json!(null)).await.0,
        404
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_replays_from_the_earliest_event() {
    replay(None).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn a_handler_replays_on_a_real_broker() {
    let broker = support::Tansu::start();
    replay(Some(&broker.bootstrap)).await;
}

async fn replay(brokers: Option<&str>) {
    let dir = temp_handlers_dir(&format!("replay-{}", brokers.is_some()));
    std::fs::copy(test_component("fault-handler"), dir.join("faulty.wasm")).unwrap();
    let host = TestHost::start(config(&dir, brokers)).await;
    for _ in 0..3 {
        host.fault("ok", None, json!({})).await;
    }
    host.wait_for_handler("faulty", "handle 3", |h| h["stats"]["handled"] == 3)
        .await;

    let (status, replay) = host
        .post("/handlers/faulty/replay", &json!({"from": "earliest"}))
        .await;
    assert_eq!(status, 200, "{replay}");
    let partitions = replay["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3, "{replay}");
    assert!(
        partitions
            .iter()
            .all(|p| p["topic"] == "faults" && p["offset"] == 0),
        "{replay}"
    );
    host.wait_for_handler("faulty", "handle the 3 again", |h| {
        h["stats"]["handled"] == 6
    })
    .await;

    for (body, field) in [
        (json!({"offset": -1}), Some("offset")),
        (json!({"from": "latest"}), Some("from")),
        (json!({"timestamp": "yesterday"}), Some("timestamp")),
        (json!({}), None),
        (json!({"from": "earliest", "offset": 1}), None),
    ] {
        let (status, error) = host.post("/handlers/faulty/replay", &body).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert_eq!(error["field"].as_str(), field, "{body}: {error}");
    }
    let (status, _) = host
        .post("/handlers/nope/replay", &json!({"from": "earliest"}))
        .await;
    assert_eq!(status, 404);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_is_not_retried_past_the_retry_time_limit() {
    let dir = temp_handlers_dir("retry-limit");
    std::fs::copy(test_component("fault-handler"), dir.join("faulty.wasm")).unwrap();
    let mut c = config(&dir, None);
    // The handler asks for 4 attempts, 10, 20, 40 ms apart: more than 50 ms.
    c.max_retry_time_ms = 50;
    let host = TestHost::start(c).await;
    let bootstrap = host.bootstrap().await;
    host.fault("fail", None, json!({})).await;
    host.fault("ok", None, json!({})).await;
    host.wait_for_handler("faulty", "give up early, then handle the next", |h| {
        h["stats"]["deadLettered"] == 1 && h["stats"]["handled"] == 1
    })
    .await;
    let letters = read_until(&bootstrap, "faults.dlq", "the letter", |s| !s.is_empty()).await;
    let attempts: u32 = letters[0].header("dlq.attempts").unwrap().parse().unwrap();
    assert!(attempts < 4, "retried {attempts} times");
    assert!(
        letters[0].header("dlq.error").unwrap().contains("gave up"),
        "{letters:?}"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_partition_does_not_hold_up_the_others() {
    let dir = temp_handlers_dir("lanes");
    std::fs::copy(test_component("fault-handler"), dir.join("faulty.wasm")).unwrap();
    let mut c = config(&dir, None);
    c.handler_timeout_ms = 3_000;
    let host = TestHost::start(c).await;
    // One event that runs until its deadline, on one user's partition ...
    host.fault("loop", Some("stuck"), json!({})).await;
    host.wait_for_handler("faulty", "start the stuck event", |h| {
        h["stats"]["inFlight"] == 1
    })
    .await;
    // ... and events of other users, some on other partitions.
    for i in 0..9 {
        host.fault("ok", Some(&format!("user-{i}")), json!({}))
            .await;
    }
    // They are handled while the stuck one is still on its first attempt.
    let h = host
        .wait_for_handler("faulty", "handle events of other partitions", |h| {
            h["stats"]["handled"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(
        h["stats"]["failed"], 0,
        "the stuck event had already timed out: {h}"
    );
    host.stop().await;
}

/// A broker bug the redrive test works around: tansu 0.6 answers a
/// partition's latest offset with its last batch's first offset + 1, not
/// the offset after the last record. This fails the day tansu is fixed
/// (then drop the extra letter in `redrive`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn tansu_ends_a_partition_inside_its_last_batch() {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use std::time::Duration;

    let broker = support::Tansu::start();
    support::create_topic(&broker.bootstrap, "ends", 1).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("linger.ms", "200")
        .create()
        .unwrap();
    // Three records in one batch (queued within the linger), one partition.
    let sends = (0..3).map(|i| {
        let producer = producer.clone();
        async move {
            let value = i.to_string();
            producer
                .send(
                    FutureRecord::to("ends")
                        .key("k")
                        .payload(&value)
                        .partition(0),
                    Duration::from_secs(30),
                )
                .await
                .map(|delivery| delivery.offset)
                .map_err(|(e, _)| e)
        }
    });
    let offsets: Vec<i64> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|sent| sent.expect("delivered"))
        .collect();
    assert_eq!(offsets, [0, 1, 2]);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .create()
        .unwrap();
    let (_, high) = consumer
        .fetch_watermarks("ends", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        high, 1,
        "Kafka says 3 here — tansu 0.6 says 1; if it now says 3, drop the extra letter in `redrive`"
    );
}
