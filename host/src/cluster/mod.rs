//! Many instances as one: the handler catalog, kept in Kafka itself, and
//! the instances' announcements.
//!
//! With `CATALOG=true` the cluster's handlers live in a compacted topic
//! (`CATALOG_TOPIC`, see [`catalog`]): an upload, delete, pause or resume
//! on any instance is validated there, then written to the catalog; every
//! instance, the writer included, applies the catalog's records in their
//! order, and the writer answers once it applied its own. An instance reads
//! the catalog to its end before it reports ready, so a new one serves what
//! the cluster serves whatever its folder holds.
//!
//! Whenever the host runs on a real cluster, each instance also announces
//! what it serves on the instances topic ([`presence`]), so `GET /cluster`
//! shows whether the cluster converged, with a catalog or without one.

pub mod catalog;
pub mod presence;
mod reader;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::metrics::Source;
use crate::registry::Registry;
use crate::supervisor::{ChangeError, Changes, Uploaded};
use catalog::{Catalog, Head};
use presence::{Announcement, Instances, Served};

/// Where the running cluster is found, once it started.
pub type Slot = Arc<std::sync::OnceLock<Arc<Cluster>>>;

/// How long a write waits for this instance to apply it.
const APPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// How this instance takes part in the cluster.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This instance's id (new at every start).
    pub id: String,
    /// Where its API answers, for the others and for operators.
    pub url: String,
    /// The catalog's topic, when the catalog is on.
    pub catalog_topic: Option<String>,
    pub instances_topic: String,
    /// How often this instance announces itself.
    pub interval: Duration,
}

/// What applying one catalog record did here.
pub type Outcome = Result<Option<Uploaded>, String>;

#[derive(Default)]
struct State {
    catalog: Catalog,
    instances: Instances,
    /// Recent outcomes by catalog offset, for the writers waiting on them.
    outcomes: BTreeMap<i64, Outcome>,
}

pub struct Cluster {
    settings: Settings,
    bus: Arc<Bus>,
    registry: Arc<Registry>,
    state: Mutex<State>,
    /// The next catalog offset to apply: every record before it is applied.
    applied: watch::Sender<i64>,
    /// True once the catalog was read to the end it had at start.
    caught_up: watch::Sender<bool>,
    stop: CancellationToken,
}

impl Cluster {
    /// Creates the topics, then starts reading them and announcing this
    /// instance. `changes` applies what the catalog says.
    pub async fn start(
        settings: Settings,
        bus: Arc<Bus>,
        registry: Arc<Registry>,
        changes: Changes,
    ) -> anyhow::Result<Arc<Self>> {
        if let Some(topic) = &settings.catalog_topic {
            bus.ensure_compacted(topic).await?;
        }
        bus.ensure_compacted(&settings.instances_topic).await?;
        let cluster = Arc::new(Self {
            settings,
            bus,
            registry,
            state: Mutex::default(),
            applied: watch::channel(0).0,
            caught_up: watch::channel(false).0,
            stop: CancellationToken::new(),
        });
        let consumer = reader::consumer(&cluster).context("cannot read the cluster's topics")?;
        tokio::spawn(reader::run(cluster.clone(), consumer, changes));
        tokio::spawn(announce(cluster.clone()));
        Ok(cluster)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the handler set comes from the catalog.
    pub fn has_catalog(&self) -> bool {
        self.settings.catalog_topic.is_some()
    }

    /// This instance's id.
    pub fn id(&self) -> &str {
        &self.settings.id
    }

    /// Waits until the catalog was read to the end it had at start.
    pub async fn caught_up(&self) {
        let mut rx = self.caught_up.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Whether the catalog was ever set up (a folder seeded it).
    pub fn is_marked(&self) -> bool {
        self.lock().catalog.is_marked()
    }

    /// What the catalog says of `name`.
    pub fn head(&self, name: &str) -> Option<Head> {
        self.lock().catalog.head(name).cloned()
    }

    /// The catalog's handlers.
    pub fn heads(&self) -> BTreeMap<String, Head> {
        self.lock().catalog.heads().clone()
    }

    /// The instances heard from lately, this one included once it spoke.
    pub fn instances(&self) -> Vec<Announcement> {
        let state = self.lock();
        state
            .instances
            .live(self.settings.interval, presence::now_ms())
            .into_iter()
            .cloned()
            .collect()
    }

    fn catalog_topic(&self) -> Result<&str, ChangeError> {
        self.settings
            .catalog_topic
            .as_deref()
            .ok_or_else(|| ChangeError::Failed(anyhow::anyhow!("the catalog is off")))
    }

    /// Writes `component` (digest `digest`) as handler `name` and waits
    /// until this instance applied it.
    pub async fn put(
        &self,
        name: &str,
        component: &[u8],
        digest: &str,
        paused: bool,
    ) -> Result<Option<Uploaded>, ChangeError> {
        let topic = self.catalog_topic()?;
        let publisher = self.bus.publisher();
        let n = catalog::chunk_count(component.len());
        let (present, replaced) = {
            let state = self.lock();
            (
                state.catalog.has_component(digest),
                state.catalog.head(name).cloned(),
            )
        };
        let mut sends = Vec::new();
        if !present {
            let parts: Vec<&[u8]> = if component.is_empty() {
                vec![&[]]
            } else {
                catalog::chunks(component).collect()
            };
            for (i, part) in parts.into_iter().enumerate() {
                let key = catalog::chunk_key(digest, i, n);
                sends.push(publisher.enqueue_keyed(
                    topic,
                    key.as_bytes(),
                    Some(part),
                    Source::Catalog,
                ));
            }
        }
        let head = Head {
            digest: digest.to_string(),
            paused,
            size: component.len(),
            chunks: n,
            by: self.settings.id.clone(),
            at_ms: presence::now_ms(),
        };
        let offset = self.write_head(topic, name, Some(&head), sends).await?;
        if let Some(old) = replaced.filter(|old| old.digest != digest) {
            self.collect(topic, &old).await;
        }
        let done = self.applied(offset).await?;
        // A handler put into a catalog nobody set up yet sets it up: an
        // instance started later does not seed its folder over it.
        if !self.is_marked() {
            self.mark().await?;
        }
        Ok(done)
    }

    /// Writes `name` paused or not (the same version) and waits for it here.
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<(), ChangeError> {
        let topic = self.catalog_topic()?;
        let Some(mut head) = self.head(name) else {
            return Err(ChangeError::NotFound(name.to_string()));
        };
        head.paused = paused;
        head.by.clone_from(&self.settings.id);
        head.at_ms = presence::now_ms();
        let offset = self
            .write_head(topic, name, Some(&head), Vec::new())
            .await?;
        self.applied(offset).await.map(|_| ())
    }

    /// Deletes `name` from the catalog and waits until it is gone here.
    pub async fn delete(&self, name: &str) -> Result<(), ChangeError> {
        let topic = self.catalog_topic()?;
        let Some(old) = self.head(name) else {
            return Err(ChangeError::NotFound(name.to_string()));
        };
        let offset = self.write_head(topic, name, None, Vec::new()).await?;
        self.collect(topic, &old).await;
        self.applied(offset).await.map(|_| ())
    }

    /// Marks the catalog as set up.
    pub async fn mark(&self) -> Result<(), ChangeError> {
        let topic = self.catalog_topic()?;
        let pending = self
            .bus
            .publisher()
            .enqueue_keyed(
                topic,
                catalog::MARK.as_bytes(),
                Some(b"{}"),
                Source::Catalog,
            )
            .map_err(anyhow::Error::from)?;
        let stored = pending.acked().await.map_err(anyhow::Error::from)?;
        self.applied(stored.offset).await.map(|_| ())
    }

    /// Writes a head (a tombstone with `None`) after `before` (its chunks):
    /// the head's offset once the broker took them all.
    async fn write_head(
        &self,
        topic: &str,
        name: &str,
        head: Option<&Head>,
        before: Vec<Result<crate::bus::Pending, crate::bus::PublishError>>,
    ) -> Result<i64, ChangeError> {
        let value = head
            .map(serde_json::to_vec)
            .transpose()
            .map_err(anyhow::Error::from)?;
        let key = catalog::handler_key(name);
        let last = self.bus.publisher().enqueue_keyed(
            topic,
            key.as_bytes(),
            value.as_deref(),
            Source::Catalog,
        );
        for pending in before {
            pending
                .map_err(anyhow::Error::from)?
                .acked()
                .await
                .map_err(anyhow::Error::from)?;
        }
        let stored = last
            .map_err(anyhow::Error::from)?
            .acked()
            .await
            .map_err(anyhow::Error::from)?;
        Ok(stored.offset)
    }

    /// Tombstones the chunks of `old`'s component once no handler uses it.
    async fn collect(&self, topic: &str, old: &Head) {
        // What this instance read so far; a write racing this one on
        // another instance could still name it (see the README).
        if self.lock().catalog.in_use(&old.digest) {
            return;
        }
        for i in 0..old.chunks {
            let key = catalog::chunk_key(&old.digest, i, old.chunks);
            let sent =
                self.bus
                    .publisher()
                    .enqueue_keyed(topic, key.as_bytes(), None, Source::Catalog);
            if let Err(e) = sent {
                tracing::warn!(error = %e, digest = %old.digest, "cannot remove an unused component from the catalog");
            }
        }
    }

    /// Waits until this instance applied the catalog record at `offset`, and
    /// says what that did.
    async fn applied(&self, offset: i64) -> Result<Option<Uploaded>, ChangeError> {
        let mut rx = self.applied.subscribe();
        let waited = tokio::time::timeout(APPLY_TIMEOUT, rx.wait_for(|next| *next > offset)).await;
        match waited {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(ChangeError::ShuttingDown),
            Err(_) => {
                return Err(ChangeError::Failed(anyhow::anyhow!(
                    "written to the catalog at offset {offset}, but not applied here within {APPLY_TIMEOUT:?}"
                )));
            }
        }
        match self.lock().outcomes.remove(&offset) {
            Some(Ok(done)) => Ok(done),
            Some(Err(e)) => Err(ChangeError::Failed(anyhow::anyhow!(
                "written to the catalog, but this instance could not apply it: {e}"
            ))),
            None => Ok(None),
        }
    }

    /// Records what applying the catalog record at `offset` did.
    fn record_outcome(&self, offset: i64, outcome: Outcome) {
        let mut state = self.lock();
        state.outcomes.insert(offset, outcome);
        // Only writers waiting right now want them.
        while state.outcomes.len() > 1024 {
            state.outcomes.pop_first();
        }
        drop(state);
        self.applied.send_replace(offset + 1);
    }

    /// Stops announcing this instance and says it left.
    pub async fn stop(&self) {
        self.stop.cancel();
        let topic = &self.settings.instances_topic;
        let gone = self.bus.publisher().enqueue_keyed(
            topic,
            self.settings.id.as_bytes(),
            None,
            Source::Catalog,
        );
        if let Ok(pending) = gone {
            let _ = tokio::time::timeout(Duration::from_secs(5), pending.acked()).await;
        }
    }

    fn announcement(&self, started_at_ms: u64) -> Announcement {
        let handlers = self
            .registry
            .list()
            .into_iter()
            .map(|h| Served {
                name: h.name,
                version: h.version,
                status: h.status.as_str().to_string(),
                partitions: h.partitions,
            })
            .collect();
        Announcement {
            id: self.settings.id.clone(),
            url: self.settings.url.clone(),
            started_at_ms,
            at_ms: presence::now_ms(),
            handlers,
        }
    }
}

/// After the catalog was read at start: a catalog never set up is seeded
/// with the folder's handlers (the first instance of a cluster); otherwise
/// the catalog is what runs, and folder files that differ from it are
/// named in the log, not loaded (saving one again puts it into the
/// catalog).
pub async fn seed(
    cluster: &Cluster,
    changes: &Changes,
    files: &[std::path::PathBuf],
) -> anyhow::Result<()> {
    if !cluster.is_marked() {
        // An instance with an empty folder leaves the catalog unset, for
        // one that has handlers to seed it.
        if !files.is_empty() {
            tracing::info!(
                files = files.len(),
                "a new catalog: putting the handlers folder into it"
            );
            for file in files {
                changes.publish_file(file).await;
            }
            // (A put already set it up, unless every file was refused.)
            if !cluster.is_marked() {
                cluster.mark().await?;
            }
        }
        return Ok(());
    }
    for file in files {
        let Ok(name) = crate::registry::handler_name(file) else {
            continue;
        };
        let Ok(bytes) = tokio::fs::read(file).await else {
            continue;
        };
        let digest = crate::runtime::digest(&bytes);
        match cluster.head(&name) {
            Some(head) if head.digest == digest => {}
            Some(head) => tracing::warn!(
                handler = %name, file = %file.display(), catalog = %head.digest, folder = %digest,
                "the folder's version differs from the cluster's: the catalog's runs (save the file again, or PUT it, to roll it out)"
            ),
            None => tracing::warn!(
                handler = %name, file = %file.display(),
                "not in the cluster's catalog: not loaded (save the file again, or PUT it, to add it)"
            ),
        }
    }
    Ok(())
}

/// Announces this instance every interval until the cluster stops.
async fn announce(cluster: Arc<Cluster>) {
    let started_at_ms = presence::now_ms();
    let topic = cluster.settings.instances_topic.clone();
    loop {
        let announcement = cluster.announcement(started_at_ms);
        match serde_json::to_vec(&announcement) {
            Ok(value) => {
                let sent = cluster.bus.publisher().enqueue_keyed(
                    &topic,
                    cluster.settings.id.as_bytes(),
                    Some(&value),
                    Source::Catalog,
                );
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "cannot announce this instance");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode this instance's announcement"),
        }
        tokio::select! {
            () = cluster.stop.cancelled() => return,
            () = tokio::time::sleep(cluster.settings.interval) => {}
        }
    }
}
