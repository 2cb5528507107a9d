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
use crate::telemetry::{TRACEPARENT, current_traceparent};

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
    version: Arc<str>,
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
            let headers = headers(&message, (&w.name, &version), &reason);
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

/// The message's own headers, then the `dlq.*` ones. Its `traceparent` is
/// replaced by the handler call's, so the dead letter can be followed back
/// through the call to the request that caused it.
/// The handler's version is in `dlq.handler.version`; the event's own
/// `handlerVersion` (the handler that published it) stays.
fn headers(message: &OwnedMessage, handler: (&str, &str), reason: &Reason) -> OwnedHeaders {
    headers_traced(message, handler, reason, current_traceparent().as_deref())
}

fn headers_traced(
    message: &OwnedMessage,
    (handler, version): (&str, &str),
    reason: &Reason,
    traceparent: Option<&str>,
) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    let replaced = |key: &str| {
        key.starts_with("dlq.") || (traceparent.is_some() && key.eq_ignore_ascii_case(TRACEPARENT))
    };
    if let Some(original) = message.headers() {
        for h in original.iter().filter(|h| !replaced(h.key)) {
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
    headers = headers.insert(Header {
        key: "dlq.handler.version",
        value: Some(version),
    });
    if let Some(tp) = traceparent {
        headers = headers.insert(Header {
            key: TRACEPARENT,
            value: Some(tp),
        });
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;

    #[test]
    fn dead_letter_headers_replace_earlier_ones_and_say_why_and_by_which_version() {
        let original = OwnedHeaders::new()
            .insert(Header {
                key: "eventType",
                value: Some("X"),
            })
            .insert(Header {
                key: "dlq.error",
                value: Some("an earlier failure"),
            })
            .insert(Header {
                key: "traceparent",
                value: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            })
            .insert(Header {
                key: "handlerVersion",
                value: Some("the publisher's"),
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
        let call = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
        let h = headers_traced(&message, ("echo", "d1g3st"), &reason, Some(call));
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
        assert_eq!(get("traceparent"), [call], "one traceparent: the call's");
        assert_eq!(get("dlq.handler.version"), ["d1g3st"], "this handler's");
        assert_eq!(
            get("handlerVersion"),
            ["the publisher's"],
            "the event's own, kept"
        );
    }
}
