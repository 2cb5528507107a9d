//! A partition's lane: the task that takes the partition's events in order,
//! runs the handler on each ([`invoke`](super::invoke)), and records in the
//! partition's [`OffsetTracker`] what is done, storing the offset as it
//! moves. [`Lanes`](super::lanes::Lanes) is the set of running lanes, shared
//! by the worker (which starts them) and the rebalance callback (which
//! halts them).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt as _, StreamExt};
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::lanes::{Control, lock};
use super::offsets::{OffsetTracker, Ticket};
use super::{LoopConsumer, PartitionKey, PartitionQueue, Shared, invoke};
use crate::metrics::TopicMetrics;
use crate::runtime::{Component, Instances, KeptInstance};

/// Events of one partition handled but whose publishes the broker has not
/// acknowledged yet. Beyond this the lane waits for acknowledgements.
const MAX_UNACKED: usize = 256;

/// Whether an event's work is done (it may be committed) or was abandoned
/// because the lane halted (the next owner handles it again).
#[derive(Debug)]
pub enum Done {
    Finished,
    Abandoned,
}

/// One partition's lane.
pub struct LaneTask {
    pub shared: Arc<Shared>,
    pub consumer: Arc<LoopConsumer>,
    pub versions: watch::Receiver<Component>,
    pub paused: watch::Receiver<bool>,
    /// The partition's topic's metrics, resolved once for every event.
    pub metrics: Arc<TopicMetrics>,
    pub key: PartitionKey,
    pub queue: Option<PartitionQueue>,
    pub strays: mpsc::UnboundedReceiver<OwnedMessage>,
    pub control: mpsc::UnboundedReceiver<Control>,
    pub offsets: Arc<Mutex<OffsetTracker>>,
    /// Cancelled when the partition is revoked or the loop stops: take no
    /// new event, retry nothing, finish what is in flight.
    pub halt: CancellationToken,
}

/// An event handled whose publishes (or dead letter) are on their way.
type Unacked = Pin<Box<dyn Future<Output = (Ticket, Done)> + Send>>;

impl LaneTask {
    pub async fn run(mut self, previous: Option<JoinHandle<()>>) {
        if let Some(previous) = previous {
            let _ = previous.await;
        }
        let mut unacked: FuturesOrdered<Unacked> = FuturesOrdered::new();
        // The lane's calls run one at a time, so one kept instance at most.
        let mut kept = KeptInstance::default();
        // Set after each call that left an instance kept: one that goes
        // without an event for its idle time is dropped, its slot freed.
        let idle = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(idle);
        loop {
            let paused = *self.paused.borrow_and_update();
            let room = !paused && unacked.len() < MAX_UNACKED;
            let received = match self.take_ready(&mut unacked, room, kept.is_kept()) {
                Ready::Stop => break,
                Ready::Event(received) => {
                    // Taken without awaiting anything: give the other tasks
                    // their turn now and then.
                    tokio::task::consume_budget().await;
                    received
                }
                Ready::Wait => tokio::select! {
                    biased;
                    () = self.halt.cancelled() => break,
                    Some(control) = self.control.recv() => {
                        self.control(control);
                        continue;
                    }
                    Some((ticket, done)) = unacked.next(), if !unacked.is_empty() => {
                        if !self.record(ticket, done) {
                            break;
                        }
                        continue;
                    }
                    changed = self.paused.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        continue;
                    }
                    // A new version: the old version's instance goes now, not
                    // at the next event.
                    Ok(()) = self.versions.changed(), if kept.is_kept() => {
                        kept.clear();
                        continue;
                    }
                    () = &mut idle, if kept.is_kept() => {
                        kept.clear();
                        continue;
                    }
                    Some(stray) = self.strays.recv(), if room => Ok(stray),
                    m = recv(self.queue.as_ref()), if room => m,
                },
            };
            let message = match received {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(handler = %self.shared.name, partition = ?self.key, error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let ticket = self.offsets().take(message.offset());
            #[cfg(test)]
            if test_hooks::take_panic(&self.shared.name) {
                panic!("injected by a test");
            }
            let component = self.versions.borrow_and_update().clone();
            let call = (&component, &mut kept);
            match invoke::handle(&self.shared, &self.halt, message, call, &self.metrics).await {
                Some(finish) => unacked.push_back(Box::pin(async move { (ticket, finish.await) })),
                None => {
                    // Halted before the event was done: it stays for the
                    // next owner, and nothing after it is committed.
                    self.offsets().abandon(ticket);
                    break;
                }
            }
            if kept.is_kept()
                && let Instances::Reused { idle: after, .. } = component.instances()
            {
                idle.as_mut().reset(tokio::time::Instant::now() + after);
            }
        }
        // What was handed to the producer is waited for and recorded.
        while let Some((ticket, done)) = unacked.next().await {
            if !self.record(ticket, done) {
                break;
            }
        }
    }

    fn offsets(&self) -> MutexGuard<'_, OffsetTracker> {
        lock(&self.offsets)
    }

    /// Records an event's end; says whether the lane may go on (not after an
    /// abandoned event).
    fn record(&self, ticket: Ticket, done: Done) -> bool {
        match done {
            Done::Finished => {
                let next = self.offsets().finish(ticket);
                if let Some(next) = next {
                    // librdkafka stores the offset after the one given.
                    let (topic, partition) = (&self.key.0, self.key.1);
                    if let Err(e) = self.consumer.store_offset(topic, partition, next - 1) {
                        tracing::debug!(handler = %self.shared.name, error = %e, "cannot store offset (partition revoked?)");
                    }
                }
                true
            }
            Done::Abandoned => {
                self.offsets().abandon(ticket);
                false
            }
        }
    }

    /// The next event if one is ready now and nothing else needs the lane
    /// (a halt, a control message, a pause or resume, a new version while an
    /// instance is kept): taken without the select's wake-ups. While events
    /// arrive faster than they are handled, arming and dropping those (one
    /// notification each for the halt, the pause and the version) for every
    /// event was about a tenth of the host's CPU in a drain. Events that
    /// finished meanwhile are recorded first, as the select would.
    fn take_ready(
        &mut self,
        unacked: &mut FuturesOrdered<Unacked>,
        room: bool,
        kept: bool,
    ) -> Ready {
        if !room
            || self.halt.is_cancelled()
            || !self.control.is_empty()
            || self.paused.has_changed().unwrap_or(true)
            || (kept && self.versions.has_changed().unwrap_or(true))
        {
            return Ready::Wait;
        }
        while !unacked.is_empty() {
            match unacked.next().now_or_never() {
                Some(Some((ticket, done))) => {
                    if !self.record(ticket, done) {
                        return Ready::Stop;
                    }
                }
                _ => break,
            }
        }
        if let Ok(stray) = self.strays.try_recv() {
            return Ready::Event(Ok(stray));
        }
        match recv(self.queue.as_ref()).now_or_never() {
            Some(received) => Ready::Event(received),
            None => Ready::Wait,
        }
    }

    fn control(&mut self, control: Control) {
        match control {
            Control::Rewind { offset, done } => {
                let _ = done.send(self.rewind(offset));
            }
        }
    }

    /// Seeks the partition to `offset` and stores that position; what is in
    /// flight from before no longer counts. Runs between two events, so no
    /// event from before the seek is taken after it.
    fn rewind(&mut self, offset: i64) -> anyhow::Result<()> {
        const TIMEOUT: Duration = Duration::from_secs(10);
        self.offsets().rewind(offset);
        let (topic, partition) = (self.key.0.clone(), self.key.1);
        let consumer = self.consumer.clone();
        tokio::task::block_in_place(|| {
            consumer.seek(&topic, partition, Offset::Offset(offset), TIMEOUT)?;
            // What librdkafka commits from now on: the rewound position
            // (it stores the offset after the one given). Not
            // `store_offsets`: in librdkafka 2.12 it keeps a reference that
            // makes closing the consumer hang.
            consumer.store_offset(&topic, partition, offset - 1)?;
            anyhow::Ok(())
        })?;
        if self.queue.is_some() {
            // Fetched through the consumer's own queue before the seek.
            while self.strays.try_recv().is_ok() {}
        }
        Ok(())
    }
}

/// What [`LaneTask::take_ready`] found.
enum Ready {
    /// An event (or the consumer's error) to take now.
    Event(Result<OwnedMessage, rdkafka::error::KafkaError>),
    /// Something else needs the lane, or nothing is ready: the select decides.
    Wait,
    /// An abandoned event was recorded: the lane stops.
    Stop,
}

/// The next message of a split-off partition queue; never, without one.
async fn recv(queue: Option<&PartitionQueue>) -> Result<OwnedMessage, rdkafka::error::KafkaError> {
    match queue {
        Some(queue) => queue.recv().await.map(|m| m.detach()),
        None => std::future::pending().await,
    }
}

/// Lets a unit test make a lane fail as a bug would.
#[cfg(test)]
pub mod test_hooks {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    static PANIC_ONCE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

    /// The next event a lane of `handler` takes makes it panic.
    pub fn panic_once(handler: &str) {
        PANIC_ONCE.lock().unwrap().insert(handler.to_string());
    }

    pub(super) fn take_panic(handler: &str) -> bool {
        PANIC_ONCE.lock().unwrap().remove(handler)
    }
}
