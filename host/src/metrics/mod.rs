//! What `GET /metrics` shows, in Prometheus' text format, from the
//! Prometheus project's own client (`prometheus-client`).
//!
//! Counters and histograms are written on the hot path through handles
//! resolved once per handler and topic ([`TopicMetrics`]), so counting an
//! event is a few atomic adds and never a map lookup with allocation.
//! Gauges (calls in flight, lag, versions, queue depth) are read at scrape
//! time from the state the host keeps anyway ([`Snapshot`]), so nothing has
//! to keep them up to date.
//!
//! Names follow OpenTelemetry's semantic conventions where one exists
//! (`messaging.process.duration` → `messaging_process_duration_seconds`,
//! `http.server.request.duration` → `http_server_request_duration_seconds`)
//! and Prometheus naming (`event_host_…`) otherwise. Label values come from
//! handler names, topics and fixed sets only: never event or user ids.

mod labels;
mod scrape;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

pub use labels::{CallOutcome, FailureKind, Reload, Source};
use labels::{
    EventLabels, EventOutcome, FailureLabels, HandlerLabels, HttpLabels, ProcessLabels,
    ReloadLabels, SendResult, SentLabels, TopicLabels,
};
pub use scrape::{ClusterSnapshot, HandlerSnapshot, Snapshot};

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn process_histogram() -> Histogram {
    // 50 µs to ~13 s.
    Histogram::new(exponential_buckets(0.000_05, 2.5, 14))
}

fn age_histogram() -> Histogram {
    // 1 ms to ~4.4 min.
    Histogram::new(exponential_buckets(0.001, 4.0, 10))
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

/// The host's metrics.
pub struct Metrics {
    registry: Registry,
    consumed: Family<TopicLabels, Counter>,
    events: Family<EventLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    retries: Family<TopicLabels, Counter>,
    redriven: Family<HandlerLabels, Counter>,
    process: Histograms<ProcessLabels>,
    age: Histograms<TopicLabels>,
    reloads: Family<ReloadLabels, Counter>,
    http: Histograms<HttpLabels>,
    sent: Family<SentLabels, Counter>,
    send_duration: Histograms<SentLabels>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let consumed = Family::<TopicLabels, Counter>::default();
        registry.register(
            "messaging_client_consumed_messages",
            "Events a handler's consumer took from a topic",
            consumed.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "event_host_events",
            "Events done with, by how: handled (and what it published acknowledged), skipped (a type the handler did not ask for), dead_lettered",
            events.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "event_host_handler_failures",
            "Handler calls that failed, by kind: retryable, fatal, trap, timeout (a retried event counts once per attempt)",
            failures.clone(),
        );
        let retries = Family::<TopicLabels, Counter>::default();
        registry.register(
            "event_host_retries",
            "Attempts made again after a failed one",
            retries.clone(),
        );
        let redriven = Family::<HandlerLabels, Counter>::default();
        registry.register(
            "event_host_redriven",
            "Dead letters put back on their topic for a handler",
            redriven.clone(),
        );
        let process: Histograms<ProcessLabels> = Family::new_with_constructor(process_histogram);
        registry.register_with_unit(
            "messaging_process_duration",
            "Duration of a handler call (one attempt), by outcome: ok, retryable, fatal, trap, timeout",
            Unit::Seconds,
            process.clone(),
        );
        let age: Histograms<TopicLabels> = Family::new_with_constructor(age_histogram);
        registry.register_with_unit(
            "event_host_event_age",
            "How old an event was (now minus its Kafka timestamp) when its handler call started",
            Unit::Seconds,
            age.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "event_host_reloads",
            "Versions offered for a handler, by result: added (a new handler), replaced (now serving instead of the old one), rejected (invalid, or its topics could not be consumed; the old one keeps serving)",
            reloads.clone(),
        );
        let http: Histograms<HttpLabels> = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_server_request_duration",
            "Duration of HTTP requests, by method, route and status",
            Unit::Seconds,
            http.clone(),
        );
        let sent = Family::<SentLabels, Counter>::default();
        registry.register(
            "messaging_client_sent_messages",
            "Events handed to the producer, by source (api, handler, dead_letter, redrive) and result (ok: the broker stored it; error)",
            sent.clone(),
        );
        let send_duration: Histograms<SentLabels> = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "messaging_client_operation_duration",
            "Time from handing an event to the producer to the broker's acknowledgement (or the error)",
            Unit::Seconds,
            send_duration.clone(),
        );
        Self {
            registry,
            consumed,
            events,
            failures,
            retries,
            redriven,
            process,
            age,
            reloads,
            http,
            sent,
            send_duration,
        }
    }

    /// The handles one handler counts with.
    pub fn handler(self: &Arc<Self>, name: &str) -> HandlerMetrics {
        HandlerMetrics {
            name: name.to_string(),
            metrics: self.clone(),
            topics: RwLock::default(),
        }
    }

    /// Counts a version offered for `handler`.
    pub fn reload(&self, handler: &str, result: Reload) {
        self.reloads
            .get_or_create(&ReloadLabels {
                handler: handler.to_string(),
                result,
            })
            .inc();
    }

    /// Counts dead letters put back for `handler`.
    pub fn redriven(&self, handler: &str, count: u64) {
        self.redriven
            .get_or_create(&HandlerLabels {
                handler: handler.to_string(),
            })
            .inc_by(count);
    }

    /// Records an HTTP request; `route` is the matched route pattern (or
    /// `unmatched`), never the raw path.
    pub fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.http
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .observe(took.as_secs_f64());
    }

    /// Records an event handed to the producer and how it ended.
    pub fn sent(&self, source: Source, ok: bool, took: Duration) {
        let result = if ok {
            SendResult::Ok
        } else {
            SendResult::Error
        };
        let labels = SentLabels { source, result };
        self.sent.get_or_create(&labels).inc();
        self.send_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// The text exposition: the counters and histograms, then the gauges of
    /// `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)?;
        prometheus_client::encoding::text::encode_registry(&mut out, &snapshot.registry())?;
        prometheus_client::encoding::text::encode_eof(&mut out)?;
        Ok(out)
    }
}

/// One handler's handles, one set per topic it consumes.
pub struct HandlerMetrics {
    name: String,
    metrics: Arc<Metrics>,
    topics: RwLock<HashMap<String, Arc<TopicMetrics>>>,
}

impl HandlerMetrics {
    /// The handles for events of `topic`, resolved on first use.
    pub fn topic(&self, topic: &str) -> Arc<TopicMetrics> {
        if let Some(t) = self
            .topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return t.clone();
        }
        let t = Arc::new(TopicMetrics::new(&self.metrics, &self.name, topic));
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(topic.to_string())
            .or_insert(t)
            .clone()
    }
}

/// The counters and histograms of one handler on one topic.
pub struct TopicMetrics {
    consumed: Counter,
    handled: Counter,
    skipped: Counter,
    dead_lettered: Counter,
    failures: [Counter; 4],
    retries: Counter,
    process: [Histogram; 5],
    age: Histogram,
}

impl TopicMetrics {
    fn new(m: &Metrics, handler: &str, topic: &str) -> Self {
        let on = TopicLabels {
            handler: handler.to_string(),
            topic: topic.to_string(),
        };
        let event = |outcome| {
            m.events
                .get_or_create(&EventLabels {
                    handler: handler.to_string(),
                    topic: topic.to_string(),
                    outcome,
                })
                .clone()
        };
        let failure = |kind| {
            m.failures
                .get_or_create(&FailureLabels {
                    handler: handler.to_string(),
                    topic: topic.to_string(),
                    kind,
                })
                .clone()
        };
        let process = |outcome| {
            m.process
                .get_or_create(&ProcessLabels {
                    handler: handler.to_string(),
                    topic: topic.to_string(),
                    outcome,
                })
                .clone()
        };
        Self {
            consumed: m.consumed.get_or_create(&on).clone(),
            handled: event(EventOutcome::Handled),
            skipped: event(EventOutcome::Skipped),
            dead_lettered: event(EventOutcome::DeadLettered),
            failures: FailureKind::ALL.map(failure),
            retries: m.retries.get_or_create(&on).clone(),
            process: CallOutcome::ALL.map(process),
            age: m.age.get_or_create(&on).clone(),
        }
    }

    /// An event taken from the topic, `age` old.
    pub fn consumed(&self, age: Option<Duration>) {
        self.consumed.inc();
        if let Some(age) = age {
            self.age.observe(age.as_secs_f64());
        }
    }

    pub fn handled(&self) {
        self.handled.inc();
    }

    pub fn skipped(&self) {
        self.skipped.inc();
    }

    pub fn dead_lettered(&self) {
        self.dead_lettered.inc();
    }

    pub fn retried(&self) {
        self.retries.inc();
    }

    /// A handler call (one attempt) and how it ended.
    pub fn call(&self, outcome: CallOutcome, took: Duration) {
        self.process[outcome as usize].observe(took.as_secs_f64());
        if let Some(kind) = outcome.failure() {
            self.failures[kind as usize].inc();
        }
    }
}

#[cfg(test)]
mod tests;
