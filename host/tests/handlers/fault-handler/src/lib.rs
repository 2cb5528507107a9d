//! A test handler that misbehaves on request. It subscribes to every event
//! type on `faults` and does what the event's `data.action` says:
//! `ok`, `echo` (publishes the data to `faults-out`), `trap`, `fail` (retryable), `fatal`, `loop` (forever), `alloc`
//! (without end), `fail-first` (fails until attempt `data.attempts`),
//! `publish-then-fail`, `log` (logs at every level through the host, and
//! prints to stdout and stderr), `sleep` (sleeps `data.ms` without using the
//! CPU, then does `data.then`: `ok`, `fail` or `echo`), `big` (publishes an
//! event whose data is a string of `data.bytes` bytes).

use handler_sdk::{Context, Event, HandlerError, OutgoingEvent, handler};
use serde::Deserialize;

#[derive(Deserialize)]
struct Order {
    action: String,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    ms: u64,
    #[serde(default)]
    then: Option<String>,
    #[serde(default)]
    bytes: usize,
}

/// Publishes `data` to `faults-out` as `event_type`, for the event's user.
fn publish_out(
    event_type: &str,
    event: &Event,
    data: &impl serde::Serialize,
) -> Result<(), HandlerError> {
    let out = OutgoingEvent::new(event_type).maybe_user_id(event.user_id.as_deref());
    handler_sdk::publish("faults-out", out.data(data)?)?;
    Ok(())
}

// Every event type; its own retry policy: 4 attempts, 10 ms apart at first.
#[handler(topics = ["faults"], retry(max_attempts = 4, backoff_ms = 10))]
fn misbehave(event: Event, ctx: &Context) -> Result<(), HandlerError> {
    let order: Order = event.data()?;
    match order.action.as_str() {
        "ok" => Ok(()),
        "echo" => {
            let data: serde_json::Value = event.data()?;
            publish_out("ECHO", &event, &data)
        }
        "trap" => panic!("asked to trap"),
        "fail" => Err(HandlerError::Retryable("asked to fail".into())),
        "fatal" => Err(HandlerError::Fatal("asked to fail for good".into())),
        "loop" => loop {
            std::hint::black_box(0);
        },
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
            }
        }
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_millis(order.ms));
            match order.then.as_deref() {
                None | Some("ok") => Ok(()),
                Some("fail") => Err(HandlerError::Retryable(format!(
                    "slept, then failed (attempt {})",
                    ctx.attempt()
                ))),
                Some("echo") => {
                    let data: serde_json::Value = event.data()?;
                    publish_out("ECHO", &event, &data)
                }
                Some(other) => Err(HandlerError::Fatal(format!("unknown then {other}"))),
            }
        }
        "big" => {
            let data = "x".repeat(order.bytes);
            publish_out("BIG", &event, &data)
        }
        "fail-first" if ctx.attempt() < order.attempts => Err(HandlerError::Retryable(format!(
            "attempt {}",
            ctx.attempt()
        ))),
        "fail-first" => Ok(()),
        "publish-then-fail" => {
            let out = OutgoingEvent::new("SHOULD_NOT_APPEAR").data(&"x")?;
            handler_sdk::publish("faults-out", out)?;
            Err(HandlerError::Retryable("published, then failed".into()))
        }
        "log" => {
            handler_sdk::debug!("a debug line");
            print!("printed, ");
            handler_sdk::info!("an info line\nin two lines");
            println!("then finished");
            handler_sdk::warn!("a warning");
            eprintln!("to stderr");
            handler_sdk::error!("an error, id {}", handler_sdk::new_id());
            // stderr is unbuffered: this reaches the host without a
            // newline, and still makes a line of its own.
            eprint!("no final newline");
            // Held by Rust's line buffering; the SDK flushes it.
            print!("printed last, without a newline");
            Ok(())
        }
        other => Err(HandlerError::Fatal(format!("unknown action {other}"))),
    }
}
