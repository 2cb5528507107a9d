//! What a handler published: handed to the producer in order once its
//! invocation succeeded, then acknowledged in the background.
//!
//! A publish the broker refuses for a while (a broker down, a leader moving)
//! is tried again until it is taken or the lane halts. One it refuses for
//! good (too large, an invalid or forbidden topic) will never be taken: the
//! consumed event is then dead-lettered with the broker's error, and the
//! partition moves on.

use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Shared;
use super::attempt;
use crate::bus::publisher::{Pending, PublishError};
use crate::event::Topic;
use crate::runtime::Outgoing;
use crate::telemetry;

/// How publishing an invocation's events ended.
pub enum Published {
    /// The broker took every event.
    Done,
    /// The lane halted before the broker took them all.
    Abandoned,
    /// The broker refused one for good.
    Refused(PublishError),
}

/// Makes sure the topics of `outbox` exist, then hands its events to the
/// producer in order, and returns a future that resolves once the broker
/// took each (see [`Published`]). `None` if the lane halted before the
/// events could be handed over. They are published in `span` (the handler
/// call's): each carries it as its `traceparent`, retries included.
pub async fn publish(
    shared: &Arc<Shared>,
    halt: &CancellationToken,
    outbox: Vec<Outgoing>,
    (span, version): (&telemetry::Span, &Arc<str>),
) -> Option<impl Future<Output = Published> + Send + 'static> {
    if !topics_ready(shared, halt, &outbox).await {
        return None;
    }
    let pending: Vec<(Outgoing, Result<Pending, PublishError>)> = span.in_scope(|| {
        outbox
            .into_iter()
            .map(|o| {
                let pending = shared.publisher.enqueue_outgoing(&o, version);
                (o, pending)
            })
            .collect()
    });
    let shared = shared.clone();
    let halt = halt.clone();
    let span = (!pending.is_empty()).then(|| span.clone());
    let version = version.clone();
    Some(async move {
        let mut left = Vec::new();
        for (o, pending) in pending {
            let result = match pending {
                Ok(pending) => pending.acked().await.map(|_| ()),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {}
                Err(e) if e.permanent => return Published::Refused(e),
                Err(e) => {
                    tracing::warn!(handler = %shared.name, error = %e, "publishing a handler's event failed; retrying");
                    left.push(o);
                }
            }
        }
        match span {
            Some(span) if !left.is_empty() => {
                span.scope(republish(&shared, &halt, left, &version)).await
            }
            _ => Published::Done,
        }
    })
}

/// Makes sure the topics of `outbox` exist, retrying until they do; false
/// if the lane halted first.
async fn topics_ready(shared: &Shared, halt: &CancellationToken, outbox: &[Outgoing]) -> bool {
    if outbox.is_empty() {
        return true;
    }
    let topics: Vec<Topic> = outbox.iter().map(|o| o.topic().clone()).collect();
    attempt::until_ok(
        halt,
        shared.settings.retry.backoff,
        &shared.name,
        "creating the topics a handler publishes to",
        || shared.topics.ensure(&topics),
    )
    .await
    .is_some()
}

/// Publishes again the events the broker did not take, until it takes every
/// one, refuses one for good, or the lane halts.
async fn republish(
    shared: &Shared,
    halt: &CancellationToken,
    mut outbox: Vec<Outgoing>,
    version: &str,
) -> Published {
    let mut round = 1;
    while !outbox.is_empty() {
        if !attempt::wait(halt, attempt::backoff(shared.settings.retry.backoff, round)).await {
            return Published::Abandoned;
        }
        round += 1;
        if !topics_ready(shared, halt, &outbox).await {
            return Published::Abandoned;
        }
        let sends = outbox
            .iter()
            .map(|o| shared.publisher.publish_outgoing(o, version));
        let results = futures_util::future::join_all(sends).await;
        let mut left = Vec::new();
        for (o, result) in outbox.into_iter().zip(results) {
            match result {
                Ok(_) => {}
                Err(e) if e.permanent => return Published::Refused(e),
                Err(e) => {
                    tracing::warn!(handler = %shared.name, error = %e, "publishing a handler's event failed; retrying");
                    left.push(o);
                }
            }
        }
        outbox = left;
    }
    Published::Done
}
