//! What a handler asked to receive, validated: the host's own form of the
//! `description` every contract version returns from `describe`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::LoadError;
use super::contract::{Description, Format};
use crate::event::{EventType, Topic};

/// What a handler receives, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Every topic it consumes, sorted, each once.
    pub topics: Vec<Topic>,
    /// Those of `topics` read as raw bytes; the others are envelopes.
    pub raw_topics: BTreeSet<Topic>,
    /// Empty means every event type (on envelope topics).
    pub event_types: BTreeSet<String>,
    /// The handler's own retry policy, if it declared one.
    pub retry: Option<RetryPolicy>,
    /// The handler declared that it keeps no state between events.
    pub stateless: bool,
}

/// How often, and how far apart, a failed event is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each next one.
    pub backoff: Duration,
}

impl Subscription {
    /// Whether the handler asked for events of this type.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.contains(event_type)
    }

    /// How the handler reads `topic`.
    pub fn format(&self, topic: &str) -> Format {
        if !self.raw_topics.is_empty() && self.raw_topics.iter().any(|t| t.as_str() == topic) {
            Format::Raw
        } else {
            Format::Envelope
        }
    }
}

impl TryFrom<Description> for Subscription {
    type Error = LoadError;

    fn try_from(d: Description) -> Result<Self, LoadError> {
        if d.subscriptions.is_empty() {
            return Err(LoadError::Description("subscribes to no topic".into()));
        }
        let mut formats: BTreeMap<Topic, Format> = BTreeMap::new();
        for (name, format) in d.subscriptions {
            let topic = Topic::parse(&name)
                .map_err(|e| LoadError::Description(format!("topic {name:?} {e}")))?;
            if let Some(other) = formats.insert(topic, format)
                && other != format
            {
                return Err(LoadError::Description(format!(
                    "topic {name:?} is subscribed to both as envelopes and raw"
                )));
            }
        }
        for t in &d.event_types {
            EventType::parse(t)
                .map_err(|e| LoadError::Description(format!("event type {t:?} {e}")))?;
        }
        let retry = match d.retry {
            Some((0, _)) => {
                return Err(LoadError::Description(
                    "retry.max-attempts must be at least 1".into(),
                ));
            }
            Some((max_attempts, backoff_ms)) => Some(RetryPolicy {
                max_attempts: max_attempts.min(100),
                backoff: Duration::from_millis(u64::from(backoff_ms)),
            }),
            None => None,
        };
        let raw_topics = formats
            .iter()
            .filter(|(_, f)| **f == Format::Raw)
            .map(|(t, _)| t.clone())
            .collect();
        Ok(Self {
            topics: formats.into_keys().collect(),
            raw_topics,
            event_types: d.event_types.into_iter().collect(),
            retry,
            stateless: d.stateless,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(topics: &[&str], types: &[&str]) -> Description {
        Description {
            subscriptions: topics
                .iter()
                .map(|s| (s.to_string(), Format::Envelope))
                .collect(),
            event_types: types.iter().map(|s| s.to_string()).collect(),
            retry: None,
            stateless: false,
        }
    }

    #[test]
    fn a_subscription_needs_a_topic_and_valid_names() {
        assert!(Subscription::try_from(d(&[], &[])).is_err());
        assert!(Subscription::try_from(d(&["bad topic"], &[])).is_err());
        assert!(Subscription::try_from(d(&["t"], &["bad type"])).is_err());
        let s = Subscription::try_from(d(&["b", "a", "b"], &[])).unwrap();
        assert_eq!(s.topics.len(), 2);
        assert!(s.wants("ANYTHING"));
        let s = Subscription::try_from(d(&["a"], &["X"])).unwrap();
        assert!(s.wants("X") && !s.wants("Y"));
        let mut with_retry = d(&["a"], &[]);
        with_retry.retry = Some((0, 5));
        assert!(Subscription::try_from(with_retry).is_err());
        let mut with_retry = d(&["a"], &[]);
        with_retry.retry = Some((5, 5));
        let s = Subscription::try_from(with_retry).unwrap();
        assert_eq!(
            s.retry,
            Some(RetryPolicy {
                max_attempts: 5,
                backoff: Duration::from_millis(5)
            })
        );
    }

    #[test]
    fn raw_topics_are_read_raw_and_a_topic_has_one_format() {
        let mut mixed = d(&["events"], &["X"]);
        mixed.subscriptions.push(("plain".into(), Format::Raw));
        let s = Subscription::try_from(mixed).unwrap();
        assert_eq!(s.format("plain"), Format::Raw);
        assert_eq!(s.format("events"), Format::Envelope);
        assert_eq!(s.topics.len(), 2);
        let mut both = d(&["t"], &[]);
        both.subscriptions.push(("t".into(), Format::Raw));
        assert!(Subscription::try_from(both).is_err());
    }
}
