//! The original demo's routes: users and orders. Each validates its input,
//! publishes one event, and answers only once the broker has stored it.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, JsonBody};
use super::fields::{Age, Amount, Email, Id, Name, Quantity};
use crate::event::{Event, EventType, KnownEventType, Topic, now_rfc3339};

pub const USER_EVENTS: &str = "user-events";
pub const ORDER_EVENTS: &str = "order-events";
pub const NOTIFICATION_EVENTS: &str = "notification-events";

const USER_REGISTERED: KnownEventType = EventType::known("USER_REGISTERED");
const USER_PROFILE_UPDATED: KnownEventType = EventType::known("USER_PROFILE_UPDATED");
const ORDER_CREATED: KnownEventType = EventType::known("ORDER_CREATED");
const ORDER_COMPLETED: KnownEventType = EventType::known("ORDER_COMPLETED");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: Name,
    email: Email,
    age: Age,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    id: String,
    name: Name,
    email: Email,
    age: Age,
    created_at: String,
}

/// `POST /users`: registers a user; publishes `USER_REGISTERED`.
pub async fn register_user(
    State(app): State<AppState>,
    JsonBody(new): JsonBody<NewUser>,
) -> Result<Json<User>, ApiError> {
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        name: new.name,
        email: new.email,
        age: new.age,
        created_at: now_rfc3339(),
    };
    publish(&app, USER_EVENTS, USER_REGISTERED, Some(&user.id), &user).await?;
    Ok(Json(user))
}

/// The fields of a profile that may change; at least one.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Name>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<Email>,
    #[serde(skip_serializing_if = "Option::is_none")]
    age: Option<Age>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileUpdated {
    user_id: Id,
    updates: ProfileUpdate,
    updated_at: String,
}

/// `PUT /users/:userId`: updates a profile; publishes `USER_PROFILE_UPDATED`.
pub async fn update_profile(
    State(app): State<AppState>,
    Path(user_id): Path<String>,
    JsonBody(updates): JsonBody<ProfileUpdate>,
) -> Result<Json<ProfileUpdated>, ApiError> {
    let user_id = path_id("userId", user_id)?;
    if updates.name.is_none() && updates.email.is_none() && updates.age.is_none() {
        return Err(ApiError::Invalid {
            field: None,
            message: "nothing to update: give at least one of name, email, age".into(),
        });
    }
    let updated = ProfileUpdated {
        user_id,
        updates,
        updated_at: now_rfc3339(),
    };
    let user = updated.user_id.as_str();
    publish(
        &app,
        USER_EVENTS,
        USER_PROFILE_UPDATED,
        Some(user),
        &updated,
    )
    .await?;
    Ok(Json(updated))
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    name: Name,
    price: Amount,
    quantity: Quantity,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewOrder {
    user_id: Id,
    items: Vec<Item>,
    total: Amount,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    id: String,
    user_id: Id,
    items: Vec<Item>,
    total: Amount,
    status: &'static str,
    created_at: String,
}

/// Most items in one order.
const MAX_ITEMS: usize = 1_000;

/// `POST /orders`: creates an order; publishes `ORDER_CREATED`.
pub async fn create_order(
    State(app): State<AppState>,
    JsonBody(new): JsonBody<NewOrder>,
) -> Result<Json<Order>, ApiError> {
    if new.items.is_empty() || new.items.len() > MAX_ITEMS {
        return Err(ApiError::invalid(
            "items",
            format!("an order has 1 to {MAX_ITEMS} items"),
        ));
    }
    let order = Order {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: new.user_id,
        items: new.items,
        total: new.total,
        status: "pending",
        created_at: now_rfc3339(),
    };
    publish(
        &app,
        ORDER_EVENTS,
        ORDER_CREATED,
        Some(order.user_id.as_str()),
        &order,
    )
    .await?;
    Ok(Json(order))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Completion {
    user_id: Id,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedOrder {
    id: Id,
    user_id: Id,
    status: &'static str,
    completed_at: String,
}

/// `PUT /orders/:orderId/complete`: completes an order; publishes `ORDER_COMPLETED`.
pub async fn complete_order(
    State(app): State<AppState>,
    Path(order_id): Path<String>,
    JsonBody(completion): JsonBody<Completion>,
) -> Result<Json<CompletedOrder>, ApiError> {
    let completed = CompletedOrder {
        id: path_id("orderId", order_id)?,
        user_id: completion.user_id,
        status: "completed",
        completed_at: now_rfc3339(),
    };
    let user = completed.user_id.as_str();
    publish(&app, ORDER_EVENTS, ORDER_COMPLETED, Some(user), &completed).await?;
    Ok(Json(completed))
}

fn path_id(field: &str, value: String) -> Result<Id, ApiError> {
    Id::try_from(value).map_err(|e| ApiError::invalid(field, e))
}

/// Publishes `data` as a new event and waits until the broker stored it.
async fn publish(
    app: &AppState,
    topic: &str,
    event_type: KnownEventType,
    user_id: Option<&str>,
    data: &impl Serialize,
) -> Result<Event, ApiError> {
    let topic = Topic::parse(topic).map_err(|e| anyhow::anyhow!("topic {topic}: {e}"))?;
    let data = serde_json::value::to_raw_value(data).map_err(anyhow::Error::from)?;
    let event = Event::new(event_type.into(), user_id.map(str::to_string), data);
    app.publish(&topic, &event).await?;
    Ok(event)
}
