//! The raw side: plain rust-rdkafka loops that only store offsets, with the
//! host's own consumer settings, as the ceiling the host is compared to.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientConfig, ClientContext};

use super::{BrokerKind, Run, TOPIC};
use crate::proc::CpuMeter;

/// The host's own consumer settings (`event_host::bus::consumer_config`),
/// from the same configuration the host in this run reads (its defaults, or
/// `FETCH_WAIT_MS`, `PREFETCH_KIB`... from the environment), in group
/// `group`, reading from the start. `CONSUME_RAW_PREFETCH_KIB` gives the raw
/// loops another prefetch, e.g. librdkafka's default (65536).
///
/// The raw loops read one queue for all partitions, so their prefetch is a
/// total; the host splits a queue off per partition, so its is per
/// partition.
fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let host = event_host::config::Config::defaults();
    let client = event_host::kafka_config::KafkaProperties::default().client(bootstrap);
    let mut settings = event_host::bus::ConsumerSettings::new(&host, client);
    settings.offset_reset = event_host::config::OffsetReset::Earliest;
    if let Ok(kib) = std::env::var("CONSUME_RAW_PREFETCH_KIB") {
        settings.prefetch_kib = kib.parse().expect("CONSUME_RAW_PREFETCH_KIB: KiB");
    }
    event_host::bus::consumer_config(&settings, group)
}

/// Notes when the consumer first got its partitions.
#[derive(Default)]
struct Assigned(Mutex<Option<Instant>>);

impl ClientContext for Assigned {}

impl ConsumerContext for Assigned {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.0.lock().unwrap().get_or_insert_with(Instant::now);
        }
    }
}

impl Assigned {
    fn at(&self) -> Instant {
        self.0.lock().unwrap().expect("partitions were assigned")
    }
}

/// A consumer of the topic in a fresh group, and a meter of the CPU time
/// started just before it was made.
fn subscribed<T>(bootstrap: &str) -> (T, CpuMeter)
where
    T: FromClientConfigAndContext<Assigned> + Consumer<Assigned>,
{
    let group = format!("raw-{}", uuid::Uuid::new_v4());
    let meter = CpuMeter::start(bootstrap);
    let consumer: T = consumer_config(bootstrap, &group)
        .create_with_context(Assigned::default())
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    (consumer, meter)
}

/// What a raw loop drains: `events` from the topic on `bootstrap`; a wait
/// of `patience` for an event fails the drain.
pub struct Source {
    pub broker: BrokerKind,
    pub bootstrap: String,
    pub partitions: i32,
    pub events: u64,
    pub patience: Duration,
}

/// The figures of a raw drain that has seen `seen` events of `bytes`
/// payload: timed from the partitions being assigned until now.
fn finished(
    consumer: &impl Consumer<Assigned>,
    meter: &CpuMeter,
    (from, side): (&Source, &'static str),
    (seen, bytes): (u64, u64),
) -> Run {
    let time = consumer.context().at().elapsed();
    let (cpu, broker_cpu) = meter.stop();
    let user_cpu = Some(meter.user());
    Run {
        broker: from.broker,
        side,
        partitions: from.partitions,
        idle: 0,
        events: seen,
        bytes,
        time,
        rss: None,
        cpu,
        user_cpu,
        broker_cpu,
    }
}

/// The async client the host uses, receiving and storing each offset, in a
/// fresh group.
pub async fn raw_stream_drain(from: &Source) -> Run {
    let (consumer, meter): (StreamConsumer<Assigned>, _) = subscribed(&from.bootstrap);
    let (patience, mut seen, mut bytes) = (from.patience, 0, 0);
    while seen < from.events {
        let m = tokio::time::timeout(patience, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("raw: no event for {patience:?} after {seen}"))
            .expect("consume");
        bytes += m.payload_len() as u64;
        consumer.store_offset_from_message(&m).unwrap();
        seen += 1;
    }
    finished(
        &consumer,
        &meter,
        (from, "raw StreamConsumer"),
        (seen, bytes),
    )
}

/// The synchronous client on a thread of its own: `poll` and store each
/// offset, in a fresh group.
pub fn raw_poll_drain(from: &Source) -> Run {
    let (consumer, meter): (BaseConsumer<Assigned>, _) = subscribed(&from.bootstrap);
    let (patience, mut seen, mut bytes) = (from.patience, 0, 0);
    let mut last = Instant::now();
    while seen < from.events {
        match consumer.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m.expect("consume");
                bytes += m.payload_len() as u64;
                consumer.store_offset_from_message(&m).unwrap();
                seen += 1;
                last = Instant::now();
            }
            None => assert!(
                last.elapsed() < patience,
                "raw: no event for {patience:?} after {seen}"
            ),
        }
    }
    finished(&consumer, &meter, (from, "raw BaseConsumer"), (seen, bytes))
}
