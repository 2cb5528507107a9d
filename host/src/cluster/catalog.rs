//! The handler catalog's records, on its compacted topic of one partition:
//!
//! | key | value |
//! | --- | --- |
//! | `handler/NAME` | a [`Head`] (JSON): the digest of its component, paused or not; a tombstone once deleted |
//! | `blob/DIGEST/I/N` | bytes `I` of `N` of that component, [`CHUNK`] bytes each; a tombstone once no handler uses it |
//! | `catalog` | the mark that the catalog was set up (seeded from a folder, or not) |
//!
//! Components are split because a Python one is ~35 MB and Kafka's default
//! record limit is 1 MB, which managed clusters often do not let a topic
//! raise; chunks written before their head, on one partition, arrive
//! before it for every reader. A blob is keyed by its digest, so two names
//! for one component share it. The latest record of each key is what
//! counts, which is what compaction keeps.
//!
//! [`Catalog`] folds the records, in order, into what the cluster's
//! handlers are.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Bytes of a component per record: well under librdkafka's and Kafka's
/// default limit of 1 MB per message.
pub const CHUNK: usize = 512 * 1024;

/// The key that marks the catalog as set up.
pub const MARK: &str = "catalog";

/// What a handler is, cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// SHA-256 of its component, as the host shows versions.
    pub digest: String,
    pub paused: bool,
    /// The component's size and the chunks it is in.
    pub size: usize,
    pub chunks: usize,
    /// Which instance wrote this, and when (ms since the epoch).
    pub by: String,
    pub at_ms: u64,
}

/// A record of the catalog topic, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Handler {
        name: String,
        head: Option<Head>,
    },
    Chunk {
        digest: String,
        index: usize,
        of: usize,
        bytes: Option<Vec<u8>>,
    },
    Mark,
}

pub fn handler_key(name: &str) -> String {
    format!("handler/{name}")
}

pub fn chunk_key(digest: &str, index: usize, of: usize) -> String {
    format!("blob/{digest}/{index}/{of}")
}

/// The chunks of a component.
pub fn chunks(bytes: &[u8]) -> std::slice::Chunks<'_, u8> {
    bytes.chunks(CHUNK)
}

/// How many chunks a component of `size` bytes is in (one for an empty one).
pub fn chunk_count(size: usize) -> usize {
    size.div_ceil(CHUNK).max(1)
}

impl Record {
    /// Reads a record; `Err` says why it is not one of the catalog's.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, String> {
        let key = std::str::from_utf8(key).map_err(|_| "a key that is not UTF-8".to_string())?;
        if key == MARK {
            return Ok(Self::Mark);
        }
        if let Some(name) = key.strip_prefix("handler/") {
            let head = value
                .map(|v| serde_json::from_slice(v).map_err(|e| format!("{key}: {e}")))
                .transpose()?;
            return Ok(Self::Handler {
                name: name.to_string(),
                head,
            });
        }
        if let Some(rest) = key.strip_prefix("blob/") {
            let mut parts = rest.split('/');
            let (Some(digest), Some(index), Some(of), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("{key}: not blob/DIGEST/I/N"));
            };
            let (Ok(index), Ok(of)) = (index.parse(), of.parse()) else {
                return Err(format!("{key}: not blob/DIGEST/I/N"));
            };
            if index >= of {
                return Err(format!("{key}: chunk {index} of {of}"));
            }
            return Ok(Self::Chunk {
                digest: digest.to_string(),
                index,
                of,
                bytes: value.map(<[u8]>::to_vec),
            });
        }
        Err(format!("{key}: not a catalog key"))
    }
}

/// A handler as the catalog says it is, with its component.
#[derive(Debug, Clone)]
pub struct Entry {
    pub head: Head,
    pub component: Arc<Vec<u8>>,
}

/// What the records so far say.
#[derive(Debug, Default)]
pub struct Catalog {
    heads: BTreeMap<String, Head>,
    /// Components by digest, as their chunks arrive.
    blobs: HashMap<String, Vec<Option<Vec<u8>>>>,
    /// Whole components, by digest.
    whole: HashMap<String, Arc<Vec<u8>>>,
    marked: bool,
}

/// What a record changed for a handler.
#[derive(Debug, Clone)]
pub enum Change {
    /// `name` is this now.
    Set { name: String, entry: Entry },
    /// `name` is gone.
    Removed { name: String },
}

impl Catalog {
    /// Takes the next record; says what it changed for a handler, if
    /// anything. A head whose component is not whole is an error.
    pub fn apply(&mut self, record: Record) -> Result<Option<Change>, String> {
        match record {
            Record::Mark => {
                self.marked = true;
                Ok(None)
            }
            Record::Chunk {
                digest,
                index,
                of,
                bytes,
            } => {
                match bytes {
                    Some(bytes) => {
                        let parts = self.blobs.entry(digest.clone()).or_default();
                        parts.resize(of, None);
                        parts[index] = Some(bytes);
                        if parts.iter().all(Option::is_some) {
                            let whole: Vec<u8> = parts.drain(..).flatten().flatten().collect();
                            self.blobs.remove(&digest);
                            self.whole.insert(digest, Arc::new(whole));
                        }
                    }
                    None => {
                        self.blobs.remove(&digest);
                        self.whole.remove(&digest);
                    }
                }
                Ok(None)
            }
            Record::Handler { name, head: None } => {
                Ok(self.heads.remove(&name).map(|_| Change::Removed { name }))
            }
            Record::Handler {
                name,
                head: Some(head),
            } => {
                let Some(component) = self.whole.get(&head.digest).cloned() else {
                    return Err(format!(
                        "handler {name}: version {} is not in the catalog (its chunks are missing)",
                        head.digest
                    ));
                };
                if component.len() != head.size {
                    return Err(format!(
                        "handler {name}: version {} has {} bytes, its head says {}",
                        head.digest,
                        component.len(),
                        head.size
                    ));
                }
                self.heads.insert(name.clone(), head.clone());
                Ok(Some(Change::Set {
                    name,
                    entry: Entry { head, component },
                }))
            }
        }
    }

    /// Whether the catalog was set up.
    pub fn is_marked(&self) -> bool {
        self.marked
    }

    pub fn head(&self, name: &str) -> Option<&Head> {
        self.heads.get(name)
    }

    pub fn heads(&self) -> &BTreeMap<String, Head> {
        &self.heads
    }

    /// Whether a component is whole in the catalog (no need to write it).
    pub fn has_component(&self, digest: &str) -> bool {
        self.whole.contains_key(digest)
    }

    /// Whether any handler still uses `digest`.
    pub fn in_use(&self, digest: &str) -> bool {
        self.heads.values().any(|h| h.digest == digest)
    }
}

#[cfg(test)]
mod tests;
