//! A test handler that counts, in a global, the events its instance has
//! handled, and publishes that count to `counts-out` as `COUNTED` with the
//! event's `data.seq`. With a fresh instance per event the count is always
//! 1; on a reused instance it grows. It does not declare itself
//! `stateless` (it is not): the operator opts it in with `REUSE_INSTANCES`.
//!
//! `data.action`: `count`; `trap`; `fail-once` (fails on the first attempt,
//! counts on the next); `stall-once` (runs past any deadline on the first
//! attempt, counts on the next); `grow` (keeps `data.mib` MiB for good,
//! then counts).

use std::sync::atomic::{AtomicU64, Ordering};

use handler_sdk::{Context, Event, HandlerError, OutgoingEvent, handler};
use serde::{Deserialize, Serialize};

/// Events this instance has handled, this one included.
static HANDLED: AtomicU64 = AtomicU64::new(0);
/// What `grow` keeps, so the memory stays grown.
static HOARD: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

#[derive(Deserialize)]
struct Order {
    action: String,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    mib: usize,
    #[serde(default)]
    ms: u64,
}

#[derive(Serialize)]
struct Counted {
    count: u64,
    seq: u64,
}

#[handler(topics = ["counts"], retry(max_attempts = 3, backoff_ms = 10))]
fn count(event: Event, ctx: &Context) -> Result<(), HandlerError> {
    let count = HANDLED.fetch_add(1, Ordering::Relaxed) + 1;
    let order: Order = event.data()?;
    match order.action.as_str() {
        "count" => {}
        "trap" => panic!("asked to trap"),
        "fail-once" if ctx.attempt() == 1 => {
            return Err(HandlerError::Retryable("asked to fail once".into()));
        }
        "stall-once" if ctx.attempt() == 1 => loop {
            std::hint::black_box(0);
        },
        "fail-once" | "stall-once" => {}
        "spin" => {
            let started = std::time::Instant::now();
            while started.elapsed() < std::time::Duration::from_millis(order.ms) {
                std::hint::black_box(0);
            }
        }
        "grow" => {
            let mut hoard = HOARD.lock().unwrap_or_else(|p| p.into_inner());
            hoard.push(vec![1; order.mib << 20]);
        }
        other => return Err(HandlerError::Fatal(format!("unknown action {other}"))),
    }
    handler_sdk::info!("count {count}");
    let counted = Counted {
        count,
        seq: order.seq,
    };
    handler_sdk::publish("counts-out", OutgoingEvent::new("COUNTED").data(&counted)?)?;
    Ok(())
}
