//! A test handler that misbehaves on request. It subscribes to every event
//! type on `faults` and does what the event's `data.action` says:
//! `ok`, `echo` (publishes the data to `faults-out`), `trap`, `fail` (retryable), `fatal`, `loop` (forever), `alloc`
//! (without end), `fail-first` (fails until attempt `data.attempts`),
//! `publish-then-fail`, `log` (logs at every level through the host, and
//! prints to stdout and stderr), `sleep` (sleeps `data.ms` without using the
//! CPU, then does `data.then`: `ok`, `fail` or `echo`), `big` (publishes an
//! event whose data is a string of `data.bytes` bytes).

use handler_sdk::{Delivery, Description, Event, Guest, HandlerError};
use serde::Deserialize;

struct FaultHandler;

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

impl Guest for FaultHandler {
    fn describe() -> Description {
        // Its own retry policy: 4 attempts, 10 ms apart at first.
        Description::new(&["faults"], &[]).with_retry(4, 10)
    }

    fn handle(event: Event, delivery: Delivery) -> Result<(), HandlerError> {
        let order: Order = event.data()?;
        match order.action.as_str() {
            "ok" => Ok(()),
            "echo" => {
                let data: serde_json::Value = event.data()?;
                handler_sdk::publish("faults-out", "ECHO", event.user_id.as_deref(), &data)?;
                Ok(())
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
                        delivery.attempt
                    ))),
                    Some("echo") => {
                        let data: serde_json::Value = event.data()?;
                        handler_sdk::publish(
                            "faults-out",
                            "ECHO",
                            event.user_id.as_deref(),
                            &data,
                        )?;
                        Ok(())
                    }
                    Some(other) => Err(HandlerError::Fatal(format!("unknown then {other}"))),
                }
            }
            "big" => {
                let data = "x".repeat(order.bytes);
                handler_sdk::publish("faults-out", "BIG", event.user_id.as_deref(), &data)?;
                Ok(())
            }
            "fail-first" if delivery.attempt < order.attempts => Err(HandlerError::Retryable(
                format!("attempt {}", delivery.attempt),
            )),
            "fail-first" => Ok(()),
            "publish-then-fail" => {
                handler_sdk::publish("faults-out", "SHOULD_NOT_APPEAR", None, &"x")?;
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
}

handler_sdk::export!(FaultHandler);
