//! The trigger: one consume loop per handler, in a consumer group named after
//! the handler, dispatching each event to the handler's current component.
//!
//! Delivery is at-least-once. The loop never stores an offset before the
//! event was handled and the events the handler published were acknowledged
//! by the broker, or before the event was set aside as a dead letter.
//!
//! Each assigned partition has a lane: a task that reads the partition's own
//! librdkafka queue (split off the consumer's) and handles its events one at
//! a time, in order. Lanes of different partitions run concurrently, at most
//! `partition_concurrency` handler calls at once. A lane that falls behind
//! simply reads its queue more slowly: librdkafka stops fetching a partition
//! whose queue holds `prefetch` bytes, so memory stays bounded and a slow
//! partition does not hold up the others, without pausing partitions (a pause
//! throws away what librdkafka had prefetched).
//!
//! A lane does not wait for the broker to acknowledge an event's publishes
//! before handling the next event: the publishes are handed to the producer
//! in order and acknowledged in the background, and the partition's offset
//! moves past an event only once it and every event before it are done.
//!
//! A failed attempt (retryable error, trap, timeout) is retried in place
//! with exponential backoff and jitter; after the last attempt, or at once for
//! a fatal error or a message that is not an event, the message goes
//! unchanged to `<topic>.dlq` with headers saying why, and the partition
//! moves on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, Statistics, TopicPartitionList};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::publisher::{Pending, Publisher};
use super::{Bus, Topics};
use crate::config::OffsetReset;
use crate::event::{Event, Topic};
use crate::runtime::{self, Component, Delivery, Outgoing, RetryPolicy};
use crate::stats::Stats;

/// Longest wait between two attempts of one event.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Events of one partition handled but whose publishes the broker has not
/// acknowledged yet. Beyond this the lane waits for acknowledgements.
const MAX_UNACKED: usize = 256;

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
    /// What librdkafka may hold fetched ahead, per assigned partition, in
    /// KiB (`queued.max.messages.kbytes`).
    pub prefetch_kib: usize,
    /// How often librdkafka reports statistics, from which the lag comes.
    pub lag_interval: Duration,
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

type LoopConsumer = StreamConsumer<LoopContext>;
type PartitionQueue = StreamPartitionQueue<LoopContext>;
type PartitionKey = (String, i32);

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
        let (assignments_tx, assignments) = mpsc::unbounded_channel();
        let context = LoopContext {
            name: name.to_string(),
            stats: stats.clone(),
            consumer: OnceLock::new(),
            assignments: assignments_tx,
            assigned: Mutex::default(),
            offset_reset: settings.offset_reset,
        };
        let consumer: LoopConsumer = ClientConfig::new()
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
            // Per partition, since every partition has its own queue.
            .set(
                "queued.max.messages.kbytes",
                settings.prefetch_kib.max(1).to_string(),
            )
            // A full queue postpones that partition's next fetch by this
            // much (librdkafka's default, 1 s, lets a fast lane run dry).
            .set("fetch.queue.backoff.ms", "10")
            .set(
                "statistics.interval.ms",
                settings.lag_interval.as_millis().to_string(),
            )
            .create_with_context(context)?;
        let consumer = Arc::new(consumer);
        // Lets the rebalance callback split each assigned partition's queue
        // off at once, before anything is fetched for it.
        let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
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
                generation: AtomicU64::new(0),
            }),
            consumer,
            versions,
            paused: pause_rx,
            replays: replay_rx,
            assignments,
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

    /// Stops taking events, lets the ones in flight finish, commits and
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
    stored: Mutex<BTreeMap<PartitionKey, i64>>,
    /// Handler calls that may run at once, across partitions.
    calls: Semaphore,
    /// Bumped by a replay: what a lane holds from before it is stale (the
    /// consumer fetches those events again).
    generation: AtomicU64,
}

impl Shared {
    fn stored(&self) -> std::sync::MutexGuard<'_, BTreeMap<PartitionKey, i64>> {
        self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A change of the partitions this instance consumes, from the rebalance
/// callback.
enum Assignment {
    /// Newly assigned partitions, each with its queue already split off (or
    /// `None` if librdkafka would not split it: its events then come
    /// through the consumer's own queue).
    Assigned(Vec<(PartitionKey, Option<PartitionQueue>)>),
    Revoked(Vec<PartitionKey>),
}

struct Worker {
    shared: Arc<Shared>,
    consumer: Arc<LoopConsumer>,
    versions: watch::Receiver<Component>,
    paused: watch::Receiver<bool>,
    replays: mpsc::Receiver<Replay>,
    assignments: mpsc::UnboundedReceiver<Assignment>,
    lanes: HashMap<PartitionKey, Lane>,
}

/// One partition's task, and what the consume loop tells it.
struct Lane {
    /// Events of the partition that came through the consumer's own queue
    /// (fetched before its queue was split off, or never split).
    stray: mpsc::UnboundedSender<(u64, OwnedMessage)>,
    /// Cancelled when the partition is revoked: the lane finishes what it
    /// started and ends.
    revoked: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Whether an event was finished (and may be committed) or abandoned
/// because the host is stopping (and will be delivered again).
enum Done {
    Finished,
    Abandoned,
}

/// The rest of an event's work once the handler returned: waiting for the
/// broker to take what it published, or its dead letter.
type Finish = Pin<Box<dyn Future<Output = Done> + Send>>;

impl Worker {
    async fn run(mut self) {
        let mut assignments_open = true;
        loop {
            let received = tokio::select! {
                biased;
                () = self.shared.stop.cancelled() => break,
                assignment = self.assignments.recv(), if assignments_open => {
                    match assignment {
                        Some(a) => self.reassign(a),
                        None => assignments_open = false,
                    }
                    continue;
                }
                Some((from, reply)) = self.replays.recv() => {
                    let _ = reply.send(self.replay(from));
                    continue;
                }
                // Serves the rebalance callbacks; yields only events of
                // partitions whose queue is not split off.
                m = self.consumer.recv() => m,
            };
            match received {
                Ok(message) => {
                    let message = message.detach();
                    let key = (message.topic().to_string(), message.partition());
                    tracing::debug!(handler = %self.shared.name, partition = ?key, "an event came through the consumer's own queue");
                    let generation = self.shared.generation.load(Ordering::Acquire);
                    let lane = match self.lanes.get(&key) {
                        Some(lane) if !lane.revoked.is_cancelled() => lane,
                        _ => {
                            self.start_lane(key.clone(), None);
                            &self.lanes[&key]
                        }
                    };
                    let _ = lane.stray.send((generation, message));
                }
                Err(e) => {
                    tracing::warn!(handler = %self.shared.name, error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        self.close().await;
    }

    fn reassign(&mut self, assignment: Assignment) {
        match assignment {
            Assignment::Assigned(partitions) => {
                for (key, queue) in partitions {
                    self.start_lane(key, queue);
                }
            }
            Assignment::Revoked(partitions) => {
                let mut stored = self.shared.stored();
                for key in &partitions {
                    if let Some(lane) = self.lanes.get(key) {
                        lane.revoked.cancel();
                    }
                    // Committed on revocation; no longer ours to commit.
                    stored.remove(key);
                }
            }
        }
    }

    /// Starts the lane of a partition. A lane still finishing the same
    /// partition from before a rebalance is let finish first, so events of
    /// one partition never run out of order.
    fn start_lane(&mut self, key: PartitionKey, queue: Option<PartitionQueue>) {
        let previous = self.lanes.remove(&key).map(|old| {
            old.revoked.cancel();
            old.task
        });
        let (stray, strays) = mpsc::unbounded_channel();
        let revoked = CancellationToken::new();
        let lane = LaneTask {
            shared: self.shared.clone(),
            consumer: self.consumer.clone(),
            versions: self.versions.clone(),
            paused: self.paused.clone(),
            key: key.clone(),
            queue,
            strays,
            revoked: revoked.clone(),
        };
        let task = tokio::spawn(lane.run(previous));
        self.lanes.insert(
            key,
            Lane {
                stray,
                revoked,
                task,
            },
        );
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
            let mut stored = self.shared.stored();
            for r in &rewound {
                stored.insert((r.topic.clone(), r.partition), r.offset);
            }
            tracing::info!(handler = %self.shared.name, ?from, ?rewound, "replaying");
            Ok(rewound)
        })
    }

    /// Lets each lane finish the events it started, commits what was
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
        let stored = std::mem::take(&mut *shared.stored());
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
            stats.set_lag(None);
            tracing::info!(handler = %name, "consumer group left");
        })
        .await;
    }
}

/// One partition's lane: takes its events in order, runs the handler on
/// each, and stores the partition's offset as events finish.
struct LaneTask {
    shared: Arc<Shared>,
    consumer: Arc<LoopConsumer>,
    versions: watch::Receiver<Component>,
    paused: watch::Receiver<bool>,
    key: PartitionKey,
    queue: Option<PartitionQueue>,
    strays: mpsc::UnboundedReceiver<(u64, OwnedMessage)>,
    revoked: CancellationToken,
}

/// An event handled whose publishes (or dead letter) are on their way.
type Unacked = Pin<Box<dyn Future<Output = (u64, i64, Done)> + Send>>;

impl LaneTask {
    async fn run(mut self, previous: Option<tokio::task::JoinHandle<()>>) {
        if let Some(previous) = previous {
            let _ = previous.await;
        }
        let mut unacked: FuturesOrdered<Unacked> = FuturesOrdered::new();
        while let Some((generation, message)) = self.next(&mut unacked).await {
            if !self.wait_unpaused(&mut unacked).await {
                break;
            }
            if generation != self.shared.generation.load(Ordering::Acquire) {
                continue;
            }
            let Ok(call) = self.shared.calls.acquire().await else {
                break;
            };
            if self.shared.stop.is_cancelled() {
                break;
            }
            let component = self.versions.borrow().clone();
            let offset = message.offset();
            let finish = handle(&self.shared, message, &component).await;
            drop(call);
            let Some(finish) = finish else { break };
            unacked.push_back(Box::pin(async move { (generation, offset, finish.await) }));
        }
        // Whatever was handed to the producer is waited for and stored.
        while let Some(done) = unacked.next().await {
            if !self.store(done) {
                break;
            }
        }
    }

    /// The partition's next event, storing offsets as earlier events
    /// finish; `None` once the lane should end (stopping, revoked, or an
    /// earlier event abandoned).
    async fn next(&mut self, unacked: &mut FuturesOrdered<Unacked>) -> Option<(u64, OwnedMessage)> {
        loop {
            let room = unacked.len() < MAX_UNACKED;
            tokio::select! {
                biased;
                () = self.shared.stop.cancelled() => return None,
                () = self.revoked.cancelled() => return None,
                Some(done) = unacked.next(), if !unacked.is_empty() => {
                    if !self.store(done) {
                        return None;
                    }
                }
                Some(stray) = self.strays.recv(), if room => return Some(stray),
                m = recv(self.queue.as_ref()), if room => match m {
                    Ok(message) => {
                        return Some((self.shared.generation.load(Ordering::Acquire), message));
                    }
                    Err(e) => {
                        tracing::warn!(handler = %self.shared.name, partition = ?self.key, error = %e, "consumer error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }

    /// Waits while the handler is paused, storing what finishes meanwhile;
    /// says whether to carry on.
    async fn wait_unpaused(&mut self, unacked: &mut FuturesOrdered<Unacked>) -> bool {
        while *self.paused.borrow_and_update() {
            tokio::select! {
                () = self.shared.stop.cancelled() => return false,
                () = self.revoked.cancelled() => return false,
                Some(done) = unacked.next(), if !unacked.is_empty() => {
                    if !self.store(done) {
                        return false;
                    }
                }
                changed = self.paused.changed() => if changed.is_err() { return false },
            }
        }
        true
    }

    /// Records that the event at `offset` and all before it are done; says
    /// whether the lane may go on (not if the event was abandoned: nothing
    /// after it may be stored).
    fn store(&self, (generation, offset, done): (u64, i64, Done)) -> bool {
        if let Done::Abandoned = done {
            return false;
        }
        if generation != self.shared.generation.load(Ordering::Acquire)
            || self.revoked.is_cancelled()
        {
            // Rewound by a replay, or no longer this instance's partition.
            return true;
        }
        let (topic, partition) = (&self.key.0, self.key.1);
        if let Err(e) = self.consumer.store_offset(topic, partition, offset) {
            tracing::debug!(handler = %self.shared.name, error = %e, "cannot store offset (partition revoked?)");
        }
        self.shared.stored().insert(self.key.clone(), offset + 1);
        true
    }
}

/// The next message of a split-off partition queue; never, without one.
async fn recv(queue: Option<&PartitionQueue>) -> Result<OwnedMessage, rdkafka::error::KafkaError> {
    match queue {
        Some(queue) => queue.recv().await.map(|m| m.detach()),
        None => std::future::pending().await,
    }
}

/// Runs the handler on one event, retrying in place, and starts what must
/// follow: publishing what it produced, or dead-lettering the message.
/// `None` if the host is stopping before that started.
async fn handle(
    shared: &Arc<Shared>,
    message: OwnedMessage,
    component: &Component,
) -> Option<Finish> {
    let w = shared.as_ref();
    let event = match Event::decode(message.payload().unwrap_or_default()) {
        Ok(e) => e,
        Err(e) => {
            let reason = e.to_string();
            w.stats.failed(reason.clone());
            return Some(dead_letter(shared.clone(), message, reason, 0));
        }
    };
    if !component.subscription().wants(&event.event_type) || redriven_for_another(&message, &w.name)
    {
        w.stats.skipped();
        return Some(Box::pin(std::future::ready(Done::Finished)));
    }
    let wit_event = runtime::wit_event(event);
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
            Ok(outcome) => return publish(shared.clone(), outcome.outbox).await,
            Err(f) => f,
        };
        let attempt = delivery.attempt;
        tracing::warn!(
            handler = %w.name, event_id = %wit_event.id, attempt, error = %failure,
            "handler failed"
        );
        w.stats.failed(failure.to_string());
        if !failure.is_retryable() || attempt >= policy.max_attempts {
            return Some(dead_letter(
                shared.clone(),
                message,
                failure.to_string(),
                attempt,
            ));
        }
        let delay = backoff(policy.backoff, attempt);
        if retrying_since.elapsed() + delay > w.settings.max_retry_time {
            let reason = format!(
                "{failure}; gave up after {attempt} attempts: retrying longer than {:?} would hold up the partition",
                w.settings.max_retry_time
            );
            return Some(dead_letter(shared.clone(), message, reason, attempt));
        }
        if !pause(w, delay).await {
            return None;
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

/// Hands what a successful invocation produced to the producer, in order
/// (after making sure its topics exist), and returns a future that resolves
/// once the broker took every event, republishing any it refused until it
/// takes them or the host stops. `None` if the host stopped before the
/// events could be handed over.
async fn publish(shared: Arc<Shared>, outbox: Vec<Outgoing>) -> Option<Finish> {
    let w = shared.as_ref();
    if !topics_ready(w, &outbox).await {
        return None;
    }
    let pending: Vec<(Outgoing, Result<Pending, _>)> = outbox
        .into_iter()
        .map(|o| {
            let pending = w.publisher.enqueue(&o.topic, &o.event);
            (o, pending)
        })
        .collect();
    Some(Box::pin(async move {
        let w = shared.as_ref();
        let mut left = Vec::new();
        for (o, pending) in pending {
            let result = match pending {
                Ok(pending) => pending.acked().await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(handler = %w.name, error = %e, "publishing a handler's event failed; retrying");
                left.push(o);
            }
        }
        if let Done::Abandoned = republish(w, left).await {
            return Done::Abandoned;
        }
        w.stats.handled();
        Done::Finished
    }))
}

/// Makes sure the topics of `outbox` exist, retrying until they do; false
/// if the host stopped first.
async fn topics_ready(w: &Shared, outbox: &[Outgoing]) -> bool {
    if outbox.is_empty() {
        return true;
    }
    let topics: Vec<Topic> = outbox.iter().map(|o| o.topic.clone()).collect();
    let mut round = 1;
    while let Err(e) = w.topics.ensure(&topics).await {
        tracing::warn!(handler = %w.name, error = ?e, "cannot create the topics a handler publishes to; retrying");
        if !pause(w, backoff(w.settings.retry.backoff, round)).await {
            return false;
        }
        round += 1;
    }
    true
}

/// Publishes events the broker refused, until it takes every one or the
/// host stops.
async fn republish(w: &Shared, mut outbox: Vec<Outgoing>) -> Done {
    let mut round = 1;
    while !outbox.is_empty() {
        if !pause(w, backoff(w.settings.retry.backoff, round)).await {
            return Done::Abandoned;
        }
        round += 1;
        if !topics_ready(w, &outbox).await {
            return Done::Abandoned;
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
    }
    Done::Finished
}

/// Sets a message aside on its topic's dead-letter topic, unchanged, with
/// headers saying which handler gave up on it and why.
fn dead_letter(shared: Arc<Shared>, message: OwnedMessage, error: String, attempts: u32) -> Finish {
    Box::pin(async move {
        let w = shared.as_ref();
        let Ok(topic) = Topic::parse(message.topic()) else {
            return Done::Finished;
        };
        let dlq = topic.dead_letters();
        let mut round = 1;
        loop {
            let headers = dead_letter_headers(&message, &w.name, &error, attempts);
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
    })
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

/// Reports group membership changes and the lag into the handler's stats
/// and the log.
struct LoopContext {
    name: String,
    stats: Arc<Stats>,
    /// The consumer this context belongs to, set once it exists.
    consumer: OnceLock<Weak<LoopConsumer>>,
    assignments: mpsc::UnboundedSender<Assignment>,
    /// The partitions assigned to this instance: statistics also list
    /// partitions it knows of but does not consume.
    assigned: Mutex<BTreeSet<(String, i32)>>,
    /// Where a partition with no committed offset starts, for its lag.
    offset_reset: OffsetReset,
}

impl ClientContext for LoopContext {
    fn stats(&self, statistics: Statistics) {
        let assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
        let lag = lag(&statistics, &assigned, self.offset_reset);
        self.stats.set_lag(Some(lag));
    }
}

/// Events waiting on each assigned partition, keyed `topic/partition`: from
/// the partition's end to the offset stored for the next commit (the event
/// after the last one handled and acknowledged), or else to the last
/// committed one, or else (nothing handled since the group first consumed
/// the partition) to where the group started: the partition's start with
/// `earliest`. With `latest` such a partition is left out: where it started
/// is not in the statistics.
fn lag(
    statistics: &Statistics,
    assigned: &BTreeSet<(String, i32)>,
    offset_reset: OffsetReset,
) -> BTreeMap<String, u64> {
    let mut lag = BTreeMap::new();
    for (topic, t) in &statistics.topics {
        for (&partition, p) in &t.partitions {
            if !assigned.contains(&(topic.clone(), partition)) {
                continue;
            }
            let from_start = match offset_reset {
                OffsetReset::Earliest if p.lo_offset >= 0 => p.hi_offset - p.lo_offset,
                _ => -1,
            };
            let waiting = [p.consumer_lag_stored, p.consumer_lag, from_start]
                .into_iter()
                .find_map(|l| u64::try_from(l).ok());
            if let Some(waiting) = waiting {
                lag.insert(format!("{topic}/{partition}"), waiting);
            }
        }
    }
    lag
}

impl ConsumerContext for LoopContext {
    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                self.assigned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(
                        partitions
                            .elements()
                            .iter()
                            .map(|p| (p.topic().to_string(), p.partition())),
                    );
                // Split each partition's queue off now, right after the
                // assignment and before its first fetch, so none of its
                // events go through the consumer's own queue.
                let consumer = self.consumer.get().and_then(Weak::upgrade);
                let assigned = partitions
                    .elements()
                    .iter()
                    .map(|p| {
                        let queue = consumer
                            .as_ref()
                            .and_then(|c| c.split_partition_queue(p.topic(), p.partition()));
                        ((p.topic().to_string(), p.partition()), queue)
                    })
                    .collect();
                let _ = self.assignments.send(Assignment::Assigned(assigned));
                tracing::info!(handler = %self.name, partitions = partitions.count(), "partitions assigned");
                self.stats.set_assigned(true);
            }
            Rebalance::Revoke(partitions) => {
                let revoked: Vec<_> = partitions
                    .elements()
                    .iter()
                    .map(|p| (p.topic().to_string(), p.partition()))
                    .collect();
                {
                    let mut assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
                    for p in &revoked {
                        assigned.remove(p);
                    }
                }
                let _ = self.assignments.send(Assignment::Revoked(revoked));
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
    fn lag_counts_assigned_partitions_with_a_known_position() {
        use rdkafka::statistics::{Partition, Topic};
        let partition = |stored: i64, committed: i64| Partition {
            consumer_lag_stored: stored,
            consumer_lag: committed,
            lo_offset: -1,
            hi_offset: -1,
            ..Default::default()
        };
        let unstarted = |lo: i64, hi: i64| Partition {
            lo_offset: lo,
            hi_offset: hi,
            ..partition(-1, -1)
        };
        let statistics = Statistics {
            topics: HashMap::from([(
                "user-events".to_string(),
                Topic {
                    partitions: HashMap::from([
                        (0, partition(5, 9)),
                        // Nothing stored since the start: the commit counts.
                        (1, partition(-1, 2)),
                        // Neither known yet: left out.
                        (2, partition(-1, -1)),
                        // Not assigned to this instance.
                        (3, partition(7, 7)),
                        // Nothing handled or committed: from the start.
                        (4, unstarted(10, 16)),
                        (5, unstarted(0, 0)),
                        // librdkafka's internal "unassigned" partition.
                        (-1, partition(0, 0)),
                    ]),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        let assigned = [0, 1, 2, 4, 5]
            .into_iter()
            .map(|p| ("user-events".to_string(), p))
            .collect();
        let lag_of = |reset| {
            lag(&statistics, &assigned, reset)
                .into_iter()
                .map(|(k, v)| (k.trim_start_matches("user-events/").to_string(), v))
                .collect::<Vec<_>>()
        };
        let known = |v: &[(&str, u64)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            lag_of(OffsetReset::Earliest),
            known(&[("0", 5), ("1", 2), ("4", 6), ("5", 0)])
        );
        // With `latest` the start of an unstarted partition is unknown.
        assert_eq!(lag_of(OffsetReset::Latest), known(&[("0", 5), ("1", 2)]));
    }

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
