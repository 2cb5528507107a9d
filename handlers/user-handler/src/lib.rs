//! Greets new users and confirms profile changes, by notification.

use demo_common::notifications;
use handler_sdk::{Context, Events, HandlerError, handler};
use serde::Deserialize;

#[derive(Events)]
enum UserEvent {
    UserRegistered(User),
    UserProfileUpdated,
}

#[derive(Deserialize)]
struct User {
    name: String,
}

#[handler(topics = ["user-events"], stateless)]
fn notify(event: UserEvent, ctx: &Context) -> Result<(), HandlerError> {
    let (message, kind) = match event {
        UserEvent::UserRegistered(user) => (
            format!(
                "Welcome {}! Your account has been created successfully.",
                user.name
            ),
            "welcome",
        ),
        UserEvent::UserProfileUpdated => (
            "Your profile has been updated successfully.".to_string(),
            "info",
        ),
    };
    notifications::send(ctx.user_id(), &message, kind)
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
        &event.data
    }

    #[test]
    fn it_subscribes_to_registrations_and_profile_updates() {
        let description = Handler::describe();
        assert_eq!(description.subscriptions[0].topic, "user-events");
        assert_eq!(
            description.event_types,
            ["USER_REGISTERED", "USER_PROFILE_UPDATED"]
        );
        assert!(
            description.stateless,
            "keeps nothing between events: reused"
        );
        assert!(description.retry.is_none());
    }

    #[test]
    fn a_registered_user_is_welcomed_by_name() {
        let outcome = testing::event("USER_REGISTERED")
            .user_id("u1")
            .data(json!({"id": "u1", "name": "Ada", "email": "ada@example.com"}))
            .handle::<Handler>();
        let data = notification(&outcome);
        let message = "Welcome Ada! Your account has been created successfully.";
        assert_eq!(data["message"], message);
        assert_eq!(data["type"], "welcome");
        assert_eq!(
            outcome.lines(Level::Info),
            [format!(
                "sending welcome notification to user u1: {message}"
            )]
        );
    }

    #[test]
    fn a_profile_update_is_confirmed() {
        let outcome = testing::event("USER_PROFILE_UPDATED")
            .user_id("u1")
            .data(json!({"userId": "u1", "updates": {"age": 31}}))
            .handle::<Handler>();
        let data = notification(&outcome);
        assert_eq!(
            data["message"],
            "Your profile has been updated successfully."
        );
        assert_eq!(data["type"], "info");
    }

    #[test]
    fn a_registration_without_a_name_is_fatal() {
        let outcome = testing::event("USER_REGISTERED")
            .user_id("u1")
            .data(json!({"email": "ada@example.com"}))
            .handle::<Handler>();
        let error = outcome.fatal();
        assert!(error.contains("USER_REGISTERED event"), "{error}");
        assert!(error.contains("missing field `name`"), "{error}");
        assert!(outcome.events.is_empty());
    }

    #[test]
    fn a_raw_message_is_fatal_not_a_panic() {
        let outcome = testing::raw(b"not an envelope".to_vec()).handle::<Handler>();
        assert!(outcome.fatal().contains("raw message"), "{outcome:?}");
    }
}
