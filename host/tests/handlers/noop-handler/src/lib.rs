//! A handler that does nothing: it takes every event on `bench` and
//! succeeds at once, so a benchmark measures the host's own cost per event
//! (see `host/benches/consume.rs`). With the `skip` feature it subscribes
//! to an event type the benchmark never sends, so the host skips every
//! event without an instance: its pipeline alone.

use handler_sdk::{Delivery, Description, Event, Guest, HandlerError};

struct Noop;

impl Guest for Noop {
    fn describe() -> Description {
        // Built with `--features skip`: no event on `bench` is of this type.
        let event_types: &[&str] = if cfg!(feature = "skip") {
            &["NOT_SENT_BY_THE_BENCHMARK"]
        } else {
            &[]
        };
        Description::new(&["bench"], event_types)
    }

    fn handle(_event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
        Ok(())
    }
}

handler_sdk::export!(Noop);
