//! A handler that does nothing: it takes every event on `bench` and
//! succeeds at once, so a benchmark measures the host's own cost per event
//! (see `bench/benches/consume/`). With the `skip` feature it subscribes
//! to an event type the benchmark never sends, so the host skips every
//! event without an instance: its pipeline alone.

use handler_sdk::{Context, HandlerError, handler};

/// Built with `--features skip`: no event on `bench` is of this type.
#[cfg(feature = "skip")]
#[derive(handler_sdk::Events)]
enum Input {
    NotSentByTheBenchmark,
}

#[cfg(not(feature = "skip"))]
type Input = handler_sdk::Event;

#[handler(topics = ["bench"])]
fn noop(_: Input, _: &Context) -> Result<(), HandlerError> {
    Ok(())
}
