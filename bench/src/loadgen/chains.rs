//! The registration → welcome chains: each welcome notification matched to
//! the registration it answers, its latency, and where its time went.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::lock;
use super::trend::{Trend, histogram, micros};

/// Matches welcome notifications to registrations by user id. A
/// notification may be read before the response that names its user has
/// been processed, so either side may come first.
pub(super) struct Chains {
    pub(super) state: Mutex<ChainState>,
}

pub(super) struct ChainState {
    pub(super) trend: Trend,
    pub(super) split: Split,
    /// Accepted registrations without their notification yet: user id → due.
    waiting: HashMap<String, Registered>,
    /// Notifications with no registration (yet): user id → arrival.
    early: HashMap<String, Notified>,
    pub(super) accepted: u64,
    pub(super) completed: u64,
    /// Registrations of earlier steps still without their notification:
    /// the server's backlog of this generator's chains.
    stale: HashSet<String>,
}

/// A registration the server accepted.
#[derive(Clone, Copy)]
pub(super) struct Registered {
    pub(super) due: Instant,
    /// The user's `createdAt`: the server's clock when it took the request.
    pub(super) created: Option<SystemTime>,
}

/// A welcome notification the reader got.
#[derive(Clone, Copy)]
pub(super) struct Notified {
    /// When the reader got it.
    pub(super) at: Instant,
    /// Its `data.sentAt`: the clock when the user handler ran.
    pub(super) sent: Option<SystemTime>,
    /// Its Kafka timestamp (CreateTime, milliseconds): when the server's
    /// producer took it. Where the chain ends: the welcome is published.
    pub(super) published: Option<SystemTime>,
}

/// Where a chain's time goes, from the timestamps the servers write
/// (milliseconds, same machine, same clock): due → `createdAt` (request in,
/// until the server has built the user), → `sentAt` (event stored,
/// consumed, handler running), → Kafka timestamp (the welcome handed to the
/// producer) and → read by this reader (stored, fetched: the broker's and
/// the reader's fetch pacing, which the chain latency leaves out).
pub(super) struct Split {
    /// `Instant` and wall clock read together, to put due and arrival
    /// instants on the servers' clock.
    anchor: (Instant, SystemTime),
    to_created: Histogram<u64>,
    to_handler: Histogram<u64>,
    to_published: Histogram<u64>,
    to_reader: Histogram<u64>,
}

impl Split {
    pub(super) fn new() -> Self {
        Self {
            anchor: (Instant::now(), SystemTime::now()),
            to_created: histogram(),
            to_handler: histogram(),
            to_published: histogram(),
            to_reader: histogram(),
        }
    }

    fn wall(&self, i: Instant) -> SystemTime {
        let (instant, system) = self.anchor;
        match i.checked_duration_since(instant) {
            Some(after) => system + after,
            None => system - instant.duration_since(i),
        }
    }

    pub(super) fn record(&mut self, r: Registered, n: Notified) {
        let (Some(created), Some(sent), Some(published)) = (r.created, n.sent, n.published) else {
            return;
        };
        let due = self.wall(r.due);
        let read = self.wall(n.at);
        self.to_created.saturating_record(between(due, created));
        self.to_handler.saturating_record(between(created, sent));
        self.to_published
            .saturating_record(between(sent, published));
        self.to_reader.saturating_record(between(published, read));
    }

    pub(super) fn summary(&self) -> Option<ChainSplit> {
        if self.to_created.is_empty() {
            return None;
        }
        let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Some(ChainSplit {
            to_created_p50_ms: q(&self.to_created, 0.5),
            to_handler_p50_ms: q(&self.to_handler, 0.5),
            to_published_p50_ms: q(&self.to_published, 0.5),
            to_reader_p50_ms: q(&self.to_reader, 0.5),
            to_created_p99_ms: q(&self.to_created, 0.99),
            to_handler_p99_ms: q(&self.to_handler, 0.99),
            to_published_p99_ms: q(&self.to_published, 0.99),
            to_reader_p99_ms: q(&self.to_reader, 0.99),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChainSplit {
    pub(super) to_created_p50_ms: f64,
    pub(super) to_handler_p50_ms: f64,
    pub(super) to_published_p50_ms: f64,
    pub(super) to_reader_p50_ms: f64,
    pub(super) to_created_p99_ms: f64,
    pub(super) to_handler_p99_ms: f64,
    pub(super) to_published_p99_ms: f64,
    pub(super) to_reader_p99_ms: f64,
}

impl Chains {
    pub(super) fn new() -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(ChainState {
                trend: Trend::new(now, Duration::from_secs(1)),
                split: Split::new(),
                waiting: HashMap::new(),
                early: HashMap::new(),
                accepted: 0,
                completed: 0,
                stale: HashSet::new(),
            }),
        }
    }

    /// Starts counting a new step; what is left of the previous one is dropped.
    pub(super) fn begin(&self, start: Instant, duration: Duration) {
        let mut s = lock(&self.state);
        s.trend = Trend::new(start, duration);
        s.split = Split::new();
        let left: Vec<String> = s.waiting.drain().map(|(user, _)| user).collect();
        s.stale.extend(left);
        s.early.clear();
        s.accepted = 0;
        s.completed = 0;
    }

    /// The server accepted the registration of `user`.
    pub(super) fn accepted(&self, user: String, r: Registered) {
        let mut s = lock(&self.state);
        s.accepted += 1;
        match s.early.remove(&user) {
            Some(n) => s.complete(r, n),
            None => {
                s.waiting.insert(user, r);
            }
        }
    }

    /// The welcome of `user` was read.
    pub(super) fn arrived(&self, user: String, n: Notified) {
        let mut s = lock(&self.state);
        match s.waiting.remove(&user) {
            Some(r) => s.complete(r, n),
            None if s.stale.remove(&user) => {}
            None => {
                // A duplicate (at-least-once) or one from an earlier step
                // lands here too; it never matches and is dropped at the
                // next step.
                s.early.insert(user, n);
            }
        }
    }

    pub(super) fn counts(&self) -> (u64, u64) {
        let s = lock(&self.state);
        (s.accepted, s.completed)
    }

    /// Chains of earlier steps not yet arrived.
    pub(super) fn stale(&self) -> usize {
        lock(&self.state).stale.len()
    }

    /// Gives up on the chains of earlier steps.
    pub(super) fn forget_stale(&self) {
        lock(&self.state).stale.clear();
    }
}

/// From `a` to `b` in µs. Server timestamps have milliseconds only, so a
/// span can come out negative by up to 1 ms: it counts as 0 (1 µs).
fn between(a: SystemTime, b: SystemTime) -> u64 {
    micros(b.duration_since(a).unwrap_or_default())
}

impl ChainState {
    /// A chain is complete: its latency runs from when the registration was
    /// due to when the welcome was published (its Kafka timestamp, so
    /// neither the broker's fetch pacing nor this reader's counts), or to
    /// when it was read if the message has no timestamp.
    fn complete(&mut self, r: Registered, n: Notified) {
        self.completed += 1;
        let latency = match n.published {
            Some(published) => Duration::from_micros(between(self.split.wall(r.due), published)),
            None => n.at.saturating_duration_since(r.due),
        };
        self.trend.record(r.due, latency);
        self.split.record(r, n);
    }
}
