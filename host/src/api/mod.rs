//! The HTTP API: the demo's routes, a generic publish route, the handlers'
//! status and health. Requests are validated before anything is published;
//! every error is JSON (see [`error`]).

mod calls;
mod cluster;
mod demo;
mod error;
mod fields;
mod handlers;
mod metrics;
mod ui;
mod views;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tower_http::timeout::TimeoutLayer;

pub use demo::{NOTIFICATION_EVENTS, ORDER_EVENTS, USER_EVENTS};
pub use error::ApiError;
use error::JsonBody;
use fields::Id;
pub use handlers::AdminPolicy;

use crate::bus::{BrokerInfo, Bus, PublishError, Stored};
use crate::event::{Event, EventType, Topic, now_rfc3339};
use crate::metrics::Source;
use crate::registry::Registry;
use crate::supervisor::Changes;

/// Largest request body accepted.
pub const MAX_BODY: usize = 256 * 1024;
/// Longest a request may take, publish included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the routes share.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    bus: Arc<Bus>,
    registry: Arc<Registry>,
    changes: Changes,
    admin: AdminPolicy,
    /// Start-up has finished: every handler found at start-up was loaded.
    started: AtomicBool,
    /// What start-up is waiting for, if anything (the broker, say).
    waiting: std::sync::Mutex<Option<String>>,
    /// Parts of the host that stopped working (a watcher died).
    problems: std::sync::Mutex<Vec<&'static str>>,
    /// The cluster this instance takes part in, once it started.
    cluster: crate::cluster::Slot,
}

impl AppState {
    pub fn new(
        bus: Arc<Bus>,
        registry: Arc<Registry>,
        changes: Changes,
        admin: AdminPolicy,
        cluster: crate::cluster::Slot,
    ) -> Self {
        Self(Arc::new(Shared {
            bus,
            registry,
            changes,
            admin,
            started: AtomicBool::new(false),
            waiting: std::sync::Mutex::new(None),
            problems: std::sync::Mutex::default(),
            cluster,
        }))
    }

    /// The cluster, once it started (on a real broker, or with the catalog).
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.0.cluster.get()
    }

    pub fn set_waiting(&self, why: Option<String>) {
        *self.0.waiting.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// Records that a part of the host stopped working; `/health` lists it.
    pub fn add_problem(&self, problem: &'static str) {
        self.0
            .problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(problem);
    }

    fn problems(&self) -> Vec<&'static str> {
        self.0
            .problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn waiting(&self) -> Option<String> {
        self.0
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn registry(&self) -> &Registry {
        &self.0.registry
    }

    fn bus(&self) -> &Bus {
        &self.0.bus
    }

    fn changes(&self) -> &Changes {
        &self.0.changes
    }

    fn admin(&self) -> &AdminPolicy {
        &self.0.admin
    }

    pub fn set_started(&self) {
        self.0.started.store(true, Ordering::Release);
    }

    /// Ready to take events: started, and every handler is consuming.
    pub fn is_ready(&self) -> bool {
        self.0.started.load(Ordering::Acquire) && self.0.registry.all_running()
    }

    async fn publish(&self, topic: &Topic, event: &Event) -> Result<Stored, ApiError> {
        self.0
            .bus
            .ensure_topics(std::slice::from_ref(topic))
            .await
            .map_err(|e| {
                ApiError::Unavailable(PublishError {
                    topic: topic.to_string(),
                    reason: format!("{e:#}"),
                    permanent: false,
                })
            })?;
        let stored = self
            .0
            .bus
            .publisher()
            .publish(topic, event, Source::Api)
            .await?;
        tracing::debug!(%topic, event_type = %event.event_type, id = %event.id, ?stored, "event published");
        Ok(stored)
    }
}

/// The router, without a socket: tests drive it directly.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/users", post(demo::register_user))
        .route("/users/{user_id}", put(demo::update_profile))
        .route("/orders", post(demo::create_order))
        .route("/orders/{order_id}/complete", put(demo::complete_order))
        .route("/events/{topic}", post(publish_event))
        .route("/handlers", get(handlers::list))
        .route(
            "/handlers/{name}",
            get(handlers::get)
                .put(handlers::put)
                .delete(handlers::delete)
                .layer(DefaultBodyLimit::max(handlers::MAX_COMPONENT)),
        )
        .route("/handlers/{name}/pause", post(handlers::pause))
        .route("/handlers/{name}/resume", post(handlers::resume))
        .route("/handlers/{name}/replay", post(handlers::replay))
        .route("/handlers/{name}/redrive", post(handlers::redrive))
        .route("/cluster", get(cluster::cluster))
        .route("/metrics", get(metrics::metrics))
        .route("/calls", get(calls::recent))
        .route("/events/{id}/chain", get(calls::chain))
        .route("/traces/{id}", get(calls::trace))
        .merge(ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    /// `healthy` when every handler is consuming, `starting` before.
    status: &'static str,
    timestamp: String,
    broker: BrokerView,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<&'static str>,
    /// While starting: what the host is waiting for.
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting: Option<String>,
    /// Parts of the host that stopped working.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<&'static str>,
    handlers: HandlerCounts,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BrokerView {
    /// `embedded` (in-process, in-memory, for development) or `external`.
    mode: &'static str,
    bootstrap_servers: String,
    /// The operator's librdkafka properties, secrets redacted.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    properties: std::collections::BTreeMap<String, String>,
}

impl From<&Bus> for BrokerView {
    fn from(bus: &Bus) -> Self {
        let b: &BrokerInfo = bus.info();
        Self {
            mode: b.mode,
            bootstrap_servers: b.bootstrap_servers.clone(),
            properties: bus.properties(),
        }
    }
}

#[derive(Serialize)]
struct HandlerCounts {
    /// Consuming: holding partitions.
    running: usize,
    /// In their groups, holding no partition (other instances hold them).
    idle: usize,
    total: usize,
}

/// `GET /health`: 200 when ready, 503 while starting.
async fn health(State(app): State<AppState>) -> impl IntoResponse {
    let ready = app.is_ready();
    let handlers = app.0.registry.list();
    let count = |status| handlers.iter().filter(|h| h.status == status).count();
    let broker = BrokerView::from(app.0.bus.as_ref());
    let warning = (broker.mode == "embedded").then_some(
        "embedded broker: events live in this process's memory only and are lost when it stops; set KAFKA_BROKERS for a real cluster",
    );
    let body = Health {
        status: if ready { "healthy" } else { "starting" },
        timestamp: now_rfc3339(),
        broker,
        warning,
        waiting: app.waiting(),
        problems: app.problems(),
        handlers: HandlerCounts {
            running: count(crate::registry::Status::Running),
            idle: count(crate::registry::Status::Idle),
            total: handlers.len(),
        },
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEvent {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(rename = "userId", default)]
    user_id: Option<Id>,
    data: Box<RawValue>,
}

/// `POST /events/:topic`: publishes any event in the standard envelope.
/// The topic is created (with the host's partition count) if it is new.
async fn publish_event(
    State(app): State<AppState>,
    Path(topic): Path<String>,
    JsonBody(new): JsonBody<NewEvent>,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    let topic = Topic::parse(&topic).map_err(|e| ApiError::invalid("topic", e.to_string()))?;
    let event_type =
        EventType::parse(&new.event_type).map_err(|e| ApiError::invalid("type", e.to_string()))?;
    let event = Event::new(event_type, new.user_id.map(String::from), new.data);
    app.publish(&topic, &event).await?;
    Ok((StatusCode::CREATED, Json(event)))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
