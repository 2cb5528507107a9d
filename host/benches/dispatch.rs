//! Dispatch cost: the demo's user-handler rule as a native Rust call, as a
//! WASM component in a fresh instance per event (the host's default), and
//! on a reused instance (the host's path for a handler that opts in to
//! reuse: a lane's kept instance, replaced after `REUSE_MAX_EVENTS`).
//!
//! A fourth case runs a handler that does nearly nothing (the fault-handler
//! test component told `ok`), in a fresh instance: the fixed cost of an
//! instance, apart from what the handler does.
//!
//! `DISPATCH_CONTRACTS=1` (quick mode) compares the contract versions: the
//! same echo handler built against 0.1 (`first-world`) and against 0.2
//! (`next-world`), the 0.2 one also with three headers on the message.
//!
//! `DISPATCH_COMPONENT=path/to/handler.wasm` adds a case for that
//! component in a fresh instance per event (given the empty handler's
//! event), to compare how components are built.
//!
//! `DISPATCH_QUICK=1` skips criterion and prints, for each case, the
//! fastest of 30 batches of 2,000 events, and its ratio to the native call:
//! on a shared machine the fastest batch moves far less between runs than a
//! mean, so A/B comparisons of engine settings can be read from it.
//!
//! `DISPATCH_ONLY=fresh` or `reused` (quick mode) runs only those cases,
//! e.g. under a profiler; `DISPATCH_BATCHES=600` runs each case that much
//! longer (default 30), so that a profile is the calls and not the start.
//!
//! `cargo bench -p event-host --bench dispatch`. Figures go in BENCHMARKS.md.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use event_host::event::Event;
use event_host::runtime::{
    Component, Delivery, Input, KeptInstance, Limits, Prepared, ReusePolicy, Runtime, Seat,
};
use serde::{Deserialize, Serialize};

const USER: &str = r#"{"id":"5803b5ec-d86c-4278-a146-a0d7ec0f7336","name":"John Doe","email":"john@example.com","age":30,"createdAt":"2026-11-26T20:08:07.456Z"}"#;

fn envelope(event_type: &str, data: &str) -> Event {
    let envelope = format!(
        r#"{{"id":"4a81b4a2-2aaf-4e93-bdd1-3a012188ba1b","type":"{event_type}","timestamp":"2026-11-26T20:08:07.456Z","userId":"5803b5ec-d86c-4278-a146-a0d7ec0f7336","data":{data}}}"#
    );
    Event::decode(envelope.as_bytes()).expect("a valid envelope")
}

fn delivery() -> Delivery {
    Delivery {
        topic: "user-events".into(),
        partition: 0,
        offset: 42,
        ..Delivery::default()
    }
}

/// The event converted for `component`'s contract, as the consume loop
/// does once per event.
fn prepared(component: &Component, event: &Event) -> Prepared {
    component
        .prepare(Input::Event(event.clone()), delivery())
        .expect("an envelope event")
}

/// The same rule in plain Rust: parse the user, write the welcome, encode
/// the notification.
fn native(event: &Event) -> String {
    #[derive(Deserialize)]
    struct User {
        name: String,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Notification<'a> {
        id: String,
        user_id: Option<&'a str>,
        message: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        sent_at: String,
    }
    let user: User = serde_json::from_str(event.data.get()).expect("valid data");
    let message = format!(
        "Welcome {}! Your account has been created successfully.",
        user.name
    );
    let notification = Notification {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: event.user_id.as_deref(),
        message: &message,
        kind: "welcome",
        sent_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    };
    serde_json::to_string(&notification).expect("encodes")
}

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Runtime::new(runtime_limits(), None).expect("runtime");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../handlers/user-handler.wasm");
    let bytes = std::fs::read(&file).expect("build the handlers first: cargo build");
    let component = rt
        .block_on(runtime.load("user-handler", bytes.clone()))
        .expect("loads");
    // The same handler, named for reuse as REUSE_INSTANCES would.
    let reusing = Runtime::new(runtime_limits(), None)
        .expect("runtime")
        .with_reuse(ReusePolicy {
            reuse: ["user-handler".to_string(), "noop".to_string()].into(),
            ..ReusePolicy::default()
        });
    let reused = rt
        .block_on(reusing.load("user-handler", bytes))
        .expect("loads");
    let event = envelope("USER_REGISTERED", USER);
    println!("allocator: {:?}", runtime.allocator());
    let noop = std::fs::read(support::test_component("fault-handler")).expect("built");
    let noop = rt.block_on(runtime.load("noop", noop)).expect("loads");
    let noop_event = envelope("FAULT", r#"{"action":"ok"}"#);
    let reused_noop = std::fs::read(support::test_component("fault-handler")).expect("built");
    let reused_noop = rt
        .block_on(reusing.load("noop", reused_noop))
        .expect("loads");

    let other = std::env::var_os("DISPATCH_COMPONENT").map(|path| {
        let bytes = std::fs::read(&path).expect("DISPATCH_COMPONENT: cannot read the file");
        rt.block_on(runtime.load("other", bytes))
            .expect("DISPATCH_COMPONENT: not a handler component")
    });

    if std::env::var_os("DISPATCH_QUICK").is_some() {
        let only = std::env::var("DISPATCH_ONLY").ok();
        let runs = |mode: &str| only.as_deref().is_none_or(|only| only == mode);
        let native_time = rt.block_on(fastest(async || {
            std::hint::black_box(native(&event));
        }));
        println!("native call: fastest batch {native_time:.2?} per event");
        let mut cases = vec![
            ("user handler", &component, &event),
            ("empty handler", &noop, &noop_event),
        ];
        if let Some(other) = &other {
            cases.push(("DISPATCH_COMPONENT", other, &noop_event));
        }
        for (name, component, event) in cases.into_iter().filter(|_| runs("fresh")) {
            let prepared = prepared(component, event);
            let time = rt.block_on(fastest(async || {
                component
                    .handle(component.slot().await, &prepared)
                    .await
                    .expect("handled");
            }));
            let ratio = time.as_secs_f64() / native_time.as_secs_f64();
            println!(
                "{name}, fresh instance per event: fastest batch {time:.2?} per event ({ratio:.1}x the native call)"
            );
        }
        if std::env::var_os("DISPATCH_CONTRACTS").is_some() {
            contracts(&rt, &runtime, &noop_event);
        }
        if !runs("reused") {
            return;
        }
        let cases = [
            ("user handler", &reused, &event),
            ("empty handler", &reused_noop, &noop_event),
        ];
        for (name, component, event) in cases {
            let prepared = prepared(component, event);
            let mut kept = KeptInstance::default();
            let time = rt.block_on(fastest(async || {
                on_kept(component, &prepared, &mut kept).await;
            }));
            let ratio = time.as_secs_f64() / native_time.as_secs_f64();
            println!(
                "{name}, reused instance: fastest batch {time:.2?} per event ({ratio:.1}x the native call)"
            );
        }
        return;
    }

    let mut group = c.benchmark_group("dispatch");
    group.bench_function("native call", |b| b.iter(|| native(&event)));
    // A fresh instance per event, as the host runs them.
    let mut fresh = |name: &str, component: &Component, event: &Event| {
        let prepared = prepared(component, event);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        component
                            .handle(component.slot().await, &prepared)
                            .await
                            .expect("handled");
                    }
                    started.elapsed()
                })
            })
        });
    };
    fresh("wasm, fresh instance per event", &component, &event);
    fresh(
        "wasm, fresh instance per event, empty handler",
        &noop,
        &noop_event,
    );
    if let Some(other) = &other {
        fresh(
            "wasm, fresh instance per event, DISPATCH_COMPONENT",
            other,
            &noop_event,
        );
    }
    let user = prepared(&reused, &event);
    let mut kept = KeptInstance::default();
    group.bench_function("wasm, reused instance", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    on_kept(&reused, &user, &mut kept).await;
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

fn runtime_limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(5),
        memory_bytes: 64 << 20,
    }
}

/// One event as a lane runs it for a handler on reused instances: on the
/// kept instance if there is one, else on a new one that is then kept.
async fn on_kept(component: &Component, prepared: &Prepared, kept: &mut KeptInstance) {
    let seat = match kept.take_for(component) {
        Some(seat) => seat,
        None => Seat::New(component.slot().await),
    };
    component
        .handle_in(seat, prepared, kept)
        .await
        .expect("handled");
}

/// One echo handler per contract version, on the same event, side by side.
fn contracts(rt: &tokio::runtime::Runtime, runtime: &Runtime, event: &Event) {
    let load = |name: &str| {
        let bytes = std::fs::read(support::test_component(name)).expect("built");
        rt.block_on(runtime.load(name, bytes)).expect("loads")
    };
    let (old, new) = (load("first-world"), load("next-world"));
    let with_headers = Delivery {
        headers: ["traceparent", "x-source", "x-tenant"]
            .iter()
            .map(|name| event_host::runtime::Header {
                name: name.to_string(),
                value: Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec()),
            })
            .collect(),
        timestamp_ms: Some(1_764_547_200_000),
        ..delivery()
    };
    let cases = [
        ("echo, contract 0.1", &old, delivery()),
        ("echo, contract 0.2", &new, delivery()),
        ("echo, contract 0.2, three headers", &new, with_headers),
    ];
    let mut first = None;
    for (name, component, delivery) in cases {
        let prepared = component
            .prepare(Input::Event(event.clone()), delivery)
            .expect("an envelope event");
        let time = rt.block_on(fastest(async || {
            component
                .handle(component.slot().await, &prepared)
                .await
                .expect("handled");
        }));
        let base = *first.get_or_insert(time);
        let ratio = time.as_secs_f64() / base.as_secs_f64();
        println!("{name}: fastest batch {time:.2?} per event ({ratio:.2}x contract 0.1)");
    }
}

/// The per-event time of the fastest of 30 (or `DISPATCH_BATCHES`) batches
/// of 2,000 runs of `f`, each awaited in place (no runtime entry per run).
async fn fastest(mut f: impl AsyncFnMut()) -> Duration {
    const BATCH: u32 = 2_000;
    let batches = std::env::var("DISPATCH_BATCHES")
        .map(|n| {
            n.parse::<u32>()
                .expect("DISPATCH_BATCHES: a number of batches")
        })
        .unwrap_or(30);
    let mut fastest = Duration::MAX;
    for _ in 0..batches {
        let started = Instant::now();
        for _ in 0..BATCH {
            f().await;
        }
        fastest = fastest.min(started.elapsed() / BATCH);
    }
    fastest
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
