//! The broker a case drains: a tansu process, or the embedded mock
//! cluster inside an in-process host; the topic created and pre-filled.

use std::path::PathBuf;

use event_host_bench::drain::prefill::{create_topics, prefill};
use event_host_bench::drain::{BrokerKind, TOPIC};

use crate::support::{self, Tansu, TestHost, config, temp_handlers_dir};

/// A broker with the topic pre-filled.
pub(crate) enum Broker {
    Tansu(Tansu),
    Embedded {
        host: TestHost,
        dir: PathBuf,
        bootstrap: String,
    },
}

impl Broker {
    pub(crate) fn kind(&self) -> BrokerKind {
        match self {
            Broker::Tansu(_) => BrokerKind::Tansu,
            Broker::Embedded { .. } => BrokerKind::Embedded,
        }
    }

    pub(crate) fn bootstrap(&self) -> String {
        match self {
            Broker::Tansu(t) => t.bootstrap.clone(),
            Broker::Embedded { bootstrap, .. } => bootstrap.clone(),
        }
    }

    /// Starts the broker, creates the topic with `partitions` partitions
    /// and fills it with `events` events.
    pub(crate) async fn start(kind: BrokerKind, partitions: i32, events: u64) -> Self {
        let (broker, already) = match kind {
            BrokerKind::Tansu => {
                let tansu = Tansu::start();
                create_topics(&tansu.bootstrap, partitions).await;
                (Broker::Tansu(tansu), 0)
            }
            BrokerKind::Embedded => {
                let dir = temp_handlers_dir(&format!("bench-consume-embedded-p{partitions}"));
                let mut c = config(&dir, None);
                c.topic_partitions = partitions;
                let host = TestHost::start(c).await;
                // The mock broker does not answer CreateTopics: the host
                // creates the topic (with `partitions`) for its first event.
                let (status, body) = host
                    .post(
                        &format!("/events/{TOPIC}"),
                        &serde_json::json!({"type": "BENCH_EVENT", "data": {"seq": -1}}),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
                let bootstrap = host.bootstrap().await;
                let broker = Broker::Embedded {
                    host,
                    dir,
                    bootstrap,
                };
                (broker, 1)
            }
        };
        let bootstrap = broker.bootstrap();
        // tansu 0.6's memory engine answers a fetch from an offset inside a
        // record batch with the *next* batch (the rest of the batch is
        // skipped), and reports the last batch's base offset + 1 as the
        // high watermark. The host pauses a partition whose lane falls
        // behind and fetches again from its position when resuming, which
        // must not land inside a batch: one event per batch on tansu.
        let batch = match kind {
            BrokerKind::Tansu => 1,
            BrokerKind::Embedded => 1_000,
        };
        let took =
            tokio::task::spawn_blocking(move || prefill(&bootstrap, events - already, batch))
                .await
                .unwrap();
        let stored = support::message_count(&broker.bootstrap(), TOPIC).await;
        assert_eq!(stored, events as i64, "the topic holds every event");
        println!(
            "{kind:?}, {partitions} partitions: pre-filled {events} events in {:.1} s ({:.0} events/s, {batch} per batch)",
            took.as_secs_f64(),
            events as f64 / took.as_secs_f64()
        );
        broker
    }
}
