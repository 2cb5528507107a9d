//! Dead letters: a message the handler gave up on goes, unchanged, to its
//! topic's dead-letter topic (`<topic>.dlq`), with headers saying which
//! handler gave up on it, after how many attempts, and why.

use std::sync::Arc;

use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::attempt;
use super::lane::Done;
use crate::event::Topic;
use crate::metrics::Source;

/// Why a message is set aside.
pub struct Reason {
    pub error: String,
    pub attempts: u32,
}

/// Publishes the dead letter, retrying until the broker takes it; gives up
/// (the event stays where it is, for the next owner) if `halt` fires first.
pub async fn send(
    shared: Arc<Shared>,
    halt: CancellationToken,
    message: OwnedMessage,
    reason: Reason,
) -> Done {
    let w = shared.as_ref();
    let Ok(topic) = Topic::parse(message.topic()) else {
        return Done::Finished;
    };
    let dlq = topic.dead_letters();
    let payload = message.payload().unwrap_or_default();
    let sent = attempt::until_ok(
        &halt,
        w.settings.retry.backoff,
        &w.name,
        "dead-lettering an event",
        || {
            let headers = headers(&message, &w.name, &reason);
            w.publisher.send(
                dlq.as_str(),
                message.key(),
                payload,
                headers,
                Source::DeadLetter,
            )
        },
    )
    .await;
    match sent {
        Some(_) => {
            tracing::error!(
                handler = %w.name, topic = %topic, partition = message.partition(),
                offset = message.offset(), dead_letter_topic = %dlq, error = %reason.error,
                "event dead-lettered"
            );
            w.stats.dead_lettered();
            w.metrics.topic(topic.as_str()).dead_lettered();
            Done::Finished
        }
        None => Done::Abandoned,
    }
}

/// The message's own headers, then the `dlq.*` ones.
fn headers(message: &OwnedMessage, handler: &str, reason: &Reason) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for h in original.iter().filter(|h| !h.key.starts_with("dlq.")) {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let timestamp = message.timestamp().to_millis().unwrap_or(-1).to_string();
    let fields = [
        ("dlq.handler", handler.to_string()),
        ("dlq.error", reason.error.clone()),
        ("dlq.attempts", reason.attempts.to_string()),
        ("dlq.topic", message.topic().to_string()),
        ("dlq.partition", message.partition().to_string()),
        ("dlq.offset", message.offset().to_string()),
        ("dlq.timestamp", timestamp),
    ];
    for (key, value) in &fields {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_str()),
        });
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;

    #[test]
    fn dead_letter_headers_replace_earlier_ones_and_say_why() {
        let original = OwnedHeaders::new()
            .insert(Header {
                key: "eventType",
                value: Some("X"),
            })
            .insert(Header {
                key: "dlq.error",
                value: Some("an earlier failure"),
            });
        let message = OwnedMessage::new(
            Some(b"{}".to_vec()),
            Some(b"k".to_vec()),
            "faults".into(),
            Timestamp::CreateTime(1_700_000_000_000),
            2,
            41,
            Some(original),
        );
        let reason = Reason {
            error: "trapped".into(),
            attempts: 3,
        };
        let h = headers(&message, "echo", &reason);
        let all: Vec<(String, String)> = h
            .iter()
            .map(|h| {
                let v = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
                (h.key.to_string(), v)
            })
            .collect();
        let get = |k: &str| {
            all.iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("eventType"), ["X"]);
        assert_eq!(get("dlq.error"), ["trapped"], "one dlq.error, the new one");
        assert_eq!(get("dlq.handler"), ["echo"]);
        assert_eq!(get("dlq.attempts"), ["3"]);
        assert_eq!(get("dlq.partition"), ["2"]);
        assert_eq!(get("dlq.offset"), ["41"]);
        assert_eq!(get("dlq.timestamp"), ["1700000000000"]);
    }
}
