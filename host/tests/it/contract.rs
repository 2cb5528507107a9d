//! The WIT contract grows without breaking handlers already built: a
//! component built against the first release of the `handler` world (its WIT
//! frozen in tests/handlers/first-world/wit) loads, handles events and
//! publishes in the current host.

use serde_json::json;

use crate::support::{TestHost, config, read_until, temp_handlers_dir, test_component};

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_built_against_the_first_world_still_runs() {
    let dir = temp_handlers_dir("contract-first-world");
    std::fs::copy(test_component("first-world"), dir.join("first.wasm")).unwrap();
    let host = TestHost::start(config(&dir, None)).await;
    let bootstrap = host.bootstrap().await;

    let (_, h) = host.get("/handlers/first").await;
    assert_eq!(h["status"], "running", "{h}");
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
