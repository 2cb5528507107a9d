//! The JSON shapes of the handler routes: what `GET /handlers` and the
//! change routes answer. The wire format lives here only; the registry,
//! runtime and bus know nothing of it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use crate::bus::{Redriven, Rewound};
use crate::registry::{HandlerInfo, Status};
use crate::runtime::{Contract, Format, Instances, RetryPolicy};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlerView {
    pub name: String,
    pub status: &'static str,
    /// Where its versions come from: `folder` (its file here) or
    /// `catalog` (the cluster's catalog topic).
    pub source: &'static str,
    /// Its file in the handlers folder (none with the catalog).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// SHA-256 of the component serving events.
    pub version: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub loaded_at: Option<SystemTime>,
    /// The WIT world it targets, e.g. `event-host:handler@0.2.0`.
    pub contract: Option<&'static str>,
    pub subscriptions: Vec<SubscriptionView>,
    /// It declared that it keeps no state between events.
    pub stateless: bool,
    /// `reused` (one instance per partition, kept between events) or
    /// `fresh` (a new instance per event).
    pub instances: Option<&'static str>,
    /// The handler's own retry policy; none means the host's defaults.
    pub retry: Option<RetryView>,
    pub stats: StatsView,
    pub last_error: Option<String>,
    /// This handler across the cluster's instances (on a real cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<super::cluster::HandlerClusterView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub topic: String,
    /// `envelope` (the host's JSON events) or `raw` (any bytes).
    pub format: &'static str,
    /// Empty means every event type; raw subscriptions are not filtered.
    pub event_types: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryView {
    pub max_attempts: u32,
    /// Milliseconds before the first retry.
    pub backoff: u128,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsView {
    pub handled: u64,
    pub failed: u64,
    pub skipped: u64,
    pub dead_lettered: u64,
    pub in_flight: u64,
    pub waiting_for_capacity: u64,
    /// Events left unfinished to a partition's next owner at hand-overs
    /// (revocations, stops): at most these are handled twice.
    pub handed_over_unfinished: u64,
    /// Instances made for its calls (fewer than calls when reused).
    pub instances_created: u64,
    /// Partitions this instance holds.
    pub partitions: usize,
    /// Events waiting on this instance's partitions, as of the consumer's
    /// last report; none before the first report and without a consumer.
    pub lag: Option<u64>,
    pub lag_by_partition: BTreeMap<String, u64>,
}

pub fn status(s: Status) -> &'static str {
    s.as_str()
}

impl From<RetryPolicy> for RetryView {
    fn from(r: RetryPolicy) -> Self {
        Self {
            max_attempts: r.max_attempts,
            backoff: r.backoff.as_millis(),
        }
    }
}

impl From<HandlerInfo> for HandlerView {
    fn from(h: HandlerInfo) -> Self {
        let subscriptions = h
            .subscription
            .as_ref()
            .map(|s| {
                s.topics
                    .iter()
                    .map(|t| match s.format(t.as_str()) {
                        Format::Envelope => SubscriptionView {
                            topic: t.to_string(),
                            format: "envelope",
                            event_types: s.event_types.iter().cloned().collect(),
                        },
                        Format::Raw => SubscriptionView {
                            topic: t.to_string(),
                            format: "raw",
                            event_types: Vec::new(),
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        let lag_by_partition = h.lag.clone().unwrap_or_default();
        Self {
            name: h.name,
            status: status(h.status),
            source: "folder",
            file: Some(h.file),
            version: h.version,
            loaded_at: h.loaded_at,
            contract: h.contract.map(Contract::name),
            subscriptions,
            stateless: h.subscription.as_ref().is_some_and(|s| s.stateless),
            instances: h.instances.map(Instances::as_str),
            retry: h.subscription.and_then(|s| s.retry).map(RetryView::from),
            stats: StatsView {
                handled: h.counts.handled,
                failed: h.counts.failed,
                skipped: h.counts.skipped,
                dead_lettered: h.counts.dead_lettered,
                in_flight: h.counts.in_flight,
                waiting_for_capacity: h.counts.waiting_for_capacity,
                handed_over_unfinished: h.counts.handed_over_unfinished,
                instances_created: h.counts.instances_created,
                partitions: h.partitions,
                lag: h.lag.as_ref().map(|l| l.values().sum()),
                lag_by_partition,
            },
            last_error: h.last_error,
            cluster: None,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayView {
    pub name: String,
    pub partitions: Vec<RewoundView>,
}

#[derive(Debug, Serialize)]
pub struct RewoundView {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl From<Rewound> for RewoundView {
    fn from(r: Rewound) -> Self {
        Self {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveView {
    pub name: String,
    pub redriven: u64,
    pub passed_over: u64,
}

impl RedriveView {
    pub fn new(name: String, r: Redriven) -> Self {
        Self {
            name,
            redriven: r.redriven,
            passed_over: r.passed_over,
        }
    }
}

fn rfc3339<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string()),
        None => s.serialize_none(),
    }
}
