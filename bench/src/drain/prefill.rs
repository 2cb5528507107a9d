//! Filling the drained topic: creating it and producing envelopes in the
//! host's format as fast as the broker takes them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};

use super::{EVENT_BYTES, TOPIC};

/// Creates the drained topic and its dead-letter topic with `partitions`
/// partitions; an existing one is used as it is.
pub async fn create_topics(bootstrap: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let dlq = format!("{TOPIC}.dlq");
    let topics = [
        NewTopic::new(TOPIC, partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&dlq, partitions, TopicReplication::Fixed(1)),
    ];
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&topics, &options).await.unwrap() {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => panic!("cannot create {topic}: {code}"),
        }
    }
}

/// An event in the host's envelope, `EVENT_BYTES` long, keyed by one of
/// 1024 users: `(key, payload, id)`.
pub fn envelope(seq: u64) -> (String, String, String) {
    let id = uuid::Uuid::new_v4().to_string();
    let user = format!("user-{}", seq % 1024);
    let head = format!(
        r#"{{"id":"{id}","type":"BENCH_EVENT","timestamp":"2026-11-26T00:00:00.000Z","userId":"{user}","data":{{"seq":{seq},"pad":""#
    );
    let tail = r#""}}"#;
    let pad = EVENT_BYTES.saturating_sub(head.len() + tail.len());
    let payload = format!("{head}{}{tail}", "x".repeat(pad));
    (user, payload, id)
}

/// Produces `events` envelopes (with the host's headers) as fast as the
/// broker takes them: up to `batch` events per record batch, no compression.
pub fn prefill(bootstrap: &str, events: u64, batch: usize) -> Duration {
    let producer: BaseProducer<Delivered> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "262144")
        .set("batch.num.messages", batch.to_string())
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", "300000")
        .create_with_context(Delivered::default())
        .unwrap();
    let started = Instant::now();
    for seq in 0..events {
        let (key, payload, id) = envelope(seq);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "eventType",
                value: Some("BENCH_EVENT"),
            })
            .insert(Header {
                key: "userId",
                value: Some(key.as_str()),
            })
            .insert(Header {
                key: "eventId",
                value: Some(id.as_str()),
            });
        let mut record = BaseRecord::to(TOPIC)
            .key(&key)
            .payload(&payload)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert_eq!(
                        e.rdkafka_error_code(),
                        Some(RDKafkaErrorCode::QueueFull),
                        "{e}"
                    );
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        if seq % 1000 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(300)).unwrap();
    let took = started.elapsed();
    let failed = producer.context().failed.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "{failed} events were not delivered");
    took
}

/// Counts events the broker did not take.
#[derive(Default)]
struct Delivered {
    failed: AtomicU64,
}

impl ClientContext for Delivered {}

impl ProducerContext for Delivered {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result
            && self.failed.fetch_add(1, Ordering::Relaxed) == 0
        {
            eprintln!("delivery failed: {e}");
        }
    }
}
