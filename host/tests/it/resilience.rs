//! Crash safety against a real broker process (tansu): a host killed with
//! SIGKILL mid-stream loses no event, a broker restarted mid-stream loses
//! none, and a host started before its broker waits for it.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    self, HostProcess, Tansu, TestHost, config, echo_dir, echoes_of, produce_sequence,
    temp_handlers_dir,
};

fn report(what: &str, counts: &std::collections::BTreeMap<u64, u32>, total: u64) {
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    println!("{what}: {total} events, all handled; {duplicates} handled more than once");
    assert_eq!(counts.len() as u64, total, "{what}: events lost");
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn a_host_killed_mid_stream_loses_no_event() {
    const EVENTS: u64 = 400;
    let broker = Tansu::start();
    let dir = echo_dir("kill9");
    let env = [
        ("KAFKA_BROKERS", broker.bootstrap.as_str()),
        ("HANDLERS_DIR", dir.to_str().unwrap()),
    ];
    let mut host = HostProcess::spawn(&env);
    host.wait_for("ready: every handler is consuming");

    let bootstrap = broker.bootstrap.clone();
    let producer = std::thread::spawn(move || {
        produce_sequence(
            &bootstrap,
            "faults",
            EVENTS,
            Duration::from_millis(5),
            "echo",
        )
    });
    // Kill it half-way through the stream.
    let started = std::time::Instant::now();
    loop {
        let h: serde_json::Value = reqwest::get(format!("http://{}/handlers/echo", host.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if h["stats"]["handled"].as_u64() >= Some(EVENTS / 2) {
            break;
        }
        assert!(
            started.elapsed() < support::PATIENCE,
            "the host handled nothing: {h}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.signal("-KILL");
    let exit = host.wait_exit();
    assert!(!exit.success(), "SIGKILL should not look like a clean exit");

    // Start again while the stream goes on, once the group has given up on
    // the killed member (its session timed out): the group resumes from its
    // last commit. (tansu hands a member that joins before that no
    // partitions, and does not rebalance when the old session expires.)
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut host = HostProcess::spawn(&env);
    host.wait_for("ready: every handler is consuming");
    producer.join().unwrap();
    let counts = echoes_of(&broker.bootstrap, "faults-out", EVENTS).await;
    report("SIGKILL mid-stream", &counts, EVENTS);
    host.signal("-TERM");
    assert!(host.wait_exit().success());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn a_broker_restarted_mid_stream_loses_no_event() {
    // tansu 0.6's sqlite engine sometimes panics on an idempotent produce
    // right after a restart ("more or less than one row" in
    // `idempotent_message_check`: a batch whose producer epoch it has no row
    // for) and then answers nothing; no client can get past that. When the
    // broker's log shows such a panic, the run says so and starts over once
    // on a fresh broker; any other failure, or a second broker panic, fails.
    for attempt in 1..=2 {
        let data = temp_handlers_dir(&format!("broker-restart-data-{attempt}"));
        let run = tokio::spawn(broker_restart_run(data.clone())).await;
        let Err(failure) = run else { return };
        let log = std::fs::read_to_string(data.join("tansu.log")).unwrap_or_default();
        if attempt == 1 && log.contains("panicked") {
            eprintln!("tansu panicked (see {}); running again", data.display());
            continue;
        }
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn broker_restart_run(data: std::path::PathBuf) {
    const EVENTS: u64 = 300;
    let port = support::free_port();
    let storage = "sqlite://tansu.db";
    let broker = Tansu::start_with(port, storage, Some(&data));
    let bootstrap = broker.bootstrap.clone();
    let dir = echo_dir("broker-restart");
    let host = TestHost::start(config(&dir, Some(&bootstrap))).await;

    let producer = {
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || {
            produce_sequence(
                &bootstrap,
                "faults",
                EVENTS,
                Duration::from_millis(5),
                "echo",
            )
        })
    };
    host.wait_for_handler("echo", "handle part of the stream", |h| {
        h["stats"]["handled"].as_u64() >= Some(EVENTS / 4)
    })
    .await;
    broker.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let broker = Tansu::start_with(port, storage, Some(&data));

    producer.join().unwrap();
    let counts = echoes_of(&bootstrap, "faults-out", EVENTS).await;
    report("broker restart mid-stream", &counts, EVENTS);
    host.stop().await;
    drop(broker);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn a_host_started_before_its_broker_waits_for_it() {
    // Fail now rather than after the host has been waiting.
    support::require_tansu();
    let port = support::free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let dir = temp_handlers_dir("late-broker");
    support::install_demo_handlers(&dir, &["user-handler", "notification-analytics"]);
    let host = TestHost::spawn(config(&dir, Some(&bootstrap))).await;

    let started = std::time::Instant::now();
    let health = loop {
        let (status, health) = host.get("/health").await;
        if health["waiting"].is_string() {
            assert_eq!(status, 503);
            break health;
        }
        assert!(
            started.elapsed() < support::PATIENCE,
            "not reported as waiting: {health}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health["status"], "starting");
    assert!(
        health["waiting"].as_str().unwrap().contains(&bootstrap),
        "{health}"
    );
    // The API refuses events it cannot store rather than pretending.
    let (status, error) = host
        .post(
            "/users",
            &json!({"name": "A", "email": "a@example.com", "age": 1}),
        )
        .await;
    assert_eq!(status, 503, "{error}");
    assert_eq!(error["error"], "broker_unavailable");

    let _broker = Tansu::start_with(port, "memory://tansu/", None);
    host.wait_ready().await;
    host.register("B").await;
    host.wait_for_handler("notification-analytics", "handle the welcome", |h| {
        h["stats"]["handled"] == 1
    })
    .await;
    host.stop().await;
}
