//! Notifications, as the demo application sends them: a `NOTIFICATION_SENT`
//! event on `notification-events`. Shared by the handlers that notify users.

use handler_sdk::{HandlerError, OutgoingEvent};
use serde::Serialize;

pub const TOPIC: &str = "notification-events";
pub const NOTIFICATION_SENT: &str = "NOTIFICATION_SENT";

/// The `data` of a `NOTIFICATION_SENT` event.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification<'a> {
    pub id: String,
    pub user_id: Option<&'a str>,
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub sent_at: String,
}

/// "Sends" a notification to `user_id`: publishes `NOTIFICATION_SENT`.
pub fn send(user_id: Option<&str>, message: &str, kind: &str) -> Result<(), HandlerError> {
    let notification = Notification {
        id: handler_sdk::new_id(),
        user_id,
        message,
        kind,
        sent_at: handler_sdk::now(),
    };
    let to = user_id.unwrap_or("anonymous");
    handler_sdk::info!("sending {kind} notification to user {to}: {message}");
    let event = OutgoingEvent::new(NOTIFICATION_SENT)
        .maybe_user_id(user_id)
        .data(&notification)?;
    handler_sdk::publish(TOPIC, event)?;
    Ok(())
}
