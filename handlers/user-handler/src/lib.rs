//! Greets new users and confirms profile changes, by notification.

use handler_sdk::{Delivery, Description, Event, Guest, HandlerError, notifications};
use serde::Deserialize;

struct UserHandler;

#[derive(Deserialize)]
struct User {
    name: String,
}

impl Guest for UserHandler {
    fn describe() -> Description {
        Description::new(
            &["user-events"],
            &["USER_REGISTERED", "USER_PROFILE_UPDATED"],
        )
    }

    fn handle(event: Event, _delivery: Delivery) -> Result<(), HandlerError> {
        let (message, kind) = notification_for(&event)?;
        notifications::send(event.user_id.as_deref(), &message, kind)
    }
}

/// The notification message and type for a user event.
fn notification_for(event: &Event) -> Result<(String, &'static str), HandlerError> {
    match event.event_type.as_str() {
        "USER_REGISTERED" => {
            let user: User = event.data()?;
            let message = format!(
                "Welcome {}! Your account has been created successfully.",
                user.name
            );
            Ok((message, "welcome"))
        }
        "USER_PROFILE_UPDATED" => Ok((
            "Your profile has been updated successfully.".to_string(),
            "info",
        )),
        other => Err(HandlerError::Fatal(format!(
            "unexpected event type {other}"
        ))),
    }
}

handler_sdk::export!(UserHandler);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, data: &str) -> Event {
        Event::sample(event_type, Some("u1"), data)
    }

    #[test]
    fn a_registered_user_is_welcomed_by_name() {
        let e = event(
            "USER_REGISTERED",
            r#"{"id":"u1","name":"Ada","email":"ada@example.com"}"#,
        );
        let (message, kind) = notification_for(&e).unwrap();
        assert_eq!(
            message,
            "Welcome Ada! Your account has been created successfully."
        );
        assert_eq!(kind, "welcome");
    }

    #[test]
    fn a_profile_update_is_confirmed() {
        let e = event(
            "USER_PROFILE_UPDATED",
            r#"{"userId":"u1","updates":{"age":31}}"#,
        );
        let (message, kind) = notification_for(&e).unwrap();
        assert_eq!(message, "Your profile has been updated successfully.");
        assert_eq!(kind, "info");
    }

    #[test]
    fn a_registration_without_a_name_is_fatal() {
        let e = event("USER_REGISTERED", r#"{"email":"ada@example.com"}"#);
        assert!(matches!(notification_for(&e), Err(HandlerError::Fatal(m)) if m.contains("name")));
    }
}
