//! Consume throughput: how fast the host drains a pre-filled topic through a
//! handler that does nothing, against a plain rust-rdkafka loop that only
//! stores offsets, on the same broker with the same consumer settings; and
//! how that changes with the topic's partition count and with idle handlers
//! loaded (subscribed to other topics), with the host's RSS.
//!
//! `cargo bench -p event-host --bench consume` (the no-op test handler in
//! host/tests/handlers/noop-handler). Run it without `RUST_BACKTRACE` (see
//! BENCHMARKS.md). Figures go in BENCHMARKS.md.
//!
//! - **tansu** (needs `tansu` on PATH): each partition count gets its own
//!   tansu process on its memory engine, shared by both sides. Each host
//!   drain runs in a child process of this binary, so its RSS and CPU time
//!   are the host's alone.
//! - **embedded**: librdkafka's mock cluster inside an in-process host (the
//!   host's embedded broker), which is also the host measured. It keeps only
//!   the last 5 MiB of each partition, so at most 12,000 events per
//!   partition are drained there.
//!
//! Each drain has a fresh consumer group and is timed from its partitions
//! being assigned to the last event seen (raw loops) or counted as handled
//! or skipped in the handler's stats (host). CPU time is read from /proc
//! for the consuming process and the tansu process.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `CONSUME_EVENTS` | 200000 | events pre-filled per partition count (250 bytes each) |
//! | `CONSUME_PARTITIONS` | `3,12,48` | partition counts of the drained topic |
//! | `CONSUME_IDLE` | `1,10,50` | idle handlers loaded besides the no-op one (copies of the demo's user-handler, on `user-events`); tansu, first partition count only |
//! | `CONSUME_BROKERS` | `tansu,embedded` | which brokers to run on |
//! | `CONSUME_SIDES` | `raw,host,pipeline` | which sides to run: the raw loops, the host running the no-op handler, the host skipping every event (no instance: its own per-event cost) |
//! | `CONSUME_ROUNDS` | 1 | drains per case and side, alternating raw and host; above 1 the report adds each side's median |
//! | `CONSUME_RAW_PREFETCH_KIB` | the host's `PREFETCH_KIB` | the raw loops' `queued.max.messages.kbytes` |
//! | `CONSUME_TELEMETRY` | `unsampled` | host drains on tansu, once per mode listed: `off` (no trace context set up, no call history), `unsampled` (the default host: spans carry context, nothing sampled), `nohistory` (as `unsampled`, with `CALL_HISTORY=0`), `sampled` (every trace sampled and exported over OTLP to a receiver in this process that discards it), `baseline` (the host drain run by the consume benchmark binary named in `CONSUME_BASELINE_EXE`, e.g. one built from an earlier commit) |
//! | `CONSUME_CALL_HISTORY` | the host's default | the host drains' `CALL_HISTORY` (calls kept in memory), whatever the mode |
//! | `CONSUME_SMOKE` | unset | `1`: 2000 events, 3 partitions, 1 idle handler: checks that it runs |

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};
use support::{PATIENCE, Tansu, TestHost, config, temp_handlers_dir};

/// The topic the no-op handler subscribes to.
const TOPIC: &str = "bench";
/// Size of each event's payload (the host's JSON envelope).
const EVENT_BYTES: usize = 250;
/// At most this many events per partition on the embedded broker.
const EMBEDDED_PER_PARTITION: u64 = 12_000;
/// The demo handler loaded (under other names) as the idle handlers.
const IDLE_COMPONENT: &str = "user-handler.wasm";
/// The host sides: the no-op handler runs on every event; the skipping one
/// runs on none (the host decodes each event and stores its offset).
const NOOP: &str = "host, no-op handler";
const NOOP_QUIET: &str = "host, no-op, tracing+history off";
const NOOP_SAMPLED: &str = "host, no-op, every trace sampled";
const NOOP_BASELINE: &str = "host, no-op, baseline build";
const NOOP_NO_HISTORY: &str = "host, no-op, no call history";
const PIPELINE: &str = "host, every event skipped";
/// Set in a child process that runs one host drain on tansu.
const CHILD: &str = "CONSUME_CHILD_HOST_RUN";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BrokerKind {
    /// A tansu process on its memory engine.
    Tansu,
    /// librdkafka's mock cluster, inside the host (the host's embedded
    /// broker): the host measured is the one holding it.
    Embedded,
}

struct Settings {
    events: u64,
    partitions: Vec<i32>,
    idle: Vec<usize>,
    rounds: u32,
    brokers: Vec<BrokerKind>,
    raw: bool,
    host: bool,
    pipeline: bool,
    /// The host's telemetry modes to drain with (on tansu).
    telemetry: Vec<Telemetry>,
}

/// What a host drain traces and records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telemetry {
    /// No trace layer and no call history.
    Off,
    /// As the host runs by default.
    Unsampled,
    /// Every trace sampled and exported.
    Sampled,
    /// Another build's host (`CONSUME_BASELINE_EXE`).
    Baseline,
    /// As by default, without the call history.
    NoHistory,
}

impl Telemetry {
    fn side(self) -> &'static str {
        match self {
            Telemetry::Off => NOOP_QUIET,
            Telemetry::Unsampled => NOOP,
            Telemetry::Sampled => NOOP_SAMPLED,
            Telemetry::Baseline => NOOP_BASELINE,
            Telemetry::NoHistory => NOOP_NO_HISTORY,
        }
    }

    /// The child host's environment for this mode.
    fn env(self, receiver: Option<&str>) -> Vec<(&'static str, String)> {
        match self {
            Telemetry::Off => vec![("EVENT_HOST_TELEMETRY", "off".into())],
            Telemetry::Unsampled | Telemetry::Baseline => vec![],
            Telemetry::NoHistory => vec![("CONSUME_NO_HISTORY", "1".into())],
            Telemetry::Sampled => vec![
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    receiver.expect("a receiver").to_string(),
                ),
                ("OTEL_TRACES_SAMPLER", "always_on".into()),
                // Exported every 200 ms, without dropping any for a full
                // queue at drain rates.
                ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "262144".into()),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8192".into()),
            ],
        }
    }
}

fn settings() -> Settings {
    fn var<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
        let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|_| panic!("{name}: cannot read {s:?}"))
            })
            .collect()
    }
    let brokers = var::<String>("CONSUME_BROKERS", "tansu,embedded")
        .iter()
        .map(|b| match b.as_str() {
            "tansu" => BrokerKind::Tansu,
            "embedded" => BrokerKind::Embedded,
            other => panic!("CONSUME_BROKERS: unknown broker {other:?}"),
        })
        .collect();
    let sides = var::<String>("CONSUME_SIDES", "raw,host,pipeline");
    if let Some(other) = sides
        .iter()
        .find(|s| !["raw", "host", "pipeline"].contains(&s.as_str()))
    {
        panic!("CONSUME_SIDES: unknown side {other:?}");
    }
    let telemetry = var::<String>("CONSUME_TELEMETRY", "unsampled")
        .iter()
        .map(|t| match t.as_str() {
            "off" => Telemetry::Off,
            "unsampled" => Telemetry::Unsampled,
            "sampled" => Telemetry::Sampled,
            "baseline" => Telemetry::Baseline,
            "nohistory" => Telemetry::NoHistory,
            other => panic!("CONSUME_TELEMETRY: unknown mode {other:?}"),
        })
        .collect::<Vec<_>>();
    let side = |name: &str| sides.iter().any(|s| s == name);
    let (raw, host, pipeline) = (side("raw"), side("host"), side("pipeline"));
    if std::env::var_os("CONSUME_SMOKE").is_some_and(|v| v != "0") {
        return Settings {
            events: 2_000,
            partitions: vec![3],
            idle: vec![1],
            rounds: 1,
            brokers,
            raw,
            host,
            pipeline,
            telemetry,
        };
    }
    Settings {
        events: var("CONSUME_EVENTS", "200000")[0],
        partitions: var("CONSUME_PARTITIONS", "3,12,48"),
        idle: var("CONSUME_IDLE", "1,10,50"),
        rounds: var("CONSUME_ROUNDS", "1")[0],
        brokers,
        raw,
        host,
        pipeline,
        telemetry,
    }
}

/// One drain, raw or through the host.
struct Run {
    broker: BrokerKind,
    side: &'static str,
    partitions: i32,
    idle: usize,
    events: u64,
    bytes: u64,
    /// From the partitions being assigned to the last event seen (raw) or
    /// handled (host).
    time: Duration,
    /// Host on tansu only: RSS (KiB) once ready with its idle handlers,
    /// before the no-op handler starts; at the end of the drain; and the peak
    /// in between.
    rss: Option<(u64, u64, u64)>,
    /// CPU time of the consuming process (the host's, or this one's for the
    /// raw loops) and of the broker process (tansu only) during the drain.
    cpu: Duration,
    broker_cpu: Option<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.events as f64 / self.time.as_secs_f64()
    }
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.time.as_secs_f64()
    }
    fn cpu_per_event(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.events as f64
    }
    fn broker_cpu_per_event(&self) -> Option<f64> {
        self.broker_cpu
            .map(|c| c.as_secs_f64() * 1e6 / self.events as f64)
    }
}

/// CPU time (user + system) that process `pid` (`self`: this one) used so
/// far, in clock ticks of 10 ms.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses, fields start at the third
    // (state); utime and stime are the 14th and 15th.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

/// The process id of the tansu broker listening on `bootstrap`, if any.
fn broker_pid(bootstrap: &str) -> Option<String> {
    let url = format!("tcp://{bootstrap}");
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        (cmdline.contains("broker") && cmdline.split('\0').any(|a| a == url))
            .then(|| entry.file_name().to_string_lossy().into_owned())
    })
}

/// Measures the CPU time of this process and of the broker behind
/// `bootstrap` (when it is a process of its own).
struct CpuMeter {
    me: Duration,
    broker: Option<(String, Duration)>,
}

impl CpuMeter {
    fn start(bootstrap: &str) -> Self {
        Self {
            me: cpu_time("self"),
            broker: broker_pid(bootstrap).map(|pid| {
                let t = cpu_time(&pid);
                (pid, t)
            }),
        }
    }

    fn stop(&self) -> (Duration, Option<Duration>) {
        (
            cpu_time("self").saturating_sub(self.me),
            self.broker
                .as_ref()
                .map(|(pid, t)| cpu_time(pid).saturating_sub(*t)),
        )
    }
}

/// A broker with the topic pre-filled.
enum Broker {
    Tansu(Tansu),
    Embedded {
        host: TestHost,
        dir: PathBuf,
        bootstrap: String,
    },
}

impl Broker {
    fn kind(&self) -> BrokerKind {
        match self {
            Broker::Tansu(_) => BrokerKind::Tansu,
            Broker::Embedded { .. } => BrokerKind::Embedded,
        }
    }

    fn bootstrap(&self) -> String {
        match self {
            Broker::Tansu(t) => t.bootstrap.clone(),
            Broker::Embedded { bootstrap, .. } => bootstrap.clone(),
        }
    }

    /// Starts the broker, creates the topic with `partitions` partitions
    /// and fills it with `events` events.
    async fn start(kind: BrokerKind, partitions: i32, events: u64) -> Self {
        let (broker, already) = match kind {
            BrokerKind::Tansu => {
                let tansu = Tansu::start();
                create_topics(&tansu.bootstrap, partitions).await;
                (Broker::Tansu(tansu), 0)
            }
            BrokerKind::Embedded => {
                let dir = temp_handlers_dir(&format!("bench-consume-embedded-p{partitions}"));
                let mut c = config(&dir, None);
                c.topic_partitions = partitions;
                let host = TestHost::start(c).await;
                // The mock broker does not answer CreateTopics: the host
                // creates the topic (with `partitions`) for its first event.
                let (status, body) = host
                    .post(
                        &format!("/events/{TOPIC}"),
                        &serde_json::json!({"type": "BENCH_EVENT", "data": {"seq": -1}}),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
                let bootstrap = host.bootstrap().await;
                let broker = Broker::Embedded {
                    host,
                    dir,
                    bootstrap,
                };
                (broker, 1)
            }
        };
        let bootstrap = broker.bootstrap();
        // tansu 0.6's memory engine answers a fetch from an offset inside a
        // record batch with the *next* batch (the rest of the batch is
        // skipped), and reports the last batch's base offset + 1 as the
        // high watermark. The host pauses a partition whose lane falls
        // behind and fetches again from its position when resuming, which
        // must not land inside a batch: one event per batch on tansu.
        let batch = match kind {
            BrokerKind::Tansu => 1,
            BrokerKind::Embedded => 1_000,
        };
        let took =
            tokio::task::spawn_blocking(move || prefill(&bootstrap, events - already, batch))
                .await
                .unwrap();
        let stored = support::message_count(&broker.bootstrap(), TOPIC).await;
        assert_eq!(stored, events as i64, "the topic holds every event");
        println!(
            "{kind:?}, {partitions} partitions: pre-filled {events} events in {:.1} s ({:.0} events/s, {batch} per batch)",
            took.as_secs_f64(),
            events as f64 / took.as_secs_f64()
        );
        broker
    }
}

#[tokio::main]
async fn main() {
    if let Ok(run) = std::env::var(CHILD) {
        return child_host_run(&run).await;
    }
    let s = settings();
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        println!(
            "NOTE: RUST_BACKTRACE is set, which adds several µs per handler call (BENCHMARKS.md); \
             run with `env -u RUST_BACKTRACE` for figures to compare"
        );
    }
    if s.brokers.contains(&BrokerKind::Tansu) {
        assert!(
            support::tansu_on_path(),
            "this benchmark needs tansu on PATH (or CONSUME_BROKERS=embedded)"
        );
    }
    let components = support::temp_handlers_dir("bench-consume-components");
    let noop_path = components.join("noop.wasm");
    std::fs::write(&noop_path, noop_component(false)).unwrap();
    let skip_path = components.join("skip.wasm");
    std::fs::write(&skip_path, noop_component(true)).unwrap();
    assert!(
        support::built_handlers().join(IDLE_COMPONENT).is_file(),
        "build the handlers first: cargo build"
    );
    let sample = envelope(0).1;
    event_host::event::Event::decode(sample.as_bytes()).expect("a valid envelope");
    println!(
        "consume throughput: {} events of {} bytes, brokers {:?}, partitions {:?}, idle handlers {:?} (tansu, {} partitions), {} round(s)",
        s.events,
        sample.len(),
        s.brokers,
        s.partitions,
        s.idle,
        s.partitions[0],
        s.rounds
    );

    // Where sampled host runs export their spans: a receiver that discards.
    let receiver = if s.telemetry.contains(&Telemetry::Sampled) {
        Some(discarding_otlp_receiver().await)
    } else {
        None
    };
    let mut runs = Vec::new();
    for &kind in &s.brokers {
        for (i, &partitions) in s.partitions.iter().enumerate() {
            // The mock cluster keeps only the last 5 MiB of each partition
            // (librdkafka's rdkafka_mock.c): no more than fits.
            let events = match kind {
                BrokerKind::Tansu => s.events,
                BrokerKind::Embedded => s.events.min(EMBEDDED_PER_PARTITION * partitions as u64),
            };
            let broker = Broker::start(kind, partitions, events).await;
            let mut idle_counts = vec![0];
            if i == 0 && kind == BrokerKind::Tansu {
                idle_counts.extend(s.idle.iter().copied().filter(|&n| n > 0));
            }
            for round in 1..=s.rounds {
                if s.raw {
                    let run = raw_stream_drain(&broker, partitions, events).await;
                    print_run(&run);
                    runs.push(run);
                    let bootstrap = broker.bootstrap();
                    let run = tokio::task::spawn_blocking(move || {
                        raw_poll_drain(kind, &bootstrap, partitions, events)
                    })
                    .await
                    .unwrap();
                    print_run(&run);
                    runs.push(run);
                }
                if s.pipeline {
                    let name = format!("skip-p{partitions}-r{round}");
                    let handler = (PIPELINE, skip_path.as_path());
                    let run = host_drain(&broker, partitions, 0, &name, events, handler, &[]).await;
                    print_run(&run);
                    runs.push(run);
                }
                if !s.host {
                    continue;
                }
                for &idle in &idle_counts {
                    // Telemetry modes side by side on tansu (a child
                    // process each); the embedded host runs as it is.
                    let modes = match kind {
                        BrokerKind::Tansu => s.telemetry.clone(),
                        BrokerKind::Embedded => vec![Telemetry::Unsampled],
                    };
                    for mode in modes {
                        let name = format!(
                            "drain-p{partitions}-i{idle}-r{round}-{}",
                            format!("{mode:?}").to_lowercase()
                        );
                        let handler = (mode.side(), noop_path.as_path());
                        let env = mode.env(receiver.as_deref());
                        let run =
                            host_drain(&broker, partitions, idle, &name, events, handler, &env)
                                .await;
                        print_run(&run);
                        runs.push(run);
                    }
                }
            }
            if let Broker::Embedded { host, dir, .. } = broker {
                host.stop().await;
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    report(&runs);
}

/// An OTLP/HTTP endpoint that takes every export and discards it. Without
/// a body limit: a batch of spans can exceed axum's default 2 MB, and a
/// refused export (413) would cost the host less than a real one.
async fn discarding_otlp_receiver() -> String {
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(|_: axum::body::Bytes| async { "" }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    endpoint
}

/// Builds the no-op test handler (like `support::test_component` does for
/// the tests' handlers), with its `skip` feature or without, and returns its
/// component.
fn noop_component(skip: bool) -> Vec<u8> {
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("handlers");
    let status = Command::new(env!("CARGO"))
        .current_dir(support::workspace())
        .args(["build", "--profile", "handler", "--target", "wasm32-wasip2"])
        .args(["-p", "noop-handler"])
        .args(skip.then_some("--features=noop-handler/skip"))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building noop-handler failed");
    std::fs::read(target_dir.join("wasm32-wasip2/handler/noop_handler.wasm")).unwrap()
}

async fn create_topics(bootstrap: &str, partitions: i32) {
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
fn envelope(seq: u64) -> (String, String, String) {
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
fn prefill(bootstrap: &str, events: u64, batch: usize) -> Duration {
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

/// The host's own consumer settings (`event_host::bus::consumer_config`),
/// from the same configuration the host in this run reads (its defaults, or
/// `FETCH_WAIT_MS`, `PREFETCH_KIB`... from the environment), in group
/// `group`, reading from the start. `CONSUME_RAW_PREFETCH_KIB` gives the raw
/// loops another prefetch, e.g. librdkafka's default (65536).
///
/// The raw loops read one queue for all partitions, so their prefetch is a
/// total; the host splits a queue off per partition, so its is per
/// partition.
fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let host = event_host::config::Config::defaults();
    let client = event_host::kafka_config::KafkaProperties::default().client(bootstrap);
    let mut settings = event_host::bus::ConsumerSettings::new(&host, client);
    settings.offset_reset = event_host::config::OffsetReset::Earliest;
    if let Ok(kib) = std::env::var("CONSUME_RAW_PREFETCH_KIB") {
        settings.prefetch_kib = kib.parse().expect("CONSUME_RAW_PREFETCH_KIB: KiB");
    }
    event_host::bus::consumer_config(&settings, group)
}

/// Notes when the consumer first got its partitions.
#[derive(Default)]
struct Assigned(Mutex<Option<Instant>>);

impl ClientContext for Assigned {}

impl ConsumerContext for Assigned {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.0.lock().unwrap().get_or_insert_with(Instant::now);
        }
    }
}

impl Assigned {
    fn at(&self) -> Instant {
        self.0.lock().unwrap().expect("partitions were assigned")
    }
}

/// The async client the host uses, receiving and storing each offset, in a
/// fresh group.
async fn raw_stream_drain(broker: &Broker, partitions: i32, events: u64) -> Run {
    let group = format!("raw-{}", uuid::Uuid::new_v4());
    let meter = CpuMeter::start(&broker.bootstrap());
    let consumer: StreamConsumer<Assigned> = consumer_config(&broker.bootstrap(), &group)
        .create_with_context(Assigned::default())
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let (mut seen, mut bytes) = (0, 0);
    while seen < events {
        let m = tokio::time::timeout(PATIENCE, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("raw: no event for {PATIENCE:?} after {seen}"))
            .expect("consume");
        bytes += m.payload_len() as u64;
        consumer.store_offset_from_message(&m).unwrap();
        seen += 1;
    }
    let time = consumer.context().at().elapsed();
    let (cpu, broker_cpu) = meter.stop();
    Run {
        broker: broker.kind(),
        side: "raw StreamConsumer",
        partitions,
        idle: 0,
        events: seen,
        bytes,
        time,
        rss: None,
        cpu,
        broker_cpu,
    }
}

/// The synchronous client on a thread of its own: `poll` and store each
/// offset, in a fresh group.
fn raw_poll_drain(broker: BrokerKind, bootstrap: &str, partitions: i32, events: u64) -> Run {
    let group = format!("raw-{}", uuid::Uuid::new_v4());
    let meter = CpuMeter::start(bootstrap);
    let consumer: BaseConsumer<Assigned> = consumer_config(bootstrap, &group)
        .create_with_context(Assigned::default())
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let (mut seen, mut bytes) = (0, 0);
    let mut last = Instant::now();
    while seen < events {
        match consumer.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m.expect("consume");
                bytes += m.payload_len() as u64;
                consumer.store_offset_from_message(&m).unwrap();
                seen += 1;
                last = Instant::now();
            }
            None => assert!(
                last.elapsed() < PATIENCE,
                "raw: no event for {PATIENCE:?} after {seen}"
            ),
        }
    }
    let time = consumer.context().at().elapsed();
    let (cpu, broker_cpu) = meter.stop();
    Run {
        broker,
        side: "raw BaseConsumer",
        partitions,
        idle: 0,
        events: seen,
        bytes,
        time,
        rss: None,
        cpu,
        broker_cpu,
    }
}

/// On tansu: runs [`child_host_run`] in a child process of its own, so its
/// RSS is the host's alone. On the embedded broker: uses the host holding
/// it. The handler, `(side, component)`, is added as `name` (a fresh group).
async fn host_drain(
    broker: &Broker,
    partitions: i32,
    idle: usize,
    name: &str,
    events: u64,
    (side, noop): (&'static str, &Path),
    env: &[(&'static str, String)],
) -> Run {
    let (time, handled, rss, cpu, broker_cpu) = match broker {
        Broker::Tansu(tansu) => {
            let spec = format!(
                "{}|{partitions}|{idle}|{name}|{events}|{}|{side}",
                tansu.bootstrap,
                noop.display()
            );
            // A baseline side runs another build's binary the same way.
            let exe = match side {
                NOOP_BASELINE => std::env::var_os("CONSUME_BASELINE_EXE")
                    .map(PathBuf::from)
                    .expect("CONSUME_TELEMETRY=baseline needs CONSUME_BASELINE_EXE"),
                _ => std::env::current_exe().unwrap(),
            };
            let child = tokio::process::Command::new(exe)
                .env(CHILD, spec)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stderr(std::process::Stdio::inherit())
                .output()
                .await
                .unwrap();
            let out = String::from_utf8_lossy(&child.stdout);
            assert!(child.status.success(), "the host run failed: {out}");
            // The host's warnings and errors, if any (its log is captured).
            for line in out
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            {
                println!("    host: {line}");
            }
            let result = out
                .lines()
                .find_map(|l| l.strip_prefix("RESULT "))
                .unwrap_or_else(|| panic!("no result from the host run: {out}"));
            let v: Vec<f64> = result
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            let rss = (v[2] as u64, v[3] as u64, v[4] as u64);
            let broker_cpu = (v[6] >= 0.0).then(|| Duration::from_secs_f64(v[6]));
            (
                Duration::from_secs_f64(v[0]),
                v[1] as u64,
                Some(rss),
                Duration::from_secs_f64(v[5]),
                broker_cpu,
            )
        }
        Broker::Embedded {
            host,
            dir,
            bootstrap,
        } => {
            assert_eq!(idle, 0, "idle handlers are measured on tansu only");
            let noop = std::fs::read(noop).unwrap();
            let (time, handled, _, (cpu, broker_cpu)) =
                drain(host, dir, (name, side), events, &noop, bootstrap).await;
            let r = host
                .http
                .delete(host.url(&format!("/handlers/{name}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
            (time, handled, None, cpu, broker_cpu)
        }
    };
    Run {
        broker: broker.kind(),
        side,
        partitions,
        idle,
        events: handled,
        bytes: handled * EVENT_BYTES as u64,
        time,
        rss,
        cpu,
        broker_cpu,
    }
}

/// In a child process: starts a host on tansu with `idle` handlers on other
/// topics, waits until they consume, drains the topic through the no-op
/// handler and prints `RESULT seconds handled rss_ready rss_end rss_peak`
/// (KiB).
async fn child_host_run(spec: &str) {
    let f: Vec<&str> = spec.split('|').collect();
    let [bootstrap, partitions, idle, name, events, noop, side] = f[..] else {
        panic!("bad {CHILD}: {spec}")
    };
    let (partitions, idle, events): (i32, usize, u64) = (
        partitions.parse().unwrap(),
        idle.parse().unwrap(),
        events.parse().unwrap(),
    );
    let dir = temp_handlers_dir(&format!("bench-consume-{name}"));
    let idle_component = support::built_handlers().join(IDLE_COMPONENT);
    for i in 0..idle {
        std::fs::copy(&idle_component, dir.join(format!("idle-{i:02}.wasm"))).unwrap();
    }
    let mut c = config(&dir, Some(bootstrap));
    c.topic_partitions = partitions;
    if std::env::var("EVENT_HOST_TELEMETRY").as_deref() == Ok("off")
        || std::env::var_os("CONSUME_NO_HISTORY").is_some()
    {
        c.call_history = 0;
    }
    if let Some(n) = std::env::var("CONSUME_CALL_HISTORY")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        c.call_history = n;
    }
    let host = TestHost::start(c).await;
    let (_, handlers) = host.get("/handlers").await;
    assert_eq!(handlers.as_array().map(Vec::len), Some(idle), "{handlers}");
    let noop = std::fs::read(noop).unwrap();
    let (time, handled, (ready, end, peak), (cpu, broker_cpu)) =
        drain(&host, &dir, (name, side), events, &noop, bootstrap).await;
    host.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "RESULT {} {handled} {ready} {end} {peak} {} {}",
        time.as_secs_f64(),
        cpu.as_secs_f64(),
        broker_cpu.map_or(-1.0, |c| c.as_secs_f64())
    );
}

/// Adds the no-op handler (`side` says which build) as `name` to a running
/// host and waits until it is done with `events`: how long from its
/// partitions being assigned, how many it took, the RSS before, at the end
/// and at the peak, and the CPU time this process and the broker used.
async fn drain(
    host: &TestHost,
    dir: &Path,
    (name, side): (&str, &str),
    events: u64,
    noop: &[u8],
    bootstrap: &str,
) -> (Duration, u64, (u64, u64, u64), (Duration, Option<Duration>)) {
    let rss_ready = proc_status_kib("VmRSS:");
    let meter = CpuMeter::start(bootstrap);
    // Resets VmHWM to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let tmp = dir.join(".noop.tmp");
    std::fs::write(&tmp, noop).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).unwrap();
    let path = format!("/handlers/{name}");
    let started = Instant::now();
    let assigned = loop {
        let (_, h) = host.get(&path).await;
        if h["status"] == "running" {
            break Instant::now();
        }
        assert!(started.elapsed() < PATIENCE, "{name} did not start: {h}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let mut last = (0, Instant::now());
    let stats = loop {
        let stats = host.stats(name).await;
        let taken = done(&stats);
        if taken >= events {
            break stats;
        }
        if taken > last.0 {
            last = (taken, Instant::now());
        }
        assert!(
            last.1.elapsed() < PATIENCE,
            "host: stuck after {taken}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let time = assigned.elapsed();
    let cpu = meter.stop();
    let rss = (
        rss_ready,
        proc_status_kib("VmRSS:"),
        proc_status_kib("VmHWM:"),
    );
    assert_eq!(
        (stats["failed"].as_u64(), stats["deadLettered"].as_u64()),
        (Some(0), Some(0)),
        "{stats}"
    );
    // The no-op handler runs on every event, the skipping one on none.
    let ran = stats["handled"].as_u64().unwrap();
    assert_eq!(
        ran,
        if side == PIPELINE { 0 } else { done(&stats) },
        "{side}: {stats}"
    );
    (time, done(&stats), rss, cpu)
}

/// Events a handler is done with: handled or skipped.
fn done(stats: &serde_json::Value) -> u64 {
    stats["handled"].as_u64().unwrap() + stats["skipped"].as_u64().unwrap()
}

/// A `kB` field of /proc/self/status.
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn print_run(r: &Run) {
    let rss = match r.rss {
        Some((ready, end, peak)) => format!(
            "   RSS ready {} MiB, end {} MiB, peak {} MiB",
            ready / 1024,
            end / 1024,
            peak / 1024
        ),
        None => String::new(),
    };
    let broker_cpu = match r.broker_cpu_per_event() {
        Some(us) => format!(", broker {us:.1}"),
        None => String::new(),
    };
    println!(
        "  {:?}, {:>2} partitions, {:>2} idle: {:<20} {:>8} events in {:6.2} s = {:>8.0} events/s {:6.1} MB/s   CPU µs/event: consumer {:.1}{broker_cpu}{rss}",
        r.broker,
        r.partitions,
        r.idle,
        r.side,
        r.events,
        r.time.as_secs_f64(),
        r.rate(),
        r.mb_per_s(),
        r.cpu_per_event()
    );
}

/// A Markdown table of every run; the host's rate against the best raw
/// rate of the same broker and partition count.
fn report(runs: &[Run]) {
    println!();
    println!(
        "| broker | partitions | idle handlers | side | events/s | MB/s | host ÷ raw StreamConsumer | host ÷ raw BaseConsumer | consumer CPU µs/event | broker CPU µs/event | RSS ready → end (peak) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let best = |side: &str, of: &Run| {
        runs.iter()
            .filter(|r| r.side == side && r.broker == of.broker && r.partitions == of.partitions)
            .map(Run::rate)
            .fold(0.0, f64::max)
    };
    for r in runs {
        let (mut ratio_stream, mut ratio_poll, mut rss) = Default::default();
        if r.side.starts_with("host") {
            ratio_stream = format!("{:.2}", r.rate() / best("raw StreamConsumer", r));
            ratio_poll = format!("{:.2}", r.rate() / best("raw BaseConsumer", r));
        }
        if let Some((ready, end, peak)) = r.rss {
            rss = format!(
                "{} → {} MiB ({} MiB)",
                ready / 1024,
                end / 1024,
                peak / 1024
            );
        }
        let broker_cpu = r
            .broker_cpu_per_event()
            .map_or(String::new(), |us| format!("{us:.1}"));
        println!(
            "| {:?} | {} | {} | {} | {:.0} | {:.1} | {ratio_stream} | {ratio_poll} | {:.1} | {broker_cpu} | {rss} |",
            r.broker,
            r.partitions,
            r.idle,
            r.side,
            r.rate(),
            r.mb_per_s(),
            r.cpu_per_event()
        );
    }
    report_medians(runs);
}

/// With several rounds: per broker and partition count (no idle handlers),
/// the median rate of each side and each host side's median over the
/// median of the better raw loop. Single drains on a shared machine vary by
/// ±20 %; medians of alternating rounds are the figures to compare.
fn report_medians(runs: &[Run]) {
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    let mut cases: Vec<(BrokerKind, i32)> = Vec::new();
    for r in runs.iter().filter(|r| r.idle == 0) {
        if !cases.contains(&(r.broker, r.partitions)) {
            cases.push((r.broker, r.partitions));
        }
    }
    let rounds = |broker, partitions, side: &str| -> Vec<&Run> {
        runs.iter()
            .filter(|r| r.broker == broker && r.partitions == partitions)
            .filter(|r| r.idle == 0 && r.side == side)
            .collect()
    };
    if !cases
        .iter()
        .any(|&(b, p)| rounds(b, p, "raw StreamConsumer").len() > 1)
    {
        return;
    }
    println!();
    println!(
        "| broker | partitions | rounds | side | median events/s | ÷ better raw median | median consumer CPU µs/event | median broker CPU µs/event |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (broker, partitions) in cases {
        let rate = |side| {
            median(
                rounds(broker, partitions, side)
                    .iter()
                    .map(|r| r.rate())
                    .collect(),
            )
        };
        let raw = rate("raw StreamConsumer").max(rate("raw BaseConsumer"));
        for side in ["raw StreamConsumer", "raw BaseConsumer", PIPELINE, NOOP] {
            let of = rounds(broker, partitions, side);
            if of.is_empty() {
                continue;
            }
            let ratio = if side.starts_with("host") {
                format!("{:.2}", rate(side) / raw)
            } else {
                String::new()
            };
            let cpu = median(of.iter().map(|r| r.cpu_per_event()).collect());
            let broker_cpu = median(of.iter().filter_map(|r| r.broker_cpu_per_event()).collect());
            println!(
                "| {broker:?} | {partitions} | {} | {side} | {:.0} | {ratio} | {cpu:.1} | {} |",
                of.len(),
                rate(side),
                if broker_cpu.is_nan() {
                    String::new()
                } else {
                    format!("{broker_cpu:.1}")
                }
            );
        }
    }
}
