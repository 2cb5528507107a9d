//! Handlers written with the macros, run through `testing` as their
//! component export would run them: what they are given, what they may
//! read, and what they publish.

use handler_sdk::testing::{self, Level};
use handler_sdk::{Format, MessageHandler};
use serde_json::json;

/// Forwards raw messages, with their key and one header, as JSON.
mod forward {
    use handler_sdk::{Context, HandlerError, OutgoingMessage, RawMessage, handler};

    #[handler(raw_topics = ["clicks"], stateless)]
    fn forward(click: RawMessage, ctx: &Context) -> Result<(), HandlerError> {
        let source = ctx.header_str("source").unwrap_or("unknown");
        let text = click.text()?;
        let out = OutgoingMessage::new()
            .key(ctx.key().unwrap_or_default())
            .json(&serde_json::json!({"text": text, "source": source, "from": ctx.topic()}))?
            .header("forwarded", "1");
        handler_sdk::publish_message("clicks-out", out)
    }
}

/// Takes both kinds, and tells what it got.
mod both {
    use handler_sdk::{Context, HandlerError, Message, handler};

    #[handler(topics = ["events"], raw_topics = ["bytes"], retry(max_attempts = 2, backoff_ms = 5))]
    fn tell(message: Message, ctx: &Context) -> Result<(), HandlerError> {
        match message {
            Message::Event(e) => handler_sdk::info!(
                "event {} {} by {:?} at {:?}, attempt {}",
                e.event_type,
                ctx.event_id().unwrap_or("?"),
                ctx.user_id(),
                ctx.timestamp(),
                ctx.attempt()
            ),
            Message::Raw(value) => handler_sdk::warn!(
                "raw {:?} on {}, type {:?}",
                value.map(|v| v.len()),
                ctx.topic(),
                ctx.event_type()
            ),
        }
        Ok(())
    }
}

/// Typed events with a renamed type and a unit variant; publishes badly
/// when asked to.
mod typed {
    use handler_sdk::{Context, Events, HandlerError, OutgoingEvent, ResultExt, handler};
    use serde::Deserialize;

    #[derive(Events)]
    pub enum Input {
        #[event("payment.received")]
        Payment(Payment),
        AccountClosed,
    }

    #[derive(Deserialize)]
    pub struct Payment {
        amount: String,
    }

    #[handler(topics = ["payments"])]
    fn book(input: Input, _: &Context) -> Result<(), HandlerError> {
        match input {
            Input::Payment(p) => {
                let cents: u64 = p.amount.parse().fatal("amount")?;
                let booked = OutgoingEvent::new("BOOKED")
                    .user_id("u1")
                    .key("k")
                    .header("h", "v")
                    .data(&cents)?;
                handler_sdk::publish("booked", booked)?;
                Ok(())
            }
            Input::AccountClosed => {
                handler_sdk::publish("bad topic", OutgoingEvent::new("CLOSED"))?;
                Ok(())
            }
        }
    }
}

#[test]
fn the_description_says_what_the_macro_was_told() {
    let d = forward::Handler::describe();
    assert_eq!(d.subscriptions.len(), 1);
    assert_eq!(d.subscriptions[0].topic, "clicks");
    assert_eq!(d.subscriptions[0].format, Format::Raw);
    assert!(d.stateless && d.retry.is_none() && d.event_types.is_empty());

    let d = both::Handler::describe();
    let subs: Vec<_> = d
        .subscriptions
        .iter()
        .map(|s| (s.topic.as_str(), s.format))
        .collect();
    assert_eq!(subs, [("events", Format::Envelope), ("bytes", Format::Raw)]);
    let retry = d.retry.expect("a retry policy");
    assert_eq!((retry.max_attempts, retry.backoff_ms), (2, 5));
    assert!(!d.stateless);

    assert_eq!(
        typed::Handler::describe().event_types,
        ["payment.received", "ACCOUNT_CLOSED"]
    );
}

#[test]
fn a_raw_message_is_read_with_its_key_and_headers() {
    let outcome = testing::raw(b"hello".to_vec())
        .key(b"k1".to_vec())
        .header("source", b"web".to_vec())
        .handle::<forward::Handler>();
    assert_eq!(outcome.result, Ok(()));
    let [message] = &outcome.messages[..] else {
        panic!("{outcome:?}")
    };
    assert_eq!(message.topic, "clicks-out");
    assert_eq!(message.key.as_deref(), Some(&b"k1"[..]));
    let value: serde_json::Value =
        serde_json::from_slice(message.value.as_deref().unwrap()).unwrap();
    assert_eq!(
        value,
        json!({"text": "hello", "source": "web", "from": "clicks"})
    );
    assert_eq!(message.headers[0].name, "forwarded");
}

#[test]
fn a_tombstone_or_an_envelope_where_bytes_are_expected_is_fatal() {
    let outcome = testing::tombstone().handle::<forward::Handler>();
    assert!(outcome.fatal().contains("tombstone"), "{outcome:?}");
    let outcome = testing::event("ANY").handle::<forward::Handler>();
    assert!(
        outcome.fatal().contains("takes raw messages"),
        "{outcome:?}"
    );
}

#[test]
fn a_message_input_takes_both_kinds_with_their_context() {
    let outcome = testing::event("SEEN")
        .id("e-1")
        .user_id("u1")
        .attempt(2)
        .handle::<both::Handler>();
    assert_eq!(
        outcome.lines(Level::Info),
        [r#"event SEEN e-1 by Some("u1") at Some("2026-01-01T00:00:00.000Z"), attempt 2"#]
    );
    let outcome = testing::raw(b"abc".to_vec()).handle::<both::Handler>();
    assert_eq!(
        outcome.lines(Level::Warn),
        ["raw Some(3) on bytes, type None"]
    );
}

#[test]
fn typed_events_parse_their_data_and_publish_with_key_and_headers() {
    let outcome = testing::event("payment.received")
        .data(json!({"amount": "250"}))
        .handle::<typed::Handler>();
    assert_eq!(outcome.result, Ok(()));
    let booked = &outcome.events[0];
    assert_eq!(
        (booked.topic.as_str(), booked.event_type.as_str()),
        ("booked", "BOOKED")
    );
    assert_eq!(booked.data, json!(250));
    assert_eq!(booked.key.as_deref(), Some(&b"k"[..]));
    assert_eq!(booked.header("h"), Some(&b"v"[..]));
    assert_eq!(booked.id.len(), 36);
}

#[test]
fn errors_name_what_failed() {
    let outcome = testing::event("payment.received")
        .data(json!({"amount": "lots"}))
        .handle::<typed::Handler>();
    assert_eq!(outcome.fatal(), "amount: invalid digit found in string");

    let outcome = testing::event("payment.received")
        .data_text("not json")
        .handle::<typed::Handler>();
    let error = outcome.fatal();
    assert!(
        error.starts_with("payment.received event 00000000-"),
        "{error}"
    );
    assert!(error.contains("bad data: expected"), "{error}");

    // A unit variant ignores the data; the host refuses the topic name.
    let outcome = testing::event("ACCOUNT_CLOSED")
        .data_text("not json")
        .handle::<typed::Handler>();
    assert!(outcome.fatal().contains("bad topic name"), "{outcome:?}");
}

#[test]
fn events_of_other_types_are_skipped_as_the_host_skips_them() {
    let outcome = testing::event("payment.refunded").handle::<typed::Handler>();
    assert!(outcome.skipped);
    assert_eq!(outcome.result, Ok(()));
}
