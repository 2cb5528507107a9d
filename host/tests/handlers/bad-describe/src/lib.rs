//! A handler that traps in `describe`: the host must reject it.

use handler_sdk::{Delivery, Description, Event, Guest, HandlerError};

struct BadDescribe;

impl Guest for BadDescribe {
    fn describe() -> Description {
        panic!("cannot describe myself")
    }

    fn handle(_event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
        Ok(())
    }
}

handler_sdk::export!(BadDescribe);
