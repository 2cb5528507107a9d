//! A bounded record of recent handler calls, for the causal chain of an
//! event: which handlers it reached, what each published, and what those
//! events caused in turn. Only what this host did is known here; the oldest
//! records give way to new ones (`CALL_HISTORY`), so memory stays fixed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How a call ended for its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled, and what it published acknowledged.
    Handled,
    /// Set aside on the dead-letter topic.
    DeadLettered,
    /// Left to the partition's next owner (revoked or stopping).
    Abandoned,
}

/// An event a call published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// `None` for a raw message (it has no envelope).
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub topic: String,
}

/// One handler call on one event: every attempt, to its end.
#[derive(Debug, Clone)]
pub struct Call {
    pub handler: Arc<str>,
    pub version: Arc<str>,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The consumed event's id (from its envelope, else its `eventId`
    /// header).
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// The W3C trace id, as a number (shown as 32 hex digits).
    pub trace_id: Option<u128>,
    pub attempts: u32,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub started_at: SystemTime,
    /// From the first attempt's start to the end (publishes acknowledged or
    /// dead letter stored).
    pub duration: Duration,
    pub published: Vec<Published>,
}

/// What an event caused: each call on it, and for each event that call
/// published, what that caused.
#[derive(Debug, Clone)]
pub struct Chain {
    pub event_id: String,
    pub calls: Vec<ChainCall>,
}

#[derive(Debug, Clone)]
pub struct ChainCall {
    pub call: Arc<Call>,
    /// Each published event, with the calls it caused (empty for raw ones).
    pub published: Vec<(Published, Vec<ChainCall>)>,
}

/// How deep a chain is followed: a handler that republishes what it
/// consumes would otherwise make it endless.
const MAX_DEPTH: usize = 32;

/// The record of recent calls.
pub struct Calls {
    capacity: usize,
    inner: Mutex<Inner>,
}

/// A recorded call, linked to the one recorded before it on the same event
/// and on the same trace: the indexes hold only the latest of each, so
/// recording allocates nothing but the call itself.
struct Entry {
    call: Arc<Call>,
    /// Its keys in the indexes, kept so that evicting it hashes nothing.
    event_key: Option<u64>,
    trace_key: Option<u64>,
    prev_on_event: Option<u64>,
    prev_in_trace: Option<u64>,
}

/// The indexes' keys are hashes already: hashing them again is waste.
type Index = HashMap<u64, u64, nohash_hasher::BuildNoHashHasher<u64>>;

#[derive(Default)]
struct Inner {
    /// Oldest first; the entry of sequence number `first + i` at `i`.
    entries: VecDeque<Entry>,
    first: u64,
    /// Event id's hash → the latest call on it. (Hashed, not kept: a call's
    /// own ids tell a collision apart.)
    by_event: Index,
    /// Trace id (folded) → the latest call in it.
    by_trace: Index,
}

fn hash(id: &str) -> u64 {
    use std::hash::BuildHasher as _;
    static STATE: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    STATE.get_or_init(Default::default).hash_one(id)
}

/// A trace id is random already: its halves folded make its key.
fn fold(trace_id: u128) -> u64 {
    (trace_id as u64) ^ ((trace_id >> 64) as u64)
}

/// A trace id written as 32 hex digits.
pub fn parse_trace_id(hex: &str) -> Option<u128> {
    (hex.len() == 32)
        .then(|| u128::from_str_radix(hex, 16).ok())
        .flatten()
        .filter(|t| *t != 0)
}

impl Inner {
    fn get(&self, seq: u64) -> Option<&Entry> {
        let index = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        self.entries.get(index)
    }

    /// Follows `latest` back through `prev`, oldest call first.
    fn walk(&self, latest: Option<u64>, prev: impl Fn(&Entry) -> Option<u64>) -> Vec<Arc<Call>> {
        let mut calls = Vec::new();
        let mut next = latest;
        while let Some(entry) = next.and_then(|seq| self.get(seq)) {
            calls.push(entry.call.clone());
            next = prev(entry);
        }
        calls.reverse();
        calls
    }

    fn calls_on(&self, event_id: &str) -> Vec<Arc<Call>> {
        let mut calls = self.walk(self.by_event.get(&hash(event_id)).copied(), |e| {
            e.prev_on_event
        });
        // Another id with the same hash shares the links.
        calls.retain(|c| c.event_id.as_deref() == Some(event_id));
        calls
    }

    fn calls_in(&self, trace_id: u128) -> Vec<Arc<Call>> {
        let mut calls = self.walk(self.by_trace.get(&fold(trace_id)).copied(), |e| {
            e.prev_in_trace
        });
        calls.retain(|c| c.trace_id == Some(trace_id));
        calls
    }

    fn chain(&self, event_id: &str, depth: usize, seen: &mut HashSet<String>) -> Vec<ChainCall> {
        if depth >= MAX_DEPTH || !seen.insert(event_id.to_string()) {
            return Vec::new();
        }
        self.calls_on(event_id)
            .into_iter()
            .map(|call| {
                let published = call
                    .published
                    .iter()
                    .map(|p| {
                        let caused = match &p.event_id {
                            Some(id) => self.chain(id, depth + 1, seen),
                            None => Vec::new(),
                        };
                        (p.clone(), caused)
                    })
                    .collect();
                ChainCall { call, published }
            })
            .collect()
    }

    /// Takes out the oldest entry, and the index entries that point at it.
    fn evict(&mut self) -> Option<Arc<Call>> {
        let old = self.entries.pop_front()?;
        let seq = self.first;
        self.first += 1;
        for (index, key) in [
            (&mut self.by_event, old.event_key),
            (&mut self.by_trace, old.trace_key),
        ] {
            if let Some(key) = key
                && index.get(&key) == Some(&seq)
            {
                index.remove(&key);
            }
        }
        Some(old.call)
    }
}

impl Calls {
    /// Keeps the last `capacity` calls (none with 0).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether calls are kept at all.
    pub fn is_on(&self) -> bool {
        self.capacity > 0
    }

    pub fn record(&self, call: Call) {
        if self.capacity == 0 {
            return;
        }
        let event_key = call.event_id.as_deref().map(hash);
        let trace_key = call.trace_id.map(fold);
        let call = Arc::new(call);
        let mut inner = self.lock();
        // Freed once the lock is let go.
        let evicted = (inner.entries.len() >= self.capacity)
            .then(|| inner.evict())
            .flatten();
        let seq = inner.first + inner.entries.len() as u64;
        let prev_on_event = event_key.and_then(|key| inner.by_event.insert(key, seq));
        let prev_in_trace = trace_key.and_then(|key| inner.by_trace.insert(key, seq));
        inner.entries.push_back(Entry {
            call,
            event_key,
            trace_key,
            prev_on_event,
            prev_in_trace,
        });
        drop(inner);
        drop(evicted);
    }

    /// The latest calls, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Arc<Call>> {
        let inner = self.lock();
        inner
            .entries
            .iter()
            .rev()
            .take(limit)
            .map(|e| e.call.clone())
            .collect()
    }

    /// What `event_id` caused here; `None` if no call on it is recorded.
    pub fn chain(&self, event_id: &str) -> Option<Chain> {
        let inner = self.lock();
        let calls = inner.chain(event_id, 0, &mut HashSet::new());
        (!calls.is_empty()).then(|| Chain {
            event_id: event_id.to_string(),
            calls,
        })
    }

    /// The chains of a trace: one per event of the trace that no recorded
    /// call of it published (the events that started it here).
    pub fn trace(&self, trace_id: u128) -> Vec<Chain> {
        let inner = self.lock();
        let calls = inner.calls_in(trace_id);
        let published: HashSet<&str> = calls
            .iter()
            .flat_map(|c| c.published.iter().filter_map(|p| p.event_id.as_deref()))
            .collect();
        let mut roots: Vec<&str> = Vec::new();
        for id in calls.iter().filter_map(|c| c.event_id.as_deref()) {
            if !published.contains(id) && !roots.contains(&id) {
                roots.push(id);
            }
        }
        let mut seen = HashSet::new();
        roots
            .into_iter()
            .map(|id| Chain {
                event_id: id.to_string(),
                calls: inner.chain(id, 0, &mut seen),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
