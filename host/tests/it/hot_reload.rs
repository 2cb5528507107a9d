//! Hot reload: handlers dropped into, replaced in and deleted from the
//! handlers folder, or uploaded over HTTP, while the host runs and events
//! flow. Fast ones on the embedded broker; the swap-under-load test also
//! runs against a tansu broker process.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    self, TestHost, config, read_until, temp_handlers_dir, test_component, variant,
};

fn sha256(bytes: &[u8]) -> String {
    event_host::runtime::digest(bytes)
}

/// Writes a file the way a user's `cp` does: in place, not atomically.
fn cp(bytes: &[u8], to: &Path) {
    std::fs::write(to, bytes).unwrap();
}

async fn wait_version(host: &TestHost, name: &str, digest: &str) -> Value {
    host.wait_for_handler(name, &format!("run version {digest}"), |h| {
        h["version"] == digest && h["status"] == "running"
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_in_handler_starts_serving_without_a_restart() {
    let dir = temp_handlers_dir("drop");
    let host = TestHost::start(config(&dir, None)).await;
    let (_, list) = host.get("/handlers").await;
    assert_eq!(list, json!([]));

    let bytes = std::fs::read(support::built_handlers().join("user-handler.wasm")).unwrap();
    cp(&bytes, &dir.join("greeter.wasm"));
    wait_version(&host, "greeter", &sha256(&bytes)).await;

    host.register("Eve").await;
    host.wait_for_handler("greeter", "handle the registration", |h| {
        h["stats"]["handled"] == 1
    })
    .await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_files_are_rejected_and_the_running_version_keeps_serving() {
    let dir = temp_handlers_dir("invalid");
    let good = std::fs::read(test_component("fault-handler")).unwrap();
    cp(&good, &dir.join("faulty.wasm"));
    let host = TestHost::start(config(&dir, None)).await;
    let version = sha256(&good);
    wait_version(&host, "faulty", &version).await;

    let other_world = std::fs::read(test_component("other-world")).unwrap();
    let bad_describe = std::fs::read(test_component("bad-describe")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "garbage",
            b"definitely not wasm".to_vec(),
            "not a WebAssembly file",
        ),
        (
            "a core module",
            b"\0asm\x01\0\0\0".to_vec(),
            "core WebAssembly module",
        ),
        (
            "another world",
            other_world,
            "does not implement the event-host:handler/handler world",
        ),
        ("a trap in describe", bad_describe, "failed in describe()"),
        (
            "a truncated copy",
            good[..good.len() / 2].to_vec(),
            "does not compile",
        ),
    ];
    for (handled, (what, bytes, reason)) in cases.into_iter().enumerate() {
        cp(&bytes, &dir.join("faulty.wasm"));
        let h = host
            .wait_for_handler("faulty", &format!("reject {what}"), |h| {
                h["lastError"].as_str().is_some_and(|e| e.contains(reason))
            })
            .await;
        assert_eq!(
            h["version"],
            version.as_str(),
            "{what}: the old version keeps running"
        );
        assert_eq!(h["status"], "running", "{what}");
        // ... and keeps handling events.
        host.fault("ok", None, json!({})).await;
        host.wait_for_handler("faulty", &format!("handle an event after {what}"), |h| {
            h["stats"]["handled"] == handled as u64 + 1
        })
        .await;
    }

    // A new name with a bad file shows as failed, with its reason.
    cp(b"nope", &dir.join("broken.wasm"));
    let h = host
        .wait_for_handler("broken", "be reported", |h| h["status"] == "failed")
        .await;
    assert!(
        h["lastError"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly file"),
        "{h}"
    );

    // The good file again clears the error.
    cp(&variant(&good, 1), &dir.join("faulty.wasm"));
    let h = wait_version(&host, "faulty", &sha256(&variant(&good, 1))).await;
    assert_eq!(h["lastError"], Value::Null, "{h}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_handler_stops_after_committing_and_resumes_from_there() {
    let dir = temp_handlers_dir("delete");
    support::install_demo_handlers(&dir, &["user-handler"]);
    let host = TestHost::start(config(&dir, None)).await;
    let one = host.register("One").await;
    host.wait_for_handler("user-handler", "handle One", |h| h["stats"]["handled"] == 1)
        .await;

    std::fs::remove_file(dir.join("user-handler.wasm")).unwrap();
    let started = std::time::Instant::now();
    while host.get("/handlers/user-handler").await.0 != 404 {
        assert!(
            started.elapsed() < support::PATIENCE,
            "the handler was not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let two = host.register("Two").await;

    // Back again: the group resumes after One (committed), so it handles
    // only Two.
    support::install_demo_handlers(&dir, &["user-handler"]);
    host.wait_for_handler("user-handler", "handle Two", |h| h["stats"]["handled"] == 1)
        .await;
    // An event it skips, keyed like each registration, so on the same
    // partition and after it: once both are skipped, One, had it been
    // handed out again, would have been handled.
    for user in [&one, &two] {
        let sentinel = json!({"type": "USER_DELETED", "userId": user["id"], "data": {}});
        assert_eq!(host.post("/events/user-events", &sentinel).await.0, 201);
    }
    host.wait_for_handler("user-handler", "skip the two later events", |h| {
        h["stats"]["skipped"] == 2
    })
    .await;
    assert_eq!(
        host.stats("user-handler").await["handled"],
        1,
        "One was handled again"
    );
    let bootstrap = host.bootstrap().await;
    let welcomes = read_until(&bootstrap, "notification-events", "two welcomes", |s| {
        s.len() >= 2
    })
    .await;
    let mut messages: Vec<&str> = welcomes
        .iter()
        .map(|m| m.value["data"]["message"].as_str().unwrap())
        .collect();
    messages.sort();
    assert_eq!(
        messages,
        [
            "Welcome One! Your account has been created successfully.",
            "Welcome Two! Your account has been created successfully."
        ]
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn handlers_are_managed_over_http_with_the_admin_token() {
    let dir = temp_handlers_dir("http");
    let mut c = config(&dir, None);
    c.admin_token = Some("s3cret".into());
    c.lag_interval_ms = 200;
    let host = TestHost::start(c).await;
    let good = std::fs::read(test_component("fault-handler")).unwrap();
    let url = host.url("/handlers/faulty");
    let put = |token: Option<&'static str>, bytes: Vec<u8>| {
        let mut r = host
            .http
            .put(&url)
            .header("content-type", "application/wasm")
            .body(bytes);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };

    let r = put(None, good.clone()).await.unwrap();
    assert_eq!(r.status(), 401);
    // Refused before its body was read: the connection is not reused.
    assert_eq!(r.headers()["connection"], "close");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    let r = put(Some("wrong"), good.clone()).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = put(Some("s3cret"), b"garbage".to_vec()).await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(
        r.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly file")
    );
    assert!(
        !dir.join("faulty.wasm").exists(),
        "a rejected upload changed the folder"
    );
    assert_eq!(host.get("/handlers/faulty").await.0, 404);

    let r = put(Some("s3cret"), good.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let h: Value = r.json().await.unwrap();
    assert_eq!(h["version"], sha256(&good));
    assert_eq!(
        std::fs::read(dir.join("faulty.wasm")).unwrap(),
        good,
        "the folder holds the upload"
    );
    wait_version(&host, "faulty", &sha256(&good)).await;

    let v2 = variant(&good, 2);
    let r = put(Some("s3cret"), v2.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    wait_version(&host, "faulty", &sha256(&v2)).await;

    // One event handled on the user's partition gives it a position to
    // count waiting events from.
    host.fault("ok", Some("paused-user"), json!({})).await;
    host.wait_for_handler("faulty", "handle the first event and report no lag", |h| {
        h["stats"]["handled"] == 1 && h["stats"]["lag"] == 0
    })
    .await;

    // Pause: events wait; resume: they are handled.
    let post = |path: &'static str, token: Option<&'static str>| {
        let mut r = host.http.post(host.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(
        post("/handlers/faulty/pause", None).await.unwrap().status(),
        401
    );
    let r = post("/handlers/faulty/pause", Some("s3cret"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "paused");
    for _ in 0..3 {
        host.fault("ok", Some("paused-user"), json!({})).await;
    }
    // A lag of 3 says the consumer has fetched all three (the lag counts
    // from the partition's end) and finished none: a handler that took them
    // would have brought it down, and `handled` up.
    host.wait_for_handler("faulty", "report the 3 waiting events", |h| {
        h["stats"]["lag"] == 3
    })
    .await;
    assert_eq!(
        host.stats("faulty").await["handled"],
        1,
        "a paused handler took events"
    );
    assert_eq!(
        post("/handlers/faulty/resume", Some("s3cret"))
            .await
            .unwrap()
            .status(),
        200
    );
    host.wait_for_handler("faulty", "handle the 3 waiting events", |h| {
        h["stats"]["handled"] == 4
    })
    .await;
    assert_eq!(
        post("/handlers/nope/pause", Some("s3cret"))
            .await
            .unwrap()
            .status(),
        404
    );

    let delete = |token: Option<&'static str>| {
        let mut r = host.http.delete(&url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(delete(None).await.unwrap().status(), 401);
    assert!(dir.join("faulty.wasm").exists());
    assert_eq!(delete(Some("s3cret")).await.unwrap().status(), 204);
    assert!(!dir.join("faulty.wasm").exists());
    assert_eq!(host.get("/handlers/faulty").await.0, 404);
    assert_eq!(delete(Some("s3cret")).await.unwrap().status(), 404);
    host.stop().await;
}

/// Without the admin token an upload is refused from its head alone: the
/// host answers 401 while the body is still coming, so a caller without the
/// token cannot make it buffer up to a component's size limit (64 MiB).
#[tokio::test(flavor = "multi_thread")]
async fn an_upload_without_the_token_is_refused_before_its_body_is_read() {
    use futures_util::StreamExt;

    let dir = temp_handlers_dir("http-early-401");
    let mut c = config(&dir, None);
    c.admin_token = Some("s3cret".into());
    let host = TestHost::start(c).await;
    let url = host.url("/handlers/x");

    for token in [None, Some("wrong")] {
        // 1 MiB, then a body that never ends: a host that waited for the
        // whole body would never answer.
        let endless = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; 1 << 20]))
        })
        .chain(futures_util::stream::pending());
        // A client of its own: the connection is left with a request half sent.
        let mut request = reqwest::Client::new()
            .put(&url)
            .header("content-type", "application/wasm")
            .body(reqwest::Body::wrap_stream(endless));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let r = tokio::time::timeout(Duration::from_secs(10), request.send())
            .await
            .unwrap_or_else(|_| {
                panic!("token {token:?}: no answer while the body was still coming")
            })
            .unwrap();
        assert_eq!(r.status(), 401, "token {token:?}");
    }
    assert!(!dir.join("x.wasm").exists());
    assert_eq!(host.get("/handlers/x").await.0, 404);

    // With the token, a body streamed in pieces is read to its end and runs.
    let good = std::fs::read(test_component("fault-handler")).unwrap();
    let pieces: Vec<Result<bytes::Bytes, std::io::Error>> = good
        .chunks(64 * 1024)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let r = host
        .http
        .put(&url)
        .bearer_auth("s3cret")
        .header("content-type", "application/wasm")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(std::fs::read(dir.join("x.wasm")).unwrap(), good);
    wait_version(&host, "x", &sha256(&good)).await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_a_handler_under_load_loses_and_repeats_nothing() {
    swap_under_load(None).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the tansu broker on PATH; run with: cargo test --workspace -- --include-ignored"]
async fn replacing_a_handler_under_load_on_a_real_broker_loses_and_repeats_nothing() {
    let broker = support::Tansu::start();
    swap_under_load(Some(&broker.bootstrap)).await;
}

/// Sends a steady stream of events while the handler's file is replaced
/// again and again, then checks that every event was handled exactly once,
/// in order per key (so per partition), and that every swap took effect.
async fn swap_under_load(brokers: Option<&str>) {
    const EVENTS: u64 = 300;
    const SWAPS: u32 = 8;
    const KEYS: u64 = 7;
    let dir = temp_handlers_dir(&format!("swap-{}", brokers.is_some()));
    let good = std::fs::read(test_component("fault-handler")).unwrap();
    cp(&good, &dir.join("echo.wasm"));
    let host = TestHost::start(config(&dir, brokers)).await;
    let bootstrap = host.bootstrap().await;

    let send = {
        let http = host.http.clone();
        let url = host.url("/events/faults");
        move |seq: u64| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let body = json!({"type": "SEQ", "userId": format!("key-{}", seq % KEYS), "data": {"action": "echo", "seq": seq}});
                let r = http.post(&url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 201);
            }
        }
    };
    let producer = {
        let send = send.clone();
        tokio::spawn(async move {
            for seq in 0..EVENTS {
                send(seq).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut versions = vec![sha256(&good)];
    for n in 1..=SWAPS {
        tokio::time::sleep(Duration::from_millis(120)).await;
        let next = variant(&good, n);
        // Half the swaps as an editor or compiler would (atomic rename),
        // half as `cp` does (in place).
        if n % 2 == 0 {
            let tmp = dir.join(format!(".echo.{n}.tmp"));
            std::fs::write(&tmp, &next).unwrap();
            std::fs::rename(&tmp, dir.join("echo.wasm")).unwrap();
        } else {
            cp(&next, &dir.join("echo.wasm"));
        }
        wait_version(&host, "echo", &sha256(&next)).await;
        versions.push(sha256(&next));
    }
    producer.await.unwrap();

    let h = host
        .wait_for_handler("echo", &format!("handle {EVENTS} events"), |h| {
            h["stats"]["handled"] == EVENTS
        })
        .await;
    assert_eq!(h["stats"]["failed"], 0, "{h}");
    assert_eq!(h["stats"]["deadLettered"], 0, "{h}");
    assert_eq!(versions.len(), SWAPS as usize + 1);
    assert_eq!(
        versions
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        versions.len()
    );

    let echoes = read_until(&bootstrap, "faults-out", &format!("{EVENTS} echoes"), |s| {
        s.len() as u64 >= EVENTS
    })
    .await;
    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in &echoes {
        let key = e.value["userId"].as_str().unwrap().to_string();
        by_key
            .entry(key)
            .or_default()
            .push(e.value["data"]["seq"].as_u64().unwrap());
    }
    let mut all: Vec<u64> = by_key.values().flatten().copied().collect();
    all.sort();
    assert_eq!(
        all,
        (0..EVENTS).collect::<Vec<_>>(),
        "every event exactly once"
    );
    for (key, seqs) in &by_key {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {seqs:?}"
        );
    }
    // Nothing more arrives late (a duplicate would): one more event for each
    // key, after all the others. A key's events are handled in order, so
    // once each of these is echoed, any event of its key still due to be
    // handled again has been, and counted.
    for seq in EVENTS..EVENTS + KEYS {
        send(seq).await;
    }
    let echoes = read_until(
        &bootstrap,
        "faults-out",
        "the last event of each key",
        |s| (EVENTS..EVENTS + KEYS).all(|seq| s.iter().any(|e| e.value["data"]["seq"] == seq)),
    )
    .await;
    let mut seen: Vec<u64> = echoes
        .iter()
        .map(|e| e.value["data"]["seq"].as_u64().unwrap())
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..EVENTS + KEYS).collect::<Vec<_>>(),
        "every event echoed exactly once"
    );
    let h = host
        .wait_for_handler("echo", "count the last events", |h| {
            h["stats"]["handled"].as_u64() >= Some(EVENTS + KEYS)
        })
        .await;
    assert_eq!(h["stats"]["handled"], EVENTS + KEYS, "{h}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_handler_shows_its_waiting_events_as_lag() {
    let dir = temp_handlers_dir("lag");
    std::fs::copy(test_component("fault-handler"), dir.join("faulty.wasm")).unwrap();
    let mut c = config(&dir, None);
    c.admin_token = Some("s3cret".into());
    c.lag_interval_ms = 200;
    let host = TestHost::start(c).await;
    let admin = |path: &str| host.http.post(host.url(path)).bearer_auth("s3cret").send();

    // One event handled on the user's partition gives it a position.
    host.fault("ok", Some("lagging-user"), json!({})).await;
    host.wait_for_handler("faulty", "handle the first event and report no lag", |h| {
        h["stats"]["handled"] == 1 && h["stats"]["lag"] == 0
    })
    .await;

    assert_eq!(admin("/handlers/faulty/pause").await.unwrap().status(), 200);
    for _ in 0..10 {
        host.fault("ok", Some("lagging-user"), json!({})).await;
    }
    let h = host
        .wait_for_handler("faulty", "report the 10 waiting events", |h| {
            h["stats"]["lag"] == 10
        })
        .await;
    let by_partition = h["stats"]["lagByPartition"].as_object().unwrap();
    assert_eq!(
        by_partition.values().filter(|l| **l == 10).count(),
        1,
        "all on the user's partition: {h}"
    );
    assert!(by_partition.keys().all(|k| k.starts_with("faults/")), "{h}");

    assert_eq!(
        admin("/handlers/faulty/resume").await.unwrap().status(),
        200
    );
    host.wait_for_handler("faulty", "catch up: handle all 11, no lag", |h| {
        h["stats"]["handled"] == 11 && h["stats"]["lag"] == 0
    })
    .await;
    host.stop().await;
}
