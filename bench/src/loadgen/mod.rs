//! Open-loop load generator for `POST /users` and the registration → welcome
//! chain (performance issue, item 3: "the demo chain under load").
//!
//! It runs against event-host or the original Node.js demo alike: both take
//! `{"name", "email", "age"}` on `POST /users`, answer with the new user
//! (`id` is its user id) once the broker stored `USER_REGISTERED`, and their
//! user handler then publishes `NOTIFICATION_SENT` with `data.type` =
//! `welcome` and `data.userId` to `notification-events`. This program reads
//! that topic itself and matches each welcome to its request: a chain runs
//! from when the request was due to the welcome's Kafka timestamp (when the
//! server published it), so the reader's own fetch pacing is left out.
//!
//! **Open loop.** Request *i* of a step is due at `start + i / rate` and is
//! sent then, on its own task, whether or not earlier requests have been
//! answered; its latency counts from when it was *due*, not from when it
//! went out. A closed loop (wrk, or N clients each waiting for its answer)
//! stops sending while the server stalls, so a stall is measured once
//! instead of for every request that should have been sent meanwhile
//! ("coordinated omission"), and its percentiles flatter the server.
//!
//! ```sh
//! cargo run --release -p event-host-bench --bin loadgen -- \
//!     --url http://127.0.0.1:3000 --brokers 127.0.0.1:9092 \
//!     --rates 500,1000,2000,4000 --duration 10s
//! ```
//!
//! `bench/compare.sh` runs it against event-host and the demo, one
//! rate per run, each on a fresh tansu broker and server (tansu 0.6's memory
//! engine slows down as its log grows), and merges the runs with `--merge`.
//! Results go in BENCHMARKS.md.

mod args;
mod chains;
mod http;
mod reader;
mod report;
mod resources;
mod step;
mod trend;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;

pub use args::Args;
use args::Criterion;
use chains::Chains;
use http::Shared;
use reader::{ReaderStats, notification_reader, read_notifications};
use report::{Results, progress, report};
use resources::memory_mib;
use step::{Runner, Step};

/// A lock that a panicked holder did not poison: the figures stay readable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the load generator: one report from `--merge` files, or the probe,
/// the steps and the report against a server.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if !args.merge.is_empty() {
        let mut runs = Vec::new();
        for path in &args.merge {
            let text =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            runs.push(
                serde_json::from_slice::<Results>(&text)
                    .with_context(|| format!("{} is not a --json report", path.display()))?,
            );
        }
        if let Some(all) = Results::merge(runs) {
            report(&all);
        }
        return Ok(());
    }

    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.max_in_flight)
        .build()
        .context("cannot build the HTTP client")?;
    let shared = Arc::new(Shared {
        client,
        users_url: format!("{}/users", args.url.trim_end_matches('/')),
        run: run.clone(),
        seq: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        chains: Chains::new(),
    });

    let reader = {
        let (brokers, topic, run) = (args.brokers.clone(), args.topic.clone(), run.clone());
        let wait = args.fetch_wait_ms;
        tokio::task::spawn_blocking(move || notification_reader(&brokers, &topic, &run, wait))
            .await??
    };
    let stop = Arc::new(AtomicBool::new(false));
    let reader_stats = Arc::new(ReaderStats::default());
    let reader_thread = {
        let (shared, stats, stop) = (shared.clone(), reader_stats.clone(), stop.clone());
        std::thread::spawn(move || read_notifications(reader, shared, stats, stop))
    };

    let memory = |field: &str| -> BTreeMap<String, Option<f64>> {
        args.watch
            .iter()
            .map(|w| (w.name.clone(), memory_mib(w.pid, field)))
            .collect()
    };
    let idle = memory("VmRSS:");
    let runner = Runner {
        args,
        shared,
        reader: reader_stats.clone(),
        baseline: Mutex::new((None, None)),
    };
    let result = drive(&runner).await;
    stop.store(true, Ordering::Relaxed);
    let _ = reader_thread.join();

    let errors = reader_stats.kafka_errors.load(Ordering::Relaxed);
    if errors > 0 {
        eprintln!(
            "notification reader: {errors} Kafka errors, the last: {}",
            lock(&reader_stats.last_error).as_deref().unwrap_or("?")
        );
    }
    let (steps, max_rate) = result?;
    let args = &runner.args;
    let results = Results {
        label: args.label.clone(),
        url: args.url.clone(),
        idle_rss_mib: idle,
        peak_rss_mib: args
            .watch
            .iter()
            .map(|w| (w.name.clone(), memory_mib(w.pid, "VmHWM:")))
            .collect(),
        steps,
        max_rate,
    };
    report(&results);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&results)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Probe, warm-up, the --rates steps and the --find-max search.
async fn drive(runner: &Runner) -> anyhow::Result<(Vec<Step>, BTreeMap<String, Option<u32>>)> {
    let args = &runner.args;
    eprintln!(
        "{}: {} -> welcome on {} at {}",
        args.label, runner.shared.users_url, args.topic, args.brokers
    );
    let first = runner.probe().await?;
    eprintln!("chain works: first welcome after {first:?}");

    if !args.warmup.is_zero() {
        let rate = args.warmup_rate;
        eprintln!("warm-up: {rate}/s for {:?} (not reported)", args.warmup);
        let w = runner.step(rate, args.warmup).await;
        progress(&w);
        *lock(&runner.baseline) = w.medians;
    }
    let mut steps = Vec::new();
    for &rate in &args.rates {
        eprintln!("step: {rate}/s for {:?}", args.duration);
        let step = runner.step(rate, args.duration).await;
        progress(&step);
        steps.push(step);
    }
    let mut max_rate = BTreeMap::new();
    if let Some(criterion) = args.find_max {
        let best = runner.find_max(criterion, &mut steps).await;
        let name = match criterion {
            Criterion::Chain => "chain",
            Criterion::Http => "http",
        };
        max_rate.insert(name.to_string(), best);
    }
    Ok((steps, max_rate))
}
