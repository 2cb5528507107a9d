//! Redrive: re-injects a handler's dead letters into the topics they came
//! from, for that handler only.
//!
//! The letters of handler `NAME` on `<topic>.dlq` are read from where the
//! last redrive stopped (consumer group `NAME.redrive`) up to the end of the
//! topic as it was when the redrive began, and republished to `<topic>`
//! unchanged, with the `dlq.*` headers dropped and `redrive.handler: NAME`
//! added. Other handlers of that topic skip them; `NAME` handles them like
//! any event (and dead-letters them again if they still fail). The redrive
//! group's offsets are committed only after every letter was republished,
//! so a letter is redriven at least once, and not again by a later redrive.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::Bus;
use crate::event::Topic;
use crate::metrics::Source;

/// The header that marks a redriven event, naming its one handler.
pub const HEADER: &str = "redrive.handler";
const TIMEOUT: Duration = Duration::from_secs(10);

/// What a redrive did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// Letters of this handler re-injected.
    pub redriven: u64,
    /// Letters of other handlers passed over.
    pub passed_over: u64,
}

/// Redrives the dead letters of `handler` from the dead-letter topics of
/// `topics`.
pub async fn redrive(bus: &Bus, handler: &str, topics: &[Topic]) -> anyhow::Result<Redriven> {
    bus.ensure_topics(topics).await?;
    let consumer: BaseConsumer = bus
        .client_config()
        .set("group.id", format!("{handler}.redrive"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("cannot create the redrive consumer")?;
    let dead_letter_topics: Vec<Topic> = topics.iter().map(Topic::dead_letters).collect();
    let (start, end) = {
        let consumer = &consumer;
        tokio::task::block_in_place(|| range(consumer, &dead_letter_topics))?
    };
    let mut report = Redriven::default();
    if start.count() == 0 {
        return Ok(report);
    }
    consumer.assign(&start)?;
    let mut left: Vec<(String, i32, i64)> = end
        .elements()
        .iter()
        .filter_map(
            |e| match (e.offset(), start.find_partition(e.topic(), e.partition())) {
                (Offset::Offset(end), Some(s)) if Some(end) > s.offset().to_raw() => {
                    Some((e.topic().to_string(), e.partition(), end))
                }
                _ => None,
            },
        )
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !left.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "redrive timed out reading {left:?}"
        );
        let Some(message) =
            tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(200)))
        else {
            continue;
        };
        let message = message?;
        let (topic, partition, offset) = (
            message.topic().to_string(),
            message.partition(),
            message.offset(),
        );
        if let Some(i) = left
            .iter()
            .position(|(t, p, _)| *t == topic && *p == partition)
        {
            if offset + 1 >= left[i].2 {
                left.remove(i);
            }
        } else {
            continue;
        }
        let mut original = None;
        let mut mine = false;
        let mut headers = OwnedHeaders::new();
        if let Some(hs) = message.headers() {
            for h in hs.iter() {
                match h.key {
                    "dlq.handler" => mine = h.value == Some(handler.as_bytes()),
                    "dlq.topic" => {
                        original = h.value.map(|v| String::from_utf8_lossy(v).into_owned())
                    }
                    key if key.starts_with("dlq.") || key == HEADER => {}
                    key => {
                        headers = headers.insert(Header {
                            key,
                            value: h.value,
                        });
                    }
                }
            }
        }
        let Some(original) = original.filter(|_| mine) else {
            report.passed_over += 1;
            continue;
        };
        let headers = headers.insert(Header {
            key: HEADER,
            value: Some(handler),
        });
        bus.publisher()
            .send(
                &original,
                message.key(),
                message.payload().unwrap_or_default(),
                headers,
                Source::Redrive,
            )
            .await?;
        report.redriven += 1;
    }
    tokio::task::block_in_place(|| consumer.commit(&end, CommitMode::Sync))
        .context("cannot record how far the redrive got")?;
    bus.metrics().redriven(handler, report.redriven);
    tracing::info!(handler, ?report, "dead letters redriven");
    Ok(report)
}

/// For each partition of the dead-letter topics: where the last redrive
/// stopped (or the start), and the end now.
fn range(
    consumer: &BaseConsumer,
    topics: &[Topic],
) -> anyhow::Result<(TopicPartitionList, TopicPartitionList)> {
    let mut all = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic.as_str()), TIMEOUT)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                all.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(all.clone(), TIMEOUT)?;
    let mut start = TopicPartitionList::new();
    let mut end = TopicPartitionList::new();
    for e in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), TIMEOUT)?;
        let from = match e.offset() {
            Offset::Offset(o) => o.max(low),
            _ => low,
        };
        start.add_partition_offset(e.topic(), e.partition(), Offset::Offset(from))?;
        end.add_partition_offset(e.topic(), e.partition(), Offset::Offset(high))?;
    }
    Ok((start, end))
}
