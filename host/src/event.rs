//! The event envelope every part of the host shares: what the API publishes,
//! what the consume loops decode, and what handlers publish back.
//!
//! On the wire an event is the JSON object
//! `{"id", "type", "timestamp", "userId", "data"}` (the original demo's
//! shape), with Kafka headers `eventType` and `userId`. `data` stays raw JSON
//! text end to end, so the host never re-encodes a payload it only forwards.

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

    /// The envelope as JSON. An error is returned, never an empty
    /// payload, though strings and already-checked raw JSON do not fail.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
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
