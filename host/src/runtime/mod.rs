//! Runs handler components with wasmtime.
//!
//! One [`Runtime`] per process holds the `Engine` and the `Linker`; each
//! handler version becomes one [`Component`]: compiled, linked and
//! type-checked once against the contract version it targets (one `Pre`),
//! then instantiated in a fresh `Store` for every event, so no state leaks
//! from one event to the next — unless the handler runs on reused instances
//! (`reuse.rs`). Every call runs under a wall-clock deadline
//! (epoch interruption) and a memory cap.
//!
//! Nothing here knows about Kafka or HTTP.

mod bindings;
mod capacity;
mod compiled;
mod component;
mod contract;
mod output;
mod reuse;
mod state;
mod subscription;

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

pub use capacity::Slot;
use capacity::{Capacity, KeepPermit};
pub use component::{Component, Invocation, Outcome};
pub use contract::{Contract, Delivery, Format, Header, Input, Prepared};
pub use output::Level;
pub use reuse::{Instances, KeptInstance, ReusePolicy, Seat};
use state::HostState;
pub use state::Outgoing;
pub use subscription::{RetryPolicy, Subscription};

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
pub(crate) const HOST_CALL_SLACK: Duration = Duration::from_millis(100);

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
    reuse: ReusePolicy,
    compiled: compiled::Compiled,
    _ticker: EpochTicker,
}

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
        bindings::v0_1::Handler::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        bindings::v0_2::Handler::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        let ticker = EpochTicker::start(engine.clone());
        let semaphore = |permits| match allocator {
            Allocator::Pooling => Some(Arc::new(tokio::sync::Semaphore::new(permits))),
            Allocator::OnDemand => None,
        };
        let capacity = Capacity {
            slots: semaphore(POOL_INSTANCES as usize),
            kept: semaphore(capacity::KEPT_INSTANCES),
        };
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            limits,
            allocator,
            capacity,
            reuse: ReusePolicy::default(),
            compiled: Default::default(),
            _ticker: ticker,
        })
    }

    /// Which handlers run on reused instances, and when one is replaced;
    /// for the versions loaded from now on.
    pub fn with_reuse(mut self, reuse: ReusePolicy) -> Self {
        self.reuse = reuse;
        self
    }

    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// Compiles, links and validates a handler (or takes the compiled code
    /// of the same bytes, loaded under another name), then asks it to
    /// describe itself.
    pub async fn load(&self, name: &str, bytes: Vec<u8>) -> Result<Component, LoadError> {
        check_header(&bytes)?;
        let digest = digest(&bytes);
        let started = Instant::now();
        let pre = match self.compiled.get(&digest) {
            Some(pre) => pre,
            None => {
                let pre = Arc::new(self.compile(bytes).await?);
                self.compiled.insert(&digest, &pre);
                pre
            }
        };

        let _slot = self.capacity.slot().await;
        let mut store = self.store();
        let description = async {
            let instance = pre.instantiate(&mut store).await?;
            instance.describe(&mut store).await
        };
        let description = tokio::time::timeout(self.limits.timeout + HOST_CALL_SLACK, description)
            .await
            .map_err(|_| {
                LoadError::Describe(format!("still running after {:?}", self.limits.timeout))
            })?
            .map_err(|e| LoadError::Describe(error_text(&e)))?;
        let subscription = Subscription::try_from(description)?;
        tracing::debug!(handler = name, contract = %pre.contract(), elapsed = ?started.elapsed(), "component compiled and described");
        Ok(Component(Arc::new(component::Inner {
            name: name.to_string(),
            digest: digest.into(),
            loaded_at: SystemTime::now(),
            pre,
            instances: self
                .reuse
                .instances(name, subscription.stateless, self.limits),
            subscription,
            limits: self.limits,
            capacity: self.capacity.clone(),
            log_budget: Default::default(),
        })))
    }

    /// Compiles and links `bytes` on a blocking thread: compilation is
    /// CPU-heavy and must not stall the consume loops or the API.
    async fn compile(&self, bytes: Vec<u8>) -> Result<contract::Pre, LoadError> {
        let engine = self.engine.clone();
        let linker = self.linker.clone();
        tokio::task::spawn_blocking(move || {
            let component = wasmtime::component::Component::new(&engine, &bytes)
                .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
            contract::Pre::new(pre)
        })
        .await
        .map_err(|e| LoadError::Compile(format!("compiler task failed: {e}")))?
    }

    fn store(&self) -> Store<HostState> {
        new_store(&self.engine, self.limits)
    }
}

/// A store whose first call may run for `limits.timeout`; each further
/// call (a reused instance) sets its own deadline with [`begin_call`].
pub(crate) fn new_store(engine: &Engine, limits: Limits) -> Store<HostState> {
    let mut store = Store::new(engine, HostState::new(limits.memory_bytes));
    store.limiter(|s| &mut s.limits);
    begin_call(&mut store, limits.timeout);
    store.epoch_deadline_callback(|store| {
        if Instant::now() >= store.data().deadline {
            Err(wasmtime::Error::new(DeadlineExceeded))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

/// Readies `store` for one call of at most `timeout`.
pub(crate) fn begin_call(store: &mut Store<HostState>, timeout: Duration) {
    store.data_mut().begin_call(timeout);
    store.set_epoch_deadline(1);
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

#[derive(Debug)]
pub(crate) struct DeadlineExceeded;

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// The error with its causes, on one line.
pub(crate) fn error_text(e: &wasmtime::Error) -> String {
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

    /// The same bytes under two names share one compiled component, which
    /// goes once no loaded handler uses it.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_same_bytes_compile_once() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../handlers/user-handler.wasm");
        let bytes = std::fs::read(&path).unwrap();
        let limits = Limits {
            timeout: std::time::Duration::from_secs(5),
            memory_bytes: 16 << 20,
        };
        let runtime = Runtime::new(limits, None).unwrap();
        let a = runtime.load("a", bytes.clone()).await.unwrap();
        let b = runtime.load("b", bytes.clone()).await.unwrap();
        assert!(Arc::ptr_eq(&a.0.pre, &b.0.pre));
        assert_eq!(b.0.name, "b");
        let pre = Arc::downgrade(&a.0.pre);
        drop((a, b));
        assert!(pre.upgrade().is_none(), "kept after its handlers went");
        assert!(runtime.compiled.get(&digest(&bytes)).is_none());
    }

    #[test]
    fn digests_differ_by_content() {
        assert_eq!(digest(b"a"), digest(b"a"));
        assert_ne!(digest(b"a"), digest(b"b"));
        assert_eq!(digest(b"").len(), 64);
    }
}
