//! Runs handler components with wasmtime.
//!
//! One [`Runtime`] per process holds the `Engine` and the `Linker`; each
//! handler version becomes one [`Component`]: compiled, linked and
//! type-checked once (a `HandlerPre`), then instantiated in a fresh `Store`
//! for every event, so no state leaks from one event to the next. Every call
//! runs under a wall-clock deadline (epoch interruption) and a memory cap.
//!
//! Nothing here knows about Kafka or HTTP.

mod bindings;
mod state;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};

pub use bindings::{Delivery, Event as WitEvent};
use bindings::{HandlerError, HandlerPre};
use state::HostState;
pub use state::{Level, Outgoing};

use crate::event::{Event, Topic};

/// How often the epoch ticks: the granularity of deadlines, and how often a
/// long-running handler yields to other tasks.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Bytes of each pooled memory and table kept resident between instances.
const KEEP_RESIDENT: usize = 1 << 20;
/// Instances that may run at once with the pooling allocator.
const POOL_INSTANCES: u32 = 128;
/// What one component may hold, so that the pool fits `POOL_INSTANCES` of
/// any component that loads: a component needing more is refused at load
/// time, not when an event comes.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;
/// Beyond the handler's own deadline (which epoch interruption enforces
/// while its code runs), how long a call may wait in the host, e.g. in a
/// WASI sleep, before it is stopped all the same.
const HOST_CALL_SLACK: Duration = Duration::from_millis(100);

/// Limits applied to every handler invocation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_bytes: usize,
}

/// The engine and linker shared by every handler.
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    limits: Limits,
    allocator: Allocator,
    capacity: Capacity,
    _ticker: EpochTicker,
}

/// Instances that may exist at once, across every handler: the pool's size,
/// or no bound with on-demand allocation. A call waits for a slot instead of
/// failing to instantiate.
#[derive(Clone)]
struct Capacity(Option<Arc<tokio::sync::Semaphore>>);

/// Room for one instance; see [`Component::slot`].
pub struct Slot(#[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

/// How instance memory is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// Slots reserved up front and reused: the fast path.
    Pooling,
    /// Allocated per instance: used when the address space is too small to
    /// reserve the pool (e.g. under `ulimit -v`).
    OnDemand,
}

impl Runtime {
    /// The engine, linker and epoch ticker. With a `compile_cache` folder,
    /// compiled components are kept there, keyed by their content and by
    /// wasmtime's version and settings, so a restart or a revert to an
    /// earlier version loads without compiling.
    pub fn new(limits: Limits, compile_cache: Option<&Path>) -> anyhow::Result<Self> {
        let cache = match compile_cache {
            Some(dir) => {
                let mut config = wasmtime::CacheConfig::new();
                config.with_directory(dir);
                Some(wasmtime::Cache::new(config).map_err(anyhow::Error::from)?)
            }
            None => None,
        };
        let (engine, allocator) = match Engine::new(&engine_config(Some(limits), cache.clone())) {
            Ok(engine) => (engine, Allocator::Pooling),
            Err(e) => {
                tracing::warn!(error = %e, "cannot reserve the instance pool; using on-demand allocation");
                let engine =
                    Engine::new(&engine_config(None, cache)).map_err(anyhow::Error::from)?;
                (engine, Allocator::OnDemand)
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        bindings::Handler::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        let ticker = EpochTicker::start(engine.clone());
        let capacity = Capacity(match allocator {
            Allocator::Pooling => Some(Arc::new(tokio::sync::Semaphore::new(
                POOL_INSTANCES as usize,
            ))),
            Allocator::OnDemand => None,
        });
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            limits,
            allocator,
            capacity,
            _ticker: ticker,
        })
    }

    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// Compiles, links and validates a handler, then asks it to describe
    /// itself. Compilation runs on a blocking thread: it is CPU-heavy and
    /// must not stall the consume loops or the API.
    pub async fn load(&self, name: &str, bytes: Vec<u8>) -> Result<Component, LoadError> {
        check_header(&bytes)?;
        let digest = digest(&bytes);
        let started = Instant::now();
        let engine = self.engine.clone();
        let linker = self.linker.clone();
        let pre = tokio::task::spawn_blocking(move || {
            let component = wasmtime::component::Component::new(&engine, &bytes)
                .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
            HandlerPre::new(pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))
        })
        .await
        .map_err(|e| LoadError::Compile(format!("compiler task failed: {e}")))??;

        let _slot = self.capacity.slot().await;
        let mut store = self.store();
        let description = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        };
        let description = tokio::time::timeout(self.limits.timeout + HOST_CALL_SLACK, description)
            .await
            .map_err(|_| {
                LoadError::Describe(format!("still running after {:?}", self.limits.timeout))
            })?
            .map_err(|e| LoadError::Describe(error_text(&e)))?;
        let subscription = Subscription::try_from(description)?;
        tracing::debug!(handler = name, elapsed = ?started.elapsed(), "component compiled and described");
        Ok(Component(Arc::new(Inner {
            name: name.to_string(),
            digest,
            loaded_at: SystemTime::now(),
            subscription,
            pre,
            limits: self.limits,
            capacity: self.capacity.clone(),
            log_budget: LogBudget::default(),
        })))
    }

    fn store(&self) -> Store<HostState> {
        new_store(&self.engine, self.limits)
    }
}

fn new_store(engine: &Engine, limits: Limits) -> Store<HostState> {
    let mut store = Store::new(engine, HostState::new(limits.memory_bytes));
    store.limiter(|s| &mut s.limits);
    let deadline = Instant::now() + limits.timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(wasmtime::Error::new(DeadlineExceeded))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

fn engine_config(pool_for: Option<Limits>, cache: Option<wasmtime::Cache>) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.cache(cache);
    if let Some(limits) = pool_for {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(POOL_INSTANCES)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_core_instances(POOL_INSTANCES * CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .total_memories(POOL_INSTANCES * MEMORIES_PER_COMPONENT)
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .total_tables(POOL_INSTANCES * TABLES_PER_COMPONENT)
            .total_stacks(POOL_INSTANCES)
            .max_memory_size(limits.memory_bytes)
            // Reset the pages a used instance touched with memset instead
            // of returning them to the kernel, so the next instance does not
            // page-fault them back in; where the kernel can tell which pages
            // were touched (PAGEMAP_SCAN, Linux 6.7+), only those.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// One version of one handler, ready to handle events. Cheap to clone.
#[derive(Clone)]
pub struct Component(Arc<Inner>);

struct Inner {
    name: String,
    digest: String,
    loaded_at: SystemTime,
    subscription: Subscription,
    pre: HandlerPre<HostState>,
    limits: Limits,
    capacity: Capacity,
    log_budget: LogBudget,
}

impl Capacity {
    fn try_slot(&self) -> Option<Slot> {
        match &self.0 {
            None => Some(Slot(None)),
            Some(s) => s.clone().try_acquire_owned().ok().map(|p| Slot(Some(p))),
        }
    }

    async fn slot(&self) -> Slot {
        match &self.0 {
            None => Slot(None),
            // The semaphore is never closed.
            Some(s) => Slot(s.clone().acquire_owned().await.ok()),
        }
    }
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
    /// Events to publish before the consumed event is committed.
    pub outbox: Vec<Outgoing>,
}

impl Component {
    /// A hash of the component's bytes, naming this version.
    pub fn digest(&self) -> &str {
        &self.0.digest
    }

    pub fn loaded_at(&self) -> SystemTime {
        self.0.loaded_at
    }

    pub fn subscription(&self) -> &Subscription {
        &self.0.subscription
    }

    /// Room for one instance, if the host's pool has some now.
    pub fn try_slot(&self) -> Option<Slot> {
        self.0.capacity.try_slot()
    }

    /// Room for one instance, once the host's pool has some.
    pub async fn slot(&self) -> Slot {
        self.0.capacity.slot().await
    }

    /// Handles one event in a fresh instance, in the room `slot` holds.
    /// Whatever the handler printed is logged with its name and the event's
    /// id.
    pub async fn handle(
        &self,
        slot: Slot,
        event: &WitEvent,
        delivery: &Delivery,
    ) -> Result<Outcome, Failure> {
        let mut store = new_store(self.0.pre.engine(), self.0.limits);
        let call = async {
            let instance = self.0.pre.instantiate_async(&mut store).await?;
            instance.call_handle(&mut store, event, delivery).await
        };
        let result = tokio::time::timeout(self.0.limits.timeout + HOST_CALL_SLACK, call).await;
        let result = match result {
            Ok(result) => result,
            Err(_) => Err(wasmtime::Error::new(DeadlineExceeded)),
        };
        // The instance goes with the store; only then is its room free.
        let state = store.into_data();
        drop(slot);
        self.log(&event.id, state.output.finish());
        match result {
            Ok(Ok(())) => Ok(Outcome {
                outbox: state.outbox,
            }),
            Ok(Err(HandlerError::Retryable(reason))) => Err(Failure::Retryable(reason)),
            Ok(Err(HandlerError::Fatal(reason))) => Err(Failure::Fatal(reason)),
            Err(e) if e.downcast_ref::<DeadlineExceeded>().is_some() => {
                Err(Failure::Timeout(self.0.limits.timeout))
            }
            Err(e) => Err(Failure::Trap(error_text(&e))),
        }
    }

    /// Logs what one invocation logged and printed, at its levels, within
    /// the handler's rate limit.
    fn log(&self, event_id: &str, mut lines: Vec<(Level, String)>) {
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

/// One instance kept across events, with no isolation between them. The
/// host never uses it: it exists to measure what a fresh instance per event
/// costs (see `benches/dispatch.rs`).
#[doc(hidden)]
pub struct ReusedInstance {
    store: Store<HostState>,
    handler: bindings::Handler,
}

impl Component {
    #[doc(hidden)]
    pub async fn instantiate_for_reuse(&self) -> anyhow::Result<ReusedInstance> {
        let limits = Limits {
            timeout: Duration::from_secs(24 * 3600),
            ..self.0.limits
        };
        let mut store = new_store(self.0.pre.engine(), limits);
        let handler = self.0.pre.instantiate_async(&mut store).await?;
        Ok(ReusedInstance { store, handler })
    }
}

impl ReusedInstance {
    #[doc(hidden)]
    pub async fn handle(&mut self, event: &WitEvent, delivery: &Delivery) -> anyhow::Result<()> {
        let result = self
            .handler
            .call_handle(&mut self.store, event, delivery)
            .await?;
        self.store.data_mut().outbox.clear();
        result.map_err(|e| anyhow::anyhow!("{e:?}"))
    }
}

/// Converts a decoded envelope into the WIT record handed to the guest.
/// Takes the envelope apart rather than copying it: this runs for every
/// event handled.
pub fn wit_event(event: Event) -> WitEvent {
    WitEvent {
        id: event.id,
        event_type: event.event_type,
        timestamp: event.timestamp,
        user_id: event.user_id,
        data: Box::<str>::from(event.data).into(),
    }
}

/// What a handler receives, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub topics: Vec<Topic>,
    /// Empty means every event type.
    pub event_types: BTreeSet<String>,
    /// The handler's own retry policy, if it declared one.
    pub retry: Option<RetryPolicy>,
}

/// How often, and how far apart, a failed event is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each next one.
    pub backoff: Duration,
}

impl Subscription {
    /// Whether the handler asked for events of this type.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.contains(event_type)
    }
}

impl TryFrom<bindings::Description> for Subscription {
    type Error = LoadError;

    fn try_from(d: bindings::Description) -> Result<Self, LoadError> {
        if d.topics.is_empty() {
            return Err(LoadError::Description("subscribes to no topic".into()));
        }
        let mut topics = d
            .topics
            .iter()
            .map(|t| {
                Topic::parse(t).map_err(|e| LoadError::Description(format!("topic {t:?} {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        topics.sort();
        topics.dedup();
        for t in &d.event_types {
            crate::event::EventType::parse(t)
                .map_err(|e| LoadError::Description(format!("event type {t:?} {e}")))?;
        }
        let retry = match d.retry {
            Some(r) if r.max_attempts == 0 => {
                return Err(LoadError::Description(
                    "retry.max-attempts must be at least 1".into(),
                ));
            }
            Some(r) => Some(RetryPolicy {
                max_attempts: r.max_attempts.min(100),
                backoff: Duration::from_millis(u64::from(r.backoff_ms)),
            }),
            None => None,
        };
        Ok(Self {
            topics,
            event_types: d.event_types.into_iter().collect(),
            retry,
        })
    }
}

/// Why a file could not become a running handler.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly file")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build it for wasm32-wasip2 with wit-bindgen"
    )]
    CoreModule,
    #[error("does not compile: {0}")]
    Compile(String),
    #[error("does not implement the event-host:handler/handler world: {0}")]
    WrongWorld(String),
    #[error("failed in describe(): {0}")]
    Describe(String),
    #[error("describes itself wrongly: {0}")]
    Description(String),
}

/// Why one invocation did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error("retryable error: {0}")]
    Retryable(String),
    #[error("fatal error: {0}")]
    Fatal(String),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("still running after {0:?}; stopped")]
    Timeout(Duration),
}

impl Failure {
    /// Whether another attempt could succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Failure::Fatal(_))
    }
}

/// Lines of handler output logged per second per handler version; the
/// rest are counted and dropped, so a chatty handler cannot flood the log.
const LOG_LINES_PER_SECOND: u32 = 100;

/// A token bucket of log lines: refills at [`LOG_LINES_PER_SECOND`], holds
/// one second's worth.
struct LogBudget(std::sync::Mutex<(f64, Instant, u64)>);

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

#[derive(Debug)]
struct DeadlineExceeded;

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// The error with its causes, on one line.
fn error_text(e: &wasmtime::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(LoadError::CoreModule),
        Some([0, b'a', b's', b'm', ..]) => Ok(()),
        _ => Err(LoadError::NotWasm),
    }
}

/// The SHA-256 of the component's bytes, in hex: names a version.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] while the runtime lives.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_gets_the_envelope_as_decoded() {
        let payload = br#"{"id":"e-1","type":"USER_REGISTERED","timestamp":"2026-11-27T00:00:00.000Z","userId":"u-1","data":{ "name" : "Ada",  "n": [1, 2] }}"#;
        let event = wit_event(Event::decode(payload).unwrap());
        assert_eq!(
            (
                event.id.as_str(),
                event.event_type.as_str(),
                event.timestamp.as_str()
            ),
            ("e-1", "USER_REGISTERED", "2026-11-27T00:00:00.000Z")
        );
        assert_eq!(event.user_id.as_deref(), Some("u-1"));
        // The data reaches the handler as it was sent, spacing included.
        assert_eq!(event.data, r#"{ "name" : "Ada",  "n": [1, 2] }"#);
    }

    #[test]
    fn headers_tell_components_from_modules() {
        assert!(matches!(
            check_header(b"hello world"),
            Err(LoadError::NotWasm)
        ));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0rest"),
            Err(LoadError::CoreModule)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0rest").is_ok());
        assert!(matches!(check_header(b"\0as"), Err(LoadError::NotWasm)));
    }

    #[test]
    fn handler_output_is_rate_limited() {
        let budget = LogBudget::default();
        let burst = LOG_LINES_PER_SECOND as usize;
        assert_eq!(budget.take(burst - 10), (burst - 10, 0));
        // 10 left: 10 logged, 40 dropped and reported with them.
        assert_eq!(budget.take(50), (10, 40));
        std::thread::sleep(Duration::from_millis(100));
        let (allowed, dropped) = budget.take(5);
        assert!(allowed == 5 && dropped == 0, "{allowed} {dropped}");
    }

    #[test]
    fn digests_differ_by_content() {
        assert_eq!(digest(b"a"), digest(b"a"));
        assert_ne!(digest(b"a"), digest(b"b"));
        assert_eq!(digest(b"").len(), 64);
    }

    #[test]
    fn a_subscription_needs_a_topic_and_valid_names() {
        let d = |topics: &[&str], types: &[&str]| bindings::Description {
            topics: topics.iter().map(|s| s.to_string()).collect(),
            event_types: types.iter().map(|s| s.to_string()).collect(),
            retry: None,
        };
        assert!(Subscription::try_from(d(&[], &[])).is_err());
        assert!(Subscription::try_from(d(&["bad topic"], &[])).is_err());
        assert!(Subscription::try_from(d(&["t"], &["bad type"])).is_err());
        let s = Subscription::try_from(d(&["b", "a", "b"], &[])).unwrap();
        assert_eq!(s.topics.len(), 2);
        assert!(s.wants("ANYTHING"));
        let s = Subscription::try_from(d(&["a"], &["X"])).unwrap();
        assert!(s.wants("X") && !s.wants("Y"));
        let mut with_retry = d(&["a"], &[]);
        with_retry.retry = Some(bindings::event_host::handler::types::RetryPolicy {
            max_attempts: 0,
            backoff_ms: 5,
        });
        assert!(Subscription::try_from(with_retry.clone()).is_err());
        with_retry.retry = Some(bindings::event_host::handler::types::RetryPolicy {
            max_attempts: 5,
            backoff_ms: 5,
        });
        let s = Subscription::try_from(with_retry).unwrap();
        assert_eq!(
            s.retry,
            Some(RetryPolicy {
                max_attempts: 5,
                backoff: Duration::from_millis(5)
            })
        );
    }
}
