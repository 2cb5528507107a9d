//! The supervisor's handle: what the API, the folder watcher and the
//! cluster's reader ask of it, each change as a request to its task (or,
//! with the catalog on, through the catalog), and why a change was refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::bus::{LoopFailed, Redriven, ReplayFrom, Rewound};
use crate::registry;
use crate::runtime::LoadError;

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

pub(super) type Reply<T> = oneshot::Sender<Result<T, ChangeError>>;

/// What the supervisor task is asked to do, in the order asked.
pub(super) enum Request {
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
    pub(super) fn new(tx: mpsc::Sender<Request>) -> Self {
        Self { tx, cluster: None }
    }

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
