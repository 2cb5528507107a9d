//! The original demo's four flows, checked end to end against a running
//! host: the API answer, the event on its topic with the right envelope,
//! the notification the WASM handler published, the analytics handler run.

use serde_json::{Value, json};

use super::{Received, TestHost, read_until};

/// Runs all four flows for one new user and checks every step.
pub async fn check_demo_flows(host: &TestHost) {
    let bootstrap = host.bootstrap().await;

    let (status, user) = host
        .post(
            "/users",
            &json!({"name": "Ada", "email": "ada@example.com", "age": 36}),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    let user_id = user["id"].as_str().expect("user id").to_string();
    assert!(uuid::Uuid::parse_str(&user_id).is_ok(), "{user}");
    assert_eq!(user["name"], "Ada");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["age"], 36);
    assert_timestamp(&user["createdAt"]);

    let (status, updated) = host
        .put(&format!("/users/{user_id}"), &json!({"age": 37}))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["userId"], user_id.as_str());
    assert_eq!(updated["updates"], json!({"age": 37}));
    assert_timestamp(&updated["updatedAt"]);

    let items = json!([{"name": "Book", "price": 12.5, "quantity": 2}]);
    let (status, order) = host
        .post(
            "/orders",
            &json!({"userId": user_id, "items": items, "total": 25.0}),
        )
        .await;
    assert_eq!(status, 200, "{order}");
    let order_id = order["id"].as_str().expect("order id").to_string();
    assert_eq!(order["userId"], user_id.as_str());
    assert_eq!(order["items"], items);
    assert_eq!(order["total"], 25.0);
    assert_eq!(order["status"], "pending");
    assert_timestamp(&order["createdAt"]);

    let (status, completed) = host
        .put(
            &format!("/orders/{order_id}/complete"),
            &json!({"userId": user_id}),
        )
        .await;
    assert_eq!(status, 200, "{completed}");
    assert_eq!(completed["id"], order_id.as_str());
    assert_eq!(completed["userId"], user_id.as_str());
    assert_eq!(completed["status"], "completed");
    assert_timestamp(&completed["completedAt"]);

    // The events, in the demo's envelope, keyed and headed by user.
    let of_user = |seen: &[Received]| -> Vec<Received> {
        seen.iter()
            .filter(|m| m.value["userId"] == user_id.as_str())
            .cloned()
            .collect()
    };
    let seen = read_until(&bootstrap, "user-events", "both user events", |s| {
        of_user(s).len() >= 2
    })
    .await;
    let user_events = of_user(&seen);
    assert_event(&user_events[0], "USER_REGISTERED", &user_id, &user);
    assert_event(&user_events[1], "USER_PROFILE_UPDATED", &user_id, &updated);

    let seen = read_until(&bootstrap, "order-events", "both order events", |s| {
        of_user(s).len() >= 2
    })
    .await;
    let order_events = of_user(&seen);
    assert_event(&order_events[0], "ORDER_CREATED", &user_id, &order);
    assert_event(&order_events[1], "ORDER_COMPLETED", &user_id, &completed);

    // The notifications the user and order handlers published.
    let seen = read_until(
        &bootstrap,
        "notification-events",
        "four notifications",
        |s| of_user(s).len() >= 4,
    )
    .await;
    let notifications = of_user(&seen);
    assert_eq!(notifications.len(), 4, "{notifications:#?}");
    let mut got: Vec<(String, String)> = notifications
        .iter()
        .map(|n| {
            assert_eq!(n.value["type"], "NOTIFICATION_SENT");
            assert_eq!(n.header("eventType"), Some("NOTIFICATION_SENT"));
            assert_eq!(n.header("userId"), Some(user_id.as_str()));
            assert_eq!(n.key.as_deref(), Some(user_id.as_str()));
            let data = &n.value["data"];
            assert_eq!(data["userId"], user_id.as_str());
            assert!(
                uuid::Uuid::parse_str(data["id"].as_str().unwrap_or_default()).is_ok(),
                "{data}"
            );
            assert_timestamp(&data["sentAt"]);
            (
                data["type"].as_str().unwrap_or_default().to_string(),
                data["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (
            "info".to_string(),
            "Your profile has been updated successfully.".to_string(),
        ),
        (
            "order".to_string(),
            format!("Order #{order_id} has been completed successfully!"),
        ),
        (
            "order".to_string(),
            format!("Order #{order_id} has been created and is being processed."),
        ),
        (
            "welcome".to_string(),
            "Welcome Ada! Your account has been created successfully.".to_string(),
        ),
    ];
    want.sort();
    assert_eq!(got, want);

    // Every handler ran, the analytics one once per notification.
    for (handler, count) in [
        ("user-handler", 2),
        ("order-handler", 2),
        ("notification-analytics", 4),
    ] {
        let h = host
            .wait_for_handler(handler, &format!("handled {count} events"), |h| {
                h["stats"]["handled"].as_u64() >= Some(count)
            })
            .await;
        assert_eq!(h["stats"]["failed"], 0, "{h}");
        assert_eq!(h["status"], "running", "{h}");
    }
}

/// Checks a consumed event against the API's answer that caused it.
fn assert_event(m: &Received, event_type: &str, user_id: &str, data: &Value) {
    let v = &m.value;
    assert_eq!(v["type"], event_type, "{v}");
    let keys: Vec<&String> = v.as_object().expect("an object").keys().collect();
    assert_eq!(
        keys.len(),
        5,
        "envelope has exactly id, type, timestamp, userId, data: {v}"
    );
    assert!(
        uuid::Uuid::parse_str(v["id"].as_str().unwrap_or_default()).is_ok(),
        "{v}"
    );
    assert_timestamp(&v["timestamp"]);
    assert_eq!(v["userId"], user_id);
    assert_eq!(&v["data"], data);
    assert_eq!(m.header("eventType"), Some(event_type));
    assert_eq!(m.header("userId"), Some(user_id));
    assert_eq!(m.key.as_deref(), Some(user_id));
}

/// An RFC 3339 UTC timestamp with milliseconds, as `toISOString` writes.
pub fn assert_timestamp(v: &Value) {
    let s = v.as_str().unwrap_or_default();
    assert!(
        s.len() == 24 && s.ends_with('Z'),
        "not an ISO timestamp: {v}"
    );
    assert!(
        humantime::parse_rfc3339(s).is_ok(),
        "not an ISO timestamp: {v}"
    );
}
