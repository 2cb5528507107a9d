//! The contract versions a component may target (`wit/v0.1`, `wit/v0.2`),
//! and the one place that converts between the host's own types and each
//! version's generated ones. The rest of the host sees [`Contract`],
//! [`Input`], [`Delivery`] and [`Prepared`], never a generated type.

use std::fmt;

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::bindings::{v0_1, v0_2};
use super::state::HostState;
use super::{Failure, LoadError};
use crate::event::Event;

/// Which version of the `handler` world a component targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    V0_1,
    V0_2,
}

impl Contract {
    /// The world's full name, as the API shows it.
    pub fn name(self) -> &'static str {
        match self {
            Contract::V0_1 => "event-host:handler@0.1.0",
            Contract::V0_2 => "event-host:handler@0.2.0",
        }
    }

    /// Whether handlers of this version see headers and timestamps:
    /// collecting them costs only for those that do.
    pub fn sees_headers(self) -> bool {
        matches!(self, Contract::V0_2)
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Kafka message header. Several may share a name; a value may be absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Option<Vec<u8>>,
}

/// Where a message came from and what it carried besides its value.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// Empty for handlers whose contract does not show them.
    pub headers: Vec<Header>,
    pub timestamp_ms: Option<i64>,
}

/// What a handler is given for one message.
#[derive(Debug)]
pub enum Input {
    /// A decoded envelope (an envelope subscription).
    Event(Event),
    /// The value as it was written (a raw subscription); none: a tombstone.
    Raw(Option<Vec<u8>>),
}

/// A message converted once into its handler's contract types, handed to
/// every attempt at it.
pub struct Prepared {
    label: String,
    call: Call,
}

enum Call {
    V0_1 {
        event: v0_1::event_host::handler::types::Event,
        delivery: v0_1::event_host::handler::types::Delivery,
    },
    V0_2 {
        message: v0_2::event_host::handler::types::Message,
        delivery: v0_2::event_host::handler::types::Delivery,
    },
}

impl Prepared {
    /// Converts `input` for a handler of `contract`. A raw message cannot
    /// reach a 0.1 handler (its subscriptions are all envelopes).
    pub(super) fn new(
        contract: Contract,
        input: Input,
        delivery: Delivery,
    ) -> Result<Self, Failure> {
        let label = match &input {
            Input::Event(event) => event.id.clone(),
            Input::Raw(_) => format!(
                "{}/{}@{}",
                delivery.topic, delivery.partition, delivery.offset
            ),
        };
        let call = match (contract, input) {
            (Contract::V0_1, Input::Event(event)) => Call::V0_1 {
                event: v0_1::event_host::handler::types::Event {
                    id: event.id,
                    event_type: event.event_type,
                    timestamp: event.timestamp,
                    user_id: event.user_id,
                    data: Box::<str>::from(event.data).into(),
                },
                delivery: v0_1::event_host::handler::types::Delivery {
                    topic: delivery.topic,
                    partition: delivery.partition,
                    offset: delivery.offset,
                    key: delivery.key,
                    attempt: 1,
                },
            },
            (Contract::V0_1, Input::Raw(_)) => {
                return Err(Failure::Fatal(
                    "a raw message cannot go to a handler of contract 0.1.0".into(),
                ));
            }
            (Contract::V0_2, input) => {
                use v0_2::event_host::handler::types as t;
                let message = match input {
                    Input::Event(event) => t::Message::Event(t::Event {
                        id: event.id,
                        event_type: event.event_type,
                        timestamp: event.timestamp,
                        user_id: event.user_id,
                        data: Box::<str>::from(event.data).into(),
                    }),
                    Input::Raw(value) => t::Message::Raw(value),
                };
                Call::V0_2 {
                    message,
                    delivery: t::Delivery {
                        topic: delivery.topic,
                        partition: delivery.partition,
                        offset: delivery.offset,
                        key: delivery.key,
                        headers: delivery.headers.into_iter().map(Into::into).collect(),
                        timestamp_ms: delivery.timestamp_ms,
                        attempt: 1,
                    },
                }
            }
        };
        Ok(Self { label, call })
    }

    /// The event's id, or `topic/partition@offset` for a raw message: what
    /// the host's log lines about it name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Sets the attempt number (1 for the first try).
    pub fn set_attempt(&mut self, attempt: u32) {
        match &mut self.call {
            Call::V0_1 { delivery, .. } => delivery.attempt = attempt,
            Call::V0_2 { delivery, .. } => delivery.attempt = attempt,
        }
    }
}

impl From<v0_2::event_host::handler::types::Header> for Header {
    fn from(h: v0_2::event_host::handler::types::Header) -> Self {
        Self {
            name: h.name,
            value: h.value,
        }
    }
}

impl From<Header> for v0_2::event_host::handler::types::Header {
    fn from(h: Header) -> Self {
        Self {
            name: h.name,
            value: h.value,
        }
    }
}

/// How a subscribed topic's messages are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    Envelope,
    Raw,
}

/// A handler's description of itself, as it gave it, before validation.
pub(super) struct Description {
    pub subscriptions: Vec<(String, Format)>,
    pub event_types: Vec<String>,
    /// `(max-attempts, backoff-ms)`.
    pub retry: Option<(u32, u32)>,
    pub stateless: bool,
}

/// A component linked and type-checked against its contract: one per
/// component version.
pub(super) enum Pre {
    V0_1(v0_1::HandlerPre<HostState>),
    V0_2(v0_2::HandlerPre<HostState>),
}

/// One instance of a component.
pub(super) enum Instance {
    V0_1(v0_1::Handler),
    V0_2(v0_2::Handler),
}

impl Pre {
    /// Finds which contract the component's exports implement, newest first.
    pub fn new(pre: InstancePre<HostState>) -> Result<Self, LoadError> {
        let newest = match v0_2::HandlerPre::new(pre.clone()) {
            Ok(pre) => return Ok(Pre::V0_2(pre)),
            Err(e) => e,
        };
        v0_1::HandlerPre::new(pre).map(Pre::V0_1).map_err(|oldest| {
            LoadError::WrongWorld(format!(
                "as {}: {newest:#}; as {}: {oldest:#}",
                Contract::V0_2,
                Contract::V0_1
            ))
        })
    }

    pub fn contract(&self) -> Contract {
        match self {
            Pre::V0_1(_) => Contract::V0_1,
            Pre::V0_2(_) => Contract::V0_2,
        }
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        match self {
            Pre::V0_1(pre) => pre.engine(),
            Pre::V0_2(pre) => pre.engine(),
        }
    }

    pub async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V0_1(pre) => Instance::V0_1(pre.instantiate_async(store).await?),
            Pre::V0_2(pre) => Instance::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

impl Instance {
    pub async fn describe(&self, store: &mut Store<HostState>) -> wasmtime::Result<Description> {
        Ok(match self {
            Instance::V0_1(handler) => {
                let d = handler.call_describe(store).await?;
                Description {
                    subscriptions: d
                        .topics
                        .into_iter()
                        .map(|t| (t, Format::Envelope))
                        .collect(),
                    event_types: d.event_types,
                    retry: d.retry.map(|r| (r.max_attempts, r.backoff_ms)),
                    stateless: false,
                }
            }
            Instance::V0_2(handler) => {
                use v0_2::event_host::handler::types::Format as F;
                let d = handler.call_describe(store).await?;
                Description {
                    subscriptions: d
                        .subscriptions
                        .into_iter()
                        .map(|s| {
                            let format = match s.format {
                                F::Envelope => Format::Envelope,
                                F::Raw => Format::Raw,
                            };
                            (s.topic, format)
                        })
                        .collect(),
                    event_types: d.event_types,
                    retry: d.retry.map(|r| (r.max_attempts, r.backoff_ms)),
                    stateless: d.stateless,
                }
            }
        })
    }

    /// Calls `handle`: `Ok(Err(_))` is the handler's own failure, `Err(_)`
    /// a trap.
    pub async fn handle(
        &self,
        store: &mut Store<HostState>,
        prepared: &Prepared,
    ) -> wasmtime::Result<Result<(), Failure>> {
        match (self, &prepared.call) {
            (Instance::V0_1(handler), Call::V0_1 { event, delivery }) => {
                use v0_1::event_host::handler::types::HandlerError as E;
                Ok(handler
                    .call_handle(store, event, delivery)
                    .await?
                    .map_err(|e| match e {
                        E::Retryable(reason) => Failure::Retryable(reason),
                        E::Fatal(reason) => Failure::Fatal(reason),
                    }))
            }
            (Instance::V0_2(handler), Call::V0_2 { message, delivery }) => {
                use v0_2::event_host::handler::types::HandlerError as E;
                Ok(handler
                    .call_handle(store, message, delivery)
                    .await?
                    .map_err(|e| match e {
                        E::Retryable(reason) => Failure::Retryable(reason),
                        E::Fatal(reason) => Failure::Fatal(reason),
                    }))
            }
            _ => Err(wasmtime::Error::msg(
                "an event prepared for another contract version",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVELOPE: &[u8] = br#"{"id":"e-1","type":"USER_REGISTERED","timestamp":"2026-11-27T00:00:00.000Z","userId":"u-1","data":{ "name" : "Ada",  "n": [1, 2] }}"#;

    fn delivery() -> Delivery {
        Delivery {
            topic: "t".into(),
            partition: 2,
            offset: 9,
            headers: vec![Header {
                name: "h".into(),
                value: None,
            }],
            ..Delivery::default()
        }
    }

    #[test]
    fn each_contract_gets_the_envelope_as_decoded() {
        let event = || Input::Event(Event::decode(ENVELOPE).unwrap());
        let old = Prepared::new(Contract::V0_1, event(), delivery()).unwrap();
        let Call::V0_1 { event: e, .. } = &old.call else {
            panic!("0.1 types for a 0.1 handler")
        };
        assert_eq!(
            (e.id.as_str(), e.event_type.as_str(), e.user_id.as_deref()),
            ("e-1", "USER_REGISTERED", Some("u-1"))
        );
        // The data reaches the handler as it was sent, spacing included.
        assert_eq!(e.data, r#"{ "name" : "Ada",  "n": [1, 2] }"#);
        assert_eq!(old.label(), "e-1");

        let mut new = Prepared::new(Contract::V0_2, event(), delivery()).unwrap();
        new.set_attempt(3);
        let Call::V0_2 { message, delivery } = &new.call else {
            panic!("0.2 types for a 0.2 handler")
        };
        let v0_2::event_host::handler::types::Message::Event(e) = message else {
            panic!("an envelope stays an event")
        };
        assert_eq!(e.data, r#"{ "name" : "Ada",  "n": [1, 2] }"#);
        assert_eq!((delivery.attempt, delivery.headers.len()), (3, 1));
    }

    #[test]
    fn raw_messages_go_only_to_0_2_and_are_named_by_position() {
        let raw = || Input::Raw(Some(b"bytes".to_vec()));
        assert!(Prepared::new(Contract::V0_1, raw(), delivery()).is_err());
        let p = Prepared::new(Contract::V0_2, raw(), delivery()).unwrap();
        assert_eq!(p.label(), "t/2@9");
    }
}
