//! End to end against a real, separate Kafka-compatible broker process
//! (tansu): the demo's four flows through HTTP, Kafka and the WASM handlers,
//! and a bad request that must publish nothing.
//!
//! Needs `tansu` on PATH: the tests are ignored unless run with
//! `cargo test --workspace -- --include-ignored`, and then fail without it.

use serde_json::json;

use crate::support::{
    self, Tansu, TestHost, config, install_demo_handlers, message_count, temp_handlers_dir,
};

const DEMO: [&str; 3] = ["user-handler", "order-handler", "notification-analytics"];

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn the_demo_flows_run_end_to_end_on_a_real_broker() {
    let broker = Tansu::start();
    let dir = temp_handlers_dir("tansu-flows");
    install_demo_handlers(&dir, &DEMO);
    let host = TestHost::start(config(&dir, Some(&broker.bootstrap))).await;

    let (_, health) = host.get("/health").await;
    assert_eq!(health["broker"]["mode"], "external");
    assert_eq!(
        health["broker"]["bootstrapServers"],
        broker.bootstrap.as_str()
    );
    assert!(health.get("warning").is_none(), "{health}");

    support::flows::check_demo_flows(&host).await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn a_bad_request_publishes_nothing_on_a_real_broker() {
    let broker = Tansu::start();
    let dir = temp_handlers_dir("tansu-bad");
    install_demo_handlers(&dir, &DEMO);
    let host = TestHost::start(config(&dir, Some(&broker.bootstrap))).await;

    let before = message_count(&broker.bootstrap, "order-events").await;
    let (status, error) = host
        .post(
            "/orders",
            &json!({"items": [{"name": "a", "price": 1, "quantity": 1}], "total": 1}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(error["field"], "userId");
    // A good request after it lands, so the count below is not just slow.
    let (status, _) = host
        .post("/orders", &json!({"userId": "u1", "items": [{"name": "a", "price": 1, "quantity": 1}], "total": 1}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        message_count(&broker.bootstrap, "order-events").await,
        before + 1
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn handled_events_are_committed_and_not_handled_again_after_a_restart() {
    let broker = Tansu::start();
    let dir = temp_handlers_dir("tansu-restart");
    install_demo_handlers(&dir, &DEMO);
    let host = TestHost::start(config(&dir, Some(&broker.bootstrap))).await;
    let cy = host.register("Cy").await;
    host.wait_for_handler("notification-analytics", "handle the welcome", |h| {
        h["stats"]["handled"] == 1
    })
    .await;
    host.stop().await;

    // A new host joins the same groups: it resumes after the committed
    // offsets, so it handles only the new registration.
    let host = TestHost::start(config(&dir, Some(&broker.bootstrap))).await;
    let di = host.register("Di").await;
    host.wait_for_handler("notification-analytics", "handle the second welcome", |h| {
        h["stats"]["handled"] == 1
    })
    .await;
    host.wait_for_handler("user-handler", "handle one registration", |h| {
        h["stats"]["handled"] == 1
    })
    .await;
    // An event the user-handler skips, keyed like each registration, so on
    // the same partition and after it: once both are skipped, Cy's
    // registration, had it been handed out again, would have been handled.
    for user in [&cy, &di] {
        let sentinel = json!({"type": "USER_DELETED", "userId": user["id"], "data": {}});
        assert_eq!(host.post("/events/user-events", &sentinel).await.0, 201);
    }
    host.wait_for_handler("user-handler", "skip the two later events", |h| {
        h["stats"]["skipped"] == 2
    })
    .await;
    assert_eq!(
        host.stats("user-handler").await["handled"],
        1,
        "an old event was handled again"
    );
    host.stop().await;
}
