//! The one error type of the HTTP edge, and the JSON body extractor that
//! produces it. Every error is a JSON body `{"error", "message", "field"?}`:
//! the caller's mistakes are 4xx with what to fix; the host's own failures
//! are logged once, here, and answered without internals.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bus::PublishError;
use crate::supervisor::ChangeError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The JSON does not have the right shape or values.
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("expected a body with Content-Type: {0}")]
    UnsupportedMediaTypeFor(&'static str),
    #[error("missing or wrong admin token: send Authorization: Bearer <ADMIN_TOKEN>")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The broker did not take the event: nothing was published.
    #[error("the event could not be stored: {0}; nothing was published, try again")]
    Unavailable(#[from] PublishError),
    #[error("{0}")]
    Conflict(String),
    #[error("the host is shutting down; try another instance or again later")]
    ShuttingDown,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: Some(field.to_string()),
            message: format!("{field}: {}", message.into()),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType | Self::UnsupportedMediaTypeFor(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::Invalid { .. } => "invalid_request",
            Self::UnsupportedMediaType | Self::UnsupportedMediaTypeFor(_) => {
                "unsupported_media_type"
            }
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::TooLarge(_) => "payload_too_large",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unavailable(_) => "broker_unavailable",
            Self::Conflict(_) => "conflict",
            Self::ShuttingDown => "shutting_down",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::NotFound(name) => Self::NotFound(format!("no handler named {name:?}")),
            ChangeError::InvalidName(message) => Self::invalid("name", message),
            ChangeError::Rejected(error) => Self::Invalid {
                field: None,
                message: format!("not a valid handler: {error}"),
            },
            ChangeError::Busy(name) => {
                Self::Conflict(format!("a redrive of {name:?} is already running"))
            }
            ChangeError::ShuttingDown => Self::ShuttingDown,
            ChangeError::Failed(e) => Self::Internal(e),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(e) => tracing::error!(error = ?e, "request failed"),
            Self::Unavailable(e) => tracing::warn!(error = %e, "publish failed"),
            _ => {}
        }
        let field = match &self {
            Self::Invalid { field, .. } => field.as_deref(),
            _ => None,
        };
        let body = ErrorBody {
            error: self.code(),
            message: self.to_string(),
            field,
        };
        (self.status(), axum::Json(body)).into_response()
    }
}

/// A JSON request body of type `T`. Unlike `axum::Json`, every rejection is
/// an [`ApiError`] naming the offending field.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(super::MAX_BODY)
            } else {
                ApiError::MalformedJson(e.body_text())
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses JSON, telling syntax errors (400) from shape errors (422).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::MalformedJson(inner.to_string());
        }
        let message = strip_position(&inner.to_string());
        let field = if path == "." {
            missing_field(&message)
        } else {
            Some(path)
        };
        match field {
            Some(field) if !message.contains(&format!("`{field}`")) => ApiError::Invalid {
                message: format!("{field}: {message}"),
                field: Some(field),
            },
            field => ApiError::Invalid { field, message },
        }
    })?;
    de.end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// `"missing field `email`"` → `email`.
fn missing_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_string)
}

/// Drops serde_json's " at line 1 column 7" suffix: the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        age: u32,
    }

    fn field_of(r: Result<Sample, ApiError>) -> (Option<String>, String) {
        match r {
            Err(ApiError::Invalid { field, message }) => (field, message),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        assert!(matches!(
            parse::<Sample>(b"{\"name\":"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse::<Sample>(b"nope"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse::<Sample>(br#"{"name":"a","age":1} trailing"#),
            Err(ApiError::MalformedJson(_))
        ));
    }

    #[test]
    fn shape_errors_name_the_field() {
        let (field, message) = field_of(parse(br#"{"name":"a"}"#));
        assert_eq!(field.as_deref(), Some("age"));
        assert_eq!(message, "missing field `age`");

        let (field, message) = field_of(parse(br#"{"name":"a","age":"old"}"#));
        assert_eq!(field.as_deref(), Some("age"));
        assert!(
            message.starts_with("age: invalid type: string"),
            "{message}"
        );
        assert!(!message.contains("line"), "{message}");

        let (field, _) = field_of(parse(br#"{"name":"a","age":1,"x":2}"#));
        assert_eq!(field.as_deref(), Some("x"));
    }
}
