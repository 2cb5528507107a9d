//! The load generator's flags: the server and broker under test, the rate
//! steps, the `--find-max` search, the processes to watch and the reports.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    about = "Open-loop load on POST /users: HTTP latency and registration -> welcome chain latency per rate"
)]
pub struct Args {
    /// Base URL of the server under test (event-host or the original demo).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub(super) url: String,

    /// Bootstrap servers of the broker the server uses: the welcome
    /// notifications are read there.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub(super) brokers: String,

    /// Topic the welcome notifications are published to.
    #[arg(long, default_value = "notification-events")]
    pub(super) topic: String,

    /// `fetch.wait.max.ms` of the notification reader. Chain latency ends at
    /// the welcome's Kafka timestamp, so the reader's pace does not count;
    /// it only delays the drain. Shorter costs the broker more: tansu 0.6
    /// holds every fetch this long, and lists the partition's whole log for
    /// each one that returns data.
    #[arg(long, default_value_t = 50)]
    pub(super) fetch_wait_ms: u32,

    /// Request rates (per second) to run, one step each, in this order.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,4000")]
    pub(super) rates: Vec<u32>,

    /// Length of each step.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub(super) duration: Duration,

    /// Unreported load before the steps: opens connections, warms caches
    /// and (for the demo) the JIT.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub(super) warmup: Duration,

    /// Rate of the warm-up, per second. Kept low: what it stores makes
    /// every later fetch on tansu's memory engine slower.
    #[arg(long, default_value_t = 200)]
    pub(super) warmup_rate: u32,

    /// How long after the last response of a step its outstanding chains
    /// may still complete. A chain later than that counts as missing, and
    /// the step as not kept up.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub(super) drain: Duration,

    /// Pause before each step. A step also waits until every chain of the
    /// steps before it has arrived (or --settle-max passed), so a backlog
    /// left by an overloaded step is not measured again.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub(super) pause: Duration,

    /// Longest wait for earlier chains; the step starts anyway after it (and says so).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "300s")]
    pub(super) settle_max: Duration,

    /// Per-request timeout; a request unanswered by then is an error "timeout".
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub(super) timeout: Duration,

    /// Most requests in flight at once. A request due while this many are
    /// unanswered is not sent and counts as an error: the server is
    /// hopelessly behind, and this keeps the generator from exhausting
    /// sockets and memory.
    #[arg(long, default_value_t = 4096)]
    pub(super) max_in_flight: usize,

    /// After the --rates steps, search for the highest rate at which this
    /// keeps up: double from the best passing rate until a step fails, then
    /// bisect. All on the same server and broker: on tansu's memory engine,
    /// whose fetches slow down as its log grows, every step handicaps the
    /// next; there, run one rate per fresh broker (compare.sh) instead.
    #[arg(long, value_enum)]
    pub(super) find_max: Option<Criterion>,

    /// The search stops when the failing rate is within this factor of the
    /// passing one.
    #[arg(long, default_value_t = 1.1)]
    pub(super) find_max_precision: f64,

    /// Highest rate the search tries.
    #[arg(long, default_value_t = 64_000)]
    pub(super) find_max_limit: u32,

    /// Name of the server in the report.
    #[arg(long, default_value = "server")]
    pub(super) label: String,

    /// NAME=PID of a local process whose CPU use and resident memory to
    /// report per step (repeatable), e.g. `--watch server=1234 --watch broker=1200`.
    #[arg(long, value_parser = parse_watch)]
    pub(super) watch: Vec<Watched>,

    /// Also write every step's figures as JSON to this file.
    #[arg(long)]
    pub(super) json: Option<PathBuf>,

    /// Send nothing: print one report from the --json files of earlier
    /// runs (e.g. one run per rate, each on a fresh broker).
    #[arg(long, num_args = 1.., value_name = "JSON")]
    pub(super) merge: Vec<PathBuf>,
}

/// What "keeps up" is judged on, for `--find-max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Criterion {
    /// The registration → welcome chain: every chain completed, latency not growing.
    Chain,
    /// `POST /users` alone: no errors, latency not growing.
    Http,
}

#[derive(Debug, Clone)]
pub(super) struct Watched {
    pub(super) name: String,
    pub(super) pid: u32,
}

fn parse_watch(s: &str) -> Result<Watched, String> {
    let (name, pid) = s.split_once('=').ok_or("expected NAME=PID")?;
    let pid = pid.parse().map_err(|e| format!("pid {pid:?}: {e}"))?;
    Ok(Watched {
        name: name.to_string(),
        pid,
    })
}
