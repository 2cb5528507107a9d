//! Tells users how their orders are doing, by notification.

use demo_common::notifications;
use handler_sdk::{Context, Events, HandlerError, handler};
use serde::Deserialize;

#[derive(Events)]
enum OrderEvent {
    OrderCreated(Order),
    OrderCompleted(Order),
}

#[derive(Deserialize)]
struct Order {
    id: String,
}

#[handler(topics = ["order-events"], stateless)]
fn notify(event: OrderEvent, ctx: &Context) -> Result<(), HandlerError> {
    let message = match event {
        OrderEvent::OrderCreated(order) => {
            format!(
                "Order #{} has been created and is being processed.",
                order.id
            )
        }
        OrderEvent::OrderCompleted(order) => {
            format!("Order #{} has been completed successfully!", order.id)
        }
    };
    notifications::send(ctx.user_id(), &message, "order")
}

#[cfg(test)]
mod tests {
    use super::Handler;
    use demo_common::notifications::{NOTIFICATION_SENT, TOPIC};
    use handler_sdk::MessageHandler;
    use handler_sdk::testing::{self, Level, Outcome};
    use serde_json::json;

    /// The one notification `outcome` published, checked for its envelope.
    fn notification(outcome: &Outcome) -> &serde_json::Value {
        assert_eq!(outcome.result, Ok(()));
        let [event] = &outcome.events[..] else {
            panic!("one notification, not {:?}", outcome.events);
        };
        assert_eq!(event.topic, TOPIC);
        assert_eq!(event.event_type, NOTIFICATION_SENT);
        assert_eq!(event.user_id.as_deref(), Some("u1"));
        assert_eq!(event.data["userId"], "u1");
        assert_eq!(event.data["type"], "order");
        &event.data
    }

    #[test]
    fn it_subscribes_to_created_and_completed_orders() {
        let description = Handler::describe();
        assert_eq!(description.subscriptions[0].topic, "order-events");
        assert_eq!(
            description.event_types,
            ["ORDER_CREATED", "ORDER_COMPLETED"]
        );
    }

    #[test]
    fn a_created_order_is_announced_by_id() {
        let outcome = testing::event("ORDER_CREATED")
            .user_id("u1")
            .data(json!({"id": "o-42", "userId": "u1", "total": 3.5}))
            .handle::<Handler>();
        let message = "Order #o-42 has been created and is being processed.";
        assert_eq!(notification(&outcome)["message"], message);
        assert_eq!(
            outcome.lines(Level::Info),
            [format!("sending order notification to user u1: {message}")]
        );
    }

    #[test]
    fn a_completed_order_is_announced_by_id() {
        let outcome = testing::event("ORDER_COMPLETED")
            .user_id("u1")
            .data(json!({"id": "o-42", "status": "completed"}))
            .handle::<Handler>();
        let data = notification(&outcome);
        assert_eq!(
            data["message"],
            "Order #o-42 has been completed successfully!"
        );
        assert!(
            data["id"].as_str().is_some_and(|id| id.len() == 36),
            "{data}"
        );
        assert!(
            data["sentAt"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{data}"
        );
    }

    #[test]
    fn an_order_without_an_id_is_fatal() {
        let outcome = testing::event("ORDER_CREATED")
            .user_id("u1")
            .data(json!({"userId": "u1"}))
            .handle::<Handler>();
        let error = outcome.fatal();
        assert!(error.contains("ORDER_CREATED event"), "{error}");
        assert!(error.contains("missing field `id`"), "{error}");
        assert!(outcome.events.is_empty());
    }
}
