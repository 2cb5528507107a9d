//! Counts notifications as they are sent: one analytics line per notification.

use handler_sdk::{Delivery, Description, Event, Guest, HandlerError, notifications};
use serde::Deserialize;

struct NotificationAnalytics;

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "type")]
    kind: String,
}

impl Guest for NotificationAnalytics {
    fn describe() -> Description {
        Description::new(&[notifications::TOPIC], &[notifications::NOTIFICATION_SENT])
    }

    fn handle(event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
        handler_sdk::info!("{}", analytics_line(&event)?);
        Ok(())
    }
}

fn analytics_line(event: &Event) -> Result<String, HandlerError> {
    let notification: Notification = event.data()?;
    let user = event.user_id.as_deref().unwrap_or("anonymous");
    Ok(format!(
        "Analytics: Notification sent - Type: {}, User: {user}",
        notification.kind
    ))
}

handler_sdk::export!(NotificationAnalytics);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_analytics_line_names_type_and_user() {
        let e = Event::sample(
            "NOTIFICATION_SENT",
            Some("u1"),
            r#"{"id":"n1","userId":"u1","message":"hi","type":"welcome"}"#,
        );
        assert_eq!(
            analytics_line(&e).unwrap(),
            "Analytics: Notification sent - Type: welcome, User: u1"
        );
    }
}
