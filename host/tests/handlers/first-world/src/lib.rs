//! A handler as it was written against the first `event-host:handler@0.1.0`
//! world, whose WIT is frozen in `wit/`: only `publisher` imported, output
//! through WASI. It must keep working as the world grows. On `faults` it
//! prints a line and publishes the event's data to `faults-out` as `ECHO`.

wit_bindgen::generate!({ path: "wit", world: "handler" });

use event_host::handler::publisher;
use event_host::handler::types::OutgoingEvent;

struct FirstWorld;

impl Guest for FirstWorld {
    fn describe() -> Description {
        Description {
            topics: vec!["faults".into()],
            event_types: vec![],
            retry: None,
        }
    }

    fn handle(event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
        println!("first-world handler got {}", event.id);
        publisher::publish(&OutgoingEvent {
            topic: "faults-out".into(),
            event_type: "ECHO".into(),
            user_id: event.user_id,
            data: event.data,
        })
        .map_err(HandlerError::Fatal)?;
        Ok(())
    }
}

export!(FirstWorld);
