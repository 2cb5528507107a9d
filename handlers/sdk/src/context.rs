//! What a handler may know about the message besides its value: where it
//! came from, its key, headers and timestamps, how often it was tried, and
//! the envelope's metadata. Read-only: nothing here changes what the host
//! does with the message.

use crate::{Delivery, Header, Message};

/// The delivery of the message being handled, and its envelope's metadata
/// when it is an envelope event.
#[derive(Debug, Clone)]
pub struct Context {
    delivery: Delivery,
    envelope: Option<Envelope>,
}

/// The envelope fields besides `data`, kept when the data is decoded away.
#[derive(Debug, Clone)]
struct Envelope {
    id: String,
    event_type: String,
    user_id: Option<String>,
    timestamp: String,
}

impl Context {
    /// The context of `message` as delivered by `delivery`.
    pub fn new(message: &Message, delivery: Delivery) -> Self {
        let envelope = match message {
            Message::Event(e) => Some(Envelope {
                id: e.id.clone(),
                event_type: e.event_type.clone(),
                user_id: e.user_id.clone(),
                timestamp: e.timestamp.clone(),
            }),
            Message::Raw(_) => None,
        };
        Self { delivery, envelope }
    }

    pub fn topic(&self) -> &str {
        &self.delivery.topic
    }

    pub fn partition(&self) -> i32 {
        self.delivery.partition
    }

    pub fn offset(&self) -> i64 {
        self.delivery.offset
    }

    /// The Kafka message key, if it had one.
    pub fn key(&self) -> Option<&[u8]> {
        self.delivery.key.as_deref()
    }

    /// Every header, in order; Kafka allows several with one name.
    pub fn headers(&self) -> &[Header] {
        &self.delivery.headers
    }

    /// The value of the first header called `name`; none when there is no
    /// such header or it has no value (see [`Context::headers`] to tell).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.delivery
            .headers
            .iter()
            .find(|h| h.name == name)
            .and_then(|h| h.value.as_deref())
    }

    /// [`Context::header`] as text; none also when it is not UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The Kafka timestamp, in milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.delivery.timestamp_ms
    }

    /// 1 on the first try, 2 on the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.delivery.attempt
    }

    /// The envelope's event id; none for a raw message.
    pub fn event_id(&self) -> Option<&str> {
        self.envelope.as_ref().map(|e| e.id.as_str())
    }

    /// The envelope's event type; none for a raw message.
    pub fn event_type(&self) -> Option<&str> {
        self.envelope.as_ref().map(|e| e.event_type.as_str())
    }

    /// The user the event is about; none for a raw message or an event
    /// without one.
    pub fn user_id(&self) -> Option<&str> {
        self.envelope.as_ref().and_then(|e| e.user_id.as_deref())
    }

    /// When the event was published (RFC 3339, UTC); none for a raw message.
    pub fn timestamp(&self) -> Option<&str> {
        self.envelope.as_ref().map(|e| e.timestamp.as_str())
    }

    /// The delivery as the host passed it.
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }
}
