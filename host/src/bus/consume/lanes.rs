//! The lanes of one consume loop as the worker and the rebalance callback
//! see them: a handle per running lane, the lanes halted on revocation that
//! a new lane of the same partition must wait for, and what a halted lane
//! hands over to the partition's next owner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::message::OwnedMessage;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::PartitionKey;
use super::offsets::OffsetTracker;

/// What a lane leaves its partition's next owner.
#[derive(Debug, Clone, Copy)]
pub struct HandedOver {
    /// Where the next owner starts, if this owner finished anything.
    pub next: Option<i64>,
    /// Events taken and not finished here: the next owner handles them
    /// again (this owner may have handled some already).
    pub unfinished: usize,
}

impl From<&mut OffsetTracker> for HandedOver {
    /// Freezes the tracker: nothing finishes here any more.
    fn from(offsets: &mut OffsetTracker) -> Self {
        let unfinished = offsets.freeze();
        Self {
            next: offsets.committable(),
            unfinished,
        }
    }
}

/// What the worker asks a lane to do between two events.
pub enum Control {
    /// Rewind the partition to `offset` and store that position: what the
    /// lane holds from before no longer counts.
    Rewind {
        offset: i64,
        done: oneshot::Sender<anyhow::Result<()>>,
    },
}

/// A running lane, as the worker and the rebalance callback see it.
pub struct LaneHandle {
    pub halt: CancellationToken,
    pub offsets: Arc<Mutex<OffsetTracker>>,
    /// Events of the partition that came through the consumer's own queue.
    pub stray: mpsc::UnboundedSender<OwnedMessage>,
    pub control: mpsc::UnboundedSender<Control>,
    pub task: JoinHandle<()>,
}

/// The lanes of one consume loop.
#[derive(Default)]
pub struct Lanes {
    running: Mutex<HashMap<PartitionKey, LaneHandle>>,
    /// Lanes halted on revocation that had not ended within the grace
    /// period: a new lane of the same partition waits for them.
    draining: Mutex<HashMap<PartitionKey, JoinHandle<()>>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Lanes {
    pub fn insert(&self, key: PartitionKey, lane: LaneHandle) {
        lock(&self.running).insert(key, lane);
    }

    /// What a new lane of `key` takes over from a lane of the same partition
    /// still running here (its events came another way): that lane, halted,
    /// to wait for (so one partition's events never run out of order), and
    /// its offsets, so nothing it took and did not finish is committed past.
    pub fn take_previous(
        &self,
        key: &PartitionKey,
    ) -> (Option<JoinHandle<()>>, Option<Arc<Mutex<OffsetTracker>>>) {
        match lock(&self.running).remove(key) {
            Some(old) => {
                old.halt.cancel();
                (Some(old.task), Some(old.offsets))
            }
            None => (lock(&self.draining).remove(key), None),
        }
    }

    /// Runs `f` on the lane of `key`, if one is running.
    pub fn with<R>(&self, key: &PartitionKey, f: impl FnOnce(&LaneHandle) -> R) -> Option<R> {
        lock(&self.running)
            .get(key)
            .filter(|l| !l.halt.is_cancelled())
            .map(f)
    }

    /// Lanes that ended without being halted: they panicked.
    pub fn failed(&self) -> Vec<PartitionKey> {
        lock(&self.running)
            .iter()
            .filter(|(_, l)| l.task.is_finished() && !l.halt.is_cancelled())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Takes every lane out, halted: for the loop's own shut-down.
    pub fn halt_all(&self) -> Vec<(PartitionKey, LaneHandle)> {
        let lanes: Vec<_> = lock(&self.running).drain().collect();
        for (_, lane) in &lanes {
            lane.halt.cancel();
        }
        lanes
    }

    /// Halts the lanes of `keys`, waits up to `grace` for each to finish
    /// what it started, and returns, for each, the offset to commit and how
    /// many events it took and leaves unfinished. Called
    /// from the rebalance callback, which librdkafka runs synchronously
    /// inside a poll: the wait blocks that thread (moved off the runtime's
    /// workers first, so the lanes keep running).
    pub fn revoke(
        &self,
        keys: &[PartitionKey],
        grace: Duration,
    ) -> Vec<(PartitionKey, HandedOver)> {
        let lanes: Vec<(PartitionKey, LaneHandle)> = {
            let mut running = lock(&self.running);
            keys.iter()
                .filter_map(|k| running.remove(k).map(|l| (k.clone(), l)))
                .collect()
        };
        if lanes.is_empty() {
            return Vec::new();
        }
        for (_, lane) in &lanes {
            lane.halt.cancel();
        }
        let all_ended = wait_until(grace, || lanes.iter().all(|(_, l)| l.task.is_finished()));
        if !all_ended {
            tracing::warn!(
                ?grace,
                "a revoked partition's lane is still busy; what it finishes now is handled again by the next owner"
            );
        }
        lanes
            .into_iter()
            .map(|(key, lane)| {
                let handed_over = HandedOver::from(&mut *lock(&lane.offsets));
                if !lane.task.is_finished() {
                    lock(&self.draining).insert(key.clone(), lane.task);
                }
                (key, handed_over)
            })
            .collect()
    }
}

/// Waits up to `grace` for `done` from synchronous code (a librdkafka
/// callback), checking every few milliseconds; says whether it came. On a
/// runtime worker the thread is first handed over with `block_in_place`, so
/// the lanes keep running. It needs nothing of the runtime (no timer, no
/// `block_on`): a runtime shutting down cannot make it hang. Where the lanes
/// could not run meanwhile (a current-thread runtime) it does not wait.
fn wait_until(grace: Duration, done: impl Fn() -> bool) -> bool {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let poll = || {
        let deadline = std::time::Instant::now() + grace;
        while !done() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    };
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(poll)
        }
        Ok(_) => done(),
        Err(_) => poll(),
    }
}
