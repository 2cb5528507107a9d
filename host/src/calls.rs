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
    pub trace_id: Option<String>,
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

#[derive(Default)]
struct Inner {
    /// Oldest first, each with its sequence number.
    calls: VecDeque<(u64, Arc<Call>)>,
    next: u64,
    by_event: HashMap<String, Vec<u64>>,
    by_trace: HashMap<String, Vec<u64>>,
}

impl Inner {
    fn get(&self, seq: u64) -> Option<&Arc<Call>> {
        let first = self.calls.front()?.0;
        let index = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.calls.get(index).map(|(_, c)| c)
    }

    fn calls_on(&self, event_id: &str) -> Vec<Arc<Call>> {
        self.by_event
            .get(event_id)
            .into_iter()
            .flatten()
            .filter_map(|seq| self.get(*seq).cloned())
            .collect()
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
}

fn unindex(index: &mut HashMap<String, Vec<u64>>, key: &str, seq: u64) {
    if let Some(seqs) = index.get_mut(key) {
        seqs.retain(|s| *s != seq);
        if seqs.is_empty() {
            index.remove(key);
        }
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
        let mut inner = self.lock();
        while inner.calls.len() >= self.capacity {
            let Some((seq, old)) = inner.calls.pop_front() else {
                break;
            };
            if let Some(id) = &old.event_id {
                unindex(&mut inner.by_event, id, seq);
            }
            if let Some(trace) = &old.trace_id {
                unindex(&mut inner.by_trace, trace, seq);
            }
        }
        let seq = inner.next;
        inner.next += 1;
        if let Some(id) = &call.event_id {
            inner.by_event.entry(id.clone()).or_default().push(seq);
        }
        if let Some(trace) = &call.trace_id {
            inner.by_trace.entry(trace.clone()).or_default().push(seq);
        }
        inner.calls.push_back((seq, Arc::new(call)));
    }

    /// The latest calls, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Arc<Call>> {
        let inner = self.lock();
        inner
            .calls
            .iter()
            .rev()
            .take(limit)
            .map(|(_, c)| c.clone())
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
    pub fn trace(&self, trace_id: &str) -> Vec<Chain> {
        let inner = self.lock();
        let calls: Vec<Arc<Call>> = inner
            .by_trace
            .get(trace_id)
            .into_iter()
            .flatten()
            .filter_map(|seq| inner.get(*seq).cloned())
            .collect();
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
