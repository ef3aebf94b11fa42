//! What the HTTP routes share: the connection id extension, bearer tokens,
//! JSON error bodies, the one map from an error kind to an HTTP status, and the
//! sign-in bookkeeping.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use state_core::ErrorKind;
use state_service::{Error, ErrorKind as Kind};

use crate::metrics::ErrorClass;
use crate::Shared;

/// The id of the HTTP connection a request came on (an extension the listener
/// adds), so a signed-in request can mark its connection signed in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnId(pub(crate) u64);

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

/// A JSON error body `{"error": msg, "kind": kind}` with `status`.
pub(crate) fn json_error(status: StatusCode, kind: &str, msg: &str) -> Response {
    let body = serde_json::json!({ "error": msg, "kind": kind }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Marks the request's connection signed in as `client` with token `token`.
pub(crate) fn mark_signed_in(shared: &Shared, conn: Option<&ConnId>, client: &str, token: &str) {
    if let Some(ConnId(id)) = conn {
        shared.signed_in(
            *id,
            Some((client.to_string(), crate::auth::hash_token(token))),
        );
    }
}

/// Logs a refused token, rate-limited.
pub(crate) fn log_refused(shared: &Shared, what: &str) {
    shared.metrics.error(ErrorClass::Auth);
    if let Some(held) = shared.auth_log.allow() {
        tracing::warn!(held_back = held, "{what} with a missing or invalid token");
    }
}

/// The HTTP status of a core error kind (the one map, for every route).
pub(crate) fn status_of(kind: Kind) -> StatusCode {
    match kind {
        Kind::Store(ErrorKind::InvalidArgument) => StatusCode::BAD_REQUEST,
        Kind::Store(ErrorKind::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        Kind::Store(ErrorKind::Closed) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The response for a core error: counted, its status from [`status_of`], and
/// logged with `context` when it is the server's fault (a 500).
pub(crate) fn error_response(
    shared: &Shared,
    e: &Error,
    context: std::fmt::Arguments<'_>,
) -> Response {
    shared.metrics.error(ErrorClass::of(e.kind()));
    let status = status_of(e.kind());
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!("{context}: store error: {e}");
    }
    json_error(status, e.kind().as_str(), &e.to_string())
}
