//! Counters of one handler's consume loop: written by the loop, read by the
//! API. Plain atomics, so the hot path never takes a lock to count.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    handled: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    dead_lettered: AtomicU64,
    in_flight: AtomicU64,
    assigned: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Events waiting per assigned partition, as librdkafka last reported.
    lag: Mutex<Option<BTreeMap<String, u64>>>,
}

/// A consistent-enough copy of [`Stats`] for reporting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
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
    /// Events on this instance's partitions not yet handled, as of the
    /// consumer's last report (every `LAG_INTERVAL_MS`); none before the
    /// first report and while the handler has no consumer.
    pub lag: Option<u64>,
    /// The same per partition, keyed `topic/partition`.
    pub lag_by_partition: BTreeMap<String, u64>,
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
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    /// Counts a handler call as running until the guard is dropped.
    pub fn call(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    pub fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    /// The consumer has joined its group and received its partitions.
    pub fn set_assigned(&self, assigned: bool) {
        self.assigned.store(assigned, Ordering::Release);
    }

    pub fn is_assigned(&self) -> bool {
        self.assigned.load(Ordering::Acquire)
    }

    /// Replaces the lag with the consumer's latest report (none: unknown).
    pub fn set_lag(&self, lag: Option<BTreeMap<String, u64>>) {
        *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = lag;
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn snapshot(&self) -> Snapshot {
        let lag_by_partition = self.lag.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Snapshot {
            lag: lag_by_partition.as_ref().map(|l| l.values().sum()),
            lag_by_partition: lag_by_partition.unwrap_or_default(),
            handled: self.handled.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }
}

/// A running handler call; see [`Stats::call`].
pub struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
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
        let call = s.call();
        assert_eq!(s.snapshot().in_flight, 1);
        drop(call);
        assert_eq!(
            s.snapshot(),
            Snapshot {
                handled: 2,
                failed: 2,
                skipped: 1,
                dead_lettered: 1,
                in_flight: 0,
                lag: None,
                lag_by_partition: BTreeMap::new(),
            }
        );
        assert_eq!(s.last_error().as_deref(), Some("second"));
        assert!(!s.is_assigned());
        s.set_assigned(true);
        assert!(s.is_assigned());
    }

    #[test]
    fn lag_adds_up_the_partitions_and_can_be_unknown() {
        let s = Stats::default();
        s.set_lag(Some(BTreeMap::from([
            ("user-events/0".to_string(), 3),
            ("user-events/2".to_string(), 4),
        ])));
        let snap = s.snapshot();
        assert_eq!(snap.lag, Some(7));
        assert_eq!(snap.lag_by_partition.len(), 2);
        s.set_lag(None);
        assert_eq!(s.snapshot().lag, None);
        assert!(s.snapshot().lag_by_partition.is_empty());
    }
}
