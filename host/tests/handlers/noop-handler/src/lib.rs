//! A handler that does nothing: it takes every event on `bench` and
//! succeeds at once, so a benchmark measures the host's own cost per event
//! (see `host/benches/consume.rs`).

use handler_sdk::{Delivery, Description, Event, Guest, HandlerError};

struct Noop;

impl Guest for Noop {
    fn describe() -> Description {
        Description::new(&["bench"], &[])
    }

    fn handle(_event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
        Ok(())
    }
}

handler_sdk::export!(Noop);
