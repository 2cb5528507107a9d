//! The host's live web view at `/ui`: a page that reads the same JSON routes
//! as curl does (handlers, recent calls, causal chains) and drives the same
//! change routes. Its files are in `ui/`, built into the binary as they are:
//! no build step, nothing to install beside the host.
//!
//! The page never gets data the API does not give everyone: it is only
//! another client, so the admin token guards it exactly as it guards curl.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiError;

/// One file of the page.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
/// Browsers run an ES module only when it is served as JavaScript.
const JS: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("ui/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("main.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("handlers.js", JS),
    asset!("calls.js", JS),
    asset!("chain.js", JS),
];

/// Scripts, styles and requests from the host itself only: whatever a
/// handler writes into an error message is shown as text, never run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// `GET /ui` and its files under `/ui/...`; stateless, so any router can
/// merge it.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/{file}", get(file))
}

async fn index() -> Response {
    serve(&ASSETS[0])
}

async fn file(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(serve)
        .ok_or_else(|| ApiError::NotFound(format!("no file /ui/{name}")))
}

/// Every answer is revalidated (`no-cache`): after an upgrade of the host
/// the browser must not mix old scripts with the new API.
fn serve(asset: &Asset) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str) -> Response {
        routes::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header(r: &Response, name: header::HeaderName) -> &str {
        r.headers().get(name).unwrap().to_str().unwrap()
    }

    #[tokio::test]
    async fn the_page_is_served_as_html_and_revalidated() {
        for path in ["/ui", "/ui/", "/ui/index.html"] {
            let r = get(path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&r, header::CONTENT_TYPE), HTML, "{path}");
            assert_eq!(header(&r, header::CACHE_CONTROL), "no-cache", "{path}");
        }
    }

    #[tokio::test]
    async fn every_file_has_its_content_type() {
        for asset in ASSETS {
            let r = get(&format!("/ui/{}", asset.name)).await;
            assert_eq!(r.status(), StatusCode::OK, "{}", asset.name);
            assert_eq!(
                header(&r, header::CONTENT_TYPE),
                asset.content_type,
                "{}",
                asset.name
            );
            let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(&body[..], asset.body, "{}", asset.name);
        }
    }

    #[tokio::test]
    async fn an_unknown_file_is_a_json_404() {
        let r = get("/ui/secrets.txt").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "not_found");
    }

    /// Every module a script imports is one the host serves: a missing one
    /// would only show as a blank page in a browser.
    #[test]
    fn every_imported_module_is_served() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let module = line
                    .rsplit_once("from './")
                    .and_then(|(_, m)| m.split_once('\''))
                    .map(|(m, _)| m)
                    .unwrap_or_else(|| panic!("{}: unexpected import {line:?}", asset.name));
                assert!(
                    ASSETS.iter().any(|a| a.name == module),
                    "{} imports {module}, which is not in ASSETS",
                    asset.name
                );
            }
        }
    }
}
