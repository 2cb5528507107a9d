//! The supervisor's changes to the handler set through the handlers
//! folder: a file that appeared, changed or went, an upload written there,
//! a delete, and installing a version (as a plan when its topics change).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::sync::watch;

use super::{ChangeError, Supervisor, Uploaded};
use crate::bus::HandlerLoop;
use crate::metrics::Reload;
use crate::registry;
use crate::runtime::{self, Component};

impl Supervisor {
    pub(super) fn file_for(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.wasm"))
    }

    pub(super) async fn file_changed(&mut self, path: &Path) -> anyhow::Result<()> {
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

    /// Loads (compiles) `bytes` as handler `name`, installing nothing; a
    /// bad name or a component that does not load is refused and counted.
    pub(super) async fn load(&self, name: &str, bytes: Vec<u8>) -> Result<Component, ChangeError> {
        registry::validate_name(name).map_err(ChangeError::InvalidName)?;
        self.runtime.load(name, bytes).await.map_err(|e| {
            self.bus.metrics().reload(name, Reload::Rejected);
            ChangeError::Rejected(e)
        })
    }

    pub(super) async fn upload(
        &mut self,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<Uploaded, ChangeError> {
        let component = self.load(name, bytes.clone()).await?;
        let file = self.file_for(name);
        write_atomically(&file, &bytes).await?;
        Ok(self.install(name, &file, component).await?)
    }

    /// Makes `component` the version of `name` that serves events. A new
    /// handler, or one whose subscriptions change, gets a new consume loop
    /// before anything is swapped; on failure the running version (if any)
    /// stays and the error is recorded for `GET /handlers/:name`.
    pub(super) async fn install(
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

    pub(super) async fn delete(&mut self, name: &str) -> Result<(), ChangeError> {
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
    pub(super) async fn stop_handler(&mut self, name: &str) {
        if let Some(handler_loop) = self.loops.remove(name) {
            handler_loop.stop().await;
        }
        if self.registry.remove(name) {
            tracing::info!(handler = name, "handler removed");
        }
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
