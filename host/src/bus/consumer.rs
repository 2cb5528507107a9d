//! The trigger: one consume loop per handler, in a consumer group named after
//! the handler, dispatching each event to the handler's current component.
//!
//! Delivery is at-least-once. The loop never stores an offset before the
//! event was handled and the events the handler published were acknowledged
//! by the broker, or before the event was set aside as a dead letter.
//!
//! Each partition has a lane: a task that handles that partition's events
//! one at a time, in order. Lanes of different partitions run concurrently,
//! at most `partition_concurrency` handler calls at once. A lane that falls
//! behind has its partition paused until it catches up, so memory stays
//! bounded and a slow partition does not hold up the others.
//!
//! A failed attempt (retryable error, trap, timeout) is retried in place
//! with exponential backoff and jitter; after the last attempt, or at once for
//! a fatal error or a message that is not an event, the message goes
//! unchanged to `<topic>.dlq` with headers saying why, and the partition
//! moves on.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
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
    /// Handler calls of one handler that may run at once (on different
    /// partitions).
    pub partition_concurrency: usize,
    pub session_timeout: Duration,
    /// `fetch.wait.max.ms`: see `Config::fetch_wait_ms`.
    pub fetch_wait: Duration,
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
        let generation = Arc::new(AtomicU64::new(0));
        let context = LoopContext {
            name: name.to_string(),
            stats: stats.clone(),
            paused: paused_flag.clone(),
            generation: generation.clone(),
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
            .set(
                "fetch.wait.max.ms",
                settings.fetch_wait.as_millis().to_string(),
            )
            .create_with_context(context)?;
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topic_refs)?;
        tracing::info!(handler = name, topics = ?topics, "consumer group joining");

        let stop = CancellationToken::new();
        let (pause_tx, pause_rx) = watch::channel(paused);
        let (replay_tx, replay_rx) = mpsc::channel(4);
        let worker = Worker {
            shared: Arc::new(Shared {
                name: name.to_string(),
                publisher: bus.publisher().clone(),
                topics: bus.topics().clone(),
                settings: settings.clone(),
                stats: stats.clone(),
                stop: stop.clone(),
                stored: Mutex::new(BTreeMap::new()),
                calls: Semaphore::new(settings.partition_concurrency.max(1)),
                generation,
            }),
            consumer: Arc::new(consumer),
            versions,
            paused: pause_rx,
            paused_flag,
            replays: replay_rx,
            lanes: HashMap::new(),
        };
        let task = tokio::spawn(worker.run());
        Ok(Self {
            paused: pause_tx,
            replays: replay_tx,
            stop,
            task,
        })
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

/// What the lanes of one handler share.
struct Shared {
    name: String,
    publisher: Publisher,
    topics: Arc<Topics>,
    settings: ConsumerSettings,
    stats: Arc<Stats>,
    stop: CancellationToken,
    /// The next offset to commit, per partition: what the lanes finished.
    stored: Mutex<BTreeMap<(String, i32), i64>>,
    /// Handler calls that may run at once, across partitions.
    calls: Semaphore,
    /// Bumped when what is queued in the lanes is stale (a rebalance, a
    /// replay): the consumer fetches those events again.
    generation: Arc<AtomicU64>,
}

struct Worker {
    shared: Arc<Shared>,
    consumer: Arc<StreamConsumer<LoopContext>>,
    versions: watch::Receiver<Component>,
    paused: watch::Receiver<bool>,
    /// The same, for the rebalance callback: partitions assigned while
    /// paused are paused at once.
    paused_flag: Arc<AtomicBool>,
    replays: mpsc::Receiver<Replay>,
    lanes: HashMap<(String, i32), Lane>,
}

/// One partition's queue and the task that works through it.
struct Lane {
    queue: mpsc::UnboundedSender<(u64, OwnedMessage)>,
    queued: Arc<AtomicUsize>,
    /// Paused because the queue grew past [`LANE_HIGH`].
    throttled: bool,
    task: tokio::task::JoinHandle<()>,
}

/// A lane's queue length at which its partition is paused, and at which it
/// is resumed again.
const LANE_HIGH: usize = 500;
const LANE_LOW: usize = 100;

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
        let mut relieve = tokio::time::interval(Duration::from_millis(50));
        loop {
            let received = tokio::select! {
                biased;
                () = self.shared.stop.cancelled() => break,
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
                _ = relieve.tick() => {
                    self.relieve();
                    continue;
                }
                m = self.consumer.recv() => m,
            };
            match received {
                Ok(message) => {
                    let message = message.detach();
                    self.route(message);
                }
                Err(e) => {
                    tracing::warn!(handler = %self.shared.name, error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        self.close().await;
    }

    /// Queues a message on its partition's lane (starting the lane if
    /// needed), and pauses the partition if the lane fell far behind.
    fn route(&mut self, message: OwnedMessage) {
        let key = (message.topic().to_string(), message.partition());
        let lane = match self.lanes.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let (queue, rx) = mpsc::unbounded_channel();
                let queued = Arc::new(AtomicUsize::new(0));
                let task = tokio::spawn(lane(
                    self.shared.clone(),
                    self.consumer.clone(),
                    self.versions.clone(),
                    self.paused.clone(),
                    rx,
                    queued.clone(),
                ));
                e.insert(Lane {
                    queue,
                    queued,
                    throttled: false,
                    task,
                })
            }
        };
        let generation = self.shared.generation.load(Ordering::Acquire);
        let (topic, partition) = (message.topic().to_string(), message.partition());
        lane.queued.fetch_add(1, Ordering::AcqRel);
        if lane.queue.send((generation, message)).is_err() {
            return;
        }
        if !lane.throttled && lane.queued.load(Ordering::Acquire) > LANE_HIGH {
            lane.throttled = true;
            if let Err(e) =
                one_partition(&topic, partition).and_then(|tpl| self.consumer.pause(&tpl))
            {
                tracing::warn!(handler = %self.shared.name, error = %e, "cannot pause a busy partition");
            }
        }
    }

    /// Resumes the partitions whose lanes caught up.
    fn relieve(&mut self) {
        let user_paused = *self.paused.borrow();
        for ((topic, partition), lane) in &mut self.lanes {
            if lane.throttled && lane.queued.load(Ordering::Acquire) < LANE_LOW {
                lane.throttled = false;
                if user_paused {
                    continue;
                }
                if let Err(e) =
                    one_partition(topic, *partition).and_then(|tpl| self.consumer.resume(&tpl))
                {
                    tracing::warn!(handler = %self.shared.name, error = %e, "cannot resume a partition");
                }
            }
        }
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
                // What the lanes hold is from before the rewind: drop it.
                self.shared.generation.fetch_add(1, Ordering::AcqRel);
                self.consumer.seek_partitions(targets.clone(), TIMEOUT)?;
                self.consumer.commit(&targets, CommitMode::Sync)?;
            }
            let mut stored = self.shared.stored.lock().unwrap_or_else(|p| p.into_inner());
            for r in &rewound {
                stored.insert((r.topic.clone(), r.partition), r.offset);
            }
            tracing::info!(handler = %self.shared.name, ?from, ?rewound, "replaying");
            Ok(rewound)
        })
    }

    /// Pauses or resumes fetching on every assigned partition.
    fn pause_partitions(&mut self, paused: bool) {
        self.paused_flag.store(paused, Ordering::Release);
        if !paused {
            for lane in self.lanes.values_mut() {
                lane.throttled = false;
            }
        }
        let result = self.consumer.assignment().and_then(|assigned| {
            if paused {
                self.consumer.pause(&assigned)
            } else {
                self.consumer.resume(&assigned)
            }
        });
        match result {
            Ok(()) => {
                tracing::info!(handler = %self.shared.name, paused, "consumption paused or resumed")
            }
            Err(e) => {
                tracing::warn!(handler = %self.shared.name, paused, error = %e, "cannot pause or resume")
            }
        }
    }

    /// Lets each lane finish its event in flight, commits what was
    /// finished and leaves the group.
    async fn close(self) {
        let Worker {
            shared,
            consumer,
            lanes,
            ..
        } = self;
        let tasks: Vec<_> = lanes.into_values().map(|lane| lane.task).collect();
        for result in futures_util::future::join_all(tasks).await {
            if let Err(e) = result {
                tracing::error!(handler = %shared.name, error = %e, "a partition lane panicked");
            }
        }
        let name = shared.name.clone();
        let stats = shared.stats.clone();
        let stored = std::mem::take(&mut *shared.stored.lock().unwrap_or_else(|p| p.into_inner()));
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

/// Handles one partition's events in order until the host stops. Waits
/// while the handler is paused; skips events queued before a rebalance or a
/// replay (they are fetched again).
async fn lane(
    shared: Arc<Shared>,
    consumer: Arc<StreamConsumer<LoopContext>>,
    versions: watch::Receiver<Component>,
    mut paused: watch::Receiver<bool>,
    mut queue: mpsc::UnboundedReceiver<(u64, OwnedMessage)>,
    queued: Arc<AtomicUsize>,
) {
    loop {
        let next = tokio::select! {
            biased;
            () = shared.stop.cancelled() => return,
            next = queue.recv() => next,
        };
        let Some((generation, message)) = next else {
            return;
        };
        queued.fetch_sub(1, Ordering::AcqRel);
        while *paused.borrow_and_update() {
            tokio::select! {
                () = shared.stop.cancelled() => return,
                changed = paused.changed() => if changed.is_err() { return },
            }
        }
        if generation != shared.generation.load(Ordering::Acquire) {
            continue;
        }
        let Ok(_call) = shared.calls.acquire().await else {
            return;
        };
        if shared.stop.is_cancelled() {
            return;
        }
        let component = versions.borrow().clone();
        match process(&shared, &message, &component).await {
            Done::Finished => {
                let (topic, partition, offset) =
                    (message.topic(), message.partition(), message.offset());
                if let Err(e) = consumer.store_offset(topic, partition, offset) {
                    tracing::debug!(handler = %shared.name, error = %e, "cannot store offset (partition revoked?)");
                }
                shared
                    .stored
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((topic.to_string(), partition), offset + 1);
            }
            Done::Abandoned => return,
        }
    }
}

fn one_partition(topic: &str, partition: i32) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    Ok(tpl)
}

async fn process(w: &Shared, message: &OwnedMessage, component: &Component) -> Done {
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
        let call = w.stats.call();
        let result = component.handle(&wit_event, &delivery).await;
        drop(call);
        let failure = match result {
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
fn redriven_for_another(message: &OwnedMessage, name: &str) -> bool {
    message.headers().is_some_and(|headers| {
        headers
            .iter()
            .any(|h| h.key == super::redrive::HEADER && h.value != Some(name.as_bytes()))
    })
}

/// Publishes what a successful invocation produced, retrying until the
/// broker takes every event or the host stops.
async fn publish_all(w: &Shared, mut outbox: Vec<Outgoing>) -> Done {
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
async fn dead_letter(w: &Shared, message: &OwnedMessage, error: &str, attempts: u32) -> Done {
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
    message: &OwnedMessage,
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
async fn pause(w: &Shared, delay: Duration) -> bool {
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
    generation: Arc<AtomicU64>,
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
                // What the lanes still queue is refetched after the
                // rebalance, from the committed offsets.
                self.generation.fetch_add(1, Ordering::AcqRel);
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
