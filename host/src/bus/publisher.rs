//! Publishing: one idempotent producer (acks=all) for the whole host. A
//! publish returns only once the broker has stored the event, so the API
//! never answers 2xx for an event that is not on its topic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};

use super::delivery::{Acked, Producer};

use crate::event::{Event, Topic};
use crate::metrics::{Metrics, Source};
use crate::runtime::{self, Outgoing};
use crate::telemetry::{TRACEPARENT, current_traceparent};

/// Where the broker stored an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("the broker did not take the event for {topic}: {reason}")]
pub struct PublishError {
    pub topic: String,
    pub reason: String,
    /// Trying again cannot help: the event is too large, or the topic is
    /// invalid or forbidden to this client.
    pub permanent: bool,
}

impl PublishError {
    fn from_kafka(topic: &str, e: &KafkaError) -> Self {
        Self {
            topic: topic.to_string(),
            reason: e.to_string(),
            permanent: e.rdkafka_error_code().is_some_and(is_permanent),
        }
    }
}

/// Whether librdkafka's error for one message says that no retry can
/// succeed. The rest (time-outs, leaders moving, brokers down, queues full)
/// may pass.
fn is_permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as E;
    matches!(
        code,
        E::MessageSizeTooLarge
            | E::InvalidMessageSize
            | E::MessageBatchTooLarge
            | E::InvalidTopic
            | E::TopicAuthorizationFailed
            | E::ClusterAuthorizationFailed
            | E::InvalidRecord
            | E::InvalidRequiredAcks
            | E::UnsupportedForMessageFormat
            | E::PolicyViolation
            | E::InvalidArgument
    )
}

/// An event the producer holds until the broker acknowledges it.
pub struct Pending {
    topic: String,
    delivery: Acked,
    source: Source,
    enqueued: Instant,
    metrics: Arc<Metrics>,
}

impl Pending {
    /// Waits for the broker to store the event (or for the producer to give
    /// up on it, after `PUBLISH_TIMEOUT_MS`).
    pub async fn acked(self) -> Result<Stored, PublishError> {
        let (source, enqueued, metrics) = (self.source, self.enqueued, self.metrics.clone());
        let result = self.wait().await;
        metrics.sent(source, result.is_ok(), enqueued.elapsed());
        result
    }

    async fn wait(self) -> Result<Stored, PublishError> {
        let reason = match self.delivery.await {
            Ok(Ok(stored)) => return Ok(stored),
            Ok(Err(e)) => return Err(PublishError::from_kafka(&self.topic, &e)),
            Err(_) => "the producer was closed".to_string(),
        };
        Err(PublishError {
            topic: self.topic,
            reason,
            permanent: false,
        })
    }
}

/// `linger.ms` as librdkafka reads it: milliseconds, to the microsecond.
fn linger_ms(linger: Duration) -> String {
    format!("{:.3}", linger.as_micros() as f64 / 1000.0)
}

#[derive(Clone)]
pub struct Publisher {
    producer: Producer,
    metrics: Arc<Metrics>,
}

impl Publisher {
    /// A producer from `client` (see [`super::Bus::client_config`]).
    pub fn new(
        mut client: ClientConfig,
        timeout: Duration,
        linger: Duration,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        if client.get("client.id").is_none() {
            client.set("client.id", "event-host");
        }
        client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Low by default: an API call waits for its event to be stored.
            // librdkafka takes fractions of a millisecond.
            .set("linger.ms", linger_ms(linger))
            .set("message.timeout.ms", timeout.as_millis().to_string());
        let producer = Producer::new(&client)?;
        Ok(Self { producer, metrics })
    }

    /// Events handed over and not yet acknowledged by the broker.
    pub fn queued(&self) -> u64 {
        u64::try_from(self.producer.in_flight()).unwrap_or(0)
    }

    /// Publishes an event, keyed by user (or by id), with the headers
    /// `eventType`, `userId` (`anonymous` when none, as the original demo)
    /// and `eventId`.
    pub async fn publish(
        &self,
        topic: &Topic,
        event: &Event,
        source: Source,
    ) -> Result<Stored, PublishError> {
        self.enqueue(topic, event, source)?.acked().await
    }

    /// Hands an event to the producer and returns without waiting for the
    /// broker. Events enqueued one after the other reach each partition in
    /// that order (the producer is idempotent).
    pub fn enqueue(
        &self,
        topic: &Topic,
        event: &Event,
        source: Source,
    ) -> Result<Pending, PublishError> {
        let payload = encode(topic, event)?;
        let traceparent = current_traceparent();
        self.enqueue_raw(
            topic.as_str(),
            Some(event.key().as_bytes()),
            &payload,
            event_headers(event, traceparent.as_deref()),
            source,
        )
    }

    /// Hands what a handler published to the producer, like [`enqueue`]:
    /// an event with the host's headers and then the handler's, keyed as it
    /// asked (else as [`enqueue`] keys it); a raw message as it is.
    ///
    /// [`enqueue`]: Publisher::enqueue
    pub fn enqueue_outgoing(&self, out: &Outgoing, version: &str) -> Result<Pending, PublishError> {
        let source = Source::Handler;
        let traceparent = current_traceparent();
        let traced = traceparent.is_some();
        match out {
            Outgoing::Event {
                topic,
                event,
                key,
                headers,
            } => {
                let payload = encode(topic, event)?;
                let key = key.as_deref().unwrap_or(event.key().as_bytes());
                let host = with_version(event_headers(event, traceparent.as_deref()), version);
                let headers = with_headers(host, headers, traced);
                self.enqueue_raw(topic.as_str(), Some(key), &payload, headers, source)
            }
            Outgoing::Message {
                topic,
                key,
                value,
                headers,
            } => {
                let host = with_traceparent(OwnedHeaders::new(), traceparent.as_deref());
                let headers = with_headers(with_version(host, version), headers, traced);
                self.send_record(
                    topic.as_str(),
                    key.as_deref(),
                    value.as_deref(),
                    Some(headers),
                    source,
                )
            }
        }
    }

    /// Publishes what a handler published and waits for the broker.
    pub async fn publish_outgoing(
        &self,
        out: &Outgoing,
        version: &str,
    ) -> Result<Stored, PublishError> {
        self.enqueue_outgoing(out, version)?.acked().await
    }

    /// Publishes raw bytes, as dead letters are: unchanged.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
        source: Source,
    ) -> Result<Stored, PublishError> {
        self.enqueue_raw(topic, key, payload, headers, source)?
            .acked()
            .await
    }

    /// Hands a keyed record to the producer, a tombstone without `value`
    /// (the host's own topics: the handler catalog, the instances).
    pub fn enqueue_keyed(
        &self,
        topic: &str,
        key: &[u8],
        value: Option<&[u8]>,
        source: Source,
    ) -> Result<Pending, PublishError> {
        self.send_record(topic, Some(key), value, None, source)
    }

    fn enqueue_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
        source: Source,
    ) -> Result<Pending, PublishError> {
        self.send_record(topic, key, Some(payload), Some(headers), source)
    }

    fn send_record(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
        source: Source,
    ) -> Result<Pending, PublishError> {
        let enqueued = Instant::now();
        match self.producer.send(topic, key, value, headers) {
            Ok(delivery) => Ok(Pending {
                topic: topic.to_string(),
                delivery,
                source,
                enqueued,
                metrics: self.metrics.clone(),
            }),
            Err(e) => {
                self.metrics.sent(source, false, enqueued.elapsed());
                Err(PublishError::from_kafka(topic, &e))
            }
        }
    }

    /// Waits for queued events to be delivered.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "some published events may not have been delivered");
        }
    }
}

/// The host's headers of an event: `eventType`, `userId` (`anonymous` when
/// none, as the original demo), `eventId`, and the `traceparent` of the
/// span it is published in (an API request, a handler call).
fn event_headers(event: &Event, traceparent: Option<&str>) -> OwnedHeaders {
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "eventType",
            value: Some(event.event_type.as_str()),
        })
        .insert(Header {
            key: "userId",
            value: Some(event.user_id.as_deref().unwrap_or("anonymous")),
        })
        .insert(Header {
            key: "eventId",
            value: Some(event.id.as_str()),
        });
    with_traceparent(headers, traceparent)
}

fn with_traceparent(headers: OwnedHeaders, traceparent: Option<&str>) -> OwnedHeaders {
    match traceparent {
        Some(tp) => headers.insert(Header {
            key: TRACEPARENT,
            value: Some(tp),
        }),
        None => headers,
    }
}

/// Appends a handler's headers; its own `traceparent`, if any, gives way to
/// the host's (one per message).
fn with_headers(
    mut to: OwnedHeaders,
    headers: &[runtime::Header],
    host_traced: bool,
) -> OwnedHeaders {
    for h in headers {
        if (host_traced && h.name.eq_ignore_ascii_case(TRACEPARENT))
            || h.name.eq_ignore_ascii_case(HANDLER_VERSION)
        {
            continue;
        }
        to = to.insert(Header {
            key: h.name.as_str(),
            value: h.value.as_deref(),
        });
    }
    to
}

/// The header that says which version of a handler published an event (or
/// set a message aside as a dead letter): its component's digest. During a
/// rollout across instances it shows which events each version made.
pub const HANDLER_VERSION: &str = "handlerVersion";

fn with_version(headers: OwnedHeaders, version: &str) -> OwnedHeaders {
    headers.insert(Header {
        key: HANDLER_VERSION,
        value: Some(version),
    })
}

fn encode(topic: &Topic, event: &Event) -> Result<Vec<u8>, PublishError> {
    event.encode().map_err(|e| PublishError {
        topic: topic.to_string(),
        reason: format!("cannot encode the event: {e}"),
        permanent: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_authorization_errors_are_permanent_and_time_outs_are_not() {
        let err = |code| KafkaError::MessageProduction(code);
        let permanent = |code| PublishError::from_kafka("t", &err(code)).permanent;
        assert!(permanent(RDKafkaErrorCode::MessageSizeTooLarge));
        assert!(permanent(RDKafkaErrorCode::TopicAuthorizationFailed));
        assert!(permanent(RDKafkaErrorCode::InvalidTopic));
        assert!(!permanent(RDKafkaErrorCode::MessageTimedOut));
        assert!(!permanent(RDKafkaErrorCode::NotLeaderForPartition));
        assert!(!permanent(RDKafkaErrorCode::AllBrokersDown));
        assert!(!permanent(RDKafkaErrorCode::QueueFull));
    }

    #[test]
    fn linger_is_written_in_milliseconds_with_fractions() {
        assert_eq!(linger_ms(Duration::ZERO), "0.000");
        assert_eq!(linger_ms(Duration::from_micros(500)), "0.500");
        assert_eq!(linger_ms(Duration::from_millis(20)), "20.000");
    }
}
