//! The gauges, read at scrape time from what the host keeps anyway: a
//! handler's calls in flight, its partitions and lag, the version it serves,
//! the producer's queue, the build.

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// One handler as a scrape sees it.
#[derive(Debug, Clone, Default)]
pub struct HandlerSnapshot {
    pub name: String,
    pub status: &'static str,
    /// The digest of the version serving events.
    pub version: Option<String>,
    pub contract: Option<&'static str>,
    /// `fresh` (a new instance per event) or `reused`.
    pub instances: &'static str,
    pub in_flight: u64,
    pub waiting_for_capacity: u64,
    pub partitions: usize,
    /// Events waiting, by `topic/partition`.
    pub lag: BTreeMap<String, u64>,
    pub handed_over_unfinished: u64,
    pub instances_created: u64,
}

/// The state of the host at a scrape.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub handlers: Vec<HandlerSnapshot>,
    /// Events the producer holds that the broker has not acknowledged.
    pub producer_queue: u64,
    pub librdkafka: String,
    /// The cluster as this instance sees it, when it takes part in one.
    pub cluster: Option<ClusterSnapshot>,
}

/// The cluster at a scrape: how many instances are live, and per handler
/// whether they all serve the same version (the catalog's, if any).
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    pub instances: usize,
    pub converged: Vec<(String, bool)>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabels {
    handler: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    handler: String,
    topic: String,
    partition: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    handler: String,
    version: String,
    contract: String,
    status: String,
    instances: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    wasmtime: String,
    librdkafka: String,
}

/// The wasmtime release the host is built with, from Cargo.lock.
const WASMTIME_VERSION: &str = env!("WASMTIME_VERSION");

impl Snapshot {
    pub(super) fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        let in_flight = Family::<HandlerLabels, Gauge>::default();
        let waiting = Family::<HandlerLabels, Gauge>::default();
        let partitions = Family::<HandlerLabels, Gauge>::default();
        let created = Family::<HandlerLabels, Counter>::default();
        let unfinished = Family::<HandlerLabels, Counter>::default();
        let lag = Family::<PartitionLabels, Gauge>::default();
        let versions = Family::<VersionLabels, Gauge>::default();
        for h in &self.handlers {
            let handler = HandlerLabels {
                handler: h.name.clone(),
            };
            in_flight.get_or_create(&handler).set(gauge(h.in_flight));
            waiting
                .get_or_create(&handler)
                .set(gauge(h.waiting_for_capacity));
            partitions
                .get_or_create(&handler)
                .set(gauge(h.partitions as u64));
            unfinished
                .get_or_create(&handler)
                .inc_by(h.handed_over_unfinished);
            created.get_or_create(&handler).inc_by(h.instances_created);
            for (key, waiting) in &h.lag {
                let (topic, partition) = key.rsplit_once('/').unwrap_or((key.as_str(), ""));
                lag.get_or_create(&PartitionLabels {
                    handler: h.name.clone(),
                    topic: topic.to_string(),
                    partition: partition.to_string(),
                })
                .set(gauge(*waiting));
            }
            if let Some(version) = &h.version {
                versions
                    .get_or_create(&VersionLabels {
                        handler: h.name.clone(),
                        version: version.clone(),
                        contract: h.contract.unwrap_or("").to_string(),
                        status: h.status.to_string(),
                        instances: h.instances.to_string(),
                    })
                    .set(1);
            }
        }
        registry.register(
            "event_host_handler_calls_in_flight",
            "Handler calls running now",
            in_flight,
        );
        registry.register(
            "event_host_handler_waiting_for_capacity",
            "Events waiting for room in the host's instance pool before their call can start",
            waiting,
        );
        registry.register(
            "event_host_handler_partitions",
            "Partitions this instance holds for the handler",
            partitions,
        );
        registry.register(
            "event_host_handed_over_unfinished",
            "Events taken but not finished when their partition was handed over: the next owner handles them again",
            unfinished,
        );
        registry.register(
            "event_host_instances_created",
            "Instances made for the handler's calls: one per call with fresh instances, fewer when reused",
            created,
        );
        registry.register(
            "event_host_consumer_lag",
            "Events waiting on a partition this instance consumes, as librdkafka last reported",
            lag,
        );
        registry.register(
            "event_host_handler_version",
            "The version serving a handler's events (value 1), with its digest, contract, status and instance mode",
            versions,
        );
        if let Some(cluster) = &self.cluster {
            let instances = Gauge::<i64>::default();
            instances.set(gauge(cluster.instances as u64));
            registry.register(
                "event_host_cluster_instances",
                "Live instances of the cluster, as this instance sees their announcements",
                instances,
            );
            let converged = Family::<HandlerLabels, Gauge>::default();
            for (name, yes) in &cluster.converged {
                converged
                    .get_or_create(&HandlerLabels {
                        handler: name.clone(),
                    })
                    .set(i64::from(*yes));
            }
            registry.register(
                "event_host_cluster_handler_converged",
                "1 when every live instance serves the handler at the same version (the catalog's, with one), paused alike; 0 during a rollout or when instances drifted apart",
                converged,
            );
        }
        let queue = Gauge::<i64>::default();
        queue.set(gauge(self.producer_queue));
        registry.register(
            "event_host_producer_queue_messages",
            "Events the producer holds that the broker has not acknowledged yet",
            queue,
        );
        registry.register(
            "event_host_build",
            "The host's build",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                wasmtime: WASMTIME_VERSION.to_string(),
                librdkafka: self.librdkafka.clone(),
            }),
        );
        registry
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
