//! Latency histograms, and the trend of a step's latency: whether a server
//! kept up with the rate or built a queue.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds, up to an hour, 3 significant digits.
pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

pub(super) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// The latencies of one step, and how they moved through it: a server that
/// keeps up has about the same latency at the end as at the start; one that
/// falls behind builds a queue, and its latency grows through the step.
pub(super) struct Trend {
    start: Instant,
    duration: Duration,
    window: Duration,
    all: Histogram<u64>,
    /// Of the requests due in the first and the last second (for the report).
    first: Histogram<u64>,
    last: Histogram<u64>,
    /// (due, latency) in seconds, for the least-squares slope.
    pub(super) samples: Vec<(f64, f64)>,
}

impl Trend {
    pub(super) fn new(start: Instant, duration: Duration) -> Self {
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

    pub(super) fn record(&mut self, due: Instant, latency: Duration) {
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
    pub(super) fn bounded(&self, baseline_ms: Option<f64>) -> bool {
        let (Some(growth), false) = (self.growth_ms(), self.first.is_empty()) else {
            return false;
        };
        let first_ms = self.first.value_at_quantile(0.5) as f64 / 1000.0;
        growth <= (first_ms / 2.0).max(20.0)
            && baseline_ms.is_none_or(|b| first_ms <= 3.0 * b + 20.0)
    }

    pub(super) fn median_ms(&self) -> Option<f64> {
        (!self.all.is_empty()).then(|| self.all.value_at_quantile(0.5) as f64 / 1000.0)
    }

    pub(super) fn summary(&self) -> Option<Latency> {
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
pub(super) struct Latency {
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) p999_ms: f64,
    pub(super) max_ms: f64,
    pub(super) first_second_p50_ms: Option<f64>,
    pub(super) last_second_p50_ms: Option<f64>,
    /// Latency growth over the step (least-squares fit), ms.
    pub(super) growth_ms: Option<f64>,
}
