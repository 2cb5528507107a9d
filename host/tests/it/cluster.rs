//! Three host processes on one tansu as one cluster (`CATALOG=true`): a
//! handler uploaded, paused, resumed or deleted through any instance
//! reaches all of them through the catalog topic; a rollout under a steady
//! stream loses nothing, handles nothing twice and keeps each partition's
//! order, one version at a time; an instance killed and started again with
//! an empty folder serves the catalog's handlers before it says it is
//! ready; an invalid upload changes nothing anywhere.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, HostProcess, PATIENCE, Tansu, read_until, temp_handlers_dir};

const PARTITIONS: &str = "3";

/// An instance of the cluster, its folder holding `files`.
fn instance(broker: &Tansu, name: &str, files: &[(&str, &[u8])]) -> HostProcess {
    let dir = temp_handlers_dir(name);
    for (file, bytes) in files {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    let mut host = HostProcess::spawn(&[
        ("KAFKA_BROKERS", broker.bootstrap.as_str()),
        ("HANDLERS_DIR", dir.to_str().unwrap()),
        ("TOPIC_PARTITIONS", PARTITIONS),
        ("CATALOG", "true"),
        ("ANNOUNCE_INTERVAL_MS", "300"),
    ]);
    host.wait_for("ready: every handler is consuming");
    host
}

async fn get(addr: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn version(addr: &str) -> Option<String> {
    let (status, h) = get(addr, "/handlers/echo").await;
    (status == 200).then(|| h["version"].as_str().unwrap_or_default().to_string())
}

/// Waits until `check` holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < PATIENCE, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `addr` sees `n` live instances that serve the same handlers.
async fn converged(addr: &str, n: usize) -> bool {
    let (_, c) = get(addr, "/cluster").await;
    c["converged"] == true && c["instances"].as_array().map(Vec::len) == Some(n)
}

async fn handled(hosts: &[&HostProcess]) -> u64 {
    let mut sum = 0;
    for h in hosts {
        let (_, v) = get(&h.addr, "/handlers/echo").await;
        sum += v["stats"]["handled"].as_u64().unwrap_or(0);
    }
    sum
}

async fn change(method: reqwest::Method, addr: &str, path: &str, body: Option<Vec<u8>>) -> u16 {
    let mut r = reqwest::Client::new().request(method, format!("http://{addr}{path}"));
    if let Some(body) = body {
        r = r.header("content-type", "application/wasm").body(body);
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn a_rollout_reaches_every_instance_and_loses_nothing() {
    let broker = Tansu::start();
    let echo = std::fs::read(support::test_component("fault-handler")).unwrap();
    let (v1, v2) = (support::variant(&echo, 1), support::variant(&echo, 2));
    let (d1, d2) = (
        event_host::runtime::digest(&v1),
        event_host::runtime::digest(&v2),
    );
    // The first instance seeds the new catalog from its folder; the others
    // start with empty folders and serve what the catalog holds.
    let a = instance(&broker, "cluster-a", &[("echo.wasm", &v1)]);
    let b = instance(&broker, "cluster-b", &[]);
    let c = instance(&broker, "cluster-c", &[]);
    let all = [&a, &b, &c];
    for h in all {
        assert_eq!(version(&h.addr).await.as_deref(), Some(d1.as_str()));
    }
    eventually("a converged cluster of three", async || {
        converged(&c.addr, 3).await
    })
    .await;
    let metrics = reqwest::get(format!("http://{}/metrics", c.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "event_host_cluster_instances 3",
        r#"event_host_cluster_handler_converged{handler="echo"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }

    // A steady stream across the rollout.
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, sent, stop) = (broker.bootstrap.clone(), sent.clone(), stop.clone());
        std::thread::spawn(move || {
            support::produce_while(
                &bootstrap,
                "faults",
                Duration::from_millis(4),
                "echo",
                |seq| {
                    sent.store(seq, Ordering::Release);
                    !stop.load(Ordering::Acquire)
                },
            )
        })
    };
    eventually("events handled before the rollout", async || {
        handled(&all).await >= 150
    })
    .await;

    let started = Instant::now();
    assert_eq!(
        change(
            reqwest::Method::PUT,
            &a.addr,
            "/handlers/echo",
            Some(v2.clone())
        )
        .await,
        200
    );
    // The writer answers once it serves the new version itself.
    assert_eq!(version(&a.addr).await.as_deref(), Some(d2.as_str()));
    let mut last = Duration::ZERO;
    for h in all {
        eventually("every instance on the new version", async || {
            version(&h.addr).await.as_deref() == Some(d2.as_str())
        })
        .await;
        last = last.max(started.elapsed());
    }
    println!("rollout: PUT to the last of 3 instances serving the new version in {last:?}");
    eventually("the cluster converged on the new version", async || {
        converged(&b.addr, 3).await
    })
    .await;
    let at_rollout = handled(&all).await;
    eventually("events handled after the rollout", async || {
        handled(&all).await >= at_rollout + 150
    })
    .await;
    stop.store(true, Ordering::Release);
    let produced = producer.join().unwrap();

    // Every event echoed exactly once (no instance crashed), each key's
    // events in order, and per partition the old version's echoes before
    // the new one's.
    let echoes = read_until(
        &broker.bootstrap,
        "faults-out",
        "every event's echo",
        |seen| {
            let seqs: std::collections::BTreeSet<u64> = seen
                .iter()
                .filter_map(|m| m.value["data"]["seq"].as_u64())
                .collect();
            seqs.len() as u64 >= produced
        },
    )
    .await;
    let mut copies: BTreeMap<u64, u32> = BTreeMap::new();
    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut versions: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for m in &echoes {
        let Some(seq) = m.value["data"]["seq"].as_u64() else {
            continue;
        };
        *copies.entry(seq).or_default() += 1;
        by_key
            .entry(m.value["userId"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(seq);
        let v = m.header("handlerVersion").unwrap_or("none").to_string();
        let seen = versions.entry(m.partition).or_default();
        if seen.last() != Some(&v) {
            seen.push(v);
        }
    }
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handled twice: {twice:?}");
    assert_eq!(copies.len() as u64, produced, "lost events");
    for (key, seqs) in &by_key {
        assert!(seqs.is_sorted(), "{key}'s events out of order: {seqs:?}");
    }
    for (partition, seen) in &versions {
        assert!(
            *seen == [d1.clone(), d2.clone()] || *seen == [d2.clone()],
            "partition {partition} of faults-out saw versions in this order: {seen:?}"
        );
    }

    // Paused through the third instance: paused on all; resumed likewise.
    assert_eq!(
        change(reqwest::Method::POST, &c.addr, "/handlers/echo/pause", None).await,
        200
    );
    for h in all {
        eventually("paused everywhere", async || {
            get(&h.addr, "/handlers/echo").await.1["status"] == "paused"
        })
        .await;
    }
    eventually("converged, paused", async || converged(&a.addr, 3).await).await;
    assert_eq!(
        change(
            reqwest::Method::POST,
            &c.addr,
            "/handlers/echo/resume",
            None
        )
        .await,
        200
    );
    for h in all {
        eventually("resumed everywhere", async || {
            get(&h.addr, "/handlers/echo").await.1["status"] != "paused"
        })
        .await;
    }
    eventually("converged, resumed", async || converged(&b.addr, 3).await).await;

    // An invalid upload is refused and changes nothing anywhere.
    let (status, _) = {
        let r = reqwest::Client::new()
            .put(format!("http://{}/handlers/echo", a.addr))
            .header("content-type", "application/wasm")
            .body(b"not a component".to_vec())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(status, 422);
    eventually("still converged after the refused upload", async || {
        converged(&a.addr, 3).await
    })
    .await;
    for h in all {
        assert_eq!(version(&h.addr).await.as_deref(), Some(d2.as_str()));
    }
    let (_, cluster) = get(&b.addr, "/cluster").await;
    let echo_view = cluster["handlers"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["name"] == "echo"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(echo_view["catalogVersion"], d2.as_str(), "{cluster}");
    let (_, one) = get(&b.addr, "/handlers/echo").await;
    assert_eq!(one["cluster"]["converged"], true, "{one}");

    // Deleted through the second instance: gone on all.
    assert_eq!(
        change(reqwest::Method::DELETE, &b.addr, "/handlers/echo", None).await,
        204
    );
    for h in all {
        eventually("deleted everywhere", async || {
            version(&h.addr).await.is_none()
        })
        .await;
    }
    eventually("converged without it", async || converged(&a.addr, 3).await).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn a_restarted_instance_serves_the_catalog_before_it_is_ready() {
    let broker = Tansu::start();
    let echo = std::fs::read(support::test_component("fault-handler")).unwrap();
    let v1 = support::variant(&echo, 7);
    let d1 = event_host::runtime::digest(&v1);
    let a = instance(&broker, "cluster-kill-a", &[("echo.wasm", &v1)]);
    let mut b = instance(&broker, "cluster-kill-b", &[]);
    assert_eq!(version(&b.addr).await.as_deref(), Some(d1.as_str()));
    let (_, before) = get(&a.addr, "/cluster").await;
    let killed = before["instances"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|i| i["url"] == format!("http://{}", b.addr).as_str())
        })
        .map(|i| i["id"].clone())
        .unwrap_or(Value::Null);

    b.child.kill().unwrap();
    b.child.wait().unwrap();
    // Started again with an empty folder: at "ready" it already serves the
    // catalog's handler.
    let restarted = instance(&broker, "cluster-kill-b-again", &[]);
    let (_, h) = get(&restarted.addr, "/handlers/echo").await;
    assert_eq!(h["version"], d1.as_str(), "{h}");

    // A file dropped into an instance's folder goes into the catalog: the
    // other instance serves it too.
    let v2 = support::variant(&echo, 8);
    let d2 = event_host::runtime::digest(&v2);
    let folder = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "handlers-cluster-kill-b-again-{}",
        std::process::id()
    ));
    support::write_file(&folder.join("echo.wasm"), &v2);
    eventually(
        "the dropped file's version on the other instance",
        async || version(&a.addr).await.as_deref() == Some(d2.as_str()),
    )
    .await;

    // The killed instance falls silent and drops out of the cluster.
    eventually("the cluster without the killed instance", async || {
        let (_, c) = get(&a.addr, "/cluster").await;
        let ids: Vec<&Value> = c["instances"]
            .as_array()
            .map(|all| all.iter().map(|i| &i["id"]).collect())
            .unwrap_or_default();
        c["converged"] == true && ids.len() == 2 && !ids.contains(&&killed)
    })
    .await;
}

/// The catalog on the embedded broker, one instance: the folder seeds it,
/// and changes made over HTTP go through it (and leave the folder alone).
#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_serves_one_instance_on_the_embedded_broker() {
    let dir = temp_handlers_dir("catalog-embedded");
    let echo = std::fs::read(support::test_component("fault-handler")).unwrap();
    let v1 = support::variant(&echo, 11);
    std::fs::write(dir.join("echo.wasm"), &v1).unwrap();
    let mut c = support::config(&dir, None);
    c.catalog = true;
    c.announce_interval_ms = 200;
    let host = support::TestHost::start(c).await;
    let addr = host.addr.to_string();
    assert_eq!(
        version(&addr).await.as_deref(),
        Some(event_host::runtime::digest(&v1).as_str())
    );
    eventually("one instance, converged", async || {
        converged(&addr, 1).await
    })
    .await;
    let (_, cluster) = host.get("/cluster").await;
    assert_eq!(cluster["catalog"], "_event-host-catalog", "{cluster}");
    assert_eq!(cluster["instances"][0]["this"], true, "{cluster}");

    let v2 = support::variant(&echo, 12);
    let d2 = event_host::runtime::digest(&v2);
    assert_eq!(
        change(reqwest::Method::PUT, &addr, "/handlers/echo", Some(v2)).await,
        200
    );
    assert_eq!(version(&addr).await.as_deref(), Some(d2.as_str()));
    assert_eq!(
        change(reqwest::Method::POST, &addr, "/handlers/echo/pause", None).await,
        200
    );
    let (_, h) = host.get("/handlers/echo").await;
    assert_eq!(h["status"], "paused", "{h}");
    assert_eq!(h["source"], "catalog", "{h}");
    assert!(h.get("file").is_none(), "{h}");
    assert_eq!(h["cluster"]["paused"], true, "{h}");
    assert_eq!(
        change(reqwest::Method::DELETE, &addr, "/handlers/echo", None).await,
        204
    );
    assert_eq!(host.get("/handlers/echo").await.0, 404);
    assert_eq!(
        change(reqwest::Method::DELETE, &addr, "/handlers/echo", None).await,
        404
    );
    // The catalog changed; the folder did not.
    assert_eq!(std::fs::read(dir.join("echo.wasm")).unwrap(), v1);
    host.stop().await;
}
