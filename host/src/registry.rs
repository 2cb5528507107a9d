//! The handlers by name: for each, the version that serves events (if any),
//! why its latest file was rejected (if it was), and its counters.
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
use crate::runtime::{Component, LoadError, Runtime};
use crate::stats::{Snapshot, Stats};

pub struct Registry {
    runtime: Arc<Runtime>,
    handlers: RwLock<BTreeMap<String, Entry>>,
}

struct Entry {
    file: PathBuf,
    /// The version serving events; `None` until a file of this name loads.
    current: Option<watch::Sender<Component>>,
    /// Why the newest file of this name was rejected, if it was.
    rejected: Option<String>,
    stats: Arc<Stats>,
}

/// What loading a file did.
pub enum Loaded {
    /// A handler that did not run before: start consuming for it.
    New {
        name: String,
        versions: watch::Receiver<Component>,
        stats: Arc<Stats>,
    },
    /// A new version of a running handler: its consume loop uses it from
    /// the next event on. `resubscribe` when it wants other topics.
    Replaced { name: String, resubscribe: bool },
    /// The file was rejected; an older version, if any, keeps serving.
    Rejected { name: String, error: LoadError },
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
    /// No version could be loaded.
    Failed,
}

impl Registry {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self {
            runtime,
            handlers: RwLock::new(BTreeMap::new()),
        }
    }

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
            .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
            .collect();
        files.sort();
        Ok(files)
    }

    /// Loads a handler file and records the result under the file's name.
    pub async fn load_file(&self, file: &Path) -> anyhow::Result<Loaded> {
        let name = handler_name(file)?;
        let loaded = match tokio::fs::read(file).await {
            Ok(bytes) => self.runtime.load(&name, bytes).await,
            Err(e) => Err(LoadError::Compile(format!(
                "cannot read {}: {e}",
                file.display()
            ))),
        };
        let mut handlers = self.handlers.write().unwrap_or_else(|p| p.into_inner());
        let entry = handlers.entry(name.clone()).or_insert_with(|| Entry {
            file: file.to_path_buf(),
            current: None,
            rejected: None,
            stats: Arc::default(),
        });
        entry.file = file.to_path_buf();
        match loaded {
            Ok(component) => {
                entry.rejected = None;
                tracing::info!(
                    handler = %name, version = %component.digest(),
                    topics = ?component.subscription().topics, "handler loaded"
                );
                match &entry.current {
                    Some(current) => {
                        let old = current.send_replace(component);
                        let resubscribe =
                            old.subscription().topics != current.borrow().subscription().topics;
                        Ok(Loaded::Replaced { name, resubscribe })
                    }
                    None => {
                        let (tx, rx) = watch::channel(component);
                        entry.current = Some(tx);
                        Ok(Loaded::New {
                            name,
                            versions: rx,
                            stats: entry.stats.clone(),
                        })
                    }
                }
            }
            Err(error) => {
                tracing::error!(handler = %name, file = %file.display(), %error, "handler rejected");
                entry.rejected = Some(error.to_string());
                Ok(Loaded::Rejected { name, error })
            }
        }
    }

    /// Whether every loaded handler is consuming.
    pub fn all_running(&self) -> bool {
        let handlers = self.handlers.read().unwrap_or_else(|p| p.into_inner());
        handlers
            .values()
            .filter(|e| e.current.is_some())
            .all(|e| e.stats.is_assigned())
    }

    pub fn list(&self) -> Vec<HandlerView> {
        let handlers = self.handlers.read().unwrap_or_else(|p| p.into_inner());
        handlers.iter().map(|(name, e)| view(name, e)).collect()
    }

    pub fn get(&self, name: &str) -> Option<HandlerView> {
        let handlers = self.handlers.read().unwrap_or_else(|p| p.into_inner());
        handlers.get(name).map(|e| view(name, e))
    }
}

fn view(name: &str, e: &Entry) -> HandlerView {
    let current = e.current.as_ref().map(|c| c.borrow().clone());
    let status = match &current {
        None => Status::Failed,
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
        stats: e.stats.snapshot(),
        last_error: e.rejected.clone().or_else(|| e.stats.last_error()),
    }
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
