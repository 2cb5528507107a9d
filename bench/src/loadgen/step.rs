//! One step of load: `rate` requests a second for a while, its chains
//! drained, its figures; and the probe and the `--find-max` search built on
//! steps.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::args::{Args, Criterion};
use super::chains::ChainSplit;
use super::http::{Shared, StepHttp, register};
use super::lock;
use super::reader::ReaderStats;
use super::report::progress;
use super::resources::{Resources, Usage};
use super::trend::Latency;

/// The figures of one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Step {
    pub(super) rate: u32,
    pub(super) duration_s: f64,
    /// Requests due in the step.
    pub(super) due: u64,
    /// Requests sent per second, as achieved by the generator.
    pub(super) sent_per_s: f64,
    pub(super) ok: u64,
    pub(super) errors: BTreeMap<String, u64>,
    pub(super) send_lag_p99_ms: f64,
    pub(super) http: Option<Latency>,
    pub(super) http_keeps_up: bool,
    pub(super) chains_accepted: u64,
    pub(super) chains_completed: u64,
    pub(super) chain: Option<Latency>,
    pub(super) chain_split: Option<ChainSplit>,
    pub(super) chain_keeps_up: bool,
    /// The step began before the previous one's backlog drained.
    pub(super) started_with_backlog: bool,
    /// Unloaded medians (from the warm-up) the step was judged against.
    pub(super) baseline_http_p50_ms: Option<f64>,
    pub(super) baseline_chain_p50_ms: Option<f64>,
    /// This step's medians (HTTP, chain), ms.
    #[serde(skip)]
    pub(super) medians: (Option<f64>, Option<f64>),
    pub(super) resources: Resources,
}

impl Step {
    pub(super) fn passes(&self, criterion: Criterion) -> bool {
        match criterion {
            Criterion::Chain => self.chain_keeps_up,
            Criterion::Http => self.http_keeps_up,
        }
    }
}

pub(super) struct Runner {
    pub(super) args: Args,
    pub(super) shared: Arc<Shared>,
    pub(super) reader: Arc<ReaderStats>,
    /// Unloaded medians (HTTP, chain) in ms, from the warm-up.
    pub(super) baseline: Mutex<(Option<f64>, Option<f64>)>,
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
    pub(super) async fn step(&self, rate: u32, duration: Duration) -> Step {
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
        let (mut resources, chain_cpu) = usage.finish(&self.args.watch);
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
        let completed = self.shared.chains.counts().1;
        chain_cpu.finish(&self.args.watch, completed, &mut resources);

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
    pub(super) async fn probe(&self) -> anyhow::Result<Duration> {
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
    pub(super) async fn find_max(
        &self,
        criterion: Criterion,
        steps: &mut Vec<Step>,
    ) -> Option<u32> {
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
