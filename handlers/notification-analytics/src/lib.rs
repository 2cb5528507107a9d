//! Counts notifications as they are sent: one analytics line per notification.

use handler_sdk::{Context, Events, HandlerError, handler};
use serde::Deserialize;

/// The data of a `NOTIFICATION_SENT` event, as far as analytics reads it.
#[derive(Deserialize, Events)]
struct NotificationSent {
    #[serde(rename = "type")]
    kind: String,
}

#[handler(topics = ["notification-events"], stateless)]
fn count(NotificationSent { kind }: NotificationSent, ctx: &Context) -> Result<(), HandlerError> {
    let user = ctx.user_id().unwrap_or("anonymous");
    handler_sdk::info!("Analytics: Notification sent - Type: {kind}, User: {user}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Handler;
    use demo_common::notifications::{NOTIFICATION_SENT, TOPIC};
    use handler_sdk::testing::{self, Level};
    use serde_json::json;

    #[test]
    fn it_subscribes_to_sent_notifications_only() {
        let description = <Handler as handler_sdk::MessageHandler>::describe();
        assert_eq!(description.subscriptions[0].topic, TOPIC);
        assert_eq!(description.event_types, [NOTIFICATION_SENT]);
    }

    #[test]
    fn the_analytics_line_names_type_and_user() {
        let outcome = testing::event(NOTIFICATION_SENT)
            .user_id("u1")
            .data(json!({"id": "n1", "userId": "u1", "message": "hi", "type": "welcome"}))
            .handle::<Handler>();
        assert_eq!(outcome.result, Ok(()));
        assert_eq!(
            outcome.lines(Level::Info),
            ["Analytics: Notification sent - Type: welcome, User: u1"]
        );
        assert!(outcome.events.is_empty());
    }

    #[test]
    fn a_notification_without_a_user_is_anonymous() {
        let outcome = testing::event(NOTIFICATION_SENT)
            .data(json!({"type": "info"}))
            .handle::<Handler>();
        assert_eq!(
            outcome.lines(Level::Info),
            ["Analytics: Notification sent - Type: info, User: anonymous"]
        );
    }

    #[test]
    fn a_notification_without_a_type_is_fatal() {
        let outcome = testing::event(NOTIFICATION_SENT)
            .data(json!({"id": "n1"}))
            .handle::<Handler>();
        let error = outcome.fatal();
        assert!(error.contains("NOTIFICATION_SENT event"), "{error}");
        assert!(error.contains(testing::EVENT_ID), "{error}");
        assert!(error.contains("missing field `type`"), "{error}");
    }

    #[test]
    fn other_event_types_are_skipped() {
        let outcome = testing::event("ORDER_CREATED").handle::<Handler>();
        assert!(outcome.skipped);
    }
}
