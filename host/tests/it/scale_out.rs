//! Scaling out against a real broker process (tansu): hosts with the same
//! handlers share each handler's consumer group (it is named after the
//! handler). A second instance that joins mid-stream takes part of the
//! partitions, the first one leaving cleanly (SIGTERM) hands its partitions
//! to the second, and no event is lost on the way (duplicates are allowed:
//! delivery is at least once).
//!
//! What tansu 0.6 does: the joining member's JoinGroup is held until the
//! old member rejoins at its next heartbeat (librdkafka's, every 3 s), then
//! the partitions are split between the two (2 and 1). A member leaving
//! cleanly starts a rebalance that the remaining one notices at its next
//! heartbeat, up to 3 s later, when it takes every partition; until then the
//! leaver's partitions wait. (A killed member is another story: see
//! resilience.rs.)

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::{
    self, HostProcess, Tansu, echoes_of, produce_while, read_until, temp_handlers_dir,
};

const PARTITIONS: usize = 3;

/// A host with the echo handler (it republishes each `faults` event's data
/// to `faults-out`), in its own handlers folder, ready to consume.
fn echo_host(broker: &Tansu, name: &str) -> HostProcess {
    let dir = temp_handlers_dir(name);
    let echo = support::test_component("fault-handler");
    std::fs::copy(echo, dir.join("echo.wasm")).unwrap();
    let mut host = HostProcess::spawn(&[
        ("KAFKA_BROKERS", broker.bootstrap.as_str()),
        ("HANDLERS_DIR", dir.to_str().unwrap()),
        ("TOPIC_PARTITIONS", &PARTITIONS.to_string()),
    ]);
    host.wait_for("ready: every handler is consuming");
    host
}

async fn handled(host: &HostProcess) -> u64 {
    let url = format!("http://{}/handlers/echo", host.addr);
    let h: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    h["stats"]["handled"].as_u64().unwrap()
}

/// Waits until `check` holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < support::PATIENCE, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn instances_joining_and_leaving_lose_no_event() {
    let broker = Tansu::start();
    let mut a = echo_host(&broker, "scale-out-a");

    // A stream that goes on until the test has seen what it needs.
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, sent, stop) = (broker.bootstrap.clone(), sent.clone(), stop.clone());
        std::thread::spawn(move || {
            produce_while(
                &bootstrap,
                "faults",
                Duration::from_millis(5),
                "echo",
                |seq| {
                    sent.store(seq, Ordering::Release);
                    !stop.load(Ordering::Acquire)
                },
            )
        })
    };
    eventually("A handles", async || handled(&a).await >= 100).await;
    // B joins the group: the next rebalance gives it part of the partitions.
    let mut b = echo_host(&broker, "scale-out-b");
    eventually("B shares the stream", async || handled(&b).await > 0).await;
    let (by_a, by_b) = (handled(&a).await, handled(&b).await);
    println!("both running: A handled {by_a}, B {by_b}");

    a.signal("-TERM");
    assert!(a.wait_exit().success(), "A did not stop cleanly");
    // The producer sends `seq` after storing it: later events were sent
    // once A had left.
    let left = sent.load(Ordering::Acquire) + 1;
    eventually("the stream goes on", async || {
        sent.load(Ordering::Acquire) >= left + 100
    })
    .await;
    stop.store(true, Ordering::Release);
    let total = producer.join().unwrap();

    let counts = echoes_of(&broker.bootstrap, "faults-out", total).await;
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    println!("{total} events, A left after {left}; {duplicates} handled more than once");
    let echoed: Vec<u64> = counts.keys().copied().collect();
    assert_eq!(echoed, (0..total).collect::<Vec<_>>(), "events lost");

    // Only B was running when the events after `left` were sent, and they
    // were on every partition: A's partitions moved to B.
    let stream = read_until(&broker.bootstrap, "faults", "the whole stream", |s| {
        s.len() as u64 >= total
    })
    .await;
    let late: BTreeSet<i32> = stream
        .iter()
        .filter(|m| m.value["data"]["seq"].as_u64() >= Some(left))
        .map(|m| m.partition)
        .collect();
    assert_eq!(late.len(), PARTITIONS, "sent after A left: {late:?}");
    let by_b = handled(&b).await;
    assert!(by_b >= total - left, "B handled only {by_b}");
    b.signal("-TERM");
    assert!(b.wait_exit().success(), "B did not stop cleanly");
}
