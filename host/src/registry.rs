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

use serde::Serialize;
use tokio::sync::watch;

use crate::event::Topic;
use crate::runtime::{Component, LoadError, RetryPolicy};
use crate::stats::{Snapshot, Stats};

#[derive(Default)]
pub struct Registry {
    handlers: RwLock<BTreeMap<String, Entry>>,
}

struct Entry {
    file: PathBuf,
    /// The version serving events; `None` until a file of this name loads.
    current: Option<watch::Sender<Component>>,
    /// Why the newest file of this name was rejected, if it was.
    rejected: Option<String>,
    paused: bool,
    stats: Arc<Stats>,
}

/// What installing a version did.
pub enum Installed {
    /// A handler that did not run before: start consuming for it.
    New {
        versions: watch::Receiver<Component>,
        stats: Arc<Stats>,
    },
    /// A new version of a running handler: its consume loop uses it from
    /// the next event on. `resubscribe` when it wants other topics.
    Replaced { resubscribe: bool },
    /// The same bytes as the version already running.
    Unchanged,
}

/// A handler as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlerView {
    pub name: String,
    pub status: Status,
    pub file: PathBuf,
    /// SHA-256 of the component serving events.
    pub version: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub loaded_at: Option<SystemTime>,
    pub subscriptions: Vec<SubscriptionView>,
    /// The handler's own retry policy; none means the host's defaults.
    pub retry: Option<RetryPolicy>,
    pub stats: Snapshot,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub topic: Topic,
    /// Empty means every event type.
    pub event_types: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Loaded; its consumer has not received its partitions yet.
    Starting,
    /// Consuming.
    Running,
    /// Loaded and in its group, but taking no events until resumed.
    Paused,
    /// No version could be loaded.
    Failed,
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
            rejected: None,
            paused: false,
            stats: Arc::default(),
        });
        entry.file = file.to_path_buf();
        entry
    }

    /// The digest of the version serving events for `name`.
    pub fn digest(&self, name: &str) -> Option<String> {
        let handlers = self.read();
        let current = handlers.get(name)?.current.as_ref()?;
        Some(current.borrow().digest().to_string())
    }

    /// Makes `component` the version of `name` that serves events.
    pub fn install(&self, name: &str, file: &Path, component: Component) -> Installed {
        let mut handlers = self.write();
        let entry = Self::entry(&mut handlers, name, file);
        entry.rejected = None;
        match &entry.current {
            Some(current) if current.borrow().digest() == component.digest() => {
                Installed::Unchanged
            }
            Some(current) => {
                let old = current.send_replace(component);
                let resubscribe =
                    old.subscription().topics != current.borrow().subscription().topics;
                Installed::Replaced { resubscribe }
            }
            None => {
                let (tx, rx) = watch::channel(component);
                entry.current = Some(tx);
                Installed::New {
                    versions: rx,
                    stats: entry.stats.clone(),
                }
            }
        }
    }

    /// Records why a file for `name` was rejected; a running version stays.
    pub fn reject(&self, name: &str, file: &Path, error: &LoadError) {
        let mut handlers = self.write();
        Self::entry(&mut handlers, name, file).rejected = Some(error.to_string());
    }

    /// Forgets a handler. Returns whether it was known.
    pub fn remove(&self, name: &str) -> bool {
        self.write().remove(name).is_some()
    }

    /// A new receiver of `name`'s versions, for a restarted consume loop.
    pub fn versions(&self, name: &str) -> Option<(watch::Receiver<Component>, Arc<Stats>)> {
        let handlers = self.read();
        let entry = handlers.get(name)?;
        Some((entry.current.as_ref()?.subscribe(), entry.stats.clone()))
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

    /// Whether every loaded handler is consuming (or deliberately paused).
    pub fn all_running(&self) -> bool {
        let handlers = self.read();
        handlers
            .values()
            .filter(|e| e.current.is_some())
            .all(|e| e.paused || e.stats.is_assigned())
    }

    pub fn list(&self) -> Vec<HandlerView> {
        let handlers = self.read();
        handlers.iter().map(|(name, e)| view(name, e)).collect()
    }

    pub fn get(&self, name: &str) -> Option<HandlerView> {
        let handlers = self.read();
        handlers.get(name).map(|e| view(name, e))
    }
}

fn view(name: &str, e: &Entry) -> HandlerView {
    let current = e.current.as_ref().map(|c| c.borrow().clone());
    let status = match &current {
        None => Status::Failed,
        Some(_) if e.paused => Status::Paused,
        Some(_) if e.stats.is_assigned() => Status::Running,
        Some(_) => Status::Starting,
    };
    let subscriptions = current
        .as_ref()
        .map(|c| {
            let s = c.subscription();
            s.topics
                .iter()
                .map(|t| SubscriptionView {
                    topic: t.clone(),
                    event_types: s.event_types.iter().cloned().collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    HandlerView {
        name: name.to_string(),
        status,
        file: e.file.clone(),
        version: current.as_ref().map(|c| c.digest().to_string()),
        loaded_at: current.as_ref().map(Component::loaded_at),
        subscriptions,
        retry: current.as_ref().and_then(|c| c.subscription().retry),
        stats: e.stats.snapshot(),
        last_error: e.rejected.clone().or_else(|| e.stats.last_error()),
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

fn rfc3339<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string()),
        None => s.serialize_none(),
    }
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
