//! HTTP: the original state service's JSON messages at `POST /v1/{method}`, plus
//! `/healthz`, `/metrics` and the optional static web page.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use state_core::ErrorKind;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::metrics::ErrorClass;
use crate::Shared;

/// The router of the HTTP listener.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    // A value of max_value_size bytes is 4/3 of that in base64, plus the JSON around it.
    let body_limit = shared.max_bulk().saturating_mul(4) / 3 + (64 << 10);
    let mut r = Router::new()
        .route("/v1/watch", get(crate::sse::watch))
        .route("/v1/{method}", post(api))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(body_limit));
    if !shared.cfg.cors.is_empty() {
        let origins: Vec<HeaderValue> = shared
            .cfg
            .cors
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        r = r.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    if shared.cfg.web_dir.is_some() {
        r = r.fallback(web);
    }
    r.with_state(shared)
}

/// Counts one HTTP API request.
pub(crate) fn count_request(shared: &Shared) {
    shared
        .metrics
        .http_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The token of an `Authorization: Bearer TOKEN` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

pub(crate) fn json_error(status: StatusCode, kind: &str, msg: &str) -> Response {
    let body = serde_json::json!({ "error": msg, "kind": kind }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn api(
    State(shared): State<Arc<Shared>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    count_request(&shared);
    let client = match bearer(&headers).and_then(|t| shared.registry.verify(None, t)) {
        Some(c) => c,
        None => {
            shared.metrics.error(ErrorClass::Auth);
            tracing::warn!(method = %method, "HTTP request with a missing or invalid token");
            return json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid bearer token",
            );
        }
    };
    if !state_core::SERVICE_METHODS.contains(&method.as_str()) {
        shared.metrics.error(ErrorClass::Invalid);
        return json_error(
            StatusCode::NOT_FOUND,
            "not found",
            &format!("unknown method {method:?}; see docs/service.md for the methods"),
        );
    }
    let Ok(body) = std::str::from_utf8(&body) else {
        shared.metrics.error(ErrorClass::Invalid);
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid argument",
            "the request body is not UTF-8 JSON",
        );
    };
    let body = if body.trim().is_empty() { "{}" } else { body };
    shared.apply_quota(&client);
    let started = Instant::now();
    let run = || shared.svc.handle(&client, &method, body);
    let result = if shared.cfg.blocking_store {
        tokio::task::block_in_place(run)
    } else {
        run()
    };
    shared.metrics.latency(started.elapsed());
    match result {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => {
            shared.metrics.error(ErrorClass::of(e.kind()));
            let status = match e.kind() {
                ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
                ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                ErrorKind::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
                ErrorKind::Closed => StatusCode::SERVICE_UNAVAILABLE,
                _ => {
                    tracing::error!(client = %client, method = %method, "store error: {e}");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            json_error(status, e.kind().as_str(), &e.to_string())
        }
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = shared.metrics.render(shared.svc.store());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The static web page (`--web DIR`): tower-http's `ServeDir`, behind checks for the
/// request targets it would answer with a 500 although the fault is the client's (found
/// by the `http` fuzz target): a target that is not a path (`GET host HTTP/1.1`, the
/// authority form) is 400; a name longer than file systems take (a component over 255
/// bytes or a path near 4096, which `open` refuses with ENAMETOOLONG) names no file: 404.
async fn web(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let Some(dir) = &shared.cfg.web_dir else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = req.uri().path();
    if !path.starts_with('/') {
        return (
            StatusCode::BAD_REQUEST,
            "the request target is not a path\n",
        )
            .into_response();
    }
    let too_long = path.split('/').any(|c| decoded_len(c) > 255)
        || dir.as_os_str().len() + decoded_len(path) >= 4000;
    if too_long {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(resp) = tower_http::services::ServeDir::new(dir).oneshot(req).await;
    resp.map(axum::body::Body::new)
}

/// Length of `s` once its `%XX` escapes are decoded.
fn decoded_len(s: &str) -> usize {
    let b = s.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < b.len() {
        let escape = b[i] == b'%'
            && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        i += if escape { 3 } else { 1 };
        n += 1;
    }
    n
}
