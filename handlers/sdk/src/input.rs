//! What a handler function takes: the host's message turned into the type
//! the handler asked for, which also says which event types to subscribe
//! to. A message that does not fit that type is a fatal error, never a
//! panic.

use serde::de::DeserializeOwned;

use crate::{Event, HandlerError, Message};

/// Which kinds of message an input type can be made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// Envelope events only (subscribed with `topics`).
    Envelope,
    /// Raw messages only (subscribed with `raw_topics`).
    Raw,
    /// Either.
    Both,
}

impl Accepts {
    pub const fn envelope(self) -> bool {
        matches!(self, Self::Envelope | Self::Both)
    }

    pub const fn raw(self) -> bool {
        matches!(self, Self::Raw | Self::Both)
    }
}

/// A type a `#[handler]` function can take. `#[derive(Events)]` implements
/// it for an enum of event types; the SDK for [`Event`], [`RawMessage`]
/// and [`Message`].
pub trait FromMessage: Sized {
    /// The event types to ask the host for; empty means every type.
    const EVENT_TYPES: &'static [&'static str];
    /// The kinds of message [`FromMessage::from_message`] can take; the
    /// `#[handler]` macro refuses to compile subscriptions it cannot.
    const ACCEPTS: Accepts;

    fn from_message(message: Message) -> Result<Self, HandlerError>;
}

/// Any envelope event, of any type.
impl FromMessage for Event {
    const EVENT_TYPES: &'static [&'static str] = &[];
    const ACCEPTS: Accepts = Accepts::Envelope;

    fn from_message(message: Message) -> Result<Self, HandlerError> {
        expect_event("Event", message)
    }
}

/// Either kind, as the host passed it.
impl FromMessage for Message {
    const EVENT_TYPES: &'static [&'static str] = &[];
    const ACCEPTS: Accepts = Accepts::Both;

    fn from_message(message: Message) -> Result<Self, HandlerError> {
        Ok(message)
    }
}

/// A message from a raw subscription: its value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    value: Option<Vec<u8>>,
}

impl RawMessage {
    pub fn new(value: Option<Vec<u8>>) -> Self {
        Self { value }
    }

    /// The value's bytes; none for a message without a value (a tombstone).
    pub fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    pub fn into_value(self) -> Option<Vec<u8>> {
        self.value
    }

    /// The value as text. A tombstone or text that is not UTF-8 is fatal.
    pub fn text(&self) -> Result<&str, HandlerError> {
        Ok(std::str::from_utf8(self.present()?)?)
    }

    /// The value parsed as JSON into `T`. A tombstone or bad JSON is fatal.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_slice(self.present()?)
            .map_err(|e| HandlerError::Fatal(format!("raw message: bad JSON: {e}")))
    }

    fn present(&self) -> Result<&[u8], HandlerError> {
        self.value()
            .ok_or_else(|| HandlerError::fatal("raw message without a value (a tombstone)"))
    }
}

impl FromMessage for RawMessage {
    const EVENT_TYPES: &'static [&'static str] = &[];
    const ACCEPTS: Accepts = Accepts::Raw;

    fn from_message(message: Message) -> Result<Self, HandlerError> {
        match message {
            Message::Raw(value) => Ok(Self { value }),
            Message::Event(e) => Err(HandlerError::Fatal(format!(
                "{} event {} reached a handler that takes raw messages: \
                 subscribe to its topic with `raw_topics`, or take `Event` or `Message`",
                e.event_type, e.id
            ))),
        }
    }
}

/// The event in `message`, or a fatal error saying that `input` takes
/// envelope events only.
pub fn expect_event(input: &str, message: Message) -> Result<Event, HandlerError> {
    match message {
        Message::Event(e) => Ok(e),
        Message::Raw(_) => Err(HandlerError::Fatal(format!(
            "a raw message reached a handler that takes envelope events ({input}): \
             subscribe to its topic with `topics`, or take `RawMessage` or `Message`"
        ))),
    }
}

/// The fatal error for an event of a type that `T` does not list (the host
/// filters by type, so only a host that ignores the description sends one).
pub fn unexpected_event_type<T: FromMessage>(event: &Event) -> HandlerError {
    HandlerError::Fatal(format!(
        "{} event {}: unexpected event type (this handler takes {})",
        event.event_type,
        event.id,
        T::EVENT_TYPES.join(", ")
    ))
}
