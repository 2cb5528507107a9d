//! Hot reload latency: from a handler file being written into the handlers
//! folder to the host serving events with the new version, with the
//! component compiled afresh (uncached) and loaded from the compile cache
//! (cached, e.g. a revert). Plus the latency of the first event after a swap.
//!
//! `cargo bench -p event-host --bench reload` (embedded broker, in-process
//! host, the demo's user-handler). Figures go in BENCHMARKS.md.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{TestHost, config, temp_handlers_dir, variant};

const ROUNDS: u32 = 15;

#[tokio::main]
async fn main() {
    let dir = temp_handlers_dir("bench-reload");
    let cache = dir.with_extension("cache");
    let _ = std::fs::remove_dir_all(&cache);
    let original = std::fs::read(support::built_handlers().join("user-handler.wasm"))
        .expect("build the handlers first: cargo build");
    std::fs::write(dir.join("bench.wasm"), variant(&original, 0)).unwrap();
    let mut c = config(&dir, None);
    c.compile_cache_dir = Some(cache);
    let host = TestHost::start(c).await;

    let mut uncached = Vec::new();
    let mut cached = Vec::new();
    let mut first_event = Vec::new();
    for n in 1..=ROUNDS {
        uncached.push(swap(&host, &dir, &variant(&original, n)).await);
        first_event.push(event_after_swap(&host).await);
    }
    // Every version below was compiled once above: a revert.
    for n in 1..=ROUNDS {
        cached.push(swap(&host, &dir, &variant(&original, n)).await);
    }
    host.stop().await;

    println!(
        "hot reload, {ROUNDS} rounds each, {} KiB component",
        original.len() / 1024
    );
    report(
        "file written -> new version serving (uncached)",
        &mut uncached,
    );
    report("file written -> new version serving (cached)", &mut cached);
    report(
        "first event after a swap: POST -> handled",
        &mut first_event,
    );
}

/// Writes `bytes` as the handler's file (atomically, as a build tool does)
/// and returns how long until `/handlers/bench` reports the new version: from
/// then on every event goes to it.
async fn swap(host: &TestHost, dir: &std::path::Path, bytes: &[u8]) -> Duration {
    let digest = event_host::runtime::digest(bytes);
    let tmp = dir.join(".bench.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    let started = Instant::now();
    std::fs::rename(&tmp, dir.join("bench.wasm")).unwrap();
    loop {
        let (_, h) = host.get("/handlers/bench").await;
        if h["version"] == digest.as_str() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < support::PATIENCE,
            "the swap did not happen: {h}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// From `POST /users` to the handler having handled the event.
async fn event_after_swap(host: &TestHost) -> Duration {
    let before = host.stats("bench").await["handled"].as_u64().unwrap();
    let started = Instant::now();
    let (status, _) = host
        .post(
            "/users",
            &json!({"name": "B", "email": "b@example.com", "age": 1}),
        )
        .await;
    assert_eq!(status, 200);
    loop {
        if host.stats("bench").await["handled"].as_u64().unwrap() > before {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what:<50} median {:7.1} ms   p90 {:7.1} ms   min {:7.1} ms   max {:7.1} ms",
        ms(p(0.5)),
        ms(p(0.9)),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
}
