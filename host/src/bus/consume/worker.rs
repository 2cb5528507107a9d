//! The worker: the task that polls the consumer (which serves librdkafka's
//! callbacks), starts a lane for each assigned partition, runs replays, and
//! watches the lanes. When the loop stops it halts every lane, commits what
//! they finished and leaves the group; a lane that fails (panics) stops the
//! loop the same way, and its supervisor starts it again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot, watch};

use super::context::Assigned;
use super::lane::LaneTask;
use super::lanes::{Control, HandedOver, LaneHandle, Lanes};
use super::{LoopConsumer, PartitionKey, PartitionQueue, Replay, ReplayFrom, Rewound, Shared};
use crate::runtime::Component;

/// How often the worker checks that its lanes are alive.
const LANE_CHECK: Duration = Duration::from_millis(500);

/// Why a loop ended.
pub enum Ended {
    /// Asked to stop.
    Stopped,
    /// A lane failed; the loop gave its partitions up.
    Failed(String),
}

pub struct Worker {
    shared: Arc<Shared>,
    consumer: Arc<LoopConsumer>,
    versions: watch::Receiver<Component>,
    paused: watch::Receiver<bool>,
    replays: mpsc::Receiver<Replay>,
    assignments: mpsc::UnboundedReceiver<Assigned>,
    lanes: Arc<Lanes>,
    /// Why a lane panicked, by partition.
    panics: Arc<Mutex<Vec<(PartitionKey, String)>>>,
}

impl Worker {
    pub fn new(
        shared: Arc<Shared>,
        consumer: Arc<LoopConsumer>,
        versions: watch::Receiver<Component>,
        paused: watch::Receiver<bool>,
        replays: mpsc::Receiver<Replay>,
        assignments: mpsc::UnboundedReceiver<Assigned>,
        lanes: Arc<Lanes>,
    ) -> Self {
        Self {
            shared,
            consumer,
            versions,
            paused,
            replays,
            assignments,
            lanes,
            panics: Arc::default(),
        }
    }

    pub async fn run(mut self) -> Ended {
        let mut check = tokio::time::interval(LANE_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ended = loop {
            let received = tokio::select! {
                biased;
                () = self.shared.stop.cancelled() => break Ended::Stopped,
                _ = check.tick() => {
                    if let Some(failure) = self.failed_lane() {
                        break Ended::Failed(failure);
                    }
                    continue;
                }
                Some(assigned) = self.assignments.recv() => {
                    for (key, queue) in assigned {
                        self.start_lane(key, queue);
                    }
                    continue;
                }
                Some((from, reply)) = self.replays.recv() => {
                    let _ = reply.send(self.replay(from).await);
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
                    let mut message = Some(message);
                    self.lanes.with(&key, |lane| {
                        if let Some(m) = message.take() {
                            let _ = lane.stray.send(m);
                        }
                    });
                    if let Some(message) = message {
                        let stray = self.start_lane(key, None);
                        let _ = stray.send(message);
                    }
                }
                Err(e) => {
                    tracing::warn!(handler = %self.shared.name, error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        if let Ended::Failed(reason) = &ended {
            tracing::error!(handler = %self.shared.name, %reason, "a partition lane failed; the consume loop gives its partitions up and restarts");
            self.shared.state.set_failure(reason.clone());
            self.shared.stats.set_last_error(reason.clone());
        }
        self.close().await;
        ended
    }

    /// Why a lane ended by itself, if one did.
    fn failed_lane(&self) -> Option<String> {
        let failed = self.lanes.failed();
        if failed.is_empty() {
            return None;
        }
        let panics = self.panics.lock().unwrap_or_else(|p| p.into_inner());
        let reasons: Vec<String> = failed
            .iter()
            .map(|key| {
                let why = panics
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, why)| why.as_str())
                    .unwrap_or("ended unexpectedly");
                format!("lane of {}/{} panicked: {why}", key.0, key.1)
            })
            .collect();
        Some(reasons.join("; "))
    }

    /// Starts the lane of a partition (after the one before it, if any, has
    /// finished) and returns where to send it stray events.
    fn start_lane(
        &mut self,
        key: PartitionKey,
        queue: Option<PartitionQueue>,
    ) -> mpsc::UnboundedSender<rdkafka::message::OwnedMessage> {
        let (previous, offsets) = self.lanes.take_previous(&key);
        let (stray, strays) = mpsc::unbounded_channel();
        let (control_tx, control) = mpsc::unbounded_channel();
        let halt = self.shared.stop.child_token();
        let offsets = offsets.unwrap_or_default();
        let lane = LaneTask {
            shared: self.shared.clone(),
            consumer: self.consumer.clone(),
            versions: self.versions.clone(),
            paused: self.paused.clone(),
            metrics: self.shared.metrics.topic(&key.0),
            key: key.clone(),
            queue,
            strays,
            control,
            offsets: offsets.clone(),
            halt: halt.clone(),
        };
        let panics = self.panics.clone();
        let panicked_key = key.clone();
        let task = tokio::spawn(async move {
            if let Err(panic) = std::panic::AssertUnwindSafe(lane.run(previous))
                .catch_unwind()
                .await
            {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                panics
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((panicked_key, why));
            }
        });
        self.lanes.insert(
            key,
            LaneHandle {
                halt,
                offsets,
                stray: stray.clone(),
                control: control_tx,
                task,
            },
        );
        stray
    }

    /// Rewinds every assigned partition to `from` and commits the positions.
    async fn replay(&mut self, from: ReplayFrom) -> anyhow::Result<Vec<Rewound>> {
        let consumer = self.consumer.clone();
        let rewound = tokio::task::block_in_place(|| targets(&consumer, from))?;
        // Each lane seeks its own partition between two events, so nothing
        // it took before the rewind is stored after it.
        let mut waits = Vec::new();
        for r in &rewound {
            let key = (r.topic.clone(), r.partition);
            let (done, reply) = oneshot::channel();
            let sent = self.lanes.with(&key, |lane| {
                lane.control.send(Control::Rewind {
                    offset: r.offset,
                    done,
                })
            });
            match sent {
                Some(Ok(())) => waits.push((key, reply)),
                _ => anyhow::bail!(
                    "partition {}/{} is not being consumed right now (a rebalance?); try again",
                    r.topic,
                    r.partition
                ),
            }
        }
        for ((topic, partition), reply) in waits {
            reply.await.map_err(|_| {
                anyhow::anyhow!("partition {topic}/{partition} was revoked during the replay")
            })??;
        }
        let mut positions = TopicPartitionList::new();
        for r in &rewound {
            positions.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.offset))?;
        }
        if positions.count() > 0 {
            tokio::task::block_in_place(|| consumer.commit(&positions, CommitMode::Sync))?;
        }
        tracing::info!(handler = %self.shared.name, ?from, ?rewound, "replaying");
        Ok(rewound)
    }

    /// Halts every lane, lets each finish what it started, commits what was
    /// finished and leaves the group.
    async fn close(self) {
        let Worker {
            shared,
            consumer,
            lanes,
            assignments,
            replays,
            ..
        } = self;
        // Queues handed over but not started hold the consumer open.
        drop(assignments);
        drop(replays);
        let halted = lanes.halt_all();
        let mut offsets = TopicPartitionList::new();
        let mut unfinished = 0;
        for (key, lane) in halted {
            if let Err(e) = lane.task.await {
                tracing::error!(handler = %shared.name, error = %e, "a partition lane failed while stopping");
            }
            let handed_over =
                HandedOver::from(&mut *lane.offsets.lock().unwrap_or_else(|p| p.into_inner()));
            unfinished += handed_over.unfinished;
            if let Some(next) = handed_over.next
                && let Err(e) = offsets.add_partition_offset(&key.0, key.1, Offset::Offset(next))
            {
                tracing::warn!(handler = %shared.name, error = %e, "bad offset");
            }
        }
        shared.stats.handed_over_unfinished(unfinished);
        let name = shared.name.clone();
        // On a thread of its own, not the runtime's blocking pool: closing
        // talks to the broker and may take long when it is gone, and a
        // runtime that shuts down waits for its blocking tasks.
        let (closed_tx, closed) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("close-{name}"))
            .spawn(move || {
                if offsets.count() > 0 {
                    match consumer.commit(&offsets, CommitMode::Sync) {
                        Ok(()) => tracing::info!(handler = %name, partitions = offsets.count(), unfinished, "committed final offsets"),
                        Err(e) => tracing::warn!(handler = %name, error = %e, "final commit failed; the next owner may handle some events again"),
                    }
                }
                // The last reference: dropping it closes the consumer, which
                // leaves the group.
                drop(consumer);
                tracing::info!(handler = %name, "consumer group left");
                let _ = closed_tx.send(());
            });
        match spawned {
            Ok(_) => {
                let _ = closed.await;
            }
            Err(e) => {
                tracing::error!(handler = %shared.name, error = %e, "cannot start a thread to close the consumer")
            }
        }
        shared.state.set_left();
    }
}

/// Where each assigned partition goes for a replay from `from`.
fn targets(consumer: &LoopConsumer, from: ReplayFrom) -> anyhow::Result<Vec<Rewound>> {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let assigned = consumer.assignment()?;
    let by_time = match from {
        ReplayFrom::Timestamp(ms) => Some(consumer.offsets_for_timestamp(ms, TIMEOUT)?),
        _ => None,
    };
    let mut rewound = Vec::new();
    for p in assigned.elements() {
        let (topic, partition) = (p.topic(), p.partition());
        let (low, high) = consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
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
        rewound.push(Rewound {
            topic: topic.to_string(),
            partition,
            offset,
        });
    }
    Ok(rewound)
}
