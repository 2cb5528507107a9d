//! The trigger: one consume loop per handler, in a consumer group named after
//! the handler, dispatching each event to the handler's current component.
//!
//! Delivery is at-least-once. The loop never stores an offset before the
//! event was handled and the events the handler published were acknowledged
//! by the broker, or before the event was set aside as a dead letter. Events
//! are handled one at a time, so order within a partition is kept.
//!
//! A failed attempt (retryable error, trap, timeout) is retried in place
//! with exponential backoff and jitter; after the last attempt, or at once for
//! a fatal error or a message that is not an event, the message goes
//! unchanged to `<topic>.dlq` with headers saying why, and the partition
//! moves on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::publisher::Publisher;
use super::{Bus, Topics};
use crate::config::OffsetReset;
use crate::event::{Event, Topic};
use crate::runtime::{self, Component, Delivery, Outgoing, RetryPolicy};
use crate::stats::Stats;

/// Longest wait between two attempts of one event.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How every consume loop talks to Kafka and retries.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub brokers: String,
    pub offset_reset: OffsetReset,
    /// For handlers that declare no retry policy of their own.
    pub retry: RetryPolicy,
    /// Longest an event may be retried in place (holding up the events
    /// behind it on its partition) before it is dead-lettered anyway.
    pub max_retry_time: Duration,
    pub session_timeout: Duration,
}

/// Where a replay starts, on every partition this instance consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The oldest event still on the topic.
    Earliest,
    /// This offset (clamped to what the partition holds).
    Offset(i64),
    /// The first event at or after this time (ms since the Unix epoch).
    Timestamp(i64),
}

/// Where one partition was rewound to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rewound {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

type Replay = (ReplayFrom, oneshot::Sender<anyhow::Result<Vec<Rewound>>>);

/// The running loop of one handler.
pub struct HandlerLoop {
    stats: Arc<Stats>,
    paused: watch::Sender<bool>,
    replays: mpsc::Sender<Replay>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl HandlerLoop {
    /// Joins the consumer group `name` on the topics the current component
    /// subscribes to, and starts consuming. `versions` carries the component
    /// to use for the next event.
    pub fn start(
        name: &str,
        versions: watch::Receiver<Component>,
        bus: &Bus,
        stats: Arc<Stats>,
        paused: bool,
    ) -> anyhow::Result<Self> {
        let settings = bus.consumer_settings();
        let topics: Vec<String> = versions
            .borrow()
            .subscription()
            .topics
            .iter()
            .map(|t| t.to_string())
            .collect();
        let paused_flag = Arc::new(AtomicBool::new(paused));
        let context = LoopContext {
            name: name.to_string(),
            stats: stats.clone(),
            paused: paused_flag.clone(),
        };
        let consumer: StreamConsumer<LoopContext> = ClientConfig::new()
            .set("bootstrap.servers", &settings.brokers)
            .set("group.id", name)
            .set("client.id", format!("event-host-{name}"))
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", settings.offset_reset.as_str())
            .set("enable.partition.eof", "false")
            .set(
                "session.timeout.ms",
                settings.session_timeout.as_millis().to_string(),
            )
            // Favour latency: hand over fetched events after at most 50 ms.
            .set("fetch.wait.max.ms", "50")
            .create_with_context(context)?;
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topic_refs)?;
        tracing::info!(handler = name, topics = ?topics, "consumer group joining");

        let stop = CancellationToken::new();
        let (pause_tx, pause_rx) = watch::channel(paused);
        let (replay_tx, replay_rx) = mpsc::channel(4);
        let worker = Worker {
            name: name.to_string(),
            consumer,
            versions,
            paused: pause_rx,
            paused_flag,
            replays: replay_rx,
            publisher: bus.publisher().clone(),
            topics: bus.topics().clone(),
            settings: settings.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
            stored: BTreeMap::new(),
        };
        let task = tokio::spawn(worker.run());
        Ok(Self {
            stats,
            paused: pause_tx,
            replays: replay_tx,
            stop,
            task,
        })
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Pauses or resumes consuming. A paused handler stays in its group
    /// (no rebalance) but takes no event until resumed; the event in flight
    /// when it was paused finishes.
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Rewinds the partitions this instance consumes (and commits the new
    /// positions), between two events. Events from there on are handled
    /// again.
    pub async fn replay(&self, from: ReplayFrom) -> anyhow::Result<Vec<Rewound>> {
        let (tx, rx) = oneshot::channel();
        self.replays
            .send((from, tx))
            .await
            .map_err(|_| anyhow::anyhow!("the consume loop has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the consume loop has stopped"))?
    }

    /// Stops taking events, lets the one in flight finish, commits and
    /// leaves the group.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "consume loop panicked");
        }
    }
}

struct Worker {
    name: String,
    consumer: StreamConsumer<LoopContext>,
    versions: watch::Receiver<Component>,
    paused: watch::Receiver<bool>,
    /// The same, for the rebalance callback: partitions assigned while
    /// paused are paused at once.
    paused_flag: Arc<AtomicBool>,
    replays: mpsc::Receiver<Replay>,
    publisher: Publisher,
    topics: Arc<Topics>,
    settings: ConsumerSettings,
    stats: Arc<Stats>,
    stop: CancellationToken,
    /// The next offset to commit, per partition: what this loop has finished.
    stored: BTreeMap<(String, i32), i64>,
}

/// Whether an event was finished (and may be committed) or abandoned
/// because the host is stopping (and will be delivered again).
enum Done {
    Finished,
    Abandoned,
}

impl Worker {
    async fn run(mut self) {
        if *self.paused.borrow() {
            self.pause_partitions(true);
        }
        let mut pause_open = true;
        loop {
            let received = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                changed = self.paused.changed(), if pause_open => {
                    match changed {
                        Ok(()) => {
                            let paused = *self.paused.borrow_and_update();
                            self.pause_partitions(paused);
                        }
                        Err(_) => pause_open = false,
                    }
                    continue;
                }
                Some((from, reply)) = self.replays.recv() => {
                    let _ = reply.send(self.replay(from));
                    continue;
                }
                m = self.consumer.recv() => m,
            };
            let message = match received {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(handler = %self.name, error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if *self.paused.borrow() {
                // Fetched before the pause took effect: put it back, so it
                // is the first event after resuming.
                let tp = (
                    message.topic().to_string(),
                    message.partition(),
                    message.offset(),
                );
                drop(message);
                if let Err(e) =
                    self.consumer
                        .seek(&tp.0, tp.1, Offset::Offset(tp.2), Duration::from_secs(5))
                {
                    tracing::warn!(handler = %self.name, error = %e, "cannot rewind a paused partition");
                }
                continue;
            }
            let component = self.versions.borrow().clone();
            let done = process(&self, &message, &component).await;
            match done {
                Done::Finished => {
                    let key = (message.topic().to_string(), message.partition());
                    let next = message.offset() + 1;
                    if let Err(e) = self.consumer.store_offset_from_message(&message) {
                        tracing::warn!(handler = %self.name, error = %e, "cannot store offset");
                    }
                    drop(message);
                    self.stored.insert(key, next);
                }
                Done::Abandoned => break,
            }
        }
        self.close().await;
    }

    /// Seeks every assigned partition to `from` and commits the positions.
    /// Blocking calls to the broker: run in place, between two events.
    fn replay(&mut self, from: ReplayFrom) -> anyhow::Result<Vec<Rewound>> {
        const TIMEOUT: Duration = Duration::from_secs(10);
        tokio::task::block_in_place(|| {
            let assigned = self.consumer.assignment()?;
            let by_time = match from {
                ReplayFrom::Timestamp(ms) => {
                    Some(self.consumer.offsets_for_timestamp(ms, TIMEOUT)?)
                }
                _ => None,
            };
            let mut targets = TopicPartitionList::new();
            let mut rewound = Vec::new();
            for p in assigned.elements() {
                let (topic, partition) = (p.topic(), p.partition());
                let (low, high) = self.consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
                let offset = match from {
                    ReplayFrom::Earliest => low,
                    ReplayFrom::Offset(n) => n.clamp(low, high),
                    ReplayFrom::Timestamp(_) => match by_time
                        .as_ref()
                        .and_then(|t| t.find_partition(topic, partition))
                        .map(|e| e.offset())
                    {
                        Some(Offset::Offset(o)) => o.clamp(low, high),
                        _ => high,
                    },
                };
                targets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
                rewound.push(Rewound {
                    topic: topic.to_string(),
                    partition,
                    offset,
                });
            }
            if targets.count() > 0 {
                self.consumer.seek_partitions(targets.clone(), TIMEOUT)?;
                self.consumer.commit(&targets, CommitMode::Sync)?;
            }
            for r in &rewound {
                self.stored.insert((r.topic.clone(), r.partition), r.offset);
            }
            tracing::info!(handler = %self.name, ?from, ?rewound, "replaying");
            Ok(rewound)
        })
    }

    /// Pauses or resumes fetching on every assigned partition.
    fn pause_partitions(&self, paused: bool) {
        self.paused_flag.store(paused, Ordering::Release);
        let result = self.consumer.assignment().and_then(|assigned| {
            if paused {
                self.consumer.pause(&assigned)
            } else {
                self.consumer.resume(&assigned)
            }
        });
        match result {
            Ok(()) => tracing::info!(handler = %self.name, paused, "consumption paused or resumed"),
            Err(e) => {
                tracing::warn!(handler = %self.name, paused, error = %e, "cannot pause or resume")
            }
        }
    }

    /// Commits what was finished and leaves the group.
    async fn close(self) {
        let Worker {
            name,
            consumer,
            stored,
            stats,
            ..
        } = self;
        let _ = tokio::task::spawn_blocking(move || {
            let mut offsets = TopicPartitionList::new();
            for ((topic, partition), next) in &stored {
                if let Err(e) =
                    offsets.add_partition_offset(topic, *partition, Offset::Offset(*next))
                {
                    tracing::warn!(handler = %name, error = %e, "bad offset");
                }
            }
            if offsets.count() > 0 {
                match consumer.commit(&offsets, CommitMode::Sync) {
                    Ok(()) => tracing::info!(handler = %name, "committed final offsets"),
                    Err(e) => tracing::warn!(handler = %name, error = %e, "final commit failed"),
                }
            }
            // Dropping the consumer closes it: it leaves the group.
            drop(consumer);
            stats.set_assigned(false);
            tracing::info!(handler = %name, "consumer group left");
        })
        .await;
    }
}

async fn process(w: &Worker, message: &BorrowedMessage<'_>, component: &Component) -> Done {
    let event = match Event::decode(message.payload().unwrap_or_default()) {
        Ok(e) => e,
        Err(e) => {
            let reason = e.to_string();
            w.stats.failed(reason.clone());
            return dead_letter(w, message, &reason, 0).await;
        }
    };
    if !component.subscription().wants(&event.event_type) || redriven_for_another(message, &w.name)
    {
        w.stats.skipped();
        return Done::Finished;
    }
    let wit_event = runtime::wit_event(&event);
    let policy = component.subscription().retry.unwrap_or(w.settings.retry);
    let retrying_since = std::time::Instant::now();
    let mut delivery = Delivery {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        attempt: 1,
    };
    loop {
        let failure = match component.handle(&wit_event, &delivery).await {
            Ok(outcome) => {
                if let Done::Abandoned = publish_all(w, outcome.outbox).await {
                    return Done::Abandoned;
                }
                w.stats.handled();
                return Done::Finished;
            }
            Err(f) => f,
        };
        let attempt = delivery.attempt;
        tracing::warn!(
            handler = %w.name, event_id = %event.id, attempt, error = %failure,
            "handler failed"
        );
        w.stats.failed(failure.to_string());
        if !failure.is_retryable() || attempt >= policy.max_attempts {
            return dead_letter(w, message, &failure.to_string(), attempt).await;
        }
        let delay = backoff(policy.backoff, attempt);
        if retrying_since.elapsed() + delay > w.settings.max_retry_time {
            let reason = format!(
                "{failure}; gave up after {attempt} attempts: retrying longer than {:?} would hold up the partition",
                w.settings.max_retry_time
            );
            return dead_letter(w, message, &reason, attempt).await;
        }
        if !pause(w, delay).await {
            return Done::Abandoned;
        }
        delivery.attempt += 1;
    }
}

/// Whether this is a dead letter re-injected for another handler: only that
/// handler takes it.
fn redriven_for_another(message: &BorrowedMessage<'_>, name: &str) -> bool {
    message.headers().is_some_and(|headers| {
        headers
            .iter()
            .any(|h| h.key == super::redrive::HEADER && h.value != Some(name.as_bytes()))
    })
}

/// Publishes what a successful invocation produced, retrying until the
/// broker takes every event or the host stops.
async fn publish_all(w: &Worker, mut outbox: Vec<Outgoing>) -> Done {
    let mut round = 1;
    while !outbox.is_empty() {
        let topics: Vec<Topic> = outbox.iter().map(|o| o.topic.clone()).collect();
        if let Err(e) = w.topics.ensure(&topics).await {
            tracing::warn!(handler = %w.name, error = ?e, "cannot create the topics a handler publishes to; retrying");
            if !pause(w, backoff(w.settings.retry.backoff, round)).await {
                return Done::Abandoned;
            }
            round += 1;
            continue;
        }
        let sends = outbox
            .iter()
            .map(|o| w.publisher.publish(&o.topic, &o.event));
        let results = futures_util::future::join_all(sends).await;
        let mut left = Vec::new();
        for (o, result) in outbox.into_iter().zip(results) {
            if let Err(e) = result {
                tracing::warn!(handler = %w.name, error = %e, "publishing a handler's event failed; retrying");
                left.push(o);
            }
        }
        outbox = left;
        if !outbox.is_empty() && !pause(w, backoff(w.settings.retry.backoff, round)).await {
            return Done::Abandoned;
        }
        round += 1;
    }
    Done::Finished
}

/// Sets a message aside on its topic's dead-letter topic, unchanged, with
/// headers saying which handler gave up on it and why.
async fn dead_letter(
    w: &Worker,
    message: &BorrowedMessage<'_>,
    error: &str,
    attempts: u32,
) -> Done {
    let Ok(topic) = Topic::parse(message.topic()) else {
        return Done::Finished;
    };
    let dlq = topic.dead_letters();
    let mut round = 1;
    loop {
        let headers = dead_letter_headers(message, &w.name, error, attempts);
        let payload = message.payload().unwrap_or_default();
        match w
            .publisher
            .send(dlq.as_str(), message.key(), payload, headers)
            .await
        {
            Ok(_) => {
                tracing::error!(
                    handler = %w.name, topic = %topic, partition = message.partition(),
                    offset = message.offset(), dead_letter_topic = %dlq, error,
                    "event dead-lettered"
                );
                w.stats.dead_lettered();
                return Done::Finished;
            }
            Err(e) => {
                tracing::warn!(handler = %w.name, error = %e, "cannot dead-letter an event; retrying");
                if !pause(w, backoff(w.settings.retry.backoff, round)).await {
                    return Done::Abandoned;
                }
                round += 1;
            }
        }
    }
}

fn dead_letter_headers(
    message: &BorrowedMessage<'_>,
    handler: &str,
    error: &str,
    attempts: u32,
) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for h in original.iter() {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let timestamp = message.timestamp().to_millis().unwrap_or(-1).to_string();
    let fields = [
        ("dlq.handler", handler.to_string()),
        ("dlq.error", error.to_string()),
        ("dlq.attempts", attempts.to_string()),
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

/// Waits, unless the host is stopping; says whether to carry on.
async fn pause(w: &Worker, delay: Duration) -> bool {
    tokio::select! {
        () = w.stop.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// `base · 2^(attempt-1)`, capped, with ±25 % jitter.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(MAX_BACKOFF);
    capped.mul_f64(0.75 + fastrand::f64() * 0.5)
}

/// Reports group membership changes into the handler's stats and the log.
struct LoopContext {
    name: String,
    stats: Arc<Stats>,
    paused: Arc<AtomicBool>,
}

impl ClientContext for LoopContext {}

impl ConsumerContext for LoopContext {
    fn post_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                if self.paused.load(Ordering::Acquire)
                    && let Err(e) = consumer.pause(partitions)
                {
                    tracing::warn!(handler = %self.name, error = %e, "cannot pause new partitions");
                }
                tracing::info!(handler = %self.name, partitions = partitions.count(), "partitions assigned");
                self.stats.set_assigned(true);
            }
            Rebalance::Revoke(partitions) => {
                tracing::info!(handler = %self.name, partitions = partitions.count(), "partitions revoked");
            }
            Rebalance::Error(e) => {
                tracing::warn!(handler = %self.name, error = %e, "rebalance failed");
            }
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            tracing::warn!(handler = %self.name, error = %e, "offset commit failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for attempt in 1..=5 {
            let nominal = base * (1 << (attempt - 1));
            let d = backoff(base, attempt);
            assert!(
                d >= nominal.mul_f64(0.75) && d <= nominal.mul_f64(1.25),
                "{attempt}: {d:?}"
            );
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF.mul_f64(1.25));
    }
}
