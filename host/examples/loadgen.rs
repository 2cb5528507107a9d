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
//! cargo run --release -p event-host --example loadgen -- \
//!     --url http://127.0.0.1:3000 --brokers 127.0.0.1:9092 \
//!     --rates 500,1000,2000,4000 --duration 10s
//! ```
//!
//! `host/benches/compare.sh` runs it against event-host and the demo, one
//! rate per run, each on a fresh tansu broker and server (tansu 0.6's memory
//! engine slows down as its log grows), and merges the runs with `--merge`.
//! Results go in BENCHMARKS.md.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(
    about = "Open-loop load on POST /users: HTTP latency and registration -> welcome chain latency per rate"
)]
struct Args {
    /// Base URL of the server under test (event-host or the original demo).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,

    /// Bootstrap servers of the broker the server uses: the welcome
    /// notifications are read there.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,

    /// Topic the welcome notifications are published to.
    #[arg(long, default_value = "notification-events")]
    topic: String,

    /// `fetch.wait.max.ms` of the notification reader. Chain latency ends at
    /// the welcome's Kafka timestamp, so the reader's pace does not count;
    /// it only delays the drain. Shorter costs the broker more: tansu 0.6
    /// holds every fetch this long, and lists the partition's whole log for
    /// each one that returns data.
    #[arg(long, default_value_t = 50)]
    fetch_wait_ms: u32,

    /// Request rates (per second) to run, one step each, in this order.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,4000")]
    rates: Vec<u32>,

    /// Length of each step.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    duration: Duration,

    /// Unreported load before the steps: opens connections, warms caches
    /// and (for the demo) the JIT.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    warmup: Duration,

    /// Rate of the warm-up, per second. Kept low: what it stores makes
    /// every later fetch on tansu's memory engine slower.
    #[arg(long, default_value_t = 200)]
    warmup_rate: u32,

    /// How long after the last response of a step its outstanding chains
    /// may still complete. A chain later than that counts as missing, and
    /// the step as not kept up.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    drain: Duration,

    /// Pause before each step. A step also waits until every chain of the
    /// steps before it has arrived (or --settle-max passed), so a backlog
    /// left by an overloaded step is not measured again.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pause: Duration,

    /// Longest wait for earlier chains; the step starts anyway after it (and says so).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "300s")]
    settle_max: Duration,

    /// Per-request timeout; a request unanswered by then is an error "timeout".
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    timeout: Duration,

    /// Most requests in flight at once. A request due while this many are
    /// unanswered is not sent and counts as an error: the server is
    /// hopelessly behind, and this keeps the generator from exhausting
    /// sockets and memory.
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,

    /// After the --rates steps, search for the highest rate at which this
    /// keeps up: double from the best passing rate until a step fails, then
    /// bisect. All on the same server and broker: on tansu's memory engine,
    /// whose fetches slow down as its log grows, every step handicaps the
    /// next; there, run one rate per fresh broker (compare.sh) instead.
    #[arg(long, value_enum)]
    find_max: Option<Criterion>,

    /// The search stops when the failing rate is within this factor of the
    /// passing one.
    #[arg(long, default_value_t = 1.1)]
    find_max_precision: f64,

    /// Highest rate the search tries.
    #[arg(long, default_value_t = 64_000)]
    find_max_limit: u32,

    /// Name of the server in the report.
    #[arg(long, default_value = "server")]
    label: String,

    /// NAME=PID of a local process whose CPU use and resident memory to
    /// report per step (repeatable), e.g. `--watch server=1234 --watch broker=1200`.
    #[arg(long, value_parser = parse_watch)]
    watch: Vec<Watched>,

    /// Also write every step's figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,

    /// Send nothing: print one report from the --json files of earlier
    /// runs (e.g. one run per rate, each on a fresh broker).
    #[arg(long, num_args = 1.., value_name = "JSON")]
    merge: Vec<PathBuf>,
}

/// What "keeps up" is judged on, for `--find-max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Criterion {
    /// The registration → welcome chain: every chain completed, latency not growing.
    Chain,
    /// `POST /users` alone: no errors, latency not growing.
    Http,
}

#[derive(Debug, Clone)]
struct Watched {
    name: String,
    pid: u32,
}

fn parse_watch(s: &str) -> Result<Watched, String> {
    let (name, pid) = s.split_once('=').ok_or("expected NAME=PID")?;
    let pid = pid.parse().map_err(|e| format!("pid {pid:?}: {e}"))?;
    Ok(Watched {
        name: name.to_string(),
        pid,
    })
}

/// Latencies are recorded in microseconds, up to an hour, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The latencies of one step, and how they moved through it: a server that
/// keeps up has about the same latency at the end as at the start; one that
/// falls behind builds a queue, and its latency grows through the step.
struct Trend {
    start: Instant,
    duration: Duration,
    window: Duration,
    all: Histogram<u64>,
    /// Of the requests due in the first and the last second (for the report).
    first: Histogram<u64>,
    last: Histogram<u64>,
    /// (due, latency) in seconds, for the least-squares slope.
    samples: Vec<(f64, f64)>,
}

impl Trend {
    fn new(start: Instant, duration: Duration) -> Self {
        Self {
            start,
            duration,
            window: (duration / 4).min(Duration::from_secs(1)),
            all: histogram(),
            first: histogram(),
            last: histogram(),
            samples: Vec::new(),
        }
    }

    fn record(&mut self, due: Instant, latency: Duration) {
        let us = micros(latency);
        self.all.saturating_record(us);
        let at = due.saturating_duration_since(self.start);
        self.samples.push((at.as_secs_f64(), latency.as_secs_f64()));
        if at < self.window {
            self.first.saturating_record(us);
        }
        if at + self.window >= self.duration {
            self.last.saturating_record(us);
        }
    }

    /// How much latency grew over the step, in ms: the least-squares slope
    /// of latency against due time, times the step's length. A fit over
    /// the whole step rather than first-against-last second, because a
    /// consumer that fetches in batches (the demo's kafkajs on tansu gets a
    /// fetch answer every ~2.5 s) makes latency a saw-tooth.
    fn growth_ms(&self) -> Option<f64> {
        let n = self.samples.len() as f64;
        if n < 2.0 {
            return None;
        }
        let (mx, my) = self
            .samples
            .iter()
            .fold((0.0, 0.0), |(x, y), (a, b)| (x + a / n, y + b / n));
        let (sxy, sxx) = self.samples.iter().fold((0.0, 0.0), |(sxy, sxx), (x, y)| {
            (sxy + (x - mx) * (y - my), sxx + (x - mx) * (x - mx))
        });
        (sxx > 0.0).then(|| sxy / sxx * self.duration.as_secs_f64() * 1000.0)
    }

    /// Whether latency stayed bounded. It grew over the step by at most
    /// half the first second's median, or 20 ms (so millisecond jitter does
    /// not fail a step): a server short of the rate by a few per cent
    /// queues hundreds of requests in a 10 s step, and its latency grows
    /// well past that. And the first second's median is at most 3 times
    /// the unloaded one (`baseline_ms`, from the warm-up) plus 20 ms: a
    /// server swamped from the start has a huge latency that cannot grow
    /// much more.
    fn bounded(&self, baseline_ms: Option<f64>) -> bool {
        let (Some(growth), false) = (self.growth_ms(), self.first.is_empty()) else {
            return false;
        };
        let first_ms = self.first.value_at_quantile(0.5) as f64 / 1000.0;
        growth <= (first_ms / 2.0).max(20.0)
            && baseline_ms.is_none_or(|b| first_ms <= 3.0 * b + 20.0)
    }

    fn median_ms(&self) -> Option<f64> {
        (!self.all.is_empty()).then(|| self.all.value_at_quantile(0.5) as f64 / 1000.0)
    }

    fn summary(&self) -> Option<Latency> {
        if self.all.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Latency {
            p50_ms: ms(self.all.value_at_quantile(0.5)),
            p99_ms: ms(self.all.value_at_quantile(0.99)),
            p999_ms: ms(self.all.value_at_quantile(0.999)),
            max_ms: ms(self.all.max()),
            first_second_p50_ms: (!self.first.is_empty())
                .then(|| ms(self.first.value_at_quantile(0.5))),
            last_second_p50_ms: (!self.last.is_empty())
                .then(|| ms(self.last.value_at_quantile(0.5))),
            growth_ms: self.growth_ms(),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    first_second_p50_ms: Option<f64>,
    last_second_p50_ms: Option<f64>,
    /// Latency growth over the step (least-squares fit), ms.
    growth_ms: Option<f64>,
}

/// Matches welcome notifications to registrations by user id. A
/// notification may be read before the response that names its user has
/// been processed, so either side may come first.
struct Chains {
    state: Mutex<ChainState>,
}

struct ChainState {
    trend: Trend,
    split: Split,
    /// Accepted registrations without their notification yet: user id → due.
    waiting: HashMap<String, Registered>,
    /// Notifications with no registration (yet): user id → arrival.
    early: HashMap<String, Notified>,
    accepted: u64,
    completed: u64,
    /// Registrations of earlier steps still without their notification:
    /// the server's backlog of this generator's chains.
    stale: std::collections::HashSet<String>,
}

/// A registration the server accepted.
#[derive(Clone, Copy)]
struct Registered {
    due: Instant,
    /// The user's `createdAt`: the server's clock when it took the request.
    created: Option<SystemTime>,
}

/// A welcome notification the reader got.
#[derive(Clone, Copy)]
struct Notified {
    /// When the reader got it.
    at: Instant,
    /// Its `data.sentAt`: the clock when the user handler ran.
    sent: Option<SystemTime>,
    /// Its Kafka timestamp (CreateTime, milliseconds): when the server's
    /// producer took it. Where the chain ends: the welcome is published.
    published: Option<SystemTime>,
}

/// Where a chain's time goes, from the timestamps the servers write
/// (milliseconds, same machine, same clock): due → `createdAt` (request in,
/// until the server has built the user), → `sentAt` (event stored,
/// consumed, handler running), → Kafka timestamp (the welcome handed to the
/// producer) and → read by this reader (stored, fetched: the broker's and
/// the reader's fetch pacing, which the chain latency leaves out).
struct Split {
    /// `Instant` and wall clock read together, to put due and arrival
    /// instants on the servers' clock.
    anchor: (Instant, SystemTime),
    to_created: Histogram<u64>,
    to_handler: Histogram<u64>,
    to_published: Histogram<u64>,
    to_reader: Histogram<u64>,
}

impl Split {
    fn new() -> Self {
        Self {
            anchor: (Instant::now(), SystemTime::now()),
            to_created: histogram(),
            to_handler: histogram(),
            to_published: histogram(),
            to_reader: histogram(),
        }
    }

    fn wall(&self, i: Instant) -> SystemTime {
        let (instant, system) = self.anchor;
        match i.checked_duration_since(instant) {
            Some(after) => system + after,
            None => system - instant.duration_since(i),
        }
    }

    fn record(&mut self, r: Registered, n: Notified) {
        let (Some(created), Some(sent), Some(published)) = (r.created, n.sent, n.published) else {
            return;
        };
        let due = self.wall(r.due);
        let read = self.wall(n.at);
        self.to_created.saturating_record(between(due, created));
        self.to_handler.saturating_record(between(created, sent));
        self.to_published
            .saturating_record(between(sent, published));
        self.to_reader.saturating_record(between(published, read));
    }

    fn summary(&self) -> Option<ChainSplit> {
        if self.to_created.is_empty() {
            return None;
        }
        let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Some(ChainSplit {
            to_created_p50_ms: q(&self.to_created, 0.5),
            to_handler_p50_ms: q(&self.to_handler, 0.5),
            to_published_p50_ms: q(&self.to_published, 0.5),
            to_reader_p50_ms: q(&self.to_reader, 0.5),
            to_created_p99_ms: q(&self.to_created, 0.99),
            to_handler_p99_ms: q(&self.to_handler, 0.99),
            to_published_p99_ms: q(&self.to_published, 0.99),
            to_reader_p99_ms: q(&self.to_reader, 0.99),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChainSplit {
    to_created_p50_ms: f64,
    to_handler_p50_ms: f64,
    to_published_p50_ms: f64,
    to_reader_p50_ms: f64,
    to_created_p99_ms: f64,
    to_handler_p99_ms: f64,
    to_published_p99_ms: f64,
    to_reader_p99_ms: f64,
}

impl Chains {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(ChainState {
                trend: Trend::new(now, Duration::from_secs(1)),
                split: Split::new(),
                waiting: HashMap::new(),
                early: HashMap::new(),
                accepted: 0,
                completed: 0,
                stale: std::collections::HashSet::new(),
            }),
        }
    }

    /// Starts counting a new step; what is left of the previous one is dropped.
    fn begin(&self, start: Instant, duration: Duration) {
        let mut s = lock(&self.state);
        s.trend = Trend::new(start, duration);
        s.split = Split::new();
        let left: Vec<String> = s.waiting.drain().map(|(user, _)| user).collect();
        s.stale.extend(left);
        s.early.clear();
        s.accepted = 0;
        s.completed = 0;
    }

    /// The server accepted the registration of `user`.
    fn accepted(&self, user: String, r: Registered) {
        let mut s = lock(&self.state);
        s.accepted += 1;
        match s.early.remove(&user) {
            Some(n) => s.complete(r, n),
            None => {
                s.waiting.insert(user, r);
            }
        }
    }

    /// The welcome of `user` was read.
    fn arrived(&self, user: String, n: Notified) {
        let mut s = lock(&self.state);
        match s.waiting.remove(&user) {
            Some(r) => s.complete(r, n),
            None if s.stale.remove(&user) => {}
            None => {
                // A duplicate (at-least-once) or one from an earlier step
                // lands here too; it never matches and is dropped at the
                // next step.
                s.early.insert(user, n);
            }
        }
    }

    fn counts(&self) -> (u64, u64) {
        let s = lock(&self.state);
        (s.accepted, s.completed)
    }

    /// Chains of earlier steps not yet arrived.
    fn stale(&self) -> usize {
        lock(&self.state).stale.len()
    }

    /// Gives up on the chains of earlier steps.
    fn forget_stale(&self) {
        lock(&self.state).stale.clear();
    }
}

/// From `a` to `b` in µs. Server timestamps have milliseconds only, so a
/// span can come out negative by up to 1 ms: it counts as 0 (1 µs).
fn between(a: SystemTime, b: SystemTime) -> u64 {
    micros(b.duration_since(a).unwrap_or_default())
}

impl ChainState {
    /// A chain is complete: its latency runs from when the registration was
    /// due to when the welcome was published (its Kafka timestamp, so
    /// neither the broker's fetch pacing nor this reader's counts), or to
    /// when it was read if the message has no timestamp.
    fn complete(&mut self, r: Registered, n: Notified) {
        self.completed += 1;
        let latency = match n.published {
            Some(published) => Duration::from_micros(between(self.split.wall(r.due), published)),
            None => n.at.saturating_duration_since(r.due),
        };
        self.trend.record(r.due, latency);
        self.split.record(r, n);
    }
}

/// The HTTP side of one step.
struct StepHttp {
    start: Instant,
    trend: Mutex<Trend>,
    /// From when a request was due to when its task started sending it: the
    /// generator's own delay (timer, scheduling on a busy machine).
    send_lag: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    ok: AtomicU64,
    sent: AtomicU64,
    /// When the last request went out, in ns after `start`.
    last_send_ns: AtomicU64,
}

impl StepHttp {
    fn new(start: Instant, duration: Duration) -> Self {
        Self {
            start,
            trend: Mutex::new(Trend::new(start, duration)),
            send_lag: Mutex::new(histogram()),
            errors: Mutex::new(BTreeMap::new()),
            ok: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            last_send_ns: AtomicU64::new(0),
        }
    }

    fn error(&self, kind: impl Into<String>) {
        *lock(&self.errors).entry(kind.into()).or_default() += 1;
    }

    fn error_count(&self) -> u64 {
        lock(&self.errors).values().sum()
    }
}

/// What every request task shares.
struct Shared {
    client: reqwest::Client,
    users_url: String,
    run: String,
    seq: AtomicU64,
    in_flight: AtomicUsize,
    chains: Chains,
}

/// Sends one registration due at `due` and records its outcome.
async fn register(shared: Arc<Shared>, step: Arc<StepHttp>, due: Instant) {
    let began = Instant::now();
    lock(&step.send_lag).saturating_record(micros(began.saturating_duration_since(due)));
    step.sent.fetch_add(1, Ordering::Relaxed);
    let sent_at =
        u64::try_from(began.saturating_duration_since(step.start).as_nanos()).unwrap_or(u64::MAX);
    step.last_send_ns.fetch_max(sent_at, Ordering::Relaxed);

    let n = shared.seq.fetch_add(1, Ordering::Relaxed);
    let body = format!(
        r#"{{"name":"Load {run} {n}","email":"load-{run}-{n}@example.com","age":30}}"#,
        run = shared.run
    );
    let outcome = send(&shared, body).await;
    let done = Instant::now();
    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    match outcome {
        Ok((user, created)) => {
            step.ok.fetch_add(1, Ordering::Relaxed);
            lock(&step.trend).record(due, done.saturating_duration_since(due));
            shared.chains.accepted(user, Registered { due, created });
        }
        Err(kind) => step.error(kind),
    }
}

/// POSTs the body; the new user's id and `createdAt`, or the kind of error.
async fn send(shared: &Shared, body: String) -> Result<(String, Option<SystemTime>), String> {
    let response = shared
        .client
        .post(&shared.users_url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| error_kind(&e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| error_kind(&e))?;
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let user: Value =
        serde_json::from_slice(&bytes).map_err(|_| "response not JSON".to_string())?;
    let id = user
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| "response without an id".to_string())?;
    Ok((id.to_string(), time(user.get("createdAt"))))
}

/// An RFC 3339 timestamp, as both servers write them (`toISOString`).
fn time(v: Option<&Value>) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(v?.as_str()?).ok()
}

fn error_kind(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "reading the response"
    } else if e.is_request() {
        "request"
    } else {
        "other"
    };
    kind.to_string()
}

/// The user a welcome notification is for, and when it was sent, from the
/// event envelope `{"type": "NOTIFICATION_SENT", "userId", "data": {"type":
/// "welcome", "userId", "sentAt"}}` (both the host's and the demo's). `None`
/// for any other message.
fn welcomed_user(payload: &[u8]) -> Option<(String, Option<SystemTime>)> {
    let event: Value = serde_json::from_slice(payload).ok()?;
    if event.get("type")?.as_str()? != "NOTIFICATION_SENT" {
        return None;
    }
    let data = event.get("data")?;
    if data.get("type")?.as_str()? != "welcome" {
        return None;
    }
    let user = data
        .get("userId")
        .or_else(|| event.get("userId"))?
        .as_str()?;
    Some((user.to_string(), time(data.get("sentAt"))))
}

/// Counts of what the notification reader could not use.
#[derive(Default)]
struct ReaderStats {
    kafka_errors: AtomicU64,
    not_welcome: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A consumer of every partition of `topic`, assigned at the current end:
/// no consumer group to join and nothing committed, and only notifications
/// published from now on are read.
fn notification_reader(
    brokers: &str,
    topic: &str,
    run: &str,
    fetch_wait_ms: u32,
) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("loadgen-{run}"))
        .set("client.id", "loadgen")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // The reader is a stopwatch: its fetch wait counts as chain latency.
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .set("fetch.error.backoff.ms", "10")
        .create()
        .context("cannot create the Kafka consumer")?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("cannot read the metadata of {topic} from {brokers}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("topic {topic} does not exist on {brokers}: start the server first (it creates it)");
    }
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .with_context(|| format!("cannot read the end offset of {topic}/{p}"))?;
        assignment.add_partition_offset(topic, p, Offset::Offset(high))?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Reads notifications until `stop`, stamping each as it is handed over.
fn read_notifications(
    consumer: BaseConsumer,
    shared: Arc<Shared>,
    stats: Arc<ReaderStats>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => {
                stats.kafka_errors.fetch_add(1, Ordering::Relaxed);
                *lock(&stats.last_error) = Some(e.to_string());
            }
            Some(Ok(message)) => {
                let at = Instant::now();
                let published = message
                    .timestamp()
                    .to_millis()
                    .and_then(|ms| u64::try_from(ms).ok())
                    .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
                match message.payload().and_then(welcomed_user) {
                    Some((user, sent)) => {
                        let n = Notified {
                            at,
                            sent,
                            published,
                        };
                        shared.chains.arrived(user, n);
                    }
                    None => {
                        stats.not_welcome.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// CPU time (user + system) of a process in seconds, from `/proc/PID/stat`.
/// Clock ticks are taken as 100 a second (`USER_HZ` on Linux).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Busy and total CPU time of the whole machine (all cores), in ticks, from `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// A line of `/proc/PID/status` in MiB (`VmRSS`, `VmHWM`).
fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU and memory of the watched processes, the generator and the machine
/// over the sending part of a step.
struct Usage {
    started: Instant,
    cpu: Vec<Option<f64>>,
    own_cpu: Option<f64>,
    machine: Option<(u64, u64)>,
    peak_rss: Arc<Mutex<Vec<f64>>>,
    sampler: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProcessUsage {
    name: String,
    cpu_percent: Option<f64>,
    peak_rss_mib: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Resources {
    processes: Vec<ProcessUsage>,
    loadgen_cpu_percent: Option<f64>,
    /// Of the whole machine: 100 % is every core busy.
    machine_busy_percent: Option<f64>,
    /// CPU of everything else on the machine (in % of one core): the
    /// machine's busy time less the watched processes and the generator.
    /// Well above a few per cent, something else competed for the cores.
    others_cpu_percent: Option<f64>,
}

impl Usage {
    fn start(watched: &[Watched]) -> Self {
        let peak_rss = Arc::new(Mutex::new(vec![0.0_f64; watched.len()]));
        let sampler = {
            let peak_rss = peak_rss.clone();
            let pids: Vec<u32> = watched.iter().map(|w| w.pid).collect();
            tokio::spawn(async move {
                loop {
                    for (i, pid) in pids.iter().enumerate() {
                        if let Some(rss) = memory_mib(*pid, "VmRSS:") {
                            let mut peaks = lock(&peak_rss);
                            peaks[i] = peaks[i].max(rss);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        Self {
            started: Instant::now(),
            cpu: watched
                .iter()
                .map(|w| cpu_seconds(&w.pid.to_string()))
                .collect(),
            own_cpu: cpu_seconds("self"),
            machine: machine_ticks(),
            peak_rss,
            sampler,
        }
    }

    fn finish(self, watched: &[Watched]) -> Resources {
        self.sampler.abort();
        let wall = self.started.elapsed().as_secs_f64();
        let percent =
            |before: Option<f64>, after: Option<f64>| Some((after? - before?) / wall * 100.0);
        let peaks = lock(&self.peak_rss).clone();
        let machine = match (self.machine, machine_ticks()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / (t1 - t0) as f64 * 100.0)
            }
            _ => None,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let processes: Vec<ProcessUsage> = watched
            .iter()
            .zip(self.cpu)
            .zip(peaks)
            .map(|((w, before), peak)| ProcessUsage {
                name: w.name.clone(),
                cpu_percent: percent(before, cpu_seconds(&w.pid.to_string())),
                peak_rss_mib: (peak > 0.0).then_some(peak),
            })
            .collect();
        let loadgen = percent(self.own_cpu, cpu_seconds("self"));
        let known: f64 =
            processes.iter().filter_map(|p| p.cpu_percent).sum::<f64>() + loadgen.unwrap_or(0.0);
        Resources {
            others_cpu_percent: machine.map(|m| (m * cores - known).max(0.0)),
            processes,
            loadgen_cpu_percent: loadgen,
            machine_busy_percent: machine,
        }
    }
}

/// The figures of one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Step {
    rate: u32,
    duration_s: f64,
    /// Requests due in the step.
    due: u64,
    /// Requests sent per second, as achieved by the generator.
    sent_per_s: f64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    send_lag_p99_ms: f64,
    http: Option<Latency>,
    http_keeps_up: bool,
    chains_accepted: u64,
    chains_completed: u64,
    chain: Option<Latency>,
    chain_split: Option<ChainSplit>,
    chain_keeps_up: bool,
    /// The step began before the previous one's backlog drained.
    started_with_backlog: bool,
    /// Unloaded medians (from the warm-up) the step was judged against.
    baseline_http_p50_ms: Option<f64>,
    baseline_chain_p50_ms: Option<f64>,
    /// This step's medians (HTTP, chain), ms.
    #[serde(skip)]
    medians: (Option<f64>, Option<f64>),
    resources: Resources,
}

impl Step {
    fn passes(&self, criterion: Criterion) -> bool {
        match criterion {
            Criterion::Chain => self.chain_keeps_up,
            Criterion::Http => self.http_keeps_up,
        }
    }
}

struct Runner {
    args: Args,
    shared: Arc<Shared>,
    reader: Arc<ReaderStats>,
    /// Unloaded medians (HTTP, chain) in ms, from the warm-up.
    baseline: Mutex<(Option<f64>, Option<f64>)>,
}

impl Runner {
    /// Pauses, and waits until every chain of the earlier steps has
    /// arrived: only then has the server worked off their backlog. (Waiting
    /// for a quiet spell instead is fooled by batching consumers: the
    /// demo's notifications come in bursts ~2.5 s apart on tansu.)
    async fn settle(&self) -> bool {
        let began = Instant::now();
        tokio::time::sleep(self.args.pause).await;
        let mut said = false;
        loop {
            let stale = self.shared.chains.stale();
            if stale == 0 {
                return true;
            }
            if began.elapsed() > self.args.settle_max {
                eprintln!(
                    "  {stale} chains of earlier steps still missing after {:?}: starting anyway",
                    self.args.settle_max
                );
                self.shared.chains.forget_stale();
                return false;
            }
            if !said && began.elapsed() > Duration::from_secs(10) {
                eprintln!("  waiting for {stale} chains of earlier steps");
                said = true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs one step: `rate` requests a second for `duration`, then waits
    /// for the responses and up to `--drain` for their chains.
    async fn step(&self, rate: u32, duration: Duration) -> Step {
        let settled = self.settle().await;
        let rate = rate.max(1);
        let due = (f64::from(rate) * duration.as_secs_f64()).round().max(1.0) as u64;
        let start = Instant::now() + Duration::from_millis(5);
        let http = Arc::new(StepHttp::new(start, duration));
        self.shared.chains.begin(start, duration);
        let usage = Usage::start(&self.args.watch);

        // The schedule runs on a thread of its own: tokio's timers tick in
        // whole milliseconds, which at thousands of requests a second would
        // send them in bursts; a thread's sleep is good to ~0.1 ms.
        let dispatcher = {
            let shared = self.shared.clone();
            let http = http.clone();
            let runtime = tokio::runtime::Handle::current();
            let max_in_flight = self.args.max_in_flight;
            tokio::task::spawn_blocking(move || {
                let mut tasks = Vec::with_capacity(usize::try_from(due).unwrap_or(0));
                for i in 0..due {
                    let at = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
                    let now = Instant::now();
                    if at > now {
                        std::thread::sleep(at - now);
                    }
                    if shared.in_flight.load(Ordering::Relaxed) >= max_in_flight {
                        http.error("not sent: too many in flight");
                        continue;
                    }
                    shared.in_flight.fetch_add(1, Ordering::Relaxed);
                    tasks.push(runtime.spawn(register(shared.clone(), http.clone(), at)));
                }
                tasks
            })
        };
        let tasks = dispatcher.await.unwrap_or_default();
        let resources = usage.finish(&self.args.watch);
        for task in tasks {
            // A request task does not panic; if one did, its request is
            // neither ok nor an error, and `due` shows the gap.
            let _ = task.await;
        }

        // Drain: the chains of accepted requests may still be on their way.
        let drain_until = Instant::now() + self.args.drain;
        loop {
            let (accepted, completed) = self.shared.chains.counts();
            if completed >= accepted || Instant::now() >= drain_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let (http_baseline, chain_baseline) = *lock(&self.baseline);
        let (chains_accepted, chains_completed, chain, chain_split, chain_bounded, chain_median) = {
            let s = lock(&self.shared.chains.state);
            let summary = s.trend.summary();
            (
                s.accepted,
                s.completed,
                summary,
                s.split.summary(),
                s.trend.bounded(chain_baseline),
                s.trend.median_ms(),
            )
        };
        let trend = lock(&http.trend);
        let errors = lock(&http.errors).clone();
        let sent = http.sent.load(Ordering::Relaxed);
        let last_send = Duration::from_nanos(http.last_send_ns.load(Ordering::Relaxed));
        let span = last_send.as_secs_f64() + 1.0 / f64::from(rate);
        let ok = http.ok.load(Ordering::Relaxed);
        Step {
            rate,
            duration_s: duration.as_secs_f64(),
            due,
            sent_per_s: sent as f64 / span,
            ok,
            send_lag_p99_ms: lock(&http.send_lag).value_at_quantile(0.99) as f64 / 1000.0,
            http: trend.summary(),
            http_keeps_up: http.error_count() == 0 && trend.bounded(http_baseline),
            baseline_http_p50_ms: http_baseline,
            baseline_chain_p50_ms: chain_baseline,
            medians: (trend.median_ms(), chain_median),
            errors,
            chains_accepted,
            chains_completed,
            chain,
            chain_split,
            chain_keeps_up: chains_accepted > 0
                && chains_completed >= chains_accepted
                && chain_bounded,
            started_with_backlog: !settled,
            resources,
        }
    }

    /// Registers a user every half second until one is welcomed: the
    /// server answers, its consumers have joined, and notifications are
    /// matched. Returns how long the first registration took to be welcomed.
    async fn probe(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let window = Duration::from_secs(60);
        let http = Arc::new(StepHttp::new(started, window));
        self.shared.chains.begin(started, window);
        let mut attempts = 0;
        while started.elapsed() < window {
            attempts += 1;
            let due = Instant::now();
            self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(register(self.shared.clone(), http.clone(), due));
            let next = due + Duration::from_millis(500);
            while Instant::now() < next {
                if let Some(latency) = lock(&self.shared.chains.state).trend.samples.first() {
                    return Ok(Duration::from_secs_f64(latency.1));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let errors = lock(&http.errors).clone();
        if !errors.is_empty() {
            bail!("POST {} failed: {errors:?}", self.shared.users_url);
        }
        bail!(
            "no welcome notification on {} for any of {attempts} registrations within 60 s \
             ({} other messages read, {} Kafka errors): is the server's user handler \
             consuming, and does it publish there?",
            self.args.topic,
            self.reader.not_welcome.load(Ordering::Relaxed),
            self.reader.kafka_errors.load(Ordering::Relaxed),
        )
    }

    /// Doubles the rate from the best passing one until a step fails, then
    /// bisects (geometrically) until the bracket is within the precision.
    async fn find_max(&self, criterion: Criterion, steps: &mut Vec<Step>) -> Option<u32> {
        const MOST_STEPS: usize = 12;
        for _ in 0..MOST_STEPS {
            let lo = steps
                .iter()
                .filter(|s| s.passes(criterion))
                .map(|s| s.rate)
                .max();
            let hi = steps
                .iter()
                .filter(|s| !s.passes(criterion) && lo.is_none_or(|lo| s.rate > lo))
                .map(|s| s.rate)
                .min();
            let next = match (lo, hi) {
                (None, None) => 500,
                (Some(lo), None) if lo >= self.args.find_max_limit => return Some(lo),
                (Some(lo), None) => (lo * 2).min(self.args.find_max_limit),
                (None, Some(hi)) if hi <= 10 => return None,
                (None, Some(hi)) => hi / 2,
                (Some(lo), Some(hi)) => {
                    if f64::from(hi) / f64::from(lo) <= self.args.find_max_precision {
                        return Some(lo);
                    }
                    (f64::from(lo) * f64::from(hi)).sqrt().round() as u32
                }
            };
            eprintln!("find-max ({criterion:?}): trying {next}/s");
            let step = self.step(next, self.args.duration).await;
            progress(&step);
            steps.push(step);
        }
        steps
            .iter()
            .filter(|s| s.passes(criterion))
            .map(|s| s.rate)
            .max()
    }
}

fn progress(s: &Step) {
    let p = |l: &Option<Latency>, f: fn(&Latency) -> f64| l.as_ref().map_or(f64::NAN, f);
    eprintln!(
        "  {}/s: ok {} errors {} | HTTP p50 {:.2} p99 {:.2} ms | chains {}/{} p50 {:.2} p99 {:.2} ms | http {} chain {}",
        s.rate,
        s.ok,
        s.errors.values().sum::<u64>(),
        p(&s.http, |l| l.p50_ms),
        p(&s.http, |l| l.p99_ms),
        s.chains_completed,
        s.chains_accepted,
        p(&s.chain, |l| l.p50_ms),
        p(&s.chain, |l| l.p99_ms),
        yes_no(s.http_keeps_up),
        yes_no(s.chain_keeps_up),
    );
}

fn yes_no(b: bool) -> &'static str {
    if b { "keeps up" } else { "BEHIND" }
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "–".to_string(), f)
}

/// A run's results, as written by --json and read by --merge.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Results {
    label: String,
    url: String,
    /// Resident memory of the watched processes before any load, MiB.
    idle_rss_mib: BTreeMap<String, Option<f64>>,
    /// Their peak resident memory over the whole run (`VmHWM`), MiB.
    peak_rss_mib: BTreeMap<String, Option<f64>>,
    steps: Vec<Step>,
    /// What --find-max found, by criterion.
    max_rate: BTreeMap<String, Option<u32>>,
}

impl Results {
    /// The runs of --merge as one: steps together, memory figures of the
    /// first run (idle) and the highest of all (peak).
    fn merge(runs: Vec<Results>) -> Option<Self> {
        let mut runs = runs.into_iter();
        let mut all = runs.next()?;
        for run in runs {
            all.steps.extend(run.steps);
            for (name, peak) in run.peak_rss_mib {
                let entry = all.peak_rss_mib.entry(name).or_default();
                *entry = match (*entry, peak) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        Some(all)
    }

    fn best(&self, c: Criterion) -> Option<u32> {
        self.steps
            .iter()
            .filter(|s| s.passes(c))
            .map(|s| s.rate)
            .max()
    }
}

/// The report: three Markdown tables (latency, chain split, resources),
/// ready for BENCHMARKS.md.
fn report(r: &Results) {
    let mut sorted: Vec<&Step> = r.steps.iter().collect();
    sorted.sort_by_key(|s| s.rate);
    let durations: Vec<String> = {
        let mut d: Vec<String> = sorted.iter().map(|s| format!("{}", s.duration_s)).collect();
        d.dedup();
        d
    };
    println!();
    println!(
        "### {}: POST /users, open loop, {} s per rate (ms, from the scheduled send time; a chain ends when the welcome is published)",
        r.label,
        durations.join("/")
    );
    println!();
    println!(
        "| rate /s | sent /s | ok | errors | HTTP p50 | p99 | p99.9 | max | keeps up | chains done | chain p50 | p99 | p99.9 | max | p50 1st → last s (fit growth) | keeps up |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|:---:|");
    for s in &sorted {
        let l = |x: &Option<Latency>, f: fn(&Latency) -> f64| opt(x.as_ref().map(f), ms);
        let trend = s.chain.as_ref().map_or("–".to_string(), |c| {
            format!(
                "{} → {} ({})",
                opt(c.first_second_p50_ms, ms),
                opt(c.last_second_p50_ms, ms),
                opt(c.growth_ms, |g| format!("{g:+.0}"))
            )
        });
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} | {} | {} | {} | {} |",
            s.rate,
            s.sent_per_s,
            s.ok,
            s.errors.values().sum::<u64>(),
            l(&s.http, |l| l.p50_ms),
            l(&s.http, |l| l.p99_ms),
            l(&s.http, |l| l.p999_ms),
            l(&s.http, |l| l.max_ms),
            if s.http_keeps_up { "yes" } else { "**no**" },
            s.chains_completed,
            s.chains_accepted,
            l(&s.chain, |l| l.p50_ms),
            l(&s.chain, |l| l.p99_ms),
            l(&s.chain, |l| l.p999_ms),
            l(&s.chain, |l| l.max_ms),
            trend,
            if s.chain_keeps_up { "yes" } else { "**no**" },
        );
    }
    for s in &sorted {
        if !s.errors.is_empty() {
            let kinds: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            println!("\nerrors at {}/s: {}", s.rate, kinds.join(", "));
        }
        if s.started_with_backlog {
            println!(
                "\n{}/s started before the previous step's backlog drained",
                s.rate
            );
        }
    }

    println!();
    println!(
        "Chain split, p50 (p99) ms, from the servers' own timestamps (1 ms resolution): \
         due → `createdAt` (request in) | → handler's `sentAt` (event stored, consumed, \
         handler called) | → the welcome's Kafka timestamp (published: the chain ends here) \
         | → read by the generator (not part of the chain: stored, fetched)"
    );
    println!();
    println!("| rate /s | to createdAt | to handler | to published | to reader |");
    println!("|---:|---:|---:|---:|---:|");
    for s in &sorted {
        if let Some(c) = &s.chain_split {
            println!(
                "| {} | {} ({}) | {} ({}) | {} ({}) | {} ({}) |",
                s.rate,
                ms(c.to_created_p50_ms),
                ms(c.to_created_p99_ms),
                ms(c.to_handler_p50_ms),
                ms(c.to_handler_p99_ms),
                ms(c.to_published_p50_ms),
                ms(c.to_published_p99_ms),
                ms(c.to_reader_p50_ms),
                ms(c.to_reader_p99_ms)
            );
        }
    }

    println!();
    let names: Vec<&str> = sorted
        .first()
        .map(|s| {
            s.resources
                .processes
                .iter()
                .map(|p| p.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    let mut header = String::from("| rate /s |");
    let mut rule = String::from("|---:|");
    for n in &names {
        header.push_str(&format!(" {n} CPU % | {n} peak RSS MiB |"));
        rule.push_str("---:|---:|");
    }
    header.push_str(" loadgen CPU % | others CPU % | machine busy % | send lag p99 ms |");
    rule.push_str("---:|---:|---:|---:|");
    println!("{header}");
    println!("{rule}");
    for s in &sorted {
        let mut row = format!("| {} |", s.rate);
        for p in &s.resources.processes {
            row.push_str(&format!(
                " {} | {} |",
                opt(p.cpu_percent, |v| format!("{v:.0}")),
                opt(p.peak_rss_mib, |v| format!("{v:.0}"))
            ));
        }
        row.push_str(&format!(
            " {} | {} | {} | {} |",
            opt(s.resources.loadgen_cpu_percent, |v| format!("{v:.0}")),
            opt(s.resources.others_cpu_percent, |v| format!("{v:.0}")),
            opt(s.resources.machine_busy_percent, |v| format!("{v:.0}")),
            ms(s.send_lag_p99_ms)
        ));
        println!("{row}");
    }
    let mib = |m: &BTreeMap<String, Option<f64>>| {
        m.iter()
            .map(|(n, v)| format!("{n} {}", opt(*v, |v| format!("{v:.0} MiB"))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !r.idle_rss_mib.is_empty() {
        println!("\nRSS before the load: {}", mib(&r.idle_rss_mib));
        println!("peak RSS (VmHWM): {}", mib(&r.peak_rss_mib));
    }
    println!(
        "\nCPU % is of one core, over the sending part of each step; machine busy % is of all {} cores; \
         others = the machine's busy time less the processes above (other work on the machine).",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let rate = |c| opt(r.best(c).map(f64::from), |v| format!("{v:.0}/s"));
    println!(
        "\nhighest rate run that kept up: POST /users {}, chain {}",
        rate(Criterion::Http),
        rate(Criterion::Chain)
    );
    for (criterion, best) in &r.max_rate {
        println!(
            "--find-max {criterion}: {}",
            opt(best.map(f64::from), |v| format!("{v:.0}/s"))
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
