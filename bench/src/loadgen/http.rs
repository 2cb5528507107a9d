//! The HTTP side: one `POST /users` per due time, each on its own task, and
//! what a step counts of them (latency from when it was due, errors by kind).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use serde_json::Value;

use super::chains::{Chains, Registered};
use super::lock;
use super::trend::{Trend, histogram, micros};

/// The HTTP side of one step.
pub(super) struct StepHttp {
    pub(super) start: Instant,
    pub(super) trend: Mutex<Trend>,
    /// From when a request was due to when its task started sending it: the
    /// generator's own delay (timer, scheduling on a busy machine).
    pub(super) send_lag: Mutex<Histogram<u64>>,
    pub(super) errors: Mutex<BTreeMap<String, u64>>,
    pub(super) ok: AtomicU64,
    pub(super) sent: AtomicU64,
    /// When the last request went out, in ns after `start`.
    pub(super) last_send_ns: AtomicU64,
}

impl StepHttp {
    pub(super) fn new(start: Instant, duration: Duration) -> Self {
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

    pub(super) fn error(&self, kind: impl Into<String>) {
        *lock(&self.errors).entry(kind.into()).or_default() += 1;
    }

    pub(super) fn error_count(&self) -> u64 {
        lock(&self.errors).values().sum()
    }
}

/// What every request task shares.
pub(super) struct Shared {
    pub(super) client: reqwest::Client,
    pub(super) users_url: String,
    pub(super) run: String,
    pub(super) seq: AtomicU64,
    pub(super) in_flight: AtomicUsize,
    pub(super) chains: Chains,
}

/// Sends one registration due at `due` and records its outcome.
pub(super) async fn register(shared: Arc<Shared>, step: Arc<StepHttp>, due: Instant) {
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
pub(super) fn time(v: Option<&Value>) -> Option<SystemTime> {
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
