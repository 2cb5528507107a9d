//! A handler that traps in `describe`: the host must reject it. Written
//! without `#[handler]`, which cannot describe a handler that way.

use handler_sdk::{Delivery, Description, HandlerError, Message, MessageHandler};

struct BadDescribe;

impl MessageHandler for BadDescribe {
    fn describe() -> Description {
        panic!("cannot describe myself")
    }

    fn handle(_message: Message, _delivery: Delivery) -> Result<(), HandlerError> {
        Ok(())
    }
}

handler_sdk::export!(BadDescribe);
