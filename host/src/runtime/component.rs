//! One handler version, ready to handle events: its `Pre`, its subscription
//! and its log budget. Each call runs in a fresh `Store` and instance, so no
//! state leaks from one event to the next, unless the handler's instances
//! are reused (`reuse.rs`).

use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::contract::{Contract, Delivery, Input, Pre, Prepared};
use super::output::Level;
use super::reuse::{Instances, Seat};
use super::state::Outgoing;
use super::subscription::Subscription;
use super::{Capacity, Failure, Limits, Slot};

/// One version of one handler, ready to handle events. Cheap to clone.
#[derive(Clone)]
pub struct Component(pub(super) Arc<Inner>);

pub(super) struct Inner {
    pub name: String,
    pub digest: Arc<str>,
    pub loaded_at: SystemTime,
    pub subscription: Subscription,
    pub instances: Instances,
    pub pre: Arc<Pre>,
    pub limits: Limits,
    pub capacity: Capacity,
    pub log_budget: LogBudget,
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.0.name)
            .field("digest", &self.0.digest)
            .finish_non_exhaustive()
    }
}

/// What an invocation that succeeded leaves behind.
#[derive(Debug, Default)]
pub struct Outcome {
    /// What to publish before the consumed message is committed.
    pub outbox: Vec<Outgoing>,
}

/// Everything one invocation did, for a caller that wants to see it (the
/// test harness) rather than have it logged.
#[derive(Debug)]
pub struct Invocation {
    pub result: Result<Outcome, Failure>,
    /// What it logged and printed, in order.
    pub log: Vec<(Level, String)>,
}

impl Component {
    /// A hash of the component's bytes, naming this version.
    pub fn digest(&self) -> &str {
        &self.0.digest
    }

    /// The digest, shared (for records that outlive the component).
    pub fn digest_shared(&self) -> Arc<str> {
        self.0.digest.clone()
    }

    pub fn loaded_at(&self) -> SystemTime {
        self.0.loaded_at
    }

    pub fn subscription(&self) -> &Subscription {
        &self.0.subscription
    }

    /// Whether its calls get a fresh instance each or reuse one per lane.
    pub fn instances(&self) -> Instances {
        self.0.instances
    }

    /// The contract version the component targets.
    pub fn contract(&self) -> Contract {
        self.0.pre.contract()
    }

    /// Room for one instance, if the host's pool has some now.
    pub fn try_slot(&self) -> Option<Slot> {
        self.0.capacity.try_slot()
    }

    /// Room for one instance, once the host's pool has some.
    pub async fn slot(&self) -> Slot {
        self.0.capacity.slot().await
    }

    /// Converts a message once into this component's contract types, for
    /// every attempt at it.
    pub fn prepare(&self, input: Input, delivery: Delivery) -> Result<Prepared, Failure> {
        Prepared::new(self.contract(), input, delivery)
    }

    /// Handles one message in a fresh instance, in the room `slot` holds.
    /// Whatever the handler logged or printed is logged with its name and
    /// the event's id.
    pub async fn handle(&self, slot: Slot, prepared: &Prepared) -> Result<Outcome, Failure> {
        let invocation = self.invoke(slot, prepared).await;
        self.log(prepared.label(), invocation.log);
        invocation.result
    }

    /// Like [`Component::handle`], but returns what the handler logged
    /// instead of logging it.
    pub async fn invoke(&self, slot: Slot, prepared: &Prepared) -> Invocation {
        // Never kept: the instance goes when the call ends.
        self.call(Seat::New(slot), prepared).await.0
    }

    /// Logs what one invocation logged and printed, at its levels, within
    /// the handler's rate limit.
    pub(super) fn log(&self, event_id: &str, mut lines: Vec<(Level, String)>) {
        // Lines the log filter would discard do not use up the budget.
        lines.retain(|(level, _)| match level {
            Level::Debug => tracing::enabled!(tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(tracing::Level::INFO),
            Level::Warn => tracing::enabled!(tracing::Level::WARN),
            Level::Error => tracing::enabled!(tracing::Level::ERROR),
        });
        if lines.is_empty() {
            return;
        }
        let handler = &self.0.name;
        let (allowed, dropped) = self.0.log_budget.take(lines.len());
        for (level, line) in &lines[..allowed] {
            match level {
                Level::Debug => tracing::debug!(%handler, %event_id, "{line}"),
                Level::Info => tracing::info!(%handler, %event_id, "{line}"),
                Level::Warn => tracing::warn!(%handler, %event_id, "{line}"),
                Level::Error => tracing::error!(%handler, %event_id, "{line}"),
            }
        }
        if dropped > 0 {
            tracing::warn!(
                %handler,
                dropped,
                "handler output over {LOG_LINES_PER_SECOND} lines/s dropped"
            );
        }
    }
}

/// Lines of handler output logged per second per handler version; the
/// rest are counted and dropped, so a chatty handler cannot flood the log.
const LOG_LINES_PER_SECOND: u32 = 100;

/// A token bucket of log lines: refills at [`LOG_LINES_PER_SECOND`], holds
/// one second's worth.
pub(super) struct LogBudget(std::sync::Mutex<(f64, Instant, u64)>);

impl Default for LogBudget {
    fn default() -> Self {
        Self(std::sync::Mutex::new((
            f64::from(LOG_LINES_PER_SECOND),
            Instant::now(),
            0,
        )))
    }
}

impl LogBudget {
    /// Takes up to `wanted` lines: returns how many may be logged, and how
    /// many were dropped since the last report (these included).
    fn take(&self, wanted: usize) -> (usize, u64) {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, refilled, dropped) = &mut *guard;
        let rate = f64::from(LOG_LINES_PER_SECOND);
        *tokens = (*tokens + refilled.elapsed().as_secs_f64() * rate).min(rate);
        *refilled = Instant::now();
        let allowed = (tokens.floor() as usize).min(wanted);
        *tokens -= allowed as f64;
        *dropped += (wanted - allowed) as u64;
        if allowed > 0 && *dropped > 0 {
            return (allowed, std::mem::take(dropped));
        }
        (allowed, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_output_is_rate_limited() {
        let budget = LogBudget::default();
        let burst = LOG_LINES_PER_SECOND as usize;
        assert_eq!(budget.take(burst - 10), (burst - 10, 0));
        // 10 left: 10 logged, 40 dropped and reported with them.
        assert_eq!(budget.take(50), (10, 40));
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (allowed, dropped) = budget.take(5);
        assert!(allowed == 5 && dropped == 0, "{allowed} {dropped}");
    }
}
