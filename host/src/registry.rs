//! The handlers by name: for each, the version that serves events (if any),
//! why its latest file was rejected (if it was), whether it is paused, and
//! its counters.
//!
//! A handler's name is its file's name without `.wasm`; it is also the name
//! of its consumer group. The registry hands out the current version through
//! a `watch` channel, so a consume loop picks up a new version at its next
//! event while the event in flight finishes on the old one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::runtime::{Component, Contract, Instances, Subscription};
use crate::stats::{ConsumerState, Counts, Stats};

#[derive(Default)]
pub struct Registry {
    handlers: RwLock<BTreeMap<String, Entry>>,
}

struct Entry {
    file: PathBuf,
    /// The version serving events; `None` until a file of this name loads.
    current: Option<watch::Sender<Component>>,
    /// The state of the consume loop serving it.
    consumer: Option<Arc<ConsumerState>>,
    /// Why the newest file of this name could not be installed, if it could
    /// not (the running version, if any, stays).
    rejected: Option<String>,
    paused: bool,
    stats: Arc<Stats>,
}

/// A handler as the registry knows it: the API shows this.
#[derive(Debug, Clone)]
pub struct HandlerInfo {
    pub name: String,
    pub status: Status,
    pub file: PathBuf,
    /// SHA-256 of the component serving events.
    pub version: Option<String>,
    pub loaded_at: Option<SystemTime>,
    pub subscription: Option<Subscription>,
    /// The contract version the serving component targets.
    pub contract: Option<Contract>,
    /// Whether the serving component's instances are fresh or reused.
    pub instances: Option<Instances>,
    pub counts: Counts,
    /// Partitions this instance holds for it.
    pub partitions: usize,
    /// Events waiting per partition held, keyed `topic/partition`, as of the
    /// consumer's last report; none before the first report and while the
    /// handler has no consumer.
    pub lag: Option<BTreeMap<String, u64>>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Loaded; its consumer has not received its assignment yet.
    Starting,
    /// Consuming: it holds partitions.
    Running,
    /// In its group but holding no partition (the group has more members
    /// than partitions): it takes over when another member leaves.
    Idle,
    /// Loaded and in its group, but taking no events until resumed.
    Paused,
    /// Its consume loop failed; it is being started again.
    Restarting,
    /// No version could be loaded.
    Failed,
}

impl Status {
    /// Its name, as the API and the cluster's announcements say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Idle => "idle",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Failed => "failed",
        }
    }
}

impl Registry {
    /// The `.wasm` files in `dir`, by name. A missing folder is empty.
    pub fn scan(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => anyhow::bail!("cannot read handlers folder {}: {e}", dir.display()),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_handler_file(p) && p.is_file())
            .collect();
        files.sort();
        Ok(files)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.handlers.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.handlers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn entry<'a>(
        handlers: &'a mut BTreeMap<String, Entry>,
        name: &str,
        file: &Path,
    ) -> &'a mut Entry {
        let entry = handlers.entry(name.to_string()).or_insert_with(|| Entry {
            file: file.to_path_buf(),
            current: None,
            consumer: None,
            rejected: None,
            paused: false,
            stats: Arc::default(),
        });
        entry.file = file.to_path_buf();
        entry
    }

    /// The version serving events for `name`.
    pub fn current(&self, name: &str) -> Option<Component> {
        let handlers = self.read();
        Some(handlers.get(name)?.current.as_ref()?.borrow().clone())
    }

    /// The digest of the version serving events for `name`.
    pub fn digest(&self, name: &str) -> Option<String> {
        self.current(name).map(|c| c.digest().to_string())
    }

    /// The counters of `name`, kept across its versions (created with the
    /// entry if there is none yet).
    pub fn stats(&self, name: &str, file: &Path) -> Arc<Stats> {
        Self::entry(&mut self.write(), name, file).stats.clone()
    }

    /// `name` is served from now on by the consume loop that `versions` and
    /// `consumer` belong to (a new handler, or one whose subscriptions
    /// changed).
    pub fn serve(
        &self,
        name: &str,
        file: &Path,
        versions: watch::Sender<Component>,
        consumer: Arc<ConsumerState>,
    ) {
        let mut handlers = self.write();
        let entry = Self::entry(&mut handlers, name, file);
        entry.rejected = None;
        entry.current = Some(versions);
        entry.consumer = Some(consumer);
    }

    /// A new version of `name` with the same subscriptions: its running loop
    /// takes it from the next event on. False if `name` has no loop.
    pub fn replace(&self, name: &str, file: &Path, component: Component) -> bool {
        let mut handlers = self.write();
        let entry = Self::entry(&mut handlers, name, file);
        match &entry.current {
            Some(current) => {
                current.send_replace(component);
                entry.rejected = None;
                true
            }
            None => false,
        }
    }

    /// The consume loop of `name` was started again.
    pub fn set_consumer(&self, name: &str, consumer: Arc<ConsumerState>) {
        if let Some(entry) = self.write().get_mut(name) {
            entry.consumer = Some(consumer);
        }
    }

    /// A new receiver of `name`'s versions, for a restarted consume loop.
    pub fn versions(&self, name: &str) -> Option<watch::Receiver<Component>> {
        let handlers = self.read();
        Some(handlers.get(name)?.current.as_ref()?.subscribe())
    }

    /// Records why the newest file for `name` could not be installed; a
    /// running version stays.
    pub fn reject(&self, name: &str, file: &Path, error: String) {
        let mut handlers = self.write();
        Self::entry(&mut handlers, name, file).rejected = Some(error);
    }

    /// Forgets a handler. Returns whether it was known.
    pub fn remove(&self, name: &str) -> bool {
        self.write().remove(name).is_some()
    }

    /// Records whether `name` is paused; returns false for an unknown name.
    pub fn set_paused(&self, name: &str, paused: bool) -> bool {
        match self.write().get_mut(name) {
            Some(entry) => {
                entry.paused = paused;
                true
            }
            None => false,
        }
    }

    pub fn is_paused(&self, name: &str) -> bool {
        self.read().get(name).is_some_and(|e| e.paused)
    }

    /// Whether every loaded handler's consumer has joined its group (or is
    /// deliberately paused).
    pub fn all_running(&self) -> bool {
        let handlers = self.read();
        handlers
            .values()
            .filter(|e| e.current.is_some())
            .all(|e| e.paused || e.consumer.as_ref().is_some_and(|c| c.is_joined()))
    }

    pub fn list(&self) -> Vec<HandlerInfo> {
        let handlers = self.read();
        handlers.iter().map(|(name, e)| info(name, e)).collect()
    }

    pub fn get(&self, name: &str) -> Option<HandlerInfo> {
        let handlers = self.read();
        handlers.get(name).map(|e| info(name, e))
    }
}

fn info(name: &str, e: &Entry) -> HandlerInfo {
    let current = e.current.as_ref().map(|c| c.borrow().clone());
    let consumer = e.consumer.as_deref();
    let failure = consumer.and_then(|c| c.failure());
    let status = match (&current, consumer) {
        (None, _) => Status::Failed,
        (Some(_), _) if failure.is_some() => Status::Restarting,
        (Some(_), _) if e.paused => Status::Paused,
        (Some(_), Some(c)) if c.is_joined() && c.partitions() > 0 => Status::Running,
        (Some(_), Some(c)) if c.is_joined() => Status::Idle,
        (Some(_), _) => Status::Starting,
    };
    HandlerInfo {
        name: name.to_string(),
        status,
        file: e.file.clone(),
        version: current.as_ref().map(|c| c.digest().to_string()),
        loaded_at: current.as_ref().map(Component::loaded_at),
        subscription: current.as_ref().map(|c| c.subscription().clone()),
        contract: current.as_ref().map(Component::contract),
        instances: current.as_ref().map(Component::instances),
        counts: e.stats.counts(),
        partitions: consumer.map_or(0, ConsumerState::partitions),
        lag: consumer.and_then(ConsumerState::lag),
        last_error: e
            .rejected
            .clone()
            .or(failure)
            .or_else(|| e.stats.last_error()),
    }
}

/// Whether a path names a handler file: `*.wasm`, not hidden (uploads and
/// atomic writes go through hidden temporary files).
pub fn is_handler_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "wasm")
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'))
}

/// A handler's name: its file name without `.wasm`. It names a consumer
/// group too, so it is kept to lowercase letters, digits, `-` and `_`.
pub fn handler_name(file: &Path) -> anyhow::Result<String> {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| anyhow::anyhow!("{}: not a handler file name", file.display()))?;
    validate_name(stem).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok(stem.to_string())
}

pub fn validate_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if name.is_empty() || name.len() > 64 {
        return Err("a handler name has 1 to 64 characters".into());
    }
    if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "handler name {name:?} must be lowercase letters, digits, '-' and '_', starting with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_names_come_from_file_names() {
        assert_eq!(
            handler_name(Path::new("/x/user-handler.wasm")).unwrap(),
            "user-handler"
        );
        assert!(handler_name(Path::new("/x/User Handler.wasm")).is_err());
        assert!(handler_name(Path::new("/x/-bad.wasm")).is_err());
        assert!(handler_name(Path::new("/x/.wasm")).is_err());
    }

    #[test]
    fn scanning_finds_only_wasm_files() {
        let dir = std::env::temp_dir().join(format!("event-host-scan-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub.wasm")).unwrap();
        std::fs::write(dir.join("b.wasm"), b"x").unwrap();
        std::fs::write(dir.join("a.wasm"), b"x").unwrap();
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        let found = Registry::scan(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found, vec![dir.join("a.wasm"), dir.join("b.wasm")]);
        assert!(Registry::scan(&dir).unwrap().is_empty());
    }
}
