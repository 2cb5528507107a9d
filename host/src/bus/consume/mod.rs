//! The trigger: one consume loop per handler, in a consumer group named after
//! the handler, dispatching each event to the handler's current component.
//!
//! Delivery is at-least-once. An offset is stored only once the event before
//! it was handled and everything the handler published was acknowledged by
//! the broker, or the event was set aside as a dead letter ([`offsets`]
//! decides what may be stored). librdkafka commits what is stored every
//! second, and the loop commits synchronously whenever it gives partitions
//! up: on a rebalance, when the host stops, when the handler is removed.
//!
//! Each assigned partition has a lane ([`lane`]): a task that reads the
//! partition's own librdkafka queue and handles its events one at a time, in
//! order. Lanes of one handler run concurrently, at most
//! `partition_concurrency` handler calls at once. A lane that falls behind
//! reads its queue more slowly: librdkafka stops fetching a partition whose
//! queue holds `prefetch` bytes, so memory stays bounded.
//!
//! When a partition is revoked, or the host stops, its lane halts: it takes
//! no new event, stops retrying at once (no dead letter, nothing stored),
//! lets the handler call in flight finish and waits for the broker to take
//! what was published; then what is finished is committed before the
//! partition is let go. So the next owner handles again only what was not
//! finished at that moment.

mod attempt;
mod client;
mod context;
mod dead_letter;
mod invoke;
mod lag;
mod lane;
mod lanes;
mod offsets;
mod outbox;
mod record;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use client::consumer_config;
use context::LoopContext;
#[cfg(test)]
pub use lane::test_hooks;
use worker::Worker;

use super::publisher::Publisher;
use super::{Bus, Topics};
use crate::calls::Calls;
use crate::config::OffsetReset;
use crate::metrics::HandlerMetrics;
use crate::runtime::{Component, RetryPolicy};
use crate::stats::{ConsumerState, Stats};

/// How every consume loop talks to Kafka and retries. (Not `Debug`: the
/// client configuration holds secrets.)
#[derive(Clone)]
pub struct ConsumerSettings {
    /// The base every consumer starts from: the bootstrap servers and the
    /// operator's librdkafka properties (see [`crate::kafka_config`]).
    pub client: rdkafka::ClientConfig,
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
    /// Longest a revoked partition waits for its lane to finish the event in
    /// flight and for the broker to take what it published, before the
    /// partition is let go: a handler call plus a publish.
    pub revoke_grace: Duration,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewound {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A consume loop that ended by itself: a lane failed. Its supervisor
/// restarts it.
#[derive(Debug)]
pub struct LoopFailed {
    pub handler: String,
    /// Which start of the loop failed (see [`HandlerLoop::id`]).
    pub id: u64,
    pub reason: String,
}

type Replay = (ReplayFrom, oneshot::Sender<anyhow::Result<Vec<Rewound>>>);
type LoopConsumer = rdkafka::consumer::StreamConsumer<LoopContext>;
type PartitionQueue = rdkafka::consumer::stream_consumer::StreamPartitionQueue<LoopContext>;
type PartitionKey = (String, i32);

/// What the lanes of one handler share.
struct Shared {
    name: Arc<str>,
    publisher: Publisher,
    topics: Arc<Topics>,
    settings: ConsumerSettings,
    stats: Arc<Stats>,
    metrics: HandlerMetrics,
    /// Where finished calls are recorded, for causal chains.
    history: Arc<Calls>,
    state: Arc<ConsumerState>,
    /// Cancelled when the loop stops: every lane halts.
    stop: CancellationToken,
    /// Handler calls that may run at once, across partitions.
    calls: Semaphore,
}

/// The running loop of one handler. Dropping it stops the loop too (it then
/// commits and leaves its group in the background); [`HandlerLoop::stop`]
/// waits for that.
pub struct HandlerLoop {
    id: u64,
    state: Arc<ConsumerState>,
    paused: watch::Sender<bool>,
    replays: mpsc::Sender<Replay>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl HandlerLoop {
    /// Joins the consumer group `name` on the topics the current component
    /// subscribes to, and starts consuming. `versions` carries the component
    /// to use for the next event. If a lane fails, the loop commits what was
    /// finished, leaves its group and says so on `failed`.
    pub fn start(
        name: &str,
        versions: watch::Receiver<Component>,
        bus: &Bus,
        stats: Arc<Stats>,
        paused: bool,
        failed: mpsc::UnboundedSender<LoopFailed>,
    ) -> anyhow::Result<Self> {
        static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let settings = bus.consumer_settings();
        let topics: Vec<String> = versions
            .borrow()
            .subscription()
            .topics
            .iter()
            .map(|t| t.to_string())
            .collect();
        let stop = CancellationToken::new();
        let state = Arc::new(ConsumerState::default());
        let shared = Arc::new(Shared {
            name: name.into(),
            publisher: bus.publisher().clone(),
            topics: bus.topics().clone(),
            settings: settings.clone(),
            stats,
            metrics: bus.metrics().handler(name),
            history: bus.calls().clone(),
            state: state.clone(),
            stop: stop.clone(),
            calls: Semaphore::new(settings.partition_concurrency.max(1)),
        });
        let (assignments_tx, assignments) = mpsc::unbounded_channel();
        let lanes = Arc::new(lanes::Lanes::default());
        let context = LoopContext::new(
            name,
            state.clone(),
            shared.stats.clone(),
            assignments_tx,
            lanes.clone(),
            settings,
        );
        let consumer: LoopConsumer =
            consumer_config(settings, name).create_with_context(context)?;
        let consumer = Arc::new(consumer);
        // Lets the rebalance callback split each assigned partition's queue
        // off at once, before anything is fetched for it.
        consumer.context().set_consumer(&consumer);
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topic_refs)?;
        tracing::info!(handler = name, topics = ?topics, "consumer group joining");

        let (pause_tx, pause_rx) = watch::channel(paused);
        let (replay_tx, replay_rx) = mpsc::channel(4);
        let worker = Worker::new(
            shared,
            consumer,
            versions,
            pause_rx,
            replay_rx,
            assignments,
            lanes,
        );
        let handler = name.to_string();
        let task = tokio::spawn(async move {
            if let worker::Ended::Failed(reason) = worker.run().await {
                let _ = failed.send(LoopFailed {
                    handler,
                    id,
                    reason,
                });
            }
        });
        Ok(Self {
            id,
            state,
            paused: pause_tx,
            replays: replay_tx,
            stop,
            task: Some(task),
        })
    }

    /// Tells this start of the loop from a later one of the same handler.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// This loop's group membership, partitions and lag.
    pub fn state(&self) -> &Arc<ConsumerState> {
        &self.state
    }

    /// Pauses or resumes consuming. A paused handler stays in its group
    /// (no rebalance) but takes no event until resumed; the event in flight
    /// when it was paused finishes.
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Rewinds the partitions this instance consumes (and commits the new
    /// positions). Each lane rewinds between two events; events from there
    /// on are handled again.
    /// The future owns what it needs: it can be awaited elsewhere.
    pub fn replay(
        &self,
        from: ReplayFrom,
    ) -> impl std::future::Future<Output = anyhow::Result<Vec<Rewound>>> + Send + 'static {
        let replays = self.replays.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            replays
                .send((from, tx))
                .await
                .map_err(|_| anyhow::anyhow!("the consume loop has stopped"))?;
            rx.await
                .map_err(|_| anyhow::anyhow!("the consume loop has stopped"))?
        }
    }

    /// Stops taking events, lets the ones in flight finish, commits and
    /// leaves the group.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "consume loop panicked");
        }
    }
}

impl Drop for HandlerLoop {
    fn drop(&mut self) {
        // Not left running in its group with nobody to stop it.
        self.stop.cancel();
    }
}
