//! Instance reuse: a handler that declares it keeps no state between events
//! (contract 0.2 `stateless`), or that the operator names, runs its events
//! on one instance per lane instead of a fresh one per event. Everything
//! else keeps a fresh instance per event.
//!
//! A kept instance is never trusted further than its last success: it is
//! dropped after any failure, trap or timeout, when its lane's version
//! changes, after [`ReusePolicy::max_events`] events and once its linear
//! memory grew past [`ReusePolicy::max_memory_percent`] of its limit. Its
//! lane also drops it after [`ReusePolicy::idle`] without an event. Every
//! call on it starts with an empty outbox, an empty log and its own
//! deadline, so it returns what a fresh instance would have.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;

use super::component::{Component, Invocation, Outcome};
use super::contract::{Instance, Prepared};
use super::state::HostState;
use super::{DeadlineExceeded, Failure, HOST_CALL_SLACK, KeepPermit, Limits, Slot, error_text};

/// Which handlers run on reused instances, and when one is replaced.
#[derive(Debug, Clone)]
pub struct ReusePolicy {
    /// Handlers reused although they do not declare `stateless`.
    pub reuse: BTreeSet<String>,
    /// Handlers given a fresh instance per event whatever they declare:
    /// this wins over `reuse` and over `stateless`.
    pub isolate: BTreeSet<String>,
    /// Events one instance handles before a new one replaces it.
    pub max_events: u32,
    /// How far (percent of the memory limit) an instance's linear memory
    /// may grow before it is replaced after its call.
    pub max_memory_percent: u8,
    /// How long a kept instance may go without an event before its lane
    /// drops it.
    pub idle: Duration,
}

impl Default for ReusePolicy {
    fn default() -> Self {
        Self {
            reuse: BTreeSet::new(),
            isolate: BTreeSet::new(),
            max_events: 10_000,
            max_memory_percent: 50,
            idle: Duration::from_secs(60),
        }
    }
}

impl ReusePolicy {
    /// How the handler `name` gets its instances.
    pub(super) fn instances(&self, name: &str, stateless: bool, limits: Limits) -> Instances {
        if self.isolate.contains(name) || !(stateless || self.reuse.contains(name)) {
            return Instances::Fresh;
        }
        let percent = usize::from(self.max_memory_percent.min(100));
        let share = limits.memory_bytes.saturating_mul(percent) / 100;
        Instances::Reused {
            max_events: self.max_events.max(1),
            max_memory_bytes: share,
            idle: self.idle,
        }
    }
}

/// How a handler version's calls get their instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instances {
    /// A new instance per call: nothing leaks from one event to the next.
    Fresh,
    /// One instance per lane, kept while its calls succeed, for at most
    /// `max_events` calls, while its memory stays within
    /// `max_memory_bytes` and until it has gone `idle` without an event.
    Reused {
        max_events: u32,
        max_memory_bytes: usize,
        idle: Duration,
    },
}

impl Instances {
    /// `fresh` or `reused`, as the API and the metrics show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Instances::Fresh => "fresh",
            Instances::Reused { .. } => "reused",
        }
    }
}

/// The instance a lane keeps between its events: none, or one of one
/// version. The lane owns it because a lane's calls never overlap.
///
/// A kept instance holds its pool slot: with the pooling allocator a live
/// instance takes a slot of wasmtime's pool whether the host counts it or
/// not, so giving the slot back while keeping the instance would let a call
/// fail to instantiate. So that kept instances cannot starve other
/// handlers, at most half the pool may be kept
/// ([`super::capacity::KEPT_INSTANCES`], never waited for): a lane that
/// finds no leave runs fresh, and the other half of the pool keeps turning
/// over call by call.
#[derive(Default)]
pub struct KeptInstance(Option<Kept>);

/// An instance kept by a lane, with its slot and its leave to be kept.
pub struct Kept {
    // Fields drop in order: the instance goes with its store, only then
    // are its slot and its leave free.
    live: Live,
    version: Arc<super::component::Inner>,
    _keep: KeepPermit,
}

/// An instance that has handled all its calls well, in the slot it takes.
pub(super) struct Live {
    store: Store<HostState>,
    instance: Instance,
    /// Calls it has handled.
    calls: u32,
    slot: Slot,
}

/// Where one call runs: the lane's kept instance, or a new one in `Slot`.
pub enum Seat {
    Kept(Kept),
    New(Slot),
}

impl KeptInstance {
    /// The kept instance, if it is of `component`'s version; one of another
    /// version is dropped (its event has finished: the lane moved on).
    pub fn take_for(&mut self, component: &Component) -> Option<Seat> {
        let kept = self.0.take()?;
        Arc::ptr_eq(&kept.version, &component.0).then_some(Seat::Kept(kept))
    }

    /// Drops the kept instance, if any.
    pub fn clear(&mut self) {
        self.0 = None;
    }

    pub fn is_kept(&self) -> bool {
        self.0.is_some()
    }
}

impl Component {
    /// Handles one message on `seat`, keeping the instance in `kept` after
    /// it if this handler's instances are reused and it may go on.
    /// Whatever the handler logged is logged as [`Component::handle`] does.
    pub async fn handle_in(
        &self,
        seat: Seat,
        prepared: &Prepared,
        kept: &mut KeptInstance,
    ) -> Result<Outcome, Failure> {
        let invocation = self.invoke_in(seat, prepared, kept).await;
        self.log(prepared.label(), invocation.log);
        invocation.result
    }

    /// Like [`Component::handle_in`], but returns what the handler logged.
    pub async fn invoke_in(
        &self,
        seat: Seat,
        prepared: &Prepared,
        kept: &mut KeptInstance,
    ) -> Invocation {
        let (invocation, live) = self.call(seat, prepared).await;
        if let Some((live, keep)) = live
            && let Some(keep) = keep.or_else(|| self.0.capacity.try_keep())
        {
            kept.0 = Some(Kept {
                live,
                version: self.0.clone(),
                _keep: keep,
            });
        }
        invocation
    }

    /// One call on `seat`; with it the instance if it may handle another
    /// event (and the leave to keep it it came with).
    pub(super) async fn call(
        &self,
        seat: Seat,
        prepared: &Prepared,
    ) -> (Invocation, Option<(Live, Option<KeepPermit>)>) {
        let timeout = self.0.limits.timeout;
        let (mut store, instance, calls, slot, keep) = match seat {
            Seat::Kept(Kept { live, _keep, .. }) => {
                let mut store = live.store;
                super::begin_call(&mut store, timeout);
                let instance = Some(live.instance);
                (store, instance, live.calls, live.slot, Some(_keep))
            }
            Seat::New(slot) => {
                let store = super::new_store(self.0.pre.engine(), self.0.limits);
                (store, None, 0, slot, None)
            }
        };
        let call = async {
            let instance = match instance {
                Some(instance) => instance,
                None => self.0.pre.instantiate(&mut store).await?,
            };
            let result = instance.handle(&mut store, prepared).await?;
            Ok::<_, wasmtime::Error>((instance, result))
        };
        let result = match tokio::time::timeout(timeout + HOST_CALL_SLACK, call).await {
            Ok(result) => result,
            Err(_) => Err(wasmtime::Error::new(DeadlineExceeded)),
        };
        let state = store.data_mut();
        let log = state.output.finish();
        let outbox = std::mem::take(&mut state.outbox);
        let (result, instance) = match result {
            Ok((instance, Ok(()))) => (Ok(Outcome { outbox }), Some(instance)),
            Ok((_, Err(failure))) => (Err(failure), None),
            Err(e) if e.downcast_ref::<DeadlineExceeded>().is_some() => {
                (Err(Failure::Timeout(timeout)), None)
            }
            Err(e) => (Err(Failure::Trap(error_text(&e))), None),
        };
        let calls = calls.saturating_add(1);
        let live = match (instance, self.0.instances) {
            (
                Some(instance),
                Instances::Reused {
                    max_events,
                    max_memory_bytes,
                    ..
                },
            ) if calls < max_events && store.data().limits.largest_memory() <= max_memory_bytes => {
                Some((
                    Live {
                        store,
                        instance,
                        calls,
                        slot,
                    },
                    keep,
                ))
            }
            // The instance goes with the store; only then is its room free.
            _ => {
                drop(store);
                drop(slot);
                None
            }
        };
        (Invocation { result, log }, live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn names(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    const LIMITS: Limits = Limits {
        timeout: Duration::from_secs(1),
        memory_bytes: 64 << 20,
    };

    #[test]
    fn stateless_or_named_handlers_are_reused_unless_isolated() {
        let policy = ReusePolicy {
            reuse: names(&["named", "both"]),
            isolate: names(&["both", "isolated"]),
            ..ReusePolicy::default()
        };
        let mode = |name, stateless| policy.instances(name, stateless, LIMITS).as_str();
        assert_eq!(mode("plain", false), "fresh");
        assert_eq!(mode("plain", true), "reused");
        assert_eq!(mode("named", false), "reused");
        assert_eq!(mode("both", false), "fresh", "isolation wins");
        assert_eq!(mode("isolated", true), "fresh", "over stateless too");
    }

    #[test]
    fn a_reused_instance_may_grow_to_its_share_of_the_memory_limit() {
        let policy = ReusePolicy {
            max_memory_percent: 25,
            max_events: 0,
            ..ReusePolicy::default()
        };
        assert_eq!(
            policy.instances("h", true, LIMITS),
            Instances::Reused {
                max_events: 1,
                max_memory_bytes: 16 << 20,
                idle: Duration::from_secs(60),
            }
        );
    }

    /// A call on a kept instance logs, publishes and returns what a call on
    /// a fresh one does (its deadline: `reuse::a_reused_instance_gets_a_deadline_per_call`
    /// in the integration tests, with a call that outlasts an epoch tick).
    #[tokio::test(flavor = "multi_thread")]
    async fn a_call_on_a_kept_instance_returns_what_a_fresh_one_would() {
        use super::super::state::Outgoing;
        use super::super::{Delivery, Input, Runtime};
        use crate::event::{Event, EventType};

        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../handlers/user-handler.wasm");
        let bytes = std::fs::read(&path).unwrap();
        let policy = ReusePolicy {
            reuse: names(&["user-handler"]),
            ..ReusePolicy::default()
        };
        let runtime = Runtime::new(LIMITS, None).unwrap().with_reuse(policy);
        let component = runtime.load("user-handler", bytes).await.unwrap();
        assert_eq!(component.instances().as_str(), "reused");
        let prepared = |name: &str| {
            let data = serde_json::value::RawValue::from_string(format!(r#"{{"name":"{name}"}}"#));
            let event = Event::new(
                EventType::parse("USER_REGISTERED").unwrap(),
                Some("u1".into()),
                data.unwrap(),
            );
            component
                .prepare(Input::Event(event), Delivery::default())
                .unwrap()
        };
        // What a test can compare: ids and timestamps differ by call.
        let seen = |invocation: Invocation| {
            let outbox = invocation.result.unwrap().outbox;
            let published: Vec<_> = outbox
                .iter()
                .map(|o| match o {
                    Outgoing::Event { topic, event, .. } => {
                        let mut data: serde_json::Value =
                            serde_json::from_str(event.data.get()).unwrap();
                        if let Some(data) = data.as_object_mut() {
                            data.remove("id");
                            data.remove("sentAt");
                        }
                        (topic.to_string(), event.event_type.clone(), data)
                    }
                    Outgoing::Message { topic, .. } => {
                        (topic.to_string(), String::new(), serde_json::Value::Null)
                    }
                })
                .collect();
            (published, invocation.log)
        };

        let mut kept = KeptInstance::default();
        for (n, name) in ["Ada", "Bo", "Cy"].into_iter().enumerate() {
            let fresh = component
                .invoke(component.slot().await, &prepared(name))
                .await;
            let seat = match kept.take_for(&component) {
                Some(seat) => seat,
                None if n == 0 => Seat::New(component.slot().await),
                None => panic!("call {n} found no kept instance"),
            };
            let reused = component.invoke_in(seat, &prepared(name), &mut kept).await;
            let (fresh, reused) = (seen(fresh), seen(reused));
            assert_eq!(reused, fresh, "call {n}");
            assert_eq!((reused.0.len(), reused.1.len()), (1, 1), "{reused:?}");
            assert!(reused.1[0].1.contains(name), "{reused:?}");
        }
        assert!(kept.is_kept());
    }
}
