//! `GET /cluster`: the instances of this cluster and what each serves, so
//! an operator sees whether a rollout converged; and, per handler, the
//! summary `GET /handlers/:name` carries.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use crate::cluster::Cluster;
use crate::cluster::presence::{self, Announcement};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// This instance's id.
    instance: String,
    /// The catalog's topic; none when each instance loads its own folder.
    catalog: Option<String>,
    /// Every live instance serves the same handlers at the same versions
    /// (the catalog's, when there is one), paused alike.
    converged: bool,
    instances: Vec<InstanceView>,
    handlers: Vec<HandlerClusterView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InstanceView {
    id: String,
    url: String,
    /// This is the instance answering.
    this: bool,
    /// Milliseconds since it last announced itself (by its clock).
    last_seen_ms: u64,
    started_at_ms: u64,
    handlers: Vec<ServedView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServedView {
    name: String,
    version: Option<String>,
    status: String,
    partitions: usize,
}

/// One handler across the cluster.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlerClusterView {
    name: String,
    /// The catalog's version of it, if there is a catalog.
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    paused: Option<bool>,
    /// Which instances serve which version (`none`: none could load).
    versions: BTreeMap<String, Vec<String>>,
    /// Live instances that do not serve it at all.
    missing_on: Vec<String>,
    /// Partitions held, over every instance.
    partitions: usize,
    /// Every live instance serves the same version (the catalog's).
    converged: bool,
}

/// `GET /cluster`.
pub async fn cluster(State(app): State<AppState>) -> Result<Json<ClusterView>, ApiError> {
    let cluster = app.cluster().ok_or_else(|| {
        ApiError::NotFound(
            "this instance is not in a cluster: it runs on the embedded broker (set KAFKA_BROKERS)"
                .into(),
        )
    })?;
    Ok(Json(view(cluster)))
}

fn view(cluster: &Cluster) -> ClusterView {
    let instances = cluster.instances();
    let handlers = handler_views(cluster, &instances);
    let converged = handlers.iter().all(|h| h.converged);
    let now = presence::now_ms();
    ClusterView {
        instance: cluster.id().to_string(),
        catalog: cluster.settings().catalog_topic.clone(),
        converged,
        instances: instances
            .into_iter()
            .map(|a| InstanceView {
                this: a.id == cluster.id(),
                last_seen_ms: now.saturating_sub(a.at_ms),
                started_at_ms: a.started_at_ms,
                handlers: a
                    .handlers
                    .into_iter()
                    .map(|h| ServedView {
                        name: h.name,
                        version: h.version,
                        status: h.status,
                        partitions: h.partitions,
                    })
                    .collect(),
                id: a.id,
                url: a.url,
            })
            .collect(),
        handlers,
    }
}

/// The cluster for `GET /metrics`.
pub fn snapshot(cluster: &Cluster) -> crate::metrics::ClusterSnapshot {
    let instances = cluster.instances();
    crate::metrics::ClusterSnapshot {
        converged: handler_views(cluster, &instances)
            .into_iter()
            .map(|h| (h.name, h.converged))
            .collect(),
        instances: instances.len(),
    }
}

/// `name` across the cluster, for `GET /handlers/:name`.
pub fn handler(cluster: &Cluster, name: &str) -> Option<HandlerClusterView> {
    let instances = cluster.instances();
    handler_views(cluster, &instances)
        .into_iter()
        .find(|h| h.name == name)
}

fn handler_views(cluster: &Cluster, instances: &[Announcement]) -> Vec<HandlerClusterView> {
    let heads = cluster.heads();
    let mut names: BTreeSet<String> = heads.keys().cloned().collect();
    for a in instances {
        names.extend(a.handlers.iter().map(|h| h.name.clone()));
    }
    names
        .into_iter()
        .map(|name| {
            let head = heads.get(&name);
            let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut missing_on = Vec::new();
            let mut partitions = 0;
            let mut paused_alike = true;
            for a in instances {
                match a.handlers.iter().find(|h| h.name == name) {
                    Some(h) => {
                        let version = h.version.clone().unwrap_or_else(|| "none".into());
                        versions.entry(version).or_default().push(a.id.clone());
                        partitions += h.partitions;
                        if let Some(head) = head {
                            paused_alike &= (h.status == "paused") == head.paused;
                        }
                    }
                    None => missing_on.push(a.id.clone()),
                }
            }
            let one_version = versions.len() <= 1;
            let served_as_catalog = match head {
                Some(head) => versions.keys().all(|v| *v == head.digest),
                // Not in the catalog (or no catalog): served nowhere, if
                // there is a catalog; the same everywhere, if not.
                None => !cluster.has_catalog() || versions.is_empty(),
            };
            let present = match head {
                Some(_) => missing_on.is_empty(),
                None => missing_on.is_empty() || versions.is_empty(),
            };
            HandlerClusterView {
                converged: one_version && served_as_catalog && present && paused_alike,
                catalog_version: head.map(|h| h.digest.clone()),
                paused: head.map(|h| h.paused),
                name,
                versions,
                missing_on,
                partitions,
            }
        })
        .collect()
}
