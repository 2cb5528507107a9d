//! A handler call on its way into the call history (see [`crate::calls`]):
//! started when the event is admitted, finished with its outcome.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};

use super::Shared;
use crate::calls::{Call, Outcome, Published};
use crate::runtime::{Component, Input, Outgoing};
use crate::telemetry;

/// A call being recorded for the causal chain (see [`crate::calls`]).
#[derive(Clone)]
pub struct Record {
    /// Nothing to record when the history is off.
    call: Option<Box<Pending>>,
    span: telemetry::Span,
    /// The handler version the call runs on (its digest).
    version: Arc<str>,
}

#[derive(Clone)]
struct Pending {
    shared: Arc<Shared>,
    started: Instant,
    call: Call,
}

impl Record {
    pub fn start(
        shared: &Arc<Shared>,
        message: &OwnedMessage,
        component: &Component,
        input: Option<&Input>,
        span: &telemetry::Span,
    ) -> Self {
        let call = shared.history.is_on().then(|| {
            let (event_id, event_type) = match input {
                Some(Input::Event(e)) => (Some(e.id.clone()), Some(e.event_type.clone())),
                _ => (header(message, "eventId"), header(message, "eventType")),
            };
            let call = Call {
                handler: shared.name.clone(),
                version: component.digest_shared(),
                topic: message.topic().to_string(),
                partition: message.partition(),
                offset: message.offset(),
                event_id,
                event_type,
                trace_id: Some(span.trace_id_number()),
                attempts: 0,
                outcome: Outcome::Abandoned,
                error: None,
                started_at: SystemTime::now(),
                duration: Default::default(),
                published: Vec::new(),
            };
            Box::new(Pending {
                shared: shared.clone(),
                started: Instant::now(),
                call,
            })
        });
        Self {
            call,
            span: span.clone(),
            version: component.digest_shared(),
        }
    }

    /// The digest of the version the call runs on.
    pub fn version(&self) -> &Arc<str> {
        &self.version
    }

    /// The call's span.
    pub fn span(&self) -> &telemetry::Span {
        &self.span
    }

    /// Notes what the handler published.
    pub fn published(&mut self, outbox: &[Outgoing]) {
        if let Some(pending) = &mut self.call {
            pending.call.published = outbox.iter().map(published).collect();
        }
    }

    pub fn finish(self, outcome: Outcome, attempts: u32, error: Option<String>) {
        if outcome == Outcome::DeadLettered {
            self.span.fail("dead_lettered");
        }
        if let Some(pending) = self.call {
            let Pending {
                shared,
                started,
                mut call,
            } = *pending;
            call.outcome = outcome;
            call.attempts = attempts;
            call.error = error;
            call.duration = started.elapsed();
            shared.history.record(call);
        }
    }

    pub fn abandoned(&self, attempts: u32) {
        self.clone().finish(Outcome::Abandoned, attempts, None);
    }
}

fn published(out: &Outgoing) -> Published {
    match out {
        Outgoing::Event { topic, event, .. } => Published {
            event_id: Some(event.id.clone()),
            event_type: Some(event.event_type.clone()),
            topic: topic.to_string(),
        },
        Outgoing::Message { topic, .. } => Published {
            event_id: None,
            event_type: None,
            topic: topic.to_string(),
        },
    }
}

/// A header's value as text.
fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}
