//! The consumer's callbacks: librdkafka calls them from inside the loop's
//! poll. On an assignment they split each partition's queue off (before
//! librdkafka starts fetching it) and hand it to the worker; on a revocation they halt the partitions' lanes, wait for
//! what is in flight, and commit what finished before librdkafka lets the
//! partitions go. They also report the lag and failed commits.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use tokio::sync::mpsc;

use super::lanes::Lanes;
use super::{ConsumerSettings, LoopConsumer, PartitionKey, PartitionQueue, lag};
use crate::stats::{ConsumerState, Stats};

/// Newly assigned partitions, each with its queue split off (or `None` if
/// librdkafka would not split it: its events then come through the
/// consumer's own queue).
pub type Assigned = Vec<(PartitionKey, Option<PartitionQueue>)>;

pub struct LoopContext {
    name: String,
    state: Arc<ConsumerState>,
    stats: Arc<Stats>,
    settings: ConsumerSettings,
    /// The consumer this context belongs to, set once it exists.
    consumer: OnceLock<Weak<LoopConsumer>>,
    assignments: mpsc::UnboundedSender<Assigned>,
    lanes: Arc<Lanes>,
    /// The partitions assigned to this instance: statistics also list
    /// partitions it knows of but does not consume.
    assigned: Mutex<BTreeSet<PartitionKey>>,
}

impl LoopContext {
    pub fn new(
        name: &str,
        state: Arc<ConsumerState>,
        stats: Arc<Stats>,
        assignments: mpsc::UnboundedSender<Assigned>,
        lanes: Arc<Lanes>,
        settings: &ConsumerSettings,
    ) -> Self {
        Self {
            name: name.to_string(),
            state,
            stats,
            settings: settings.clone(),
            consumer: OnceLock::new(),
            assignments,
            lanes,
            assigned: Mutex::default(),
        }
    }

    pub fn set_consumer(&self, consumer: &Arc<LoopConsumer>) {
        let _ = self.consumer.set(Arc::downgrade(consumer));
    }

    fn assigned(&self) -> std::sync::MutexGuard<'_, BTreeSet<PartitionKey>> {
        self.assigned.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Halts the lanes of `partitions`, waits (up to the grace period) for
    /// them to finish what is in flight, and commits what they finished.
    fn hand_over(&self, consumer: &BaseConsumer<Self>, partitions: &[PartitionKey]) {
        let finished = self.lanes.revoke(partitions, self.settings.revoke_grace);
        let unfinished: usize = finished.iter().map(|(_, h)| h.unfinished).sum();
        self.stats.handed_over_unfinished(unfinished);
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), handed_over) in &finished {
            if let Some(next) = handed_over.next
                && let Err(e) =
                    offsets.add_partition_offset(topic, *partition, Offset::Offset(next))
            {
                tracing::warn!(handler = %self.name, error = %e, "bad offset");
            }
        }
        if offsets.count() == 0 {
            return;
        }
        match consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => tracing::info!(
                handler = %self.name, partitions = offsets.count(), unfinished,
                "committed what was finished before handing the partitions over"
            ),
            Err(e) => tracing::warn!(
                handler = %self.name, error = %e,
                "cannot commit on revocation; the next owner may handle some events again"
            ),
        }
    }
}

impl ClientContext for LoopContext {
    fn stats(&self, statistics: Statistics) {
        let lag = lag::lag(&statistics, &self.assigned(), self.settings.offset_reset);
        self.state.set_lag(lag);
    }
}

fn keys(partitions: &TopicPartitionList) -> Vec<PartitionKey> {
    partitions
        .elements()
        .iter()
        .map(|p| (p.topic().to_string(), p.partition()))
        .collect()
}

/// The partitions as a log field, `topic/partition` joined by commas: an
/// operator (or a test) can tell from the log who held which partition when.
fn named(partitions: &TopicPartitionList) -> String {
    partitions
        .elements()
        .iter()
        .map(|p| format!("{}/{}", p.topic(), p.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

impl ConsumerContext for LoopContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            // Split each partition's queue off before librdkafka assigns
            // (and starts fetching) it, so none of its events can go through
            // the consumer's own queue.
            let keys = keys(partitions);
            let consumer = self.consumer.get().and_then(Weak::upgrade);
            let assigned: Assigned = keys
                .iter()
                .map(|(topic, partition)| {
                    let queue = consumer
                        .as_ref()
                        .and_then(|c| c.split_partition_queue(topic, *partition));
                    ((topic.clone(), *partition), queue)
                })
                .collect();
            drop(consumer);
            let _ = self.assignments.send(assigned);
        }
        if let Rebalance::Revoke(partitions) = rebalance {
            let revoked = keys(partitions);
            {
                let mut assigned = self.assigned();
                for p in &revoked {
                    assigned.remove(p);
                }
                self.state.set_held(assigned.len());
            }
            self.hand_over(consumer, &revoked);
            tracing::info!(
                handler = %self.name, count = revoked.len(), partitions = %named(partitions),
                "partitions revoked"
            );
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let keys = keys(partitions);
                let held = {
                    let mut all = self.assigned();
                    all.extend(keys);
                    all.len()
                };
                self.state.set_partitions(held);
                tracing::info!(
                    handler = %self.name, count = partitions.count(), partitions = %named(partitions),
                    held, "partitions assigned"
                );
            }
            Rebalance::Revoke(_) => {}
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
