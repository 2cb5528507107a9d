//! The event envelope every part of the host shares: what the API publishes,
//! what the consume loops decode, and what handlers publish back.
//!
//! On the wire an event is the JSON object
//! `{"id", "type", "timestamp", "userId", "data"}` (the original demo's
//! shape), with Kafka headers `eventType` and `userId`. `data` stays raw JSON
//! text end to end, so the host never re-encodes a payload it only forwards.

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One event, as published on a topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: String,
    #[serde(rename = "userId")]
    pub user_id: Option<String>,
    pub data: Box<RawValue>,
}

impl Event {
    /// A new event with a fresh id, stamped now.
    pub fn new(event_type: EventType, user_id: Option<String>, data: Box<RawValue>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            event_type: event_type.0,
            timestamp: now_rfc3339(),
            user_id,
            data,
        }
    }

    /// The Kafka message key: the user id when there is one, so one user's
    /// events stay in order on one partition; the event id otherwise.
    pub fn key(&self) -> &str {
        self.user_id.as_deref().unwrap_or(&self.id)
    }

    /// Decodes an envelope from a consumed message payload.
    pub fn decode(payload: &[u8]) -> Result<Self, MalformedEvent> {
        serde_json::from_slice(payload).map_err(|e| MalformedEvent(e.to_string()))
    }

    /// Decodes an envelope, and copies it out of `payload` only if `wants`
    /// its type: a handler skips most events of a busy topic, and a skipped
    /// one then costs a parse and no allocation. `None`: not wanted.
    pub fn decode_if(
        payload: &[u8],
        wants: impl FnOnce(&str) -> bool,
    ) -> Result<Option<Self>, MalformedEvent> {
        let view: EventView<'_> =
            serde_json::from_slice(payload).map_err(|e| MalformedEvent(e.to_string()))?;
        if !wants(&view.event_type) {
            return Ok(None);
        }
        Ok(Some(Self {
            id: view.id.into_owned(),
            event_type: view.event_type.into_owned(),
            timestamp: view.timestamp.into_owned(),
            user_id: view.user_id.map(Cow::into_owned),
            data: view.data.to_owned(),
        }))
    }

    /// The envelope as JSON. An error is returned, never an empty
    /// payload, though strings and already-checked raw JSON do not fail.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// An envelope borrowed from the payload it was read from: a string is
/// copied only if it has escapes.
#[derive(Deserialize)]
struct EventView<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(rename = "userId", borrow)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// A consumed message that is not an event envelope.
#[derive(Debug, thiserror::Error)]
#[error("not an event envelope: {0}")]
pub struct MalformedEvent(String);

/// The current time as RFC 3339 in UTC with milliseconds, the format of
/// JavaScript's `Date.prototype.toISOString`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// An event type: 1 to 128 characters of letters, digits and `_ . : -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventType(String);

impl EventType {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_name(s, 128, |c| c.is_ascii_alphanumeric() || "_.:-".contains(c))?;
        Ok(Self(s.to_string()))
    }

    /// For the fixed event types the host itself publishes.
    pub const fn known(s: &'static str) -> KnownEventType {
        KnownEventType(s)
    }
}

/// An event type written into the source; see [`EventType::known`].
#[derive(Debug, Clone, Copy)]
pub struct KnownEventType(&'static str);

impl From<KnownEventType> for EventType {
    fn from(t: KnownEventType) -> Self {
        Self(t.0.to_string())
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Kafka topic name: 1 to 249 characters of letters, digits and `. _ -`,
/// and not `.` or `..`, as Kafka itself requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Topic(String);

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Topic {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_name(s, 249, |c| c.is_ascii_alphanumeric() || "._-".contains(c))?;
        if s == "." || s == ".." {
            return Err(NameError::Reserved);
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where events that this topic's handlers gave up on are set aside.
    pub fn dead_letters(&self) -> Topic {
        let mut name = self.0.clone();
        if name.len() > 245 {
            name.truncate(245);
        }
        Topic(name + ".dlq")
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must not contain {0:?}")]
    BadChar(char),
    #[error("is reserved")]
    Reserved,
}

fn check_name(s: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > max {
        return Err(NameError::TooLong(max));
    }
    match s.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(NameError::BadChar(c)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn an_event_encodes_as_the_demo_envelope() {
        let e = Event::new(
            EventType::parse("USER_REGISTERED").unwrap(),
            Some("u1".into()),
            raw(r#"{"name":"Ada"}"#),
        );
        let v: serde_json::Value = serde_json::from_slice(&e.encode().unwrap()).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 5, "{v}");
        assert_eq!(v["type"], "USER_REGISTERED");
        assert_eq!(v["userId"], "u1");
        assert_eq!(v["data"]["name"], "Ada");
        assert!(uuid::Uuid::parse_str(v["id"].as_str().unwrap()).is_ok());
        let ts = v["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
        assert!(humantime::parse_rfc3339(ts).is_ok());
    }

    #[test]
    fn events_are_keyed_by_user_then_by_id() {
        let with_user = Event::new(EventType::parse("A").unwrap(), Some("u1".into()), raw("{}"));
        assert_eq!(with_user.key(), "u1");
        let anonymous = Event::new(EventType::parse("A").unwrap(), None, raw("{}"));
        assert_eq!(anonymous.key(), anonymous.id);
    }

    #[test]
    fn a_null_user_id_round_trips() {
        let e = Event::new(EventType::parse("A").unwrap(), None, raw("[1,2]"));
        let back = Event::decode(&e.encode().unwrap()).unwrap();
        assert_eq!(back.user_id, None);
        assert_eq!(back.data.get(), "[1,2]");
        assert!(
            String::from_utf8(e.encode().unwrap())
                .unwrap()
                .contains(r#""userId":null"#)
        );
    }

    #[test]
    fn malformed_payloads_are_reported() {
        assert!(Event::decode(b"not json").is_err());
        assert!(Event::decode(br#"{"id":"x","type":"A"}"#).is_err());
        assert!(Event::decode_if(b"not json", |_| true).is_err());
        // Malformed is malformed, wanted or not.
        assert!(Event::decode_if(br#"{"id":"x","type":"A"}"#, |_| false).is_err());
    }

    #[test]
    fn decode_if_reads_what_decode_reads_and_skips_unwanted_types() {
        let payload = br#"{"id":"e\"1","type":"USER_REGISTERED","timestamp":"t","userId":"u\u00e9","data":{"a":[1,"\n"]}}"#;
        let whole = Event::decode(payload).unwrap();
        let wanted = Event::decode_if(payload, |t| t == "USER_REGISTERED")
            .unwrap()
            .unwrap();
        assert_eq!(wanted.id, "e\"1");
        assert_eq!(wanted.user_id.as_deref(), Some("u\u{e9}"));
        assert_eq!(
            (
                &wanted.id,
                &wanted.event_type,
                &wanted.timestamp,
                &wanted.user_id
            ),
            (
                &whole.id,
                &whole.event_type,
                &whole.timestamp,
                &whole.user_id
            )
        );
        assert_eq!(wanted.data.get(), whole.data.get());
        assert!(
            Event::decode_if(payload, |t| t == "ORDER_CREATED")
                .unwrap()
                .is_none()
        );
        let anonymous = br#"{"id":"x","type":"A","timestamp":"t","userId":null,"data":1}"#;
        let e = Event::decode_if(anonymous, |_| true).unwrap().unwrap();
        assert_eq!((e.user_id, e.data.get()), (None, "1"));
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(Topic::parse("user-events").is_ok());
        assert_eq!(Topic::parse(""), Err(NameError::Empty));
        assert_eq!(Topic::parse(".."), Err(NameError::Reserved));
        assert_eq!(Topic::parse("a/b"), Err(NameError::BadChar('/')));
        assert_eq!(Topic::parse(&"a".repeat(250)), Err(NameError::TooLong(249)));
        let long = Topic::parse(&"a".repeat(249)).unwrap();
        assert_eq!(long.dead_letters().as_str().len(), 249);
        assert_eq!(
            Topic::parse("user-events").unwrap().dead_letters().as_str(),
            "user-events.dlq"
        );
    }

    #[test]
    fn event_types_are_checked() {
        assert!(EventType::parse("ORDER_CREATED").is_ok());
        assert!(EventType::parse("com.example:thing-v2").is_ok());
        assert_eq!(EventType::parse("has space"), Err(NameError::BadChar(' ')));
        assert_eq!(EventType::parse(""), Err(NameError::Empty));
    }
}
