//! Managing handlers over HTTP: list, inspect, upload, delete, pause and
//! resume. Uploads are validated before anything changes and go through
//! the handlers folder, which stays the single source of truth.
//!
//! The routes that change handlers are guarded by [`AdminPolicy`].

use std::net::IpAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::{ApiError, JsonBody};
use super::views::{HandlerView, RedriveView, ReplayView, RewoundView};
use crate::bus::ReplayFrom;
use crate::supervisor::Uploaded;

/// Largest component accepted by `PUT /handlers/:name`.
pub const MAX_COMPONENT: usize = 64 * 1024 * 1024;

/// Who may change handlers over HTTP.
#[derive(Clone)]
pub enum AdminPolicy {
    /// Requests must carry `Authorization: Bearer <token>`.
    Token(String),
    /// No token configured and the API listens on loopback only: open.
    Local,
    /// No token configured and the API is reachable from elsewhere: closed.
    Closed,
}

impl AdminPolicy {
    pub fn new(token: Option<String>, bind: IpAddr) -> Self {
        match token.filter(|t| !t.is_empty()) {
            Some(token) => Self::Token(token),
            None if bind.is_loopback() => Self::Local,
            None => Self::Closed,
        }
    }

    fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self {
            Self::Local => Ok(()),
            Self::Closed => Err(ApiError::Forbidden(
                "changing handlers over HTTP is disabled: set ADMIN_TOKEN".into(),
            )),
            Self::Token(token) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default();
                if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                    Ok(())
                } else {
                    Err(ApiError::Unauthorized)
                }
            }
        }
    }
}

/// The admin check as an extractor: axum runs it before the body is read,
/// so a request that may not change handlers is refused without the host
/// buffering its body (an upload may be 64 MiB).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Refused> {
        app.admin()
            .check(&parts.headers)
            .map(|()| Admin)
            .map_err(Refused)
    }
}

/// A change refused before its body was read. The unread body leaves the
/// connection unfit for another request, and the server closes it; the
/// answer says `Connection: close`, so that a client does not send its
/// next request on it (and get a broken pipe instead of an answer).
pub struct Refused(ApiError);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

/// `GET /handlers`: every handler with its status, version, subscriptions and counters.
pub async fn list(State(app): State<AppState>) -> Json<Vec<HandlerView>> {
    Json(
        app.registry()
            .list()
            .into_iter()
            .map(|h| sourced(&app, HandlerView::from(h)))
            .collect(),
    )
}

/// With the catalog on, a handler's versions come from it, not a file.
fn sourced(app: &AppState, mut view: HandlerView) -> HandlerView {
    if app.changes().has_catalog() {
        view.source = "catalog";
        view.file = None;
    }
    view
}

/// `GET /handlers/:name`.
pub async fn get(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<HandlerView>, ApiError> {
    view(&app, &name).map(Json)
}

/// `PUT /handlers/:name` with the component as the body: validates it, writes
/// it to the handlers folder and runs it (201 when new, 200 when replacing).
pub async fn put(
    _: Admin,
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<HandlerView>), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !(content_type.starts_with("application/wasm")
        || content_type.starts_with("application/octet-stream"))
    {
        return Err(ApiError::UnsupportedMediaTypeFor("application/wasm"));
    }
    crate::registry::validate_name(&name).map_err(|e| ApiError::invalid("name", e))?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(MAX_COMPONENT)
        } else {
            ApiError::MalformedJson(e.body_text())
        }
    })?;
    let status = match app.changes().upload(&name, body.to_vec()).await? {
        Uploaded::Added => StatusCode::CREATED,
        Uploaded::Replaced | Uploaded::Unchanged => StatusCode::OK,
    };
    Ok((status, Json(view(&app, &name)?)))
}

/// `DELETE /handlers/:name`: stops it (its group is left after a final
/// commit) and deletes its file.
pub async fn delete(
    _: Admin,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.changes().delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /handlers/:name/pause`.
pub async fn pause(
    _: Admin,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<HandlerView>, ApiError> {
    app.changes().set_paused(&name, true).await?;
    view(&app, &name).map(Json)
}

/// `POST /handlers/:name/resume`.
pub async fn resume(
    _: Admin,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<HandlerView>, ApiError> {
    app.changes().set_paused(&name, false).await?;
    view(&app, &name).map(Json)
}

/// Where `POST /handlers/:name/replay` starts: exactly one of the fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// `"earliest"`: every event still on the topics.
    from: Option<String>,
    /// This offset, on every partition.
    offset: Option<i64>,
    /// The first event at or after this RFC 3339 time.
    timestamp: Option<String>,
}

impl ReplayRequest {
    fn target(self) -> Result<ReplayFrom, ApiError> {
        match (self.from.as_deref(), self.offset, self.timestamp) {
            (Some("earliest"), None, None) => Ok(ReplayFrom::Earliest),
            (Some(other), None, None) => Err(ApiError::invalid(
                "from",
                format!("{other:?}: only \"earliest\""),
            )),
            (None, Some(offset), None) if offset >= 0 => Ok(ReplayFrom::Offset(offset)),
            (None, Some(_), None) => Err(ApiError::invalid("offset", "must be at least 0")),
            (None, None, Some(t)) => {
                let time = humantime::parse_rfc3339_weak(&t)
                    .map_err(|e| ApiError::invalid("timestamp", format!("{t:?}: {e}")))?;
                let ms = time
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|_| ApiError::invalid("timestamp", "before 1970"))?
                    .as_millis();
                Ok(ReplayFrom::Timestamp(i64::try_from(ms).unwrap_or(i64::MAX)))
            }
            _ => Err(ApiError::Invalid {
                field: None,
                message: "give exactly one of from (\"earliest\"), offset, timestamp".into(),
            }),
        }
    }
}

/// `POST /handlers/:name/replay`: rewinds the handler's partitions (those
/// this host consumes) and commits there; the events from there on are
/// handled again.
pub async fn replay(
    _: Admin,
    State(app): State<AppState>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<ReplayRequest>,
) -> Result<Json<ReplayView>, ApiError> {
    let from = request.target()?;
    let rewound = app.changes().replay(&name, from).await?;
    Ok(Json(ReplayView {
        name,
        partitions: rewound.into_iter().map(RewoundView::from).collect(),
    }))
}

/// `POST /handlers/:name/redrive`: re-injects the handler's dead letters
/// (those not redriven before) into their topics, for it alone.
pub async fn redrive(
    _: Admin,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<RedriveView>, ApiError> {
    let report = app.changes().redrive(&name).await?;
    Ok(Json(RedriveView::new(name, report)))
}

fn view(app: &AppState, name: &str) -> Result<HandlerView, ApiError> {
    let mut view = app
        .registry()
        .get(name)
        .map(|h| sourced(app, HandlerView::from(h)))
        .ok_or_else(|| ApiError::NotFound(format!("no handler named {name:?}")))?;
    view.cluster = app.cluster().and_then(|c| super::cluster::handler(c, name));
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_token_is_required_when_configured() {
        let policy = AdminPolicy::new(Some("s3cret".into()), [0, 0, 0, 0].into());
        assert!(policy.check(&headers(Some("Bearer s3cret"))).is_ok());
        assert!(matches!(
            policy.check(&headers(Some("Bearer nope"))),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            policy.check(&headers(None)),
            Err(ApiError::Unauthorized)
        ));
    }

    #[test]
    fn without_a_token_only_a_loopback_api_is_open() {
        assert!(
            AdminPolicy::new(None, [127, 0, 0, 1].into())
                .check(&headers(None))
                .is_ok()
        );
        let open_to_all = AdminPolicy::new(None, [0, 0, 0, 0].into());
        assert!(matches!(
            open_to_all.check(&headers(None)),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            AdminPolicy::new(Some(String::new()), [10, 0, 0, 1].into()).check(&headers(None)),
            Err(ApiError::Forbidden(_))
        ));
    }
}
