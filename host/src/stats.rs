//! What the API reports of a handler at run time: its counters, written by
//! its consume loops and kept across versions, and the state of its current
//! consume loop (group membership, partitions, lag). Plain atomics, so the
//! hot path never takes a lock to count.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A handler's counters.
#[derive(Debug, Default)]
pub struct Stats {
    handled: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    dead_lettered: AtomicU64,
    in_flight: AtomicU64,
    waiting_for_capacity: AtomicU64,
    handed_over_unfinished: AtomicU64,
    instances_created: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A consistent-enough copy of [`Stats`] for reporting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counts {
    /// Events the handler handled successfully.
    pub handled: u64,
    /// Invocations that failed (a retried event counts once per attempt).
    pub failed: u64,
    /// Events of types the handler did not ask for.
    pub skipped: u64,
    /// Events set aside on the dead-letter topic.
    pub dead_lettered: u64,
    /// Handler calls running now.
    pub in_flight: u64,
    /// Events waiting for room in the host's instance pool (every handler's
    /// calls share it) before their handler call can start.
    pub waiting_for_capacity: u64,
    /// Events taken but not finished (or finished out of order) when their
    /// partition was handed over — revoked, or the host stopped: the next
    /// owner handles them again, so this bounds the events handled twice.
    pub handed_over_unfinished: u64,
    /// Instances made for its calls: one per call with fresh instances,
    /// far fewer than `handled` with reused ones.
    pub instances_created: u64,
}

impl Stats {
    pub fn handled(&self) {
        self.handled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failed(&self, error: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.set_last_error(error);
    }

    pub fn set_last_error(&self, error: String) {
        *lock(&self.last_error) = Some(error);
    }

    /// Counts a handler call as running until the guard is dropped.
    pub fn call(&self) -> Guard<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Guard(&self.in_flight)
    }

    /// Counts an event as waiting for an instance slot until the guard is
    /// dropped.
    pub fn waiting_for_capacity(&self) -> Guard<'_> {
        self.waiting_for_capacity.fetch_add(1, Ordering::Relaxed);
        Guard(&self.waiting_for_capacity)
    }

    /// Counts events left to a partition's next owner at a hand-over.
    pub fn handed_over_unfinished(&self, events: usize) {
        self.handed_over_unfinished
            .fetch_add(events as u64, Ordering::Relaxed);
    }

    /// Counts an instance made for a call.
    pub fn instance_created(&self) {
        self.instances_created.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    pub fn counts(&self) -> Counts {
        Counts {
            handled: self.handled.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            waiting_for_capacity: self.waiting_for_capacity.load(Ordering::Relaxed),
            handed_over_unfinished: self.handed_over_unfinished.load(Ordering::Relaxed),
            instances_created: self.instances_created.load(Ordering::Relaxed),
        }
    }
}

/// Something running or waiting, counted until dropped.
pub struct Guard<'a>(&'a AtomicU64);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The state of one consume loop: one per start of a handler's loop.
#[derive(Debug, Default)]
pub struct ConsumerState {
    /// The consumer received an assignment from its group (possibly of no
    /// partition: more instances than partitions).
    joined: AtomicBool,
    /// Partitions it holds now.
    partitions: AtomicUsize,
    /// The loop ended: it left its group.
    left: AtomicBool,
    /// Why the loop failed, if it did.
    failure: Mutex<Option<String>>,
    /// Events waiting per assigned partition, as librdkafka last reported.
    lag: Mutex<Option<BTreeMap<String, u64>>>,
}

impl ConsumerState {
    /// An assignment arrived; the loop now holds `partitions`.
    pub fn set_partitions(&self, partitions: usize) {
        self.partitions.store(partitions, Ordering::Release);
        self.joined.store(true, Ordering::Release);
    }

    /// Partitions were revoked; the loop holds `partitions` until the next
    /// assignment.
    pub fn set_held(&self, partitions: usize) {
        self.partitions.store(partitions, Ordering::Release);
    }

    pub fn is_joined(&self) -> bool {
        self.joined.load(Ordering::Acquire) && !self.has_left()
    }

    pub fn partitions(&self) -> usize {
        if self.has_left() {
            return 0;
        }
        self.partitions.load(Ordering::Acquire)
    }

    /// The loop left its group (stopped, or failed).
    pub fn set_left(&self) {
        self.left.store(true, Ordering::Release);
        *lock(&self.lag) = None;
    }

    pub fn has_left(&self) -> bool {
        self.left.load(Ordering::Acquire)
    }

    pub fn set_failure(&self, why: String) {
        *lock(&self.failure) = Some(why);
    }

    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// Replaces the lag with the consumer's latest report.
    pub fn set_lag(&self, lag: BTreeMap<String, u64>) {
        if !self.has_left() {
            *lock(&self.lag) = Some(lag);
        }
    }

    /// Events waiting on each partition held, keyed `topic/partition`; none
    /// before the first report and once the loop left.
    pub fn lag(&self) -> Option<BTreeMap<String, u64>> {
        lock(&self.lag).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_keep_the_last_error() {
        let s = Stats::default();
        s.handled();
        s.handled();
        s.skipped();
        s.failed("first".into());
        s.failed("second".into());
        s.dead_lettered();
        s.handed_over_unfinished(3);
        s.instance_created();
        let call = s.call();
        let waiting = s.waiting_for_capacity();
        assert_eq!(s.counts().in_flight, 1);
        assert_eq!(s.counts().waiting_for_capacity, 1);
        drop((call, waiting));
        assert_eq!(
            s.counts(),
            Counts {
                handled: 2,
                failed: 2,
                skipped: 1,
                dead_lettered: 1,
                in_flight: 0,
                waiting_for_capacity: 0,
                handed_over_unfinished: 3,
                instances_created: 1,
            }
        );
        assert_eq!(s.last_error().as_deref(), Some("second"));
    }

    #[test]
    fn a_loop_that_left_holds_nothing_and_reports_no_lag() {
        let c = ConsumerState::default();
        assert!(!c.is_joined());
        c.set_partitions(0);
        assert!(c.is_joined(), "joined with no partition");
        c.set_partitions(3);
        c.set_lag(BTreeMap::from([("t/0".to_string(), 4)]));
        assert_eq!(c.partitions(), 3);
        c.set_held(1);
        assert_eq!(c.partitions(), 1);
        c.set_left();
        assert!(!c.is_joined());
        assert_eq!(c.partitions(), 0);
        assert_eq!(c.lag(), None);
        c.set_lag(BTreeMap::new());
        assert_eq!(c.lag(), None, "a late report does not revive it");
    }
}
