//! Reads the cluster's topics: the catalog from its start, applying each
//! handler change through the supervisor in the catalog's order, and the
//! instances' latest announcements.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::catalog::{Change, Record};
use super::presence::Announcement;
use super::{Cluster, Outcome};
use crate::supervisor::Changes;

/// Announcements read back at start: enough to see every live instance.
const RECENT_ANNOUNCEMENTS: i64 = 500;

/// A consumer of the catalog (from its start) and the instances topic
/// (its recent end), in no group: nothing is committed.
pub fn consumer(cluster: &Cluster) -> anyhow::Result<StreamConsumer> {
    let settings = &cluster.settings;
    let consumer: StreamConsumer = cluster
        .bus
        .client_config()
        .set("group.id", format!("event-host-cluster-{}", settings.id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // Changes reach every instance soon, whatever the broker holds a
        // fetch for.
        .set("fetch.wait.max.ms", "100")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    if let Some(topic) = &settings.catalog_topic {
        assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    }
    assignment.add_partition_offset(
        &settings.instances_topic,
        0,
        Offset::OffsetTail(RECENT_ANNOUNCEMENTS),
    )?;
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Reads until the cluster stops.
pub async fn run(cluster: Arc<Cluster>, consumer: StreamConsumer, changes: Changes) {
    let end = match &cluster.settings.catalog_topic {
        Some(topic) => catalog_end(&consumer, topic).await,
        None => 0,
    };
    if end == 0 {
        cluster.caught_up.send_replace(true);
    }
    loop {
        let message = tokio::select! {
            () = cluster.stop.cancelled() => return,
            m = consumer.recv() => m,
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "reading the cluster's topics failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if Some(message.topic()) == cluster.settings.catalog_topic.as_deref() {
            let offset = message.offset();
            let outcome = apply(&cluster, &changes, &message).await;
            if let Err(e) = &outcome {
                tracing::error!(offset, error = %e, "a catalog record could not be applied here");
            }
            cluster.record_outcome(offset, outcome);
            if offset + 1 >= end {
                cluster.caught_up.send_replace(true);
            }
        } else {
            announced(&cluster, &message);
        }
    }
}

/// Where the catalog ends now (retrying until the broker says).
async fn catalog_end(consumer: &StreamConsumer, topic: &str) -> i64 {
    loop {
        let end = tokio::task::block_in_place(|| {
            consumer.fetch_watermarks(topic, 0, Duration::from_secs(10))
        });
        match end {
            Ok((_, high)) => return high,
            Err(e) => {
                tracing::warn!(error = %e, "cannot find the catalog's end; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn apply(cluster: &Cluster, changes: &Changes, message: &BorrowedMessage<'_>) -> Outcome {
    let Some(key) = message.key() else {
        return Err("a record without a key".into());
    };
    let record = Record::decode(key, message.payload())?;
    let change = cluster.lock().catalog.apply(record)?;
    let Some(change) = change else {
        return Ok(None);
    };
    let name = match &change {
        Change::Set { name, .. } | Change::Removed { name } => name.clone(),
    };
    changes
        .apply_catalog(change)
        .await
        .map_err(|e| format!("handler {name}: {e}"))
}

fn announced(cluster: &Cluster, message: &BorrowedMessage<'_>) {
    let Some(id) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
        return;
    };
    let announcement = match message.payload() {
        None => None,
        Some(value) => match serde_json::from_slice::<Announcement>(value) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::debug!(error = %e, "an announcement that is not one");
                return;
            }
        },
    };
    cluster.lock().instances.apply(id, announcement);
}
