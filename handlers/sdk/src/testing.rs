//! Runs a handler natively, in a plain `cargo test`, through the path its
//! component export takes (decode the message, then the handler's
//! function), and reports what it did: its result, what it published and
//! what it logged. No host, no broker, no WebAssembly.
//!
//! ```
//! use handler_sdk::testing::{self, Level};
//! use handler_sdk::{Context, Event, HandlerError, OutgoingEvent, handler};
//! use serde_json::json;
//!
//! #[handler(topics = ["orders"])]
//! fn ack(event: Event, ctx: &Context) -> Result<(), HandlerError> {
//!     handler_sdk::info!("acking {}", event.id);
//!     let ack = OutgoingEvent::new("ACKED").maybe_user_id(ctx.user_id());
//!     handler_sdk::publish("acks", ack.data(&event.data::<serde_json::Value>()?)?)?;
//!     Ok(())
//! }
//!
//! let outcome = testing::event("ORDER_CREATED")
//!     .user_id("u1")
//!     .data(json!({"id": "o-1"}))
//!     .handle::<Handler>();
//! assert_eq!(outcome.result, Ok(()));
//! assert_eq!(outcome.events.len(), 1);
//! let ack = &outcome.events[0];
//! assert_eq!((ack.topic.as_str(), ack.event_type.as_str()), ("acks", "ACKED"));
//! assert_eq!(ack.user_id.as_deref(), Some("u1"));
//! assert_eq!(ack.data, json!({"id": "o-1"}));
//! assert_eq!(outcome.lines(Level::Info), [format!("acking {}", testing::EVENT_ID)]);
//!
//! // Bad data fails for good, and the host would publish nothing.
//! let outcome = testing::event("ORDER_CREATED").data_text("{").handle::<Handler>();
//! assert!(matches!(outcome.result, Err(HandlerError::Fatal(_))));
//! ```
//!
//! Everything a handler publishes is recorded, even when it then fails; the
//! host would publish none of it then.

use serde_json::Value;

use crate::wit::event_host::handler::types::OutgoingEvent;
use crate::{Delivery, Event, Format, HandlerError, Header, Message, MessageHandler, recorder};

pub use crate::Level;

/// The id of every test event unless set with [`TestEvent::id`].
pub const EVENT_ID: &str = "00000000-0000-4000-8000-000000000000";
/// The timestamp of every test event unless set with
/// [`TestEvent::timestamp`].
pub const EVENT_TIMESTAMP: &str = "2026-01-01T00:00:00.000Z";

/// An envelope event of `event_type`, with no user and data `{}`.
pub fn event(event_type: &str) -> TestEvent {
    TestEvent {
        event: Event {
            id: EVENT_ID.into(),
            event_type: event_type.into(),
            timestamp: EVENT_TIMESTAMP.into(),
            user_id: None,
            data: "{}".into(),
        },
        delivery: TestDelivery::default(),
    }
}

/// A raw message with `value`.
pub fn raw(value: impl Into<Vec<u8>>) -> TestRaw {
    TestRaw {
        value: Some(value.into()),
        delivery: TestDelivery::default(),
    }
}

/// A raw message without a value (a tombstone).
pub fn tombstone() -> TestRaw {
    TestRaw {
        value: None,
        delivery: TestDelivery::default(),
    }
}

/// Runs handler `H` on `message`, as the host would: an event of a type `H`
/// does not subscribe to is skipped without calling it.
pub fn handle<H: MessageHandler>(message: impl Into<TestMessage>) -> Outcome {
    let TestMessage { message, delivery } = message.into();
    let description = H::describe();
    if let Message::Event(event) = &message {
        let types = &description.event_types;
        if !types.is_empty() && !types.contains(&event.event_type) {
            return Outcome::skipped();
        }
    }
    let format = match message {
        Message::Event(_) => Format::Envelope,
        Message::Raw(_) => Format::Raw,
    };
    let topic = delivery.topic.unwrap_or_else(|| {
        // The first topic the handler reads this kind of message from.
        (description.subscriptions.iter())
            .find(|s| s.format == format)
            .map_or_else(|| "test-topic".into(), |s| s.topic.clone())
    });
    let delivery = Delivery {
        topic,
        partition: delivery.partition,
        offset: delivery.offset,
        key: delivery.key,
        headers: delivery.headers,
        timestamp_ms: delivery.timestamp_ms,
        attempt: delivery.attempt,
    };
    drop(recorder::take());
    let result = H::handle(message, delivery);
    Outcome::of(result, recorder::take())
}

/// A message to hand to a handler: a [`TestEvent`] or a [`TestRaw`].
pub struct TestMessage {
    message: Message,
    delivery: TestDelivery,
}

/// The delivery of a test message; the topic defaults to the handler's.
struct TestDelivery {
    topic: Option<String>,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    headers: Vec<Header>,
    timestamp_ms: Option<i64>,
    attempt: u32,
}

impl Default for TestDelivery {
    fn default() -> Self {
        Self {
            topic: None,
            partition: 0,
            offset: 0,
            key: None,
            headers: Vec::new(),
            timestamp_ms: None,
            attempt: 1,
        }
    }
}

/// An envelope event for a test; see [`event`].
pub struct TestEvent {
    event: Event,
    delivery: TestDelivery,
}

/// A raw message for a test; see [`raw`] and [`tombstone`].
pub struct TestRaw {
    value: Option<Vec<u8>>,
    delivery: TestDelivery,
}

impl TestEvent {
    pub fn user_id(mut self, user_id: &str) -> Self {
        self.event.user_id = Some(user_id.into());
        self
    }

    /// The event's data, as JSON.
    pub fn data(mut self, data: Value) -> Self {
        self.event.data = data.to_string();
        self
    }

    /// The event's data exactly as given, JSON or not.
    pub fn data_text(mut self, data: &str) -> Self {
        self.event.data = data.into();
        self
    }

    pub fn id(mut self, id: &str) -> Self {
        self.event.id = id.into();
        self
    }

    pub fn timestamp(mut self, timestamp: &str) -> Self {
        self.event.timestamp = timestamp.into();
        self
    }
}

impl From<TestEvent> for TestMessage {
    fn from(e: TestEvent) -> Self {
        Self {
            message: Message::Event(e.event),
            delivery: e.delivery,
        }
    }
}

impl From<TestRaw> for TestMessage {
    fn from(r: TestRaw) -> Self {
        Self {
            message: Message::Raw(r.value),
            delivery: r.delivery,
        }
    }
}

/// The delivery setters and `handle`, alike on both kinds of test message.
macro_rules! delivery_setters {
    ($ty:ty) => {
        impl $ty {
            /// The topic it came from; by default the handler's first
            /// subscription of its kind.
            pub fn topic(mut self, topic: &str) -> Self {
                self.delivery.topic = Some(topic.into());
                self
            }

            pub fn partition(mut self, partition: i32) -> Self {
                self.delivery.partition = partition;
                self
            }

            pub fn offset(mut self, offset: i64) -> Self {
                self.delivery.offset = offset;
                self
            }

            pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
                self.delivery.key = Some(key.into());
                self
            }

            /// Adds a header, after those added before.
            pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
                self.delivery.headers.push(Header {
                    name: name.into(),
                    value: Some(value.into()),
                });
                self
            }

            pub fn timestamp_ms(mut self, timestamp_ms: i64) -> Self {
                self.delivery.timestamp_ms = Some(timestamp_ms);
                self
            }

            /// Which try this is: 1 (the default) for the first.
            pub fn attempt(mut self, attempt: u32) -> Self {
                self.delivery.attempt = attempt;
                self
            }

            /// Runs handler `H` on this message; see [`handle`].
            pub fn handle<H: MessageHandler>(self) -> Outcome {
                handle::<H>(self)
            }
        }
    };
}

delivery_setters!(TestEvent);
delivery_setters!(TestRaw);

/// What a handler did with one message.
#[derive(Debug)]
pub struct Outcome {
    /// What `handle` returned (`Ok` when skipped).
    pub result: Result<(), HandlerError>,
    /// True when the host would not have called the handler: the event's
    /// type is not one it subscribes to.
    pub skipped: bool,
    /// The events it queued, in order.
    pub events: Vec<PublishedEvent>,
    /// The raw messages it queued, in order.
    pub messages: Vec<PublishedMessage>,
    /// The lines it logged through the SDK, in order.
    pub logs: Vec<LogLine>,
}

/// An event a handler published.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedEvent {
    /// The id `publish` returned.
    pub id: String,
    pub topic: String,
    pub event_type: String,
    pub user_id: Option<String>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    pub data: Value,
}

/// A raw message a handler published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedMessage {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
}

/// A line a handler logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

impl Outcome {
    fn skipped() -> Self {
        Self {
            result: Ok(()),
            skipped: true,
            events: Vec::new(),
            messages: Vec::new(),
            logs: Vec::new(),
        }
    }

    fn of(result: Result<(), HandlerError>, recording: recorder::Recording) -> Self {
        Self {
            result,
            skipped: false,
            events: (recording.events.into_iter())
                .map(|(id, e)| PublishedEvent::of(id, e))
                .collect(),
            messages: (recording.messages.into_iter())
                .map(|m| PublishedMessage {
                    topic: m.topic,
                    key: m.key,
                    value: m.value,
                    headers: m.headers,
                })
                .collect(),
            logs: (recording.logs.into_iter())
                .map(|(level, message)| LogLine { level, message })
                .collect(),
        }
    }

    /// The messages of the lines logged at `level`, in order.
    pub fn lines(&self, level: Level) -> Vec<&str> {
        (self.logs.iter())
            .filter(|l| l.level == level)
            .map(|l| l.message.as_str())
            .collect()
    }

    /// The error's message if the handler failed for good; panics (failing
    /// the test) otherwise.
    #[track_caller]
    pub fn fatal(&self) -> &str {
        match &self.result {
            Err(HandlerError::Fatal(m)) => m,
            other => panic!("expected a fatal error, got {other:?}"),
        }
    }

    /// The error's message if the handler asked for a retry; panics
    /// (failing the test) otherwise.
    #[track_caller]
    pub fn retryable(&self) -> &str {
        match &self.result {
            Err(HandlerError::Retryable(m)) => m,
            other => panic!("expected a retryable error, got {other:?}"),
        }
    }
}

impl PublishedEvent {
    fn of(id: String, e: OutgoingEvent) -> Self {
        // The recorder refused data that is not JSON.
        let data = serde_json::from_str(&e.data).unwrap_or(Value::String(e.data));
        Self {
            id,
            topic: e.topic,
            event_type: e.event_type,
            user_id: e.user_id,
            key: e.key,
            headers: e.headers,
            data,
        }
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        (self.headers.iter())
            .find(|h| h.name == name)
            .and_then(|h| h.value.as_deref())
    }
}
