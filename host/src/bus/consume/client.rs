//! The librdkafka settings of a handler's consumer, in one place: the host
//! uses them, and the consume benchmark's raw loop uses the same ones.

use rdkafka::ClientConfig;

use super::ConsumerSettings;

/// The consumer settings of consumer group `group`.
pub fn consumer_config(settings: &ConsumerSettings, group: &str) -> ClientConfig {
    let mut config = settings.client.clone();
    if config.get("client.id").is_none() {
        config.set("client.id", format!("event-host-{group}"));
    }
    config
        .set("group.id", group)
        // Offsets are stored by the loop once an event is done, committed
        // by librdkafka every second, and committed synchronously whenever
        // the loop gives partitions up.
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", settings.offset_reset.as_str())
        .set("enable.partition.eof", "false")
        .set(
            "session.timeout.ms",
            settings.session_timeout.as_millis().to_string(),
        )
        .set(
            "fetch.wait.max.ms",
            settings.fetch_wait.as_millis().to_string(),
        )
        // Per partition, since every partition has its own queue.
        .set(
            "queued.max.messages.kbytes",
            settings.prefetch_kib.max(1).to_string(),
        )
        // A full queue postpones that partition's next fetch by this much
        // (librdkafka's default, 1 s, lets a fast lane run dry).
        .set("fetch.queue.backoff.ms", "10")
        .set(
            "statistics.interval.ms",
            settings.lag_interval.as_millis().to_string(),
        );
    config
}
