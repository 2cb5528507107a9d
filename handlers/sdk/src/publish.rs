//! Publishing: the one way a handler acts on the world. Events and messages
//! are queued; the host sends them, in order, only once `handle` has
//! returned `Ok`, so a failed attempt publishes nothing. What the host
//! refuses at once (a bad topic, too many) fails the message for good.

use serde::Serialize;

use crate::wit::event_host::handler::types as wit;
use crate::{HandlerError, Header};

/// An event in the host's envelope, to publish with [`publish`]. The host
/// fills in its id and timestamp:
/// `OutgoingEvent::new("NOTIFICATION_SENT").user_id("u1").data(&body)?`.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    event_type: String,
    user_id: Option<String>,
    data: String,
    key: Option<Vec<u8>>,
    headers: Vec<Header>,
}

impl OutgoingEvent {
    /// An event of `event_type` with no user, `null` data, keyed by the host.
    pub fn new(event_type: impl Into<String>) -> Self {
        Self {
            event_type: event_type.into(),
            user_id: None,
            data: "null".into(),
            key: None,
            headers: Vec::new(),
        }
    }

    /// The user the event is about; without a key, it also keys the message.
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// [`OutgoingEvent::user_id`] when there is one, as when passing on
    /// [`Context::user_id`](crate::Context::user_id).
    pub fn maybe_user_id(mut self, user_id: Option<impl Into<String>>) -> Self {
        self.user_id = user_id.map(Into::into);
        self
    }

    /// The payload, as JSON. Data that cannot be encoded is fatal.
    pub fn data(mut self, data: &impl Serialize) -> Result<Self, HandlerError> {
        self.data = serde_json::to_string(data).map_err(|e| {
            HandlerError::Fatal(format!("cannot encode {} data: {e}", self.event_type))
        })?;
        Ok(self)
    }

    /// The Kafka key; without one the host keys by user id, else by event id.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// A header, sent after the host's own (`eventType`, `userId`, `eventId`,
    /// `traceparent`, `handlerVersion`; a `traceparent` or `handlerVersion`
    /// of its own gives way to the host's).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: Some(value.into()),
        });
        self
    }
}

/// A message published as it is, without an envelope, with
/// [`publish_message`]. By default it has no key and no value (a tombstone).
#[derive(Debug, Clone, Default)]
pub struct OutgoingMessage {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<Header>,
}

impl OutgoingMessage {
    pub fn new() -> Self {
        Self::default()
    }

    /// The Kafka key; without one Kafka spreads messages over partitions.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn value(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// The value as the JSON of `value`. A value that cannot be encoded is
    /// fatal.
    pub fn json(mut self, value: &impl Serialize) -> Result<Self, HandlerError> {
        let json = serde_json::to_vec(value)
            .map_err(|e| HandlerError::Fatal(format!("cannot encode message value: {e}")))?;
        self.value = Some(json);
        Ok(self)
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: Some(value.into()),
        });
        self
    }
}

/// Queues `event` for publishing to `topic` and returns its id.
pub fn publish(topic: &str, event: OutgoingEvent) -> Result<String, HandlerError> {
    let event_type = event.event_type.clone();
    let event = wit::OutgoingEvent {
        topic: topic.to_string(),
        event_type: event.event_type,
        user_id: event.user_id,
        data: event.data,
        key: event.key,
        headers: event.headers,
    };
    #[cfg(target_arch = "wasm32")]
    let queued = crate::wit::event_host::handler::publisher::publish(&event);
    #[cfg(not(target_arch = "wasm32"))]
    let queued = crate::recorder::publish(event);
    queued.map_err(|e| {
        HandlerError::Fatal(format!(
            "the host refused {event_type} event for {topic}: {e}"
        ))
    })
}

/// Queues `message` for publishing to `topic`, as it is.
pub fn publish_message(topic: &str, message: OutgoingMessage) -> Result<(), HandlerError> {
    let message = wit::OutgoingMessage {
        topic: topic.to_string(),
        key: message.key,
        value: message.value,
        headers: message.headers,
    };
    #[cfg(target_arch = "wasm32")]
    let queued = crate::wit::event_host::handler::publisher::publish_message(&message);
    #[cfg(not(target_arch = "wasm32"))]
    let queued = crate::recorder::publish_message(message);
    queued.map_err(|e| HandlerError::Fatal(format!("the host refused a message for {topic}: {e}")))
}
