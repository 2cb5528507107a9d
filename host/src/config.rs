//! Every setting of the host in one place: its flag, its environment
//! variable and its default. `main` parses it; tests build it by hand.

use crate::kafka_config::ClientVars;
use crate::telemetry::LogFormat;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(name = "event-host", version, about)]
pub struct Config {
    /// HTTP port of the API.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,

    /// Address the API listens on. Use 0.0.0.0 to accept other machines.
    #[arg(long, env = "BIND_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind_address: IpAddr,

    /// Kafka bootstrap servers, comma-separated. When unset (and
    /// KAFKA_CONFIG_FILE names none), the host starts an embedded in-memory
    /// broker (for development only: it keeps nothing).
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// A file of librdkafka properties for every Kafka client of the host
    /// (`name=value` lines, as Kafka's `client.properties`): security,
    /// SASL, TLS, `client.id`. `KAFKA_CLIENT_<NAME>` variables (dots as
    /// `_`) override it. See the README, "Operating a cluster".
    #[arg(long, env = "KAFKA_CONFIG_FILE")]
    pub kafka_config_file: Option<PathBuf>,

    /// The `KAFKA_CLIENT_*` variables (read by `main`; tests set them here).
    #[arg(skip)]
    pub kafka_client_vars: ClientVars,

    /// Folder of handler components: every `NAME.wasm` in it is loaded as
    /// handler NAME. `cargo build` puts the workspace's handlers here.
    #[arg(long, env = "HANDLERS_DIR", default_value = "handlers")]
    pub handlers_dir: PathBuf,

    /// Partitions of the topics the host creates.
    #[arg(long, env = "TOPIC_PARTITIONS", default_value_t = 3)]
    pub topic_partitions: i32,

    /// Replication factor of the topics the host creates.
    #[arg(long, env = "TOPIC_REPLICATION", default_value_t = 1)]
    pub topic_replication: i32,

    /// Where a handler's new consumer group starts reading.
    #[arg(long, env = "OFFSET_RESET", value_enum, default_value_t = OffsetReset::Earliest)]
    pub offset_reset: OffsetReset,

    /// How long the group waits for a silent consumer (a crashed host)
    /// before giving its partitions to another member.
    #[arg(long, env = "SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub session_timeout_ms: u64,

    /// Longest the broker holds a consumer's fetch when it has no new
    /// events. Kafka answers as soon as there is data, so this only bounds
    /// idle polling there; brokers that hold every fetch for the whole wait
    /// (tansu 0.6) add it to each hop's latency. Lower: less latency, more
    /// fetch requests.
    #[arg(long, env = "FETCH_WAIT_MS", default_value_t = 50)]
    pub fetch_wait_ms: u64,

    /// How much a handler's consumer may fetch ahead of its handler, per
    /// assigned partition, in KiB. It also caps one fetch request (librdkafka
    /// ties `fetch.max.bytes` to it), so too little means many small fetches.
    /// Less bounds memory with many partitions or handlers.
    #[arg(long, env = "PREFETCH_KIB", default_value_t = 4096)]
    pub prefetch_kib: usize,

    /// How often each handler's consumer reports its lag (events waiting on
    /// its partitions), shown by `GET /handlers`. librdkafka gathers it with
    /// its statistics, which cost a little CPU each time.
    #[arg(long, env = "LAG_INTERVAL_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..))]
    pub lag_interval_ms: u64,

    /// How long the producer waits to batch events before sending, in ms;
    /// fractions allowed (`0.5`). 0 favours latency at low and moderate
    /// rates (an API call waits for its event to be stored). Under sustained
    /// load, 0.5–1 costs the host far less CPU per event and lowers the
    /// tail; 5–20 makes bigger batches still (BENCHMARKS.md has figures).
    #[arg(long = "linger-ms", env = "LINGER_MS", default_value = "0", value_parser = parse_linger)]
    pub linger: Duration,

    /// How log lines are written: `text`, or `json` (one object per line,
    /// with the trace and span ids of the call or request it was written in).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Handler calls kept in memory for `GET /calls` and the causal chains
    /// of `GET /events/:id/chain` and `GET /traces/:id` (about 1 KB each);
    /// the oldest give way. 0 keeps none.
    #[arg(long, env = "CALL_HISTORY", default_value_t = 10_000)]
    pub call_history: usize,

    /// Attempts per event before it is dead-lettered (retryable errors and traps).
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,

    /// Delay before the first retry; doubled each retry, with jitter.
    #[arg(long, env = "RETRY_BACKOFF_MS", default_value_t = 100)]
    pub retry_backoff_ms: u64,

    /// Handler calls of one handler that may run at once, each on its own
    /// partition (events of one partition are always handled in order).
    #[arg(long, env = "PARTITION_CONCURRENCY", default_value_t = 8)]
    pub partition_concurrency: usize,

    /// Longest an event is retried in place before it is dead-lettered
    /// whatever its retry policy says: the events behind it on its
    /// partition wait meanwhile.
    #[arg(long, env = "MAX_RETRY_TIME_MS", default_value_t = 30_000)]
    pub max_retry_time_ms: u64,

    /// Wall-clock limit for one handler call; a handler still running is stopped.
    #[arg(long, env = "HANDLER_TIMEOUT_MS", default_value_t = 5_000)]
    pub handler_timeout_ms: u64,

    /// Linear-memory limit of one handler instance, in MiB.
    #[arg(long, env = "HANDLER_MEMORY_MB", default_value_t = 64)]
    pub handler_memory_mb: usize,

    /// Handlers (comma-separated names) that run on reused instances, one
    /// per partition, although they do not declare themselves `stateless`
    /// (those are reused anyway). Their globals then last between events.
    #[arg(long, env = "REUSE_INSTANCES", value_delimiter = ',')]
    pub reuse_instances: Vec<String>,

    /// Handlers (comma-separated names) that get a fresh instance for every
    /// event even if they declare `stateless` or are in REUSE_INSTANCES.
    #[arg(long, env = "ISOLATE_INSTANCES", value_delimiter = ',')]
    pub isolate_instances: Vec<String>,

    /// Events one reused instance handles before a new one replaces it.
    #[arg(long, env = "REUSE_MAX_EVENTS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub reuse_max_events: u32,

    /// Share of HANDLER_MEMORY_MB, in percent, a reused instance's linear
    /// memory may grow to; past it, the instance is replaced after its call.
    #[arg(long, env = "REUSE_MAX_MEMORY_PERCENT", default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub reuse_max_memory_percent: u8,

    /// How long a reused instance may sit without an event before it is
    /// dropped, giving back its memory and its pool slot.
    #[arg(long, env = "REUSE_IDLE_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub reuse_idle_ms: u64,

    /// How long the broker may take to acknowledge a published event.
    #[arg(long, env = "PUBLISH_TIMEOUT_MS", default_value_t = 10_000)]
    pub publish_timeout_ms: u64,

    /// Folder for compiled handlers, so a restart or a revert loads without
    /// compiling. It must be a folder of its own: wasmtime's cache cleanup
    /// deletes what it finds there. Default:
    /// `$XDG_CACHE_HOME/event-host/compiled` or `~/.cache/event-host/compiled`.
    #[arg(long, env = "COMPILE_CACHE_DIR")]
    pub compile_cache_dir: Option<PathBuf>,

    /// Compile every handler afresh; keep nothing on disk.
    #[arg(long, env = "NO_COMPILE_CACHE", value_parser = BoolishValueParser::new())]
    pub no_compile_cache: bool,

    /// Keep the cluster's handler set in a compacted Kafka topic that every
    /// instance reads (`CATALOG_TOPIC`): an upload, delete or pause on any
    /// instance reaches all, and a new instance serves the cluster's
    /// handlers whatever its folder holds. See the README, "Operating a
    /// cluster".
    #[arg(long, env = "CATALOG", value_parser = BoolishValueParser::new())]
    pub catalog: bool,

    /// The catalog's topic (created by the host: one partition, compacted).
    #[arg(long, env = "CATALOG_TOPIC", default_value = "_event-host-catalog")]
    pub catalog_topic: String,

    /// Where the instances of a cluster announce themselves, for `GET
    /// /cluster` (created by the host: one partition, compacted). Used
    /// whenever the host runs on a real cluster, with a catalog or without.
    #[arg(long, env = "INSTANCES_TOPIC", default_value = "_event-host-instances")]
    pub instances_topic: String,

    /// How often an instance announces itself; one silent for three times
    /// this is taken for gone.
    #[arg(long, env = "ANNOUNCE_INTERVAL_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub announce_interval_ms: u64,

    /// How others reach this instance's API, as `GET /cluster` shows it.
    /// Default: `http://<hostname>:<port>` when listening on every address,
    /// else `http://<address>:<port>`.
    #[arg(long, env = "ADVERTISED_URL")]
    pub advertised_url: Option<String>,

    /// Bearer token required by the routes that change handlers (PUT,
    /// DELETE, pause, resume). Without one, those routes are open when the
    /// API listens on a loopback address only, and refused otherwise.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// Also watch the handler crates' sources under `<WORKSPACE>/handlers`
    /// and rebuild the one that changed into the handlers folder.
    #[arg(long, env = "DEV", value_parser = BoolishValueParser::new())]
    pub dev: bool,

    /// The cargo workspace whose handler crates `--dev` rebuilds.
    #[arg(long, env = "WORKSPACE_DIR", default_value = ".")]
    pub workspace_dir: PathBuf,

    /// How long shutdown waits for in-flight events before giving up.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value_t = 30_000)]
    pub shutdown_timeout_ms: u64,
}

/// A setting that must not be shown (logs print the configuration).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::kafka_config::REDACTED)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

/// Where a consumer group without committed offsets starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OffsetReset {
    /// Every event still on the topic (no event sent before a handler
    /// started is missed).
    Earliest,
    /// Only events published after the handler joined.
    Latest,
}

impl OffsetReset {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

impl Config {
    /// The defaults, as if no flag or variable was given.
    pub fn defaults() -> Self {
        Self::parse_from(["event-host"])
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.port)
    }

    pub fn handler_timeout(&self) -> Duration {
        Duration::from_millis(self.handler_timeout_ms)
    }

    pub fn retry_backoff(&self) -> Duration {
        Duration::from_millis(self.retry_backoff_ms)
    }

    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    /// Where compiled handlers are cached, unless caching is off.
    pub fn compile_cache(&self) -> Option<PathBuf> {
        if self.no_compile_cache {
            return None;
        }
        if let Some(dir) = &self.compile_cache_dir {
            return Some(dir.clone());
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        // A folder of its own: wasmtime's cache cleanup treats every file
        // under it as cache (it once removed a build directory and a Python
        // venv kept beside it in `event-host/`).
        Some(base.join("event-host").join("compiled"))
    }
}

/// Milliseconds, fractions allowed, within librdkafka's range for
/// `linger.ms` (0 to 900,000).
fn parse_linger(s: &str) -> Result<Duration, String> {
    let ms: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of milliseconds"))?;
    if !(0.0..=900_000.0).contains(&ms) {
        return Err(format!("{s} ms is out of range: 0 to 900000"));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_demo() {
        let c = Config::try_parse_from(["event-host"]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.topic_partitions, 3);
        assert_eq!(c.handlers_dir, PathBuf::from("handlers"));
        assert_eq!(c.offset_reset, OffsetReset::Earliest);
    }

    #[test]
    fn linger_takes_fractions_of_a_millisecond() {
        let parse = |v: &str| Config::try_parse_from(["event-host", "--linger-ms", v]);
        assert_eq!(Config::defaults().linger, Duration::ZERO);
        assert_eq!(parse("0.5").unwrap().linger, Duration::from_micros(500));
        assert_eq!(parse("5").unwrap().linger, Duration::from_millis(5));
        for bad in ["-1", "soon", "NaN", "900001"] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn flags_override_defaults() {
        let c = Config::try_parse_from([
            "event-host",
            "--port",
            "8081",
            "--kafka-brokers",
            "a:9092,b:9092",
            "--offset-reset",
            "latest",
        ])
        .unwrap();
        assert_eq!(c.port, 8081);
        assert_eq!(c.kafka_brokers.as_deref(), Some("a:9092,b:9092"));
        assert_eq!(c.offset_reset, OffsetReset::Latest);
    }

    #[test]
    fn secrets_are_not_shown_with_the_configuration() {
        let mut c = Config::try_parse_from(["event-host", "--admin-token", "s3cret"]).unwrap();
        c.kafka_client_vars = ClientVars(vec![(
            "KAFKA_CLIENT_SASL_PASSWORD".into(),
            "hunter2".into(),
        )]);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert_eq!(c.admin_token.as_ref().map(Secret::expose), Some("s3cret"));
    }

    #[test]
    fn instance_reuse_is_named_per_handler() {
        let c = Config::try_parse_from([
            "event-host",
            "--reuse-instances",
            "a,b",
            "--isolate-instances",
            "b",
        ])
        .unwrap();
        assert_eq!(c.reuse_instances, ["a", "b"]);
        assert_eq!(c.isolate_instances, ["b"]);
        assert_eq!(Config::defaults().reuse_max_events, 10_000);
        assert_eq!(Config::defaults().reuse_max_memory_percent, 50);
        assert_eq!(Config::defaults().reuse_idle_ms, 60_000);
        let bad = |flag, v| Config::try_parse_from(["event-host", flag, v]).is_err();
        assert!(bad("--reuse-max-events", "0") && bad("--reuse-max-memory-percent", "101"));
    }

    #[test]
    fn a_bad_port_is_rejected() {
        assert!(Config::try_parse_from(["event-host", "--port", "http"]).is_err());
    }
}
