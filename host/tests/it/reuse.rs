//! Instance reuse seen from outside, on the embedded broker: the counting
//! handler publishes how many events its instance has handled. With fresh
//! instances that is always 1; reused, it grows, and a new instance (count
//! 1 again) follows a trap, a failure, a timeout, a new version, the event
//! limit and memory grown past its share.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{TestHost, config, read_until, temp_handlers_dir, test_component};
use event_host::Config;

/// A host with the counting handler as `counter` (and next-world, which
/// declares itself stateless, as `next`), settings changed by `tune`.
async fn counting_host(test: &str, tune: impl FnOnce(&mut Config)) -> TestHost {
    let dir = temp_handlers_dir(test);
    std::fs::copy(test_component("counting-handler"), dir.join("counter.wasm")).unwrap();
    std::fs::copy(test_component("next-world"), dir.join("next.wasm")).unwrap();
    let mut c = config(&dir, None);
    // One partition, one lane: every event sees the same kept instance.
    c.topic_partitions = 1;
    c.handler_timeout_ms = 300;
    tune(&mut c);
    TestHost::start(c).await
}

fn reuse_counter(c: &mut Config) {
    c.reuse_instances = vec!["counter".into()];
}

/// Sends `counts` events with these actions, numbered from `first`.
async fn send(host: &TestHost, first: u64, actions: &[(&str, Value)]) {
    for (n, (action, extra)) in actions.iter().enumerate() {
        let mut data = json!({"action": action, "seq": first + n as u64});
        if let (Some(data), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
            data.extend(extra.clone());
        }
        let body = json!({"type": "COUNT", "userId": "one-lane", "data": data});
        let (status, event) = host.post("/events/counts", &body).await;
        assert_eq!(status, 201, "{event}");
    }
}

fn count() -> (&'static str, Value) {
    ("count", json!({}))
}

/// The count published for each `seq`, once `n` have been published.
async fn counts(host: &TestHost, n: usize) -> Vec<u64> {
    let bootstrap = host.bootstrap().await;
    let seen = read_until(&bootstrap, "counts-out", &format!("{n} counts"), |s| {
        s.len() >= n
    })
    .await;
    let by_seq: BTreeMap<u64, u64> = seen
        .iter()
        .map(|m| {
            let data = &m.value["data"];
            (
                data["seq"].as_u64().unwrap(),
                data["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_seq.len(), n, "one count per event: {seen:#?}");
    by_seq.into_values().collect()
}

async fn metrics(host: &TestHost) -> String {
    let r = host.http.get(host.url("/metrics")).send().await.unwrap();
    r.text().await.unwrap()
}

/// The `instances` label of a handler's version gauge.
fn instances_label(metrics: &str, handler: &str) -> Option<String> {
    let line = metrics.lines().find(|l| {
        l.starts_with("event_host_handler_version{")
            && l.contains(&format!("handler=\"{handler}\""))
    })?;
    let rest = line.split("instances=\"").nth(1)?;
    Some(rest.split('"').next()?.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_instances_see_one_event_each_unless_a_handler_declares_it_stateless() {
    let host = counting_host("reuse-fresh", |_| {}).await;
    send(&host, 0, &[count(), count(), count(), count()]).await;
    assert_eq!(counts(&host, 4).await, [1, 1, 1, 1]);

    let (_, counter) = host.get("/handlers/counter").await;
    assert_eq!(
        (&counter["instances"], &counter["stateless"]),
        (&json!("fresh"), &json!(false))
    );
    assert_eq!(counter["stats"]["instancesCreated"], 4, "{counter}");
    let (_, next) = host.get("/handlers/next").await;
    assert_eq!(
        (&next["instances"], &next["stateless"]),
        (&json!("reused"), &json!(true))
    );
    let metrics = metrics(&host).await;
    assert_eq!(
        instances_label(&metrics, "counter").as_deref(),
        Some("fresh")
    );
    assert_eq!(instances_label(&metrics, "next").as_deref(), Some("reused"));
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_instance_keeps_its_globals_until_it_traps() {
    let host = counting_host("reuse-trap", reuse_counter).await;
    send(&host, 0, &[count(), count(), count()]).await;
    assert_eq!(counts(&host, 3).await, [1, 2, 3]);

    // Each of its 3 attempts traps; the event after it gets a new instance.
    send(&host, 3, &[("trap", json!({})), count(), count()]).await;
    host.wait_for_handler("counter", "dead-letter the trap", |h| {
        h["stats"]["deadLettered"] == 1
    })
    .await;
    assert_eq!(counts(&host, 5).await, [1, 2, 3, 1, 2]);

    // Instances: the first (its fourth event is the trap's first attempt),
    // one per attempt after that, one after the trap.
    let (_, counter) = host.get("/handlers/counter").await;
    assert_eq!(counter["instances"], "reused", "{counter}");
    assert_eq!(counter["stats"]["instancesCreated"], 1 + 2 + 1, "{counter}");
    let metrics = metrics(&host).await;
    assert_eq!(
        instances_label(&metrics, "counter").as_deref(),
        Some("reused")
    );
    assert!(
        metrics.contains(r#"event_host_instances_created_total{handler="counter"} 4"#),
        "{metrics}"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_or_a_timeout_replaces_the_reused_instance() {
    let host = counting_host("reuse-failure", reuse_counter).await;
    // The retry after a failed (or stopped) first attempt is a new
    // instance's first event.
    let events = [
        count(),
        count(),
        ("fail-once", json!({})),
        count(),
        ("stall-once", json!({})),
        count(),
    ];
    send(&host, 0, &events).await;
    assert_eq!(counts(&host, 6).await, [1, 2, 1, 2, 1, 2]);
    let (_, counter) = host.get("/handlers/counter").await;
    assert_eq!(counter["stats"]["failed"], 2, "{counter}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_instance_gets_a_deadline_per_call() {
    let host = counting_host("reuse-deadline", reuse_counter).await;
    send(&host, 0, &[count()]).await;
    assert_eq!(counts(&host, 1).await, [1]);
    // Past the first call's deadline (300 ms), a call of 150 ms on the same
    // instance still has its own 300 ms.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    send(&host, 1, &[("spin", json!({"ms": 150}))]).await;
    assert_eq!(counts(&host, 2).await, [1, 2]);
    let (_, counter) = host.get("/handlers/counter").await;
    assert_eq!(counter["stats"]["failed"], 0, "{counter}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn isolation_wins_over_reuse_and_over_stateless() {
    let host = counting_host("reuse-isolated", |c| {
        reuse_counter(c);
        c.isolate_instances = vec!["counter".into(), "next".into()];
    })
    .await;
    send(&host, 0, &[count(), count(), count()]).await;
    assert_eq!(counts(&host, 3).await, [1, 1, 1]);
    for name in ["counter", "next"] {
        let (_, h) = host.get(&format!("/handlers/{name}")).await;
        assert_eq!(h["instances"], "fresh", "{h}");
    }
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_instance_is_replaced_after_its_event_limit() {
    let host = counting_host("reuse-limit", |c| {
        reuse_counter(c);
        c.reuse_max_events = 3;
    })
    .await;
    send(&host, 0, &std::array::from_fn::<_, 7, _>(|_| count())).await;
    assert_eq!(counts(&host, 7).await, [1, 2, 3, 1, 2, 3, 1]);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_instance_whose_memory_grew_past_its_share_is_replaced() {
    let host = counting_host("reuse-memory", |c| {
        reuse_counter(c);
        c.handler_memory_mb = 16;
        c.reuse_max_memory_percent = 50;
    })
    .await;
    // 3 MiB more stays under 8 MiB of the 16; 6 more goes past it.
    let events = [
        count(),
        ("grow", json!({"mib": 3})),
        count(),
        ("grow", json!({"mib": 6})),
        count(),
        count(),
    ];
    send(&host, 0, &events).await;
    assert_eq!(counts(&host, 6).await, [1, 2, 3, 4, 1, 2]);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_version_gets_a_new_instance() {
    let host = counting_host("reuse-version", reuse_counter).await;
    send(&host, 0, &[count(), count()]).await;
    assert_eq!(counts(&host, 2).await, [1, 2]);

    let (_, before) = host.get("/handlers/counter").await;
    let built = std::fs::read(test_component("counting-handler")).unwrap();
    let next = crate::support::variant(&built, 1);
    let digest = event_host::runtime::digest(&next);
    assert_ne!(before["version"], digest.as_str());
    // The same behaviour, a new digest: written as `cp` would.
    std::fs::write(before["file"].as_str().unwrap(), &next).unwrap();
    host.wait_for_handler("counter", "serve the new version", |h| {
        h["version"] == digest.as_str() && h["status"] == "running"
    })
    .await;
    send(&host, 2, &[count(), count()]).await;
    assert_eq!(counts(&host, 4).await, [1, 2, 1, 2]);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_instance_left_idle_is_dropped() {
    let host = counting_host("reuse-idle", |c| {
        reuse_counter(c);
        c.reuse_idle_ms = 300;
    })
    .await;
    send(&host, 0, &[count(), count()]).await;
    assert_eq!(counts(&host, 2).await, [1, 2]);
    // Well past the idle time: the next event finds no kept instance.
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    send(&host, 2, &[count(), count()]).await;
    assert_eq!(counts(&host, 4).await, [1, 2, 1, 2]);
    let stats = host.stats("counter").await;
    assert_eq!(stats["instancesCreated"], 2, "{stats}");
    host.stop().await;
}
