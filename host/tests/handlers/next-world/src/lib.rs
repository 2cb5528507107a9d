//! A handler written straight against `event-host:handler@0.2.0`, without
//! the SDK, so the host's side of the contract is tested on its own.
//!
//! - On `faults` (envelope), like `first-world`: prints a line and publishes
//!   the event's data to `faults-out` as `ECHO`, with a header `echo.of`
//!   (the event's id) and every consumed header whose name starts `x-`.
//! - On `plain-in` (raw): publishes a raw message to `plain-out` with the
//!   same key, the value prefixed by `seen:` (none for a tombstone), the
//!   consumed headers, and `seen.timestamp` when the message had one.
//!
//! It declares itself stateless.

wit_bindgen::generate!({ path: "../../../../wit/v0.2", world: "handler" });

use event_host::handler::publisher;
use event_host::handler::types::{Format, Header, OutgoingEvent, OutgoingMessage, Subscription};

struct NextWorld;

impl Guest for NextWorld {
    fn describe() -> Description {
        Description {
            subscriptions: vec![
                Subscription {
                    topic: "faults".into(),
                    format: Format::Envelope,
                },
                Subscription {
                    topic: "plain-in".into(),
                    format: Format::Raw,
                },
            ],
            event_types: vec![],
            retry: None,
            stateless: true,
        }
    }

    fn handle(message: Message, delivery: Delivery) -> Result<(), HandlerError> {
        match message {
            Message::Event(event) => {
                println!("next-world handler got {}", event.id);
                let mut headers = vec![Header {
                    name: "echo.of".into(),
                    value: Some(event.id.into_bytes()),
                }];
                headers.extend(
                    delivery
                        .headers
                        .into_iter()
                        .filter(|h| h.name.starts_with("x-")),
                );
                publisher::publish(&OutgoingEvent {
                    topic: "faults-out".into(),
                    event_type: "ECHO".into(),
                    user_id: event.user_id,
                    data: event.data,
                    key: None,
                    headers,
                })
                .map_err(HandlerError::Fatal)?;
            }
            Message::Raw(value) => {
                let mut headers = delivery.headers;
                if let Some(ms) = delivery.timestamp_ms {
                    headers.push(Header {
                        name: "seen.timestamp".into(),
                        value: Some(ms.to_string().into_bytes()),
                    });
                }
                publisher::publish_message(&OutgoingMessage {
                    topic: "plain-out".into(),
                    key: delivery.key,
                    value: value.map(|v| [b"seen:".as_slice(), &v].concat()),
                    headers,
                })
                .map_err(HandlerError::Fatal)?;
            }
        }
        Ok(())
    }
}

export!(NextWorld);
