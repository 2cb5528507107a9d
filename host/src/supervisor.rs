//! Applies changes to the set of handlers — a file in the handlers folder
//! appeared, changed or went; an upload; a delete; a pause — one at a time,
//! and keeps exactly one consume loop per loaded handler.
//!
//! The handlers folder is the single source of truth: an upload is
//! validated, then written into the folder, and only then installed. A file
//! that fails validation never replaces a running version. A version that
//! subscribes to other topics is installed as a plan: its topics are
//! created and its consume loop started first, and only then does it
//! replace the running one; if any step fails, the running version keeps
//! serving, untouched, and saving the file again tries again.
//!
//! Replays and redrives run off this task (they take seconds), so an upload
//! or a pause never waits behind them. A consume loop that fails is started
//! again after a pause.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, HandlerLoop, LoopFailed, Redriven, ReplayFrom, Rewound};
use crate::metrics::Reload;
use crate::registry::{self, Registry};
use crate::runtime::{self, Component, LoadError, Runtime};

mod catalog;

/// How long a failed consume loop waits before it is started again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Why a change was not made. Nothing changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no handler named {0:?}")]
    NotFound(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("not a valid handler: {0}")]
    Rejected(LoadError),
    #[error("a redrive of {0:?} is already running")]
    Busy(String),
    #[error("the host is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    Added,
    Replaced,
    /// The same version was already running.
    Unchanged,
}

type Reply<T> = oneshot::Sender<Result<T, ChangeError>>;

enum Request {
    /// Look at this path in the handlers folder: added, changed or removed.
    /// The reply (if asked for) says when that was applied.
    File(PathBuf, Option<Reply<()>>),
    Upload {
        name: String,
        bytes: Vec<u8>,
        reply: Reply<Uploaded>,
    },
    Delete {
        name: String,
        reply: Reply<()>,
    },
    Pause {
        name: String,
        paused: bool,
        reply: Reply<()>,
    },
    Replay {
        name: String,
        from: ReplayFrom,
        reply: Reply<Vec<Rewound>>,
    },
    Redrive {
        name: String,
        reply: Reply<Redriven>,
    },
    /// Start a failed loop again (from the supervisor itself).
    Restart(LoopFailed),
    /// Check that `bytes` make a valid handler (before they go into the
    /// catalog); compiled, so applying them later is quick.
    Validate {
        name: String,
        bytes: Vec<u8>,
        reply: Reply<Validated>,
    },
    /// Apply what the catalog says of a handler.
    Catalog {
        change: crate::cluster::catalog::Change,
        reply: Reply<Option<Uploaded>>,
    },
}

/// A component that passed validation, before it goes into the catalog.
#[derive(Debug, Clone)]
pub struct Validated {
    pub digest: String,
    /// Whether this instance serves that version already.
    pub running: bool,
    /// Whether the handler is paused here now.
    pub paused: bool,
}

/// Sends changes to the supervisor task, or, with the catalog on, through
/// the catalog. Cheap to clone.
#[derive(Clone)]
pub struct Changes {
    tx: mpsc::Sender<Request>,
    /// With the catalog on: handler changes go through it (once it is
    /// read: until then they are refused).
    cluster: Option<crate::cluster::Slot>,
}

impl Changes {
    async fn ask<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, ChangeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(request(tx))
            .await
            .map_err(|_| ChangeError::ShuttingDown)?;
        rx.await.map_err(|_| ChangeError::ShuttingDown)?
    }

    /// Uploads, deletes and pauses go through the catalog of the cluster
    /// set in `slot` (refused until it is set).
    pub fn with_catalog(self, slot: crate::cluster::Slot) -> Self {
        Self {
            cluster: Some(slot),
            ..self
        }
    }

    /// The catalog changes go through, if the catalog is on.
    fn catalog(&self) -> Result<Option<&Arc<crate::cluster::Cluster>>, ChangeError> {
        match &self.cluster {
            None => Ok(None),
            Some(slot) => slot.get().map(Some).ok_or_else(|| {
                ChangeError::Failed(anyhow::anyhow!(
                    "the host is starting: the handler catalog is not read yet"
                ))
            }),
        }
    }

    /// Installs `bytes` as handler `name`, if they are a valid handler:
    /// here, or with the catalog on, on every instance (answering once
    /// this one serves it).
    pub async fn upload(&self, name: &str, bytes: Vec<u8>) -> Result<Uploaded, ChangeError> {
        let owned = name.to_string();
        let Some(cluster) = self.catalog()? else {
            return self
                .ask(|reply| Request::Upload {
                    name: owned,
                    bytes,
                    reply,
                })
                .await;
        };
        registry::validate_name(name).map_err(ChangeError::InvalidName)?;
        let validated = self
            .ask(|reply| Request::Validate {
                name: owned,
                bytes: bytes.clone(),
                reply,
            })
            .await?;
        let head = cluster.head(name);
        if validated.running && head.as_ref().is_some_and(|h| h.digest == validated.digest) {
            return Ok(Uploaded::Unchanged);
        }
        let paused = head.map_or(validated.paused, |h| h.paused);
        let done = cluster.put(name, &bytes, &validated.digest, paused).await?;
        Ok(done.unwrap_or(Uploaded::Unchanged))
    }

    /// Stops handler `name` (its loop commits and leaves its group) and
    /// deletes its file; with the catalog on, on every instance.
    pub async fn delete(&self, name: &str) -> Result<(), ChangeError> {
        if let Some(cluster) = self.catalog()? {
            return cluster.delete(name).await;
        }
        let name = name.to_string();
        self.ask(|reply| Request::Delete { name, reply }).await
    }

    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<(), ChangeError> {
        if let Some(cluster) = self.catalog()? {
            return cluster.set_paused(name, paused).await;
        }
        let name = name.to_string();
        self.ask(|reply| Request::Pause {
            name,
            paused,
            reply,
        })
        .await
    }

    /// Applies what the catalog says of a handler (the cluster's reader
    /// calls this, in the catalog's order).
    pub async fn apply_catalog(
        &self,
        change: crate::cluster::catalog::Change,
    ) -> Result<Option<Uploaded>, ChangeError> {
        self.ask(|reply| Request::Catalog { change, reply }).await
    }

    pub async fn replay(&self, name: &str, from: ReplayFrom) -> Result<Vec<Rewound>, ChangeError> {
        let name = name.to_string();
        self.ask(|reply| Request::Replay { name, from, reply })
            .await
    }

    pub async fn redrive(&self, name: &str) -> Result<Redriven, ChangeError> {
        let name = name.to_string();
        self.ask(|reply| Request::Redrive { name, reply }).await
    }

    /// Looks at a path of the handlers folder, without waiting (the folder
    /// watcher's way). With the catalog on, a new or changed file is
    /// uploaded into it; a removed one is not deleted from the cluster.
    pub async fn file_changed(&self, path: PathBuf) {
        if self.cluster.is_some() {
            let this = self.clone();
            tokio::spawn(async move { this.publish_file(&path).await });
            return;
        }
        let _ = self.tx.send(Request::File(path, None)).await;
    }

    /// Uploads a file of the handlers folder into the catalog.
    pub async fn publish_file(&self, path: &Path) {
        if !registry::is_handler_file(path) {
            return;
        }
        let name = match registry::handler_name(path) {
            Ok(name) => name,
            Err(e) => {
                tracing::error!(error = %e, "ignoring a file that cannot name a handler");
                return;
            }
        };
        match tokio::fs::read(path).await {
            Ok(bytes) => match self.upload(&name, bytes).await {
                Ok(done) => {
                    tracing::info!(handler = %name, file = %path.display(), result = ?done, "handler file put into the catalog")
                }
                Err(e) => {
                    tracing::error!(handler = %name, file = %path.display(), error = %e, "handler file not put into the catalog")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => tracing::info!(
                handler = %name,
                "handler file removed; the cluster keeps serving it (DELETE /handlers/{name} removes it)"
            ),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot read handler file")
            }
        }
    }

    /// Looks at a path and waits until that was applied (start-up's way).
    pub async fn load_file(&self, path: PathBuf) -> Result<(), ChangeError> {
        self.ask(|reply| Request::File(path, Some(reply))).await
    }

    /// Whether handler changes go through a catalog.
    pub fn has_catalog(&self) -> bool {
        self.cluster.is_some()
    }
}

/// The handler set and its consume loops.
pub struct Supervisor {
    dir: PathBuf,
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    bus: Arc<Bus>,
    loops: BTreeMap<String, HandlerLoop>,
    failed_tx: mpsc::UnboundedSender<LoopFailed>,
    failed: mpsc::UnboundedReceiver<LoopFailed>,
    /// Handlers whose dead letters are being redriven now.
    redriving: Arc<Mutex<BTreeSet<String>>>,
}

impl Supervisor {
    pub fn new(
        dir: PathBuf,
        runtime: Arc<Runtime>,
        registry: Arc<Registry>,
        bus: Arc<Bus>,
    ) -> Self {
        let (failed_tx, failed) = mpsc::unbounded_channel();
        Self {
            dir,
            runtime,
            registry,
            bus,
            loops: BTreeMap::new(),
            failed_tx,
            failed,
            redriving: Arc::default(),
        }
    }

    /// Runs the supervisor as a task that applies changes in order until
    /// `stop` is cancelled (or every [`Changes`] is dropped); it then
    /// returns itself for shut-down.
    pub fn spawn(self, stop: CancellationToken) -> (Changes, tokio::task::JoinHandle<Self>) {
        let (tx, mut rx) = mpsc::channel::<Request>(64);
        let restarts = tx.downgrade();
        let task = tokio::spawn(async move {
            let mut this = self;
            loop {
                let request = tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    Some(failed) = this.failed.recv() => {
                        this.loop_failed(failed, restarts.clone());
                        continue;
                    }
                    r = rx.recv() => r,
                };
                let Some(request) = request else {
                    break;
                };
                this.apply(request).await;
            }
            this
        });
        (Changes { tx, cluster: None }, task)
    }

    async fn apply(&mut self, request: Request) {
        match request {
            Request::File(path, reply) => {
                let result = self.file_changed(&path).await;
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result.map_err(ChangeError::Failed));
                    }
                    None => {
                        if let Err(e) = result {
                            tracing::error!(file = %path.display(), error = %e, "handler change failed");
                        }
                    }
                }
            }
            Request::Upload { name, bytes, reply } => {
                let _ = reply.send(self.upload(&name, bytes).await);
            }
            Request::Delete { name, reply } => {
                let _ = reply.send(self.delete(&name).await);
            }
            Request::Pause {
                name,
                paused,
                reply,
            } => {
                let _ = reply.send(self.pause(&name, paused));
            }
            Request::Replay { name, from, reply } => match self.loops.get(&name) {
                Some(handler_loop) => {
                    let replay = handler_loop.replay(from);
                    tokio::spawn(async move {
                        let _ = reply.send(replay.await.map_err(ChangeError::Failed));
                    });
                }
                None => {
                    let _ = reply.send(Err(ChangeError::NotFound(name)));
                }
            },
            Request::Redrive { name, reply } => self.redrive(name, reply),
            Request::Restart(failed) => self.restart(failed),
            Request::Validate { name, bytes, reply } => {
                let _ = reply.send(self.validate(&name, bytes).await);
            }
            Request::Catalog { change, reply } => {
                let _ = reply.send(self.apply_catalog(change).await);
            }
        }
    }

    fn file_for(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.wasm"))
    }

    async fn file_changed(&mut self, path: &Path) -> anyhow::Result<()> {
        if !registry::is_handler_file(path) || path.parent() != Some(self.dir.as_path()) {
            return Ok(());
        }
        let name = match registry::handler_name(path) {
            Ok(name) => name,
            Err(e) => {
                tracing::error!(error = %e, "ignoring a file that cannot name a handler");
                return Ok(());
            }
        };
        let bytes = match tokio::fs::read(path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.stop_handler(&name).await;
                return Ok(());
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if self.registry.digest(&name).as_deref() == Some(runtime::digest(&bytes).as_str()) {
            return Ok(());
        }
        match self.runtime.load(&name, bytes).await {
            Ok(component) => {
                self.install(&name, path, component).await?;
            }
            Err(error) => {
                tracing::error!(handler = %name, file = %path.display(), %error, "handler file rejected");
                self.bus.metrics().reload(&name, Reload::Rejected);
                self.registry.reject(&name, path, error.to_string());
            }
        }
        Ok(())
    }

    async fn upload(&mut self, name: &str, bytes: Vec<u8>) -> Result<Uploaded, ChangeError> {
        registry::validate_name(name).map_err(ChangeError::InvalidName)?;
        let component = match self.runtime.load(name, bytes.clone()).await {
            Ok(component) => component,
            Err(e) => {
                self.bus.metrics().reload(name, Reload::Rejected);
                return Err(ChangeError::Rejected(e));
            }
        };
        let file = self.file_for(name);
        write_atomically(&file, &bytes).await?;
        Ok(self.install(name, &file, component).await?)
    }

    /// Makes `component` the version of `name` that serves events. A new
    /// handler, or one whose subscriptions change, gets a new consume loop
    /// before anything is swapped; on failure the running version (if any)
    /// stays and the error is recorded for `GET /handlers/:name`.
    async fn install(
        &mut self,
        name: &str,
        file: &Path,
        component: Component,
    ) -> anyhow::Result<Uploaded> {
        let installed = self.try_install(name, file, component).await;
        let result = match &installed {
            Ok(Uploaded::Unchanged) => None,
            Ok(Uploaded::Added) => Some(Reload::Added),
            Ok(Uploaded::Replaced) => Some(Reload::Replaced),
            Err(_) => Some(Reload::Rejected),
        };
        if let Some(result) = result {
            self.bus.metrics().reload(name, result);
        }
        installed
    }

    async fn try_install(
        &mut self,
        name: &str,
        file: &Path,
        component: Component,
    ) -> anyhow::Result<Uploaded> {
        let version = component.digest().to_string();
        let topics = component.subscription().topics.clone();
        let running = self.registry.current(name);
        let uploaded = match &running {
            Some(current) if current.digest() == component.digest() => {
                return Ok(Uploaded::Unchanged);
            }
            Some(current) if current.subscription().topics == topics => {
                self.registry.replace(name, file, component);
                tracing::info!(handler = name, %version, "handler replaced; the next event goes to the new version");
                return Ok(Uploaded::Replaced);
            }
            Some(_) => Uploaded::Replaced,
            None => Uploaded::Added,
        };
        // A plan: the new version's topics and consume loop first.
        let stats = self.registry.stats(name, file);
        let (versions, receiver) = watch::channel(component);
        let started = async {
            self.bus.ensure_topics(&topics).await?;
            let paused = self.registry.is_paused(name);
            HandlerLoop::start(
                name,
                receiver,
                &self.bus,
                stats,
                paused,
                self.failed_tx.clone(),
            )
        }
        .await;
        let handler_loop = match started {
            Ok(handler_loop) => handler_loop,
            Err(e) => {
                let error =
                    format!("cannot start consuming {topics:?} for version {version}: {e:#}");
                tracing::error!(handler = name, %error, "handler not installed; the running version, if any, stays");
                self.registry.reject(name, file, error);
                return Err(e.context(format!("cannot start consuming for handler {name}")));
            }
        };
        if let Some(old) = self.loops.remove(name) {
            old.stop().await;
        }
        self.registry
            .serve(name, file, versions, handler_loop.state().clone());
        self.loops.insert(name.to_string(), handler_loop);
        match uploaded {
            Uploaded::Added => tracing::info!(handler = name, %version, ?topics, "handler added"),
            _ => {
                tracing::info!(handler = name, %version, ?topics, "handler replaced with new subscriptions")
            }
        }
        Ok(uploaded)
    }

    async fn delete(&mut self, name: &str) -> Result<(), ChangeError> {
        if self.registry.get(name).is_none() {
            return Err(ChangeError::NotFound(name.to_string()));
        }
        match tokio::fs::remove_file(self.file_for(name)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(anyhow::Error::from(e)
                    .context(format!("cannot delete the file of handler {name}"))
                    .into());
            }
        }
        self.stop_handler(name).await;
        Ok(())
    }

    /// Stops a handler's consume loop (it commits and leaves its group) and
    /// forgets the handler.
    async fn stop_handler(&mut self, name: &str) {
        if let Some(handler_loop) = self.loops.remove(name) {
            handler_loop.stop().await;
        }
        if self.registry.remove(name) {
            tracing::info!(handler = name, "handler removed");
        }
    }

    fn pause(&mut self, name: &str, paused: bool) -> Result<(), ChangeError> {
        let Some(handler_loop) = self.loops.get(name) else {
            return Err(ChangeError::NotFound(name.to_string()));
        };
        handler_loop.set_paused(paused);
        self.registry.set_paused(name, paused);
        Ok(())
    }

    fn redrive(&mut self, name: String, reply: Reply<Redriven>) {
        let Some(current) = self.registry.current(&name) else {
            let _ = reply.send(Err(ChangeError::NotFound(name)));
            return;
        };
        let newly = self
            .redriving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone());
        if !newly {
            let _ = reply.send(Err(ChangeError::Busy(name)));
            return;
        }
        let topics = current.subscription().topics.clone();
        let bus = self.bus.clone();
        let redriving = self.redriving.clone();
        tokio::spawn(async move {
            let result = crate::bus::redrive(&bus, &name, &topics).await;
            redriving
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&name);
            let _ = reply.send(result.map_err(ChangeError::Failed));
        });
    }

    /// A loop failed: it already left its group. It is started again after
    /// a pause, unless it was replaced or removed meanwhile.
    fn loop_failed(&mut self, failed: LoopFailed, restarts: mpsc::WeakSender<Request>) {
        if self.loops.get(&failed.handler).map(HandlerLoop::id) != Some(failed.id) {
            return;
        }
        tracing::error!(handler = %failed.handler, reason = %failed.reason, "consume loop failed; starting it again in {RESTART_DELAY:?}");
        tokio::spawn(async move {
            tokio::time::sleep(RESTART_DELAY).await;
            if let Some(tx) = restarts.upgrade() {
                let _ = tx.send(Request::Restart(failed)).await;
            }
        });
    }

    fn restart(&mut self, failed: LoopFailed) {
        let name = &failed.handler;
        if self.loops.get(name).map(HandlerLoop::id) != Some(failed.id) {
            return;
        }
        let (Some(versions), Some(file)) = (
            self.registry.versions(name),
            self.registry.get(name).map(|h| h.file),
        ) else {
            return;
        };
        let stats = self.registry.stats(name, &file);
        let paused = self.registry.is_paused(name);
        match HandlerLoop::start(
            name,
            versions,
            &self.bus,
            stats,
            paused,
            self.failed_tx.clone(),
        ) {
            Ok(handler_loop) => {
                self.registry
                    .set_consumer(name, handler_loop.state().clone());
                // The failed loop has ended: dropping it is all that is left.
                self.loops.insert(name.clone(), handler_loop);
                tracing::info!(handler = %name, "consume loop started again");
            }
            Err(e) => {
                tracing::error!(handler = %name, error = %e, "cannot start the consume loop again; retrying");
                let _ = self.failed_tx.send(LoopFailed {
                    reason: format!("{e:#}"),
                    ..failed
                });
            }
        }
    }

    /// Stops every consume loop: each finishes its event, commits and
    /// leaves its group.
    pub async fn shutdown(mut self) {
        let loops = std::mem::take(&mut self.loops);
        futures_util::future::join_all(loops.into_values().map(HandlerLoop::stop)).await;
    }
}

/// Writes a file through a hidden temporary file and a rename, so that a
/// reader (the folder watcher) never sees half of it.
pub async fn write_atomically(file: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("handler");
    let tmp = file.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()));
    let written = async {
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, file).await
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    written.with_context(|| format!("cannot write {}", file.display()))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::value::RawValue;

    use super::*;
    use crate::config::Config;
    use crate::event::{Event, EventType, Topic};
    use crate::registry::Status;
    use crate::runtime::Limits;

    async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
        let started = Instant::now();
        while !check() {
            assert!(started.elapsed() < Duration::from_secs(60), "never: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A lane that panics (a bug in the host) is not left silent: the loop
    /// gives its partitions up, `GET /handlers` says `restarting` with the
    /// reason, and the loop comes back and handles the event it failed on.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_lane_is_reported_and_its_loop_started_again() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,rdkafka=warn"))
            .with_test_writer()
            .try_init();
        let dir = std::env::temp_dir().join(format!("event-host-restart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../handlers/user-handler.wasm");
        let file = dir.join("panicky.wasm");
        std::fs::copy(&built, &file).unwrap();
        let mut config = Config::defaults();
        config.retry_backoff_ms = 20;
        let runtime = Arc::new(
            Runtime::new(
                Limits {
                    timeout: Duration::from_secs(5),
                    memory_bytes: 64 << 20,
                },
                None,
            )
            .unwrap(),
        );
        let bus = Arc::new(Bus::connect(&config).unwrap());
        let registry = Arc::new(Registry::default());
        let supervisor = Supervisor::new(dir.clone(), runtime, registry.clone(), bus.clone());
        let stop = CancellationToken::new();
        let (changes, task) = supervisor.spawn(stop.clone());
        changes.load_file(file).await.unwrap();
        wait_for("running", || {
            registry.get("panicky").unwrap().status == Status::Running
        })
        .await;

        crate::bus::test_hooks::panic_once("panicky");
        let topic = Topic::parse("user-events").unwrap();
        let event = Event::new(
            EventType::parse("NOT_FOR_THIS_HANDLER").unwrap(),
            None,
            RawValue::from_string("{}".into()).unwrap(),
        );
        bus.publisher()
            .publish(&topic, &event, crate::metrics::Source::Api)
            .await
            .unwrap();

        wait_for("reported as restarting", || {
            let h = registry.get("panicky").unwrap();
            h.status == Status::Restarting
                && h.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("injected by a test"))
        })
        .await;
        // Started again; the event it failed on was not committed, so it is
        // taken again (and skipped: not a type this handler asked for).
        wait_for("handled after the restart", || {
            let h = registry.get("panicky").unwrap();
            h.status == Status::Running && h.counts.skipped == 1
        })
        .await;
        stop.cancel();
        task.await.unwrap().shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
