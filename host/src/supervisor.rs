//! Applies changes to the set of handlers — a file in the handlers folder
//! appeared, changed or went; an upload; a delete; a pause — one at a time,
//! and keeps exactly one consume loop per loaded handler.
//!
//! The handlers folder is the single source of truth: an upload is
//! validated, then written into the folder, and only then installed. A file
//! that fails validation never replaces a running version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, HandlerLoop, Redriven, ReplayFrom, Rewound};
use crate::registry::{self, Installed, Registry};
use crate::runtime::{self, Component, LoadError, Runtime};

/// A change to apply.
#[derive(Debug)]
pub enum Change {
    /// Look at this path in the handlers folder: added, changed or removed.
    File(PathBuf),
    /// Install these bytes as handler `name`, if they are a valid handler.
    Upload {
        name: String,
        bytes: Vec<u8>,
    },
    Delete {
        name: String,
    },
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    Replay {
        name: String,
        from: ReplayFrom,
    },
    Redrive {
        name: String,
    },
}

/// What a change did.
#[derive(Debug)]
pub enum Outcome {
    Added,
    Replaced,
    /// The same version was already running.
    Unchanged,
    Removed,
    Paused,
    Resumed,
    Replayed(Vec<Rewound>),
    Redriven(Redriven),
    /// The bytes are not a valid handler; nothing changed.
    Rejected(LoadError),
    /// No handler of that name.
    NotFound,
    /// Not a handler file (a temporary file, say).
    Ignored,
}

type Request = (Change, Option<oneshot::Sender<anyhow::Result<Outcome>>>);

/// Sends changes to the supervisor task. Cheap to clone.
#[derive(Clone)]
pub struct Changes(mpsc::Sender<Request>);

impl Changes {
    /// Applies a change and waits for its outcome.
    pub async fn apply(&self, change: Change) -> anyhow::Result<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send((change, Some(tx)))
            .await
            .ok()
            .context("the host is shutting down")?;
        rx.await.context("the host is shutting down")?
    }

    /// Queues a change without waiting (the folder watcher's way).
    pub async fn notify(&self, change: Change) {
        let _ = self.0.send((change, None)).await;
    }
}

/// The handler set and its consume loops.
pub struct Supervisor {
    dir: PathBuf,
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    bus: Arc<Bus>,
    loops: BTreeMap<String, HandlerLoop>,
}

impl Supervisor {
    pub fn new(
        dir: PathBuf,
        runtime: Arc<Runtime>,
        registry: Arc<Registry>,
        bus: Arc<Bus>,
    ) -> Self {
        Self {
            dir,
            runtime,
            registry,
            bus,
            loops: BTreeMap::new(),
        }
    }

    /// Runs the supervisor as a task that applies changes in order until
    /// `stop` is cancelled (or every [`Changes`] is dropped); it then
    /// returns itself for shut-down.
    pub fn spawn(self, stop: CancellationToken) -> (Changes, tokio::task::JoinHandle<Self>) {
        let (tx, mut rx) = mpsc::channel::<Request>(64);
        let task = tokio::spawn(async move {
            let mut this = self;
            loop {
                let request = tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    r = rx.recv() => r,
                };
                let Some((change, reply)) = request else {
                    break;
                };
                let outcome = this.apply(change).await;
                match reply {
                    Some(reply) => {
                        let _ = reply.send(outcome);
                    }
                    None => {
                        if let Err(e) = outcome {
                            tracing::error!(error = ?e, "handler change failed");
                        }
                    }
                }
            }
            this
        });
        (Changes(tx), task)
    }

    pub async fn apply(&mut self, change: Change) -> anyhow::Result<Outcome> {
        match change {
            Change::File(path) => self.file_changed(&path).await,
            Change::Upload { name, bytes } => self.upload(&name, bytes).await,
            Change::Delete { name } => self.delete(&name).await,
            Change::Pause { name } => Ok(self.pause(&name, true)),
            Change::Resume { name } => Ok(self.pause(&name, false)),
            Change::Replay { name, from } => match self.loops.get(&name) {
                Some(handler_loop) => Ok(Outcome::Replayed(handler_loop.replay(from).await?)),
                None => Ok(Outcome::NotFound),
            },
            Change::Redrive { name } => {
                let Some((versions, _)) = self.registry.versions(&name) else {
                    return Ok(Outcome::NotFound);
                };
                let topics = versions.borrow().subscription().topics.clone();
                Ok(Outcome::Redriven(
                    crate::bus::redrive(&self.bus, &name, &topics).await?,
                ))
            }
        }
    }

    fn file_for(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.wasm"))
    }

    async fn file_changed(&mut self, path: &Path) -> anyhow::Result<Outcome> {
        if !registry::is_handler_file(path) || path.parent() != Some(self.dir.as_path()) {
            return Ok(Outcome::Ignored);
        }
        let name = match registry::handler_name(path) {
            Ok(name) => name,
            Err(e) => {
                tracing::error!(error = %e, "ignoring a file that cannot name a handler");
                return Ok(Outcome::Ignored);
            }
        };
        let bytes = match tokio::fs::read(path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(self.stop_handler(&name).await);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if self.registry.digest(&name).as_deref() == Some(runtime::digest(&bytes).as_str()) {
            return Ok(Outcome::Unchanged);
        }
        match self.runtime.load(&name, bytes).await {
            Ok(component) => self.install(&name, path, component).await,
            Err(error) => {
                tracing::error!(handler = %name, file = %path.display(), %error, "handler file rejected");
                self.registry.reject(&name, path, &error);
                Ok(Outcome::Rejected(error))
            }
        }
    }

    async fn upload(&mut self, name: &str, bytes: Vec<u8>) -> anyhow::Result<Outcome> {
        registry::validate_name(name).map_err(anyhow::Error::msg)?;
        let component = match self.runtime.load(name, bytes.clone()).await {
            Ok(c) => c,
            Err(error) => return Ok(Outcome::Rejected(error)),
        };
        let file = self.file_for(name);
        write_atomically(&file, &bytes).await?;
        self.install(name, &file, component).await
    }

    async fn install(
        &mut self,
        name: &str,
        file: &Path,
        component: Component,
    ) -> anyhow::Result<Outcome> {
        let version = component.digest().to_string();
        let topics = component.subscription().topics.clone();
        match self.registry.install(name, file, component) {
            Installed::Unchanged => Ok(Outcome::Unchanged),
            Installed::New { versions, stats } => {
                let started = async {
                    self.bus.ensure_topics(&topics).await?;
                    let paused = self.registry.is_paused(name);
                    HandlerLoop::start(name, versions, &self.bus, stats, paused)
                }
                .await;
                match started {
                    Ok(handler_loop) => {
                        tracing::info!(handler = name, %version, ?topics, "handler added");
                        self.loops.insert(name.to_string(), handler_loop);
                        Ok(Outcome::Added)
                    }
                    Err(e) => {
                        self.registry.remove(name);
                        Err(e.context(format!("cannot start consuming for handler {name}")))
                    }
                }
            }
            Installed::Replaced { resubscribe: false } => {
                tracing::info!(handler = name, %version, "handler replaced; the next event goes to the new version");
                Ok(Outcome::Replaced)
            }
            Installed::Replaced { resubscribe: true } => {
                tracing::info!(handler = name, %version, ?topics, "handler replaced with new subscriptions; rejoining");
                self.bus.ensure_topics(&topics).await?;
                if let Some(old) = self.loops.remove(name) {
                    old.stop().await;
                }
                let (versions, stats) = self
                    .registry
                    .versions(name)
                    .context("the replaced handler disappeared")?;
                let paused = self.registry.is_paused(name);
                let handler_loop = HandlerLoop::start(name, versions, &self.bus, stats, paused)?;
                self.loops.insert(name.to_string(), handler_loop);
                Ok(Outcome::Replaced)
            }
        }
    }

    async fn delete(&mut self, name: &str) -> anyhow::Result<Outcome> {
        if self.registry.get(name).is_none() {
            return Ok(Outcome::NotFound);
        }
        match tokio::fs::remove_file(self.file_for(name)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context(format!("cannot delete the file of handler {name}")),
        }
        Ok(self.stop_handler(name).await)
    }

    /// Stops a handler's consume loop (it commits and leaves its group) and
    /// forgets the handler.
    async fn stop_handler(&mut self, name: &str) -> Outcome {
        let handler_loop = self.loops.remove(name);
        if let Some(handler_loop) = handler_loop {
            handler_loop.stop().await;
        }
        if self.registry.remove(name) {
            tracing::info!(handler = name, "handler removed");
            Outcome::Removed
        } else {
            Outcome::NotFound
        }
    }

    fn pause(&mut self, name: &str, paused: bool) -> Outcome {
        let Some(handler_loop) = self.loops.get(name) else {
            return Outcome::NotFound;
        };
        handler_loop.set_paused(paused);
        self.registry.set_paused(name, paused);
        if paused {
            Outcome::Paused
        } else {
            Outcome::Resumed
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
