//! The notification reader: a consumer of the welcome topic, outside any
//! group, that hands each welcome to the chains with its timestamps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

use super::chains::Notified;
use super::http::{Shared, time};
use super::lock;

/// The user a welcome notification is for, and when it was sent, from the
/// event envelope `{"type": "NOTIFICATION_SENT", "userId", "data": {"type":
/// "welcome", "userId", "sentAt"}}` (both the host's and the demo's). `None`
/// for any other message.
fn welcomed_user(payload: &[u8]) -> Option<(String, Option<SystemTime>)> {
    let event: Value = serde_json::from_slice(payload).ok()?;
    if event.get("type")?.as_str()? != "NOTIFICATION_SENT" {
        return None;
    }
    let data = event.get("data")?;
    if data.get("type")?.as_str()? != "welcome" {
        return None;
    }
    let user = data
        .get("userId")
        .or_else(|| event.get("userId"))?
        .as_str()?;
    Some((user.to_string(), time(data.get("sentAt"))))
}

/// Counts of what the notification reader could not use.
#[derive(Default)]
pub(super) struct ReaderStats {
    pub(super) kafka_errors: AtomicU64,
    pub(super) not_welcome: AtomicU64,
    pub(super) last_error: Mutex<Option<String>>,
}

/// A consumer of every partition of `topic`, assigned at the current end:
/// no consumer group to join and nothing committed, and only notifications
/// published from now on are read.
pub(super) fn notification_reader(
    brokers: &str,
    topic: &str,
    run: &str,
    fetch_wait_ms: u32,
) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("loadgen-{run}"))
        .set("client.id", "loadgen")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // The reader is a stopwatch: its fetch wait counts as chain latency.
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .set("fetch.error.backoff.ms", "10")
        .create()
        .context("cannot create the Kafka consumer")?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("cannot read the metadata of {topic} from {brokers}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("topic {topic} does not exist on {brokers}: start the server first (it creates it)");
    }
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .with_context(|| format!("cannot read the end offset of {topic}/{p}"))?;
        assignment.add_partition_offset(topic, p, Offset::Offset(high))?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Reads notifications until `stop`, stamping each as it is handed over.
pub(super) fn read_notifications(
    consumer: BaseConsumer,
    shared: Arc<Shared>,
    stats: Arc<ReaderStats>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => {
                stats.kafka_errors.fetch_add(1, Ordering::Relaxed);
                *lock(&stats.last_error) = Some(e.to_string());
            }
            Some(Ok(message)) => {
                let at = Instant::now();
                let published = message
                    .timestamp()
                    .to_millis()
                    .and_then(|ms| u64::try_from(ms).ok())
                    .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
                match message.payload().and_then(welcomed_user) {
                    Some((user, sent)) => {
                        let n = Notified {
                            at,
                            sent,
                            published,
                        };
                        shared.chains.arrived(user, n);
                    }
                    None => {
                        stats.not_welcome.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}
