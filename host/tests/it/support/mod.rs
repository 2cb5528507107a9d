//! What the integration tests share: start the host in-process on a real
//! socket, start a real broker process (tansu), build the test handler
//! components, and read events back from topics.

#![allow(dead_code)]

pub mod dockerfile;
pub mod files;
pub mod flows;
pub mod settings;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use event_host::Config;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use serde_json::Value;
use tokio::sync::oneshot;

/// How long a test waits for something that should happen in milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The folder `cargo build` fills with the workspace's handler components.
pub fn built_handlers() -> PathBuf {
    workspace().join("handlers")
}

/// A fresh, empty handlers folder for one test.
pub fn temp_handlers_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("handlers-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies built demo handlers into `dir`.
pub fn install_demo_handlers(dir: &Path, names: &[&str]) {
    for name in names {
        let from = built_handlers().join(format!("{name}.wasm"));
        std::fs::copy(&from, dir.join(format!("{name}.wasm"))).unwrap_or_else(|e| {
            panic!("{}: {e} (did the host's build script run?)", from.display())
        });
    }
}

/// Builds the test-only crates under host/tests/handlers into components,
/// once per test process, and returns the path of the one asked for.
pub fn test_component(crate_name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let target_dir = BUILT.get_or_init(|| {
        let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("handlers");
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace())
            .args(["build", "--profile", "handler", "--target", "wasm32-wasip2"])
            .args([
                "-p",
                "fault-handler",
                "-p",
                "other-world",
                "-p",
                "bad-describe",
                "-p",
                "first-world",
                "-p",
                "noop-handler",
                "-p",
                "next-world",
                "-p",
                "counting-handler",
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .status()
            .expect("run cargo");
        assert!(
            status.success(),
            "building the test handler components failed"
        );
        target_dir
    });
    target_dir
        .join("wasm32-wasip2/handler")
        .join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// A handlers folder with the fault handler as `echo`: it republishes each
/// `faults` event's data to `faults-out`, so a test sees what was handled.
pub fn echo_dir(test: &str) -> PathBuf {
    let dir = temp_handlers_dir(test);
    std::fs::copy(test_component("fault-handler"), dir.join("echo.wasm")).unwrap();
    dir
}

/// Writes a handler file as an editor or `cp` would: in place.
pub fn write_file(to: &Path, bytes: &[u8]) {
    std::fs::write(to, bytes).unwrap();
}

/// Settings for a test host: a free port, the given handlers folder, the
/// embedded broker unless `brokers` is given, and quick retries.
pub fn config(handlers_dir: &Path, brokers: Option<&str>) -> Config {
    let mut c = Config::defaults();
    c.port = 0;
    c.bind_address = [127, 0, 0, 1].into();
    c.kafka_brokers = brokers.map(str::to_string);
    c.handlers_dir = handlers_dir.to_path_buf();
    c.retry_backoff_ms = 20;
    c.shutdown_timeout_ms = 20_000;
    c.compile_cache_dir = Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"));
    c
}

/// The host, running in this process on a real socket.
pub struct TestHost {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestHost {
    /// Starts the host and waits until `/health` says it is ready.
    pub async fn start(config: Config) -> Self {
        let host = Self::spawn(config).await;
        host.wait_ready().await;
        host
    }

    /// Starts the host without waiting for it to be ready.
    pub async fn spawn(config: Config) -> Self {
        init_logging();
        let listener = tokio::net::TcpListener::bind((config.bind_address, config.port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(event_host::run(config, listener, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    /// Waits until `/health` answers 200.
    pub async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok(r) = self.http.get(self.url("/health")).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(!self.task.is_finished(), "the host stopped during start-up");
            assert!(
                started.elapsed() < PATIENCE,
                "the host did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        let r = self
            .http
            .request(method, self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    /// Registers a user through the API (`POST /users`) and returns it.
    pub async fn register(&self, name: &str) -> Value {
        let email = format!("{}@example.com", name.to_lowercase());
        let body = serde_json::json!({"name": name, "email": email, "age": 30});
        let (status, user) = self.post("/users", &body).await;
        assert_eq!(status, 200, "{user}");
        user
    }

    /// Publishes an event to `faults` for the fault-handler test component,
    /// with data `{"action": action, ..extra}`, and returns its id.
    pub async fn fault(&self, action: &str, user_id: Option<&str>, extra: Value) -> String {
        let mut data = serde_json::json!({"action": action});
        if let (Some(data), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
            data.extend(extra.clone());
        }
        let body = serde_json::json!({"type": "FAULT", "userId": user_id, "data": data});
        let (status, event) = self.post("/events/faults", &body).await;
        assert_eq!(status, 201, "{event}");
        event["id"].as_str().unwrap().to_string()
    }

    /// The bootstrap servers the host uses (the embedded broker's, or the
    /// cluster's), from `/health`.
    pub async fn bootstrap(&self) -> String {
        let (_, health) = self.get("/health").await;
        health["broker"]["bootstrapServers"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The counters of one handler.
    pub async fn stats(&self, handler: &str) -> Value {
        let (status, h) = self.get(&format!("/handlers/{handler}")).await;
        assert_eq!(status, 200, "{h}");
        h["stats"].clone()
    }

    /// Waits until `check` holds for a handler's `/handlers/:name` view.
    pub async fn wait_for_handler(
        &self,
        handler: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let (_, h) = self.get(&format!("/handlers/{handler}")).await;
            if check(&h) {
                return h;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{handler}: {what}; last seen {h}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the host as SIGTERM would and checks that it stopped cleanly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("the host did not stop in time")
            .expect("the host task panicked");
        result.expect("the host failed");
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The host's own logging and tracing, once per test process: in-process
/// hosts then carry trace context exactly as the binary does.
/// `EVENT_HOST_TELEMETRY=off` logs without the trace layer (the consume
/// benchmark compares the two).
fn init_logging() {
    static TELEMETRY: OnceLock<Option<event_host::telemetry::Telemetry>> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        if std::env::var("EVENT_HOST_TELEMETRY").as_deref() == Ok("off") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info,rdkafka=warn".into()),
                )
                .with_test_writer()
                .try_init();
            return None;
        }
        event_host::telemetry::init_for_tests().ok()
    });
}

/// One consumed message.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub partition: i32,
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub value: Value,
    pub raw: Vec<u8>,
    /// The message had no value at all (not even an empty one).
    pub tombstone: bool,
}

impl Received {
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads `topic` from the start (in a new consumer group) until `done`
/// holds for what was read, and returns it all.
pub async fn read_until(
    bootstrap: &str,
    topic: &str,
    what: &str,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut seen = Vec::new();
    let started = Instant::now();
    while !done(&seen) {
        let left = PATIENCE.saturating_sub(started.elapsed());
        assert!(
            !left.is_zero(),
            "{topic}: {what}; read {} messages: {seen:#?}",
            seen.len()
        );
        let Ok(message) =
            tokio::time::timeout(left.min(Duration::from_millis(500)), consumer.recv()).await
        else {
            continue;
        };
        // Transient client errors (a broker restarting) are retried by
        // librdkafka; keep reading.
        let m = match message {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{topic}: reader: {e}");
                continue;
            }
        };
        let raw = m.payload().unwrap_or_default().to_vec();
        seen.push(Received {
            topic: m.topic().to_string(),
            partition: m.partition(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            let v = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                            (h.key.to_string(), v.unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default(),
            value: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            raw,
            tombstone: m.payload().is_none(),
        });
    }
    seen
}

/// The sum of the high watermarks of a topic's partitions: how many
/// messages it ever received.
pub async fn message_count(bootstrap: &str, topic: &str) -> i64 {
    try_message_count(bootstrap, topic)
        .await
        .unwrap_or_else(|| panic!("topic {topic} does not exist"))
}

/// Like [`message_count`], or `None` when the topic does not exist.
pub async fn try_message_count(bootstrap: &str, topic: &str) -> Option<i64> {
    let bootstrap = bootstrap.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .unwrap();
        let t = &metadata.topics()[0];
        if t.error().is_some() || t.partitions().is_empty() {
            return None;
        }
        Some(
            (0..t.partitions().len() as i32)
                .map(|p| {
                    consumer
                        .fetch_watermarks(&topic, p, Duration::from_secs(10))
                        .unwrap()
                        .1
                })
                .sum(),
        )
    })
    .await
    .unwrap()
}

/// A tansu broker process on a free port, with in-memory storage; killed
/// when dropped.
pub struct Tansu {
    child: Child,
    pub bootstrap: String,
}

impl Tansu {
    /// Starts tansu; panics when it is not on PATH (the tests that call this
    /// are `#[ignore]`d, so they run only when asked for).
    pub fn start() -> Self {
        Self::start_with(free_port(), "memory://tansu/", None)
    }

    /// Starts tansu on `port` with the given storage engine, in `dir` (where
    /// a `sqlite://NAME.db` engine keeps its file), if given. Panics when
    /// tansu is not on PATH.
    pub fn start_with(port: u16, storage: &str, dir: Option<&Path>) -> Self {
        require_tansu();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new("tansu");
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", storage]);
        // The broker's output goes to `tansu.log` in its folder, if it has
        // one, or to `TANSU_LOG/tansu-PORT.log` when that is set.
        let log = dir.map(|dir| dir.join("tansu.log")).or_else(|| {
            std::env::var_os("TANSU_LOG")
                .map(|logs| Path::new(&logs).join(format!("tansu-{port}.log")))
        });
        match log {
            Some(log) => {
                let out = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("cannot open tansu's log file");
                let err = out.try_clone().expect("cannot open tansu's log file");
                cmd.stdout(out).stderr(err);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().expect("start tansu");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < PATIENCE,
                "tansu did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
        }
    }

    /// Kills the broker at once (SIGKILL).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `tansu` can be run from PATH.
pub fn tansu_on_path() -> bool {
    Command::new("tansu")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Panics, saying how to install it, when `tansu` is not on PATH: a test
/// that needs the broker and was asked to run fails rather than pass
/// without having run.
pub fn require_tansu() {
    assert!(
        tansu_on_path(),
        "this test needs the tansu broker, and `tansu` is not on PATH; install it with \
         `cargo install tansu --locked --features dynostore,libsql` (about ten minutes), \
         or run the tests without --include-ignored / --ignored to leave it out"
    );
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A copy of a component that differs only by a custom section: a new
/// version (new digest) with the same behaviour.
pub fn variant(component: &[u8], n: u32) -> Vec<u8> {
    fn leb128(out: &mut Vec<u8>, mut v: u32) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"event-host-test-variant";
    let mut section = Vec::new();
    leb128(&mut section, name.len() as u32);
    section.extend_from_slice(name);
    section.extend_from_slice(&n.to_le_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, section.len() as u32);
    out.extend_from_slice(&section);
    out
}

/// The `event-host` binary running as a child process, its log collected.
pub struct HostProcess {
    pub child: Child,
    pub addr: String,
    lines: std::sync::mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl HostProcess {
    /// Starts the binary on a free port with these extra environment
    /// variables (and no `KAFKA_BROKERS` unless given), and waits until it
    /// listens.
    pub fn spawn(env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        // Cargo sets it for the host package's tests only; the consume
        // benchmark (bench/) includes this module too and spawns no binary.
        let Some(exe) = option_env!("CARGO_BIN_EXE_event-host") else {
            panic!("HostProcess runs in the host package's tests only")
        };
        let mut cmd = Command::new(exe);
        cmd.env_remove("KAFKA_BROKERS")
            .env("PORT", "0")
            .env("RUST_LOG", "info,rdkafka=warn")
            .env("NO_COLOR", "1")
            .env(
                "COMPILE_CACHE_DIR",
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx2.send(l);
            }
        });
        let mut host = Self {
            child,
            addr: String::new(),
            lines,
            log: Vec::new(),
        };
        let listening = host.wait_for("API listening on http://");
        // The address ends where the line (text) or the message (JSON) does.
        host.addr = listening
            .rsplit("http://")
            .next()
            .unwrap()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || ".:[]".contains(*c))
            .collect();
        host
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        self.wait_for_within(needle, PATIENCE)
    }

    /// [`HostProcess::wait_for`], for something that may take longer (a
    /// cargo build from nothing, with other tests running).
    pub fn wait_for_within(&mut self, needle: &str, patience: Duration) -> String {
        let started = Instant::now();
        loop {
            let left = patience.saturating_sub(started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("never logged {needle:?}; log:\n{}", self.log.join("\n")),
            }
        }
    }

    /// Collects the log lines written so far.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
    }

    /// Sends a signal (`-TERM`, `-INT`, `-KILL`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            assert!(started.elapsed() < PATIENCE, "the host did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Produces `count` events in the host's envelope straight to Kafka (as
/// another service would), `seq` 0.. in `data`, keyed by one of 7 users,
/// one every `every`. Returns once all were acknowledged.
pub fn produce_sequence(bootstrap: &str, topic: &str, count: u64, every: Duration, action: &str) {
    produce_while(bootstrap, topic, every, action, |seq| seq < count);
}

/// Like [`produce_sequence`], but goes on for as long as `more(seq)` holds
/// before each `seq`, so a test can end the stream when it has seen what it
/// needs. Returns how many events it produced, once all were acknowledged.
pub fn produce_while(
    bootstrap: &str,
    topic: &str,
    every: Duration,
    action: &str,
    mut more: impl FnMut(u64) -> bool,
) -> u64 {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "120000")
        // One record per batch: tansu 0.6 answers a fetch from an offset
        // inside a batch with the *next* batch, so a group that committed
        // mid-batch would skip the rest of it (a broker bug, shown by
        // `consume_edges::tansu_serves_a_fetch_from_inside_a_batch`).
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    let mut seq = 0;
    while more(seq) {
        let user = format!("key-{}", seq % 7);
        let event = serde_json::json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "type": "SEQ",
            "timestamp": "2026-11-26T00:00:00.000Z",
            "userId": user,
            "data": {"action": action, "seq": seq},
        })
        .to_string();
        let mut record = BaseRecord::to(topic).key(&user).payload(&event);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        std::thread::sleep(every);
        seq += 1;
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    seq
}

/// Counts each `data.seq` in the echoes on `topic` until all of `0..count`
/// were seen; returns how often each was seen.
/// Writes `{"sentinel": id}` to one partition of `topic`: read back, it says
/// that everything written to that partition before it has been read.
/// Creates `topic` with `partitions` partitions (the broker tests' own
/// topics, outside the host).
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create {t}: {e}"));
    }
}

/// Writes a dead letter of `handler` (headers `dlq.handler`, `dlq.topic`)
/// to one partition of `topic`, in a batch of its own.
pub async fn produce_dead_letter(bootstrap: &str, topic: &str, partition: i32, handler: &str) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let original = topic.trim_end_matches(".dlq");
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "dlq.handler",
            value: Some(handler),
        })
        .insert(Header {
            key: "dlq.topic",
            value: Some(original),
        });
    producer
        .send(
            FutureRecord::<(), _>::to(topic)
                .partition(partition)
                .payload("{}")
                .headers(headers),
            PATIENCE,
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

pub async fn produce_to_partition(bootstrap: &str, topic: &str, partition: i32, id: &str) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let payload = serde_json::json!({ "sentinel": id }).to_string();
    producer
        .send(
            FutureRecord::<(), _>::to(topic)
                .partition(partition)
                .payload(&payload),
            PATIENCE,
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

pub async fn echoes_of(
    bootstrap: &str,
    topic: &str,
    count: u64,
) -> std::collections::BTreeMap<u64, u32> {
    let seen = read_until(
        bootstrap,
        topic,
        &format!("echoes of all {count} events"),
        |s| {
            let distinct: std::collections::BTreeSet<u64> = s
                .iter()
                .filter_map(|m| m.value["data"]["seq"].as_u64())
                .collect();
            distinct.len() as u64 >= count
        },
    )
    .await;
    let mut counts = std::collections::BTreeMap::new();
    for m in &seen {
        if let Some(seq) = m.value["data"]["seq"].as_u64() {
            *counts.entry(seq).or_insert(0) += 1;
        }
    }
    counts
}
