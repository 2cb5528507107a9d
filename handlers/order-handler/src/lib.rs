//! Tells users how their orders are doing, by notification.

use handler_sdk::{Delivery, Description, Event, Guest, HandlerError, notifications};
use serde::Deserialize;

struct OrderHandler;

#[derive(Deserialize)]
struct Order {
    id: String,
}

impl Guest for OrderHandler {
    fn describe() -> Description {
        Description::new(&["order-events"], &["ORDER_CREATED", "ORDER_COMPLETED"])
    }

    fn handle(event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
        let message = message_for(&event)?;
        notifications::send(event.user_id.as_deref(), &message, "order")
    }
}

/// The notification message for an order event.
fn message_for(event: &Event) -> Result<String, HandlerError> {
    let order: Order = event.data()?;
    match event.event_type.as_str() {
        "ORDER_CREATED" => Ok(format!(
            "Order #{} has been created and is being processed.",
            order.id
        )),
        "ORDER_COMPLETED" => Ok(format!(
            "Order #{} has been completed successfully!",
            order.id
        )),
        other => Err(HandlerError::Fatal(format!(
            "unexpected event type {other}"
        ))),
    }
}

handler_sdk::export!(OrderHandler);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, data: &str) -> Event {
        Event::sample(event_type, Some("u1"), data)
    }

    #[test]
    fn a_created_order_is_announced_by_id() {
        let e = event(
            "ORDER_CREATED",
            r#"{"id":"o-42","userId":"u1","total":3.5}"#,
        );
        assert_eq!(
            message_for(&e).unwrap(),
            "Order #o-42 has been created and is being processed."
        );
    }

    #[test]
    fn a_completed_order_is_announced_by_id() {
        let e = event("ORDER_COMPLETED", r#"{"id":"o-42","status":"completed"}"#);
        assert_eq!(
            message_for(&e).unwrap(),
            "Order #o-42 has been completed successfully!"
        );
    }

    #[test]
    fn an_order_without_an_id_is_fatal() {
        let e = event("ORDER_CREATED", r#"{"userId":"u1"}"#);
        assert!(matches!(message_for(&e), Err(HandlerError::Fatal(_))));
    }
}
