//! One event through its handler: decode it, skip it if the handler did not
//! ask for it, run the handler (retrying in place by the handler's retry
//! policy), and start what must follow: publishing what the handler
//! produced, or setting the message aside as a dead letter.
//!
//! A handler call waits first for one of the handler's call slots
//! (`partition_concurrency`) and then for an instance slot of the host (the
//! instance pool is shared by every handler): waiting spends no attempt and
//! no retry time. A handler whose instances are reused runs on the lane's
//! kept instance instead, when it has one of this version: no slot to wait
//! for. Once the lane halts, nothing is retried and nothing is
//! dead-lettered: the event stays for the partition's next owner.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::dead_letter::{self, Reason};
use super::lane::Done;
use super::outbox;
use super::record::Record;
use super::{Shared, attempt};
use crate::calls::Outcome;
use crate::event::Event;
use crate::metrics::{CallOutcome, TopicMetrics};
use crate::runtime::{Component, Delivery, Format, Header, Input, KeptInstance, Seat, Slot};
use crate::telemetry;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use opentelemetry_semantic_conventions::attribute::{
    MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME, MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_KAFKA_OFFSET, MESSAGING_MESSAGE_ID, MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE, MESSAGING_SYSTEM,
};

/// The rest of an event's work once the handler returned: waiting for the
/// broker to take what it published, or its dead letter.
pub type Finish = Pin<Box<dyn Future<Output = Done> + Send>>;

/// Runs the handler on `message` and returns what must follow; `None` if the
/// lane halted before the event was done or handed over. The call is a
/// `process {topic}` span, a child of the trace context the message carries;
/// what it publishes, and its dead letter, carry it on.
pub async fn handle(
    shared: &Arc<Shared>,
    halt: &CancellationToken,
    message: OwnedMessage,
    (component, kept): (&Component, &mut KeptInstance),
    metrics: &Arc<TopicMetrics>,
) -> Option<Finish> {
    let w = shared.as_ref();
    metrics.consumed(age(&message));
    if redriven_for_another(&message, &w.name) {
        w.stats.skipped();
        metrics.skipped();
        return Some(Box::pin(std::future::ready(Done::Finished)));
    }
    let input = match component.subscription().format(message.topic()) {
        Format::Raw => Ok(Input::Raw(message.payload().map(<[u8]>::to_vec))),
        Format::Envelope => match Event::decode_if(message.payload().unwrap_or_default(), |t| {
            component.subscription().wants(t)
        }) {
            Ok(Some(event)) => Ok(Input::Event(event)),
            Ok(None) => {
                w.stats.skipped();
                metrics.skipped();
                return Some(Box::pin(std::future::ready(Done::Finished)));
            }
            Err(e) => Err(e.to_string()),
        },
    };
    let span = process_span(w, &message, component, input.as_ref().ok());
    // What the handler logs is written inside this, with the trace ids.
    let log = tracing::info_span!(
        "process",
        trace_id = %span.trace_id(),
        span_id = %span.span_id(),
        handler = %w.name,
        topic = message.topic(),
        partition = message.partition(),
        offset = message.offset(),
    );
    let call = run(
        shared,
        halt,
        message,
        (component, kept),
        input,
        &span,
        metrics.clone(),
    );
    // Only a JSON log is interested in the span: otherwise no instrumenting.
    if log.is_disabled() {
        return call.await;
    }
    let finish = call.instrument(log.clone()).await?;
    Some(Box::pin(finish.instrument(log)))
}

/// The span of one handler call, `process {topic}`, a child of the trace
/// context the message carries, with OpenTelemetry's messaging attributes.
fn process_span(
    w: &Shared,
    message: &OwnedMessage,
    component: &Component,
    input: Option<&Input>,
) -> telemetry::Span {
    let parent = telemetry::parent_from_kafka(message.headers());
    telemetry::Span::start(SpanKind::Consumer, parent, || {
        let mut attributes = vec![
            KeyValue::new(MESSAGING_SYSTEM, "kafka"),
            KeyValue::new(MESSAGING_OPERATION_TYPE, "process"),
            KeyValue::new(MESSAGING_OPERATION_NAME, "process"),
            KeyValue::new(MESSAGING_DESTINATION_NAME, message.topic().to_string()),
            KeyValue::new(
                MESSAGING_DESTINATION_PARTITION_ID,
                message.partition().to_string(),
            ),
            KeyValue::new(MESSAGING_CONSUMER_GROUP_NAME, w.name.to_string()),
            KeyValue::new(MESSAGING_KAFKA_OFFSET, message.offset()),
            KeyValue::new("event_host.handler.version", component.digest().to_string()),
        ];
        if let Some(Input::Event(e)) = input {
            attributes.push(KeyValue::new(MESSAGING_MESSAGE_ID, e.id.clone()));
        }
        (format!("process {}", message.topic()), attributes)
    })
}

/// [`handle`] inside its span.
async fn run(
    shared: &Arc<Shared>,
    halt: &CancellationToken,
    message: OwnedMessage,
    (component, kept): (&Component, &mut KeptInstance),
    input: Result<Input, String>,
    span: &telemetry::Span,
    metrics: Arc<TopicMetrics>,
) -> Option<Finish> {
    let w = shared.as_ref();
    let input = match input {
        Ok(input) => input,
        Err(e) => {
            let record = Record::start(shared, &message, component, None, span);
            return Some(dead_letter_now(shared, halt, message, e, record));
        }
    };
    let record = Record::start(shared, &message, component, Some(&input), span);
    let mut prepared = match component.prepare(input, delivery(&message, component)) {
        Ok(prepared) => prepared,
        Err(e) => {
            return Some(dead_letter_now(
                shared,
                halt,
                message,
                e.to_string(),
                record,
            ));
        }
    };
    let policy = component.subscription().retry.unwrap_or(w.settings.retry);
    let retrying_since = Instant::now();
    let mut attempt = 1;
    loop {
        let result = {
            let waited = async {
                let call = w.calls.acquire().await.ok()?;
                let seat = match kept.take_for(component) {
                    Some(seat) => seat,
                    None => Seat::New(instance_slot(w, halt, component).await?),
                };
                Some((call, seat))
            };
            let (_call, seat) = tokio::select! {
                got = waited => got,
                () = halt.cancelled() => None,
            }
            .or_else(|| {
                record.abandoned(attempt - 1);
                None
            })?;
            if matches!(seat, Seat::New(_)) {
                w.stats.instance_created();
            }
            let _running = w.stats.call();
            let started = Instant::now();
            let result = component.handle_in(seat, &prepared, kept).await;
            let outcome = match &result {
                Ok(_) => CallOutcome::Ok,
                Err(f) => CallOutcome::from(f),
            };
            metrics.call(outcome, started.elapsed());
            result
        };
        let failure = match result {
            Ok(outcome) => {
                let mut record = record;
                record.published(&outcome.outbox);
                let version = component.digest_shared();
                let publish = outbox::publish(shared, halt, outcome.outbox, (span, &version));
                let Some(published) = publish.await else {
                    record.abandoned(attempt);
                    return None;
                };
                return Some(Box::pin(after_publish(
                    shared.clone(),
                    halt.clone(),
                    message,
                    published,
                    (attempt, record, metrics),
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
            record.abandoned(attempt);
            return None;
        }
        let give_up = |error: String| -> Option<Finish> {
            let reason = Reason {
                error,
                attempts: attempt,
            };
            Some(Box::pin(dead_letter(
                shared.clone(),
                halt.clone(),
                message.clone(),
                reason,
                record.clone(),
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
            record.abandoned(attempt);
            return None;
        }
        metrics.retried();
        attempt += 1;
        prepared.set_attempt(attempt);
    }
}

/// How old the message is by its Kafka timestamp, if it has one.
fn age(message: &OwnedMessage) -> Option<std::time::Duration> {
    let ms = u64::try_from(message.timestamp().to_millis()?).ok()?;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    SystemTime::now().duration_since(at).ok()
}

/// Sets aside a message the handler cannot be given (not an envelope on an
/// envelope subscription), without calling it.
fn dead_letter_now(
    shared: &Arc<Shared>,
    halt: &CancellationToken,
    message: OwnedMessage,
    error: String,
    record: Record,
) -> Finish {
    shared.stats.failed(error.clone());
    let reason = Reason { error, attempts: 0 };
    Box::pin(dead_letter(
        shared.clone(),
        halt.clone(),
        message,
        reason,
        record,
    ))
}

/// Dead-letters the message and records how the call ended.
async fn dead_letter(
    shared: Arc<Shared>,
    halt: CancellationToken,
    message: OwnedMessage,
    reason: Reason,
    record: Record,
) -> Done {
    let (error, attempts) = (reason.error.clone(), reason.attempts);
    // In the call's span: the dead letter carries it.
    let send = dead_letter::send(shared, halt, message, reason, record.version().clone());
    let done = record.span().clone().scope(send).await;
    match done {
        Done::Finished => record.finish(Outcome::DeadLettered, attempts, Some(error)),
        Done::Abandoned => record.abandoned(attempts),
    }
    done
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
    published: impl Future<Output = outbox::Published>,
    (attempts, record, metrics): (u32, Record, Arc<TopicMetrics>),
) -> Done {
    match published.await {
        outbox::Published::Done => {
            shared.stats.handled();
            metrics.handled();
            record.finish(Outcome::Handled, attempts, None);
            Done::Finished
        }
        outbox::Published::Abandoned => {
            record.abandoned(attempts);
            Done::Abandoned
        }
        outbox::Published::Refused(e) => {
            let error = format!("the broker refused an event the handler published: {e}");
            shared.stats.failed(error.clone());
            let reason = Reason { error, attempts };
            dead_letter(shared, halt, message, reason, record).await
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
