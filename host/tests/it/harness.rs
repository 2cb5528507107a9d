//! The component test harness (`event_host::testing`): built components in
//! the host's real runtime, without Kafka or HTTP, from plain `#[test]`s.

use event_host::runtime::{Failure, Level};
use event_host::testing::Harness;
use serde_json::json;

use crate::support::{built_handlers, test_component};

#[test]
fn the_built_user_handler_welcomes_a_new_user() {
    let harness = Harness::new().unwrap();
    let handler = harness
        .load(built_handlers().join("user-handler.wasm"))
        .unwrap();
    let run = handler
        .event("user-events", "USER_REGISTERED")
        .user_id("u-1")
        .data(json!({"id": "u-1", "name": "Ada", "email": "ada@example.com"}))
        .handle();
    assert!(run.result.is_ok(), "{:?}", run.result);
    let events = run.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].topic, "notification-events");
    assert_eq!(events[0].event_type, "NOTIFICATION_SENT");
    assert_eq!(events[0].user_id.as_deref(), Some("u-1"));
    assert_eq!(
        events[0].data["message"],
        "Welcome Ada! Your account has been created successfully."
    );

    // Bad data is the event's fault: fatal, nothing published.
    let run = handler
        .event("user-events", "USER_REGISTERED")
        .data(json!({"email": "no name"}))
        .handle();
    assert!(matches!(run.result, Err(Failure::Fatal(_))), "{run:?}");
    // A type it did not subscribe to is skipped, not handled.
    let run = handler.event("user-events", "ORDER_PLACED").handle();
    assert!(run.skipped);
}

#[test]
fn raw_messages_headers_and_output_through_the_harness() {
    let harness = Harness::new().unwrap();
    let handler = harness.load(test_component("next-world")).unwrap();
    assert!(handler.subscription().stateless);
    let run = handler
        .raw("plain-in", Some(b"hi"))
        .key(b"k")
        .header("x-a", b"1")
        .handle();
    let outbox = run.result.as_ref().expect("handled");
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].topic().as_str(), "plain-out");
    assert!(run.events().is_empty(), "a raw message, not an event");

    let run = handler
        .event("faults", "FAULT")
        .header("x-trace", b"t")
        .data(json!({"n": 1}))
        .handle();
    let events = run.events();
    assert_eq!(events[0].data, json!({"n": 1}));
    let names: Vec<_> = events[0].headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["echo.of", "x-trace"]);
    assert_eq!(run.lines(Level::Info).len(), 1, "{:?}", run.log);
}
