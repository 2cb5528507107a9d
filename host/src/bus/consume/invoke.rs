//! One event through its handler: decode it, skip it if the handler did not
//! ask for it, run the handler (retrying in place by the handler's retry
//! policy), and start what must follow: publishing what the handler
//! produced, or setting the message aside as a dead letter.
//!
//! A handler call waits first for one of the handler's call slots
//! (`partition_concurrency`) and then for an instance slot of the host (the
//! instance pool is shared by every handler): waiting spends no attempt and
//! no retry time. Once the lane halts, nothing is retried and nothing is
//! dead-lettered: the event stays for the partition's next owner.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use tokio_util::sync::CancellationToken;

use super::dead_letter::{self, Reason};
use super::lane::Done;
use super::outbox::{self, Published};
use super::{Shared, attempt};
use crate::event::Event;
use crate::runtime::{Component, Delivery, Format, Header, Input, Slot};

/// The rest of an event's work once the handler returned: waiting for the
/// broker to take what it published, or its dead letter.
pub type Finish = Pin<Box<dyn Future<Output = Done> + Send>>;

/// Runs the handler on `message` and returns what must follow; `None` if the
/// lane halted before the event was done or handed over.
pub async fn handle(
    shared: &Arc<Shared>,
    halt: &CancellationToken,
    message: OwnedMessage,
    component: &Component,
) -> Option<Finish> {
    let w = shared.as_ref();
    if redriven_for_another(&message, &w.name) {
        w.stats.skipped();
        return Some(Box::pin(std::future::ready(Done::Finished)));
    }
    let input = match component.subscription().format(message.topic()) {
        Format::Raw => Input::Raw(message.payload().map(<[u8]>::to_vec)),
        Format::Envelope => match Event::decode(message.payload().unwrap_or_default()) {
            Ok(event) if component.subscription().wants(&event.event_type) => Input::Event(event),
            Ok(_) => {
                w.stats.skipped();
                return Some(Box::pin(std::future::ready(Done::Finished)));
            }
            Err(e) => return Some(dead_letter_now(shared, halt, message, e.to_string())),
        },
    };
    let mut prepared = match component.prepare(input, delivery(&message, component)) {
        Ok(prepared) => prepared,
        Err(e) => return Some(dead_letter_now(shared, halt, message, e.to_string())),
    };
    let policy = component.subscription().retry.unwrap_or(w.settings.retry);
    let retrying_since = Instant::now();
    let mut attempt = 1;
    loop {
        let result = {
            let _call = tokio::select! {
                permit = w.calls.acquire() => permit.ok()?,
                () = halt.cancelled() => return None,
            };
            let slot = instance_slot(w, halt, component).await?;
            let _running = w.stats.call();
            component.handle(slot, &prepared).await
        };
        let failure = match result {
            Ok(outcome) => {
                let published = outbox::publish(shared, halt, outcome.outbox).await?;
                return Some(Box::pin(after_publish(
                    shared.clone(),
                    halt.clone(),
                    message,
                    published,
                    attempt,
                )));
            }
            Err(f) => f,
        };
        tracing::warn!(
            handler = %w.name, event_id = %prepared.label(), attempt, error = %failure,
            "handler failed"
        );
        w.stats.failed(failure.to_string());
        if halt.is_cancelled() {
            // Revoked or stopping: no retry here, and no dead letter either.
            return None;
        }
        let give_up = |error: String| -> Option<Finish> {
            let reason = Reason {
                error,
                attempts: attempt,
            };
            Some(Box::pin(dead_letter::send(
                shared.clone(),
                halt.clone(),
                message.clone(),
                reason,
            )))
        };
        if !failure.is_retryable() || attempt >= policy.max_attempts {
            return give_up(failure.to_string());
        }
        let delay = attempt::backoff(policy.backoff, attempt);
        if retrying_since.elapsed() + delay > w.settings.max_retry_time {
            return give_up(format!(
                "{failure}; gave up after {attempt} attempts: retrying longer than {:?} would hold up the partition",
                w.settings.max_retry_time
            ));
        }
        if !attempt::wait(halt, delay).await {
            return None;
        }
        attempt += 1;
        prepared.set_attempt(attempt);
    }
}

/// Sets aside a message the handler cannot be given (not an envelope on an
/// envelope subscription), without calling it.
fn dead_letter_now(
    shared: &Arc<Shared>,
    halt: &CancellationToken,
    message: OwnedMessage,
    error: String,
) -> Finish {
    shared.stats.failed(error.clone());
    let reason = Reason { error, attempts: 0 };
    Box::pin(dead_letter::send(
        shared.clone(),
        halt.clone(),
        message,
        reason,
    ))
}

/// Where the message came from; its headers and timestamp only for a
/// handler whose contract shows them.
fn delivery(message: &OwnedMessage, component: &Component) -> Delivery {
    let mut delivery = Delivery {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        ..Delivery::default()
    };
    if component.contract().sees_headers() {
        delivery.timestamp_ms = message.timestamp().to_millis();
        if let Some(headers) = message.headers() {
            delivery.headers = headers
                .iter()
                .map(|h| Header {
                    name: h.key.to_string(),
                    value: h.value.map(<[u8]>::to_vec),
                })
                .collect();
        }
    }
    delivery
}

/// An instance slot of the host's pool, waiting (and saying so in the
/// handler's stats) while every slot is taken; `None` if halted meanwhile.
async fn instance_slot(
    w: &Shared,
    halt: &CancellationToken,
    component: &Component,
) -> Option<Slot> {
    if let Some(slot) = component.try_slot() {
        return Some(slot);
    }
    let _waiting = w.stats.waiting_for_capacity();
    tokio::select! {
        slot = component.slot() => Some(slot),
        () = halt.cancelled() => None,
    }
}

/// Waits for the broker to take what the handler published; if it refuses
/// one for good, the consumed event is dead-lettered with the broker's
/// error.
async fn after_publish(
    shared: Arc<Shared>,
    halt: CancellationToken,
    message: OwnedMessage,
    published: impl Future<Output = Published>,
    attempts: u32,
) -> Done {
    match published.await {
        Published::Done => {
            shared.stats.handled();
            Done::Finished
        }
        Published::Abandoned => Done::Abandoned,
        Published::Refused(e) => {
            let error = format!("the broker refused an event the handler published: {e}");
            shared.stats.failed(error.clone());
            dead_letter::send(shared, halt, message, Reason { error, attempts }).await
        }
    }
}

/// Whether this is a dead letter re-injected for another handler: only that
/// handler takes it.
fn redriven_for_another(message: &OwnedMessage, name: &str) -> bool {
    message.headers().is_some_and(|headers| {
        headers
            .iter()
            .any(|h| h.key == crate::bus::redrive::HEADER && h.value != Some(name.as_bytes()))
    })
}
