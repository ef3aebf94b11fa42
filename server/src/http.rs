//! HTTP: the original state service's JSON messages at `POST /v1/{method}`, plus
//! `/healthz`, `/metrics` and the optional static web page.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use state_core::ErrorKind;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::metrics::ErrorClass;
use crate::Shared;

/// The id of the HTTP connection a request came on (an extension the listener
/// adds), so a signed-in request can mark its connection signed in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnId(pub(crate) u64);

/// Most bytes of a request body: a value of the store's largest size is 4/3 of
/// that in base64, plus the JSON around it.
fn body_limit(shared: &Shared) -> usize {
    shared.max_bulk().saturating_mul(4) / 3 + (64 << 10)
}

/// The router of the HTTP listener.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut r = Router::new()
        .route("/v1/watch", get(crate::sse::watch))
        .route("/v1/{method}", post(api))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics));
    if shared.cfg.web_dir.is_some() {
        r = r.fallback(web);
    }
    if !shared.cfg.cors.is_empty() {
        let allow = if shared.cfg.cors.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                shared
                    .cfg
                    .cors
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        r = r.layer(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    r.layer(middleware::from_fn_with_state(shared.clone(), check_host))
        .with_state(shared)
}

/// Whether the CORS origins given are valid: `*` alone, or origins that are valid
/// header values.
///
/// # Errors
/// A message naming the bad origin.
pub fn check_cors(origins: &[String]) -> Result<(), String> {
    if origins.iter().any(|o| o == "*") && origins.len() > 1 {
        return Err(
            "--cors '*' allows every origin and cannot be combined with named origins".into(),
        );
    }
    for o in origins {
        if o != "*" && HeaderValue::from_str(o).is_err() {
            return Err(format!("--cors {o:?} is not a valid origin"));
        }
    }
    Ok(())
}

/// Whether a request's `Host` names this server: an IP address literal (DNS
/// rebinding needs a name), `localhost`, or a name given with `--http-host`. A
/// request without a Host header (HTTP/1.0) is let through.
pub(crate) fn host_allowed(host: Option<&str>, extra: &[String]) -> bool {
    let Some(host) = host else {
        return true;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost") || extra.iter().any(|e| e.eq_ignore_ascii_case(name))
}

/// Refuses requests whose Host the server does not serve (421), and adds the
/// response headers every answer carries.
async fn check_host(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("\u{0}"));
    if !host_allowed(host, &shared.cfg.http_hosts) {
        shared.metrics.error(ErrorClass::Invalid);
        return json_error(
            StatusCode::MISDIRECTED_REQUEST,
            "invalid argument",
            "this server does not serve that Host (start it with --http-host NAME to add one)",
        );
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    resp
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

async fn api(
    State(shared): State<Arc<Shared>>,
    Path(method): Path<String>,
    req: Request,
) -> Response {
    count_request(&shared);
    let (parts, body) = req.into_parts();
    let headers: &HeaderMap = &parts.headers;
    // The token is checked before a byte of the body is read.
    let token = bearer(headers);
    let client = match token.and_then(|t| shared.registry.verify(None, t)) {
        Some(c) => c,
        None => {
            log_refused(&shared, "HTTP request");
            return json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid bearer token",
            );
        }
    };
    mark_signed_in(
        &shared,
        parts.extensions.get::<ConnId>(),
        &client,
        token.unwrap_or_default(),
    );
    if !state_core::SERVICE_METHODS.contains(&method.as_str()) {
        shared.metrics.error(ErrorClass::Invalid);
        return json_error(
            StatusCode::NOT_FOUND,
            "not found",
            &format!(
                "unknown method {:?}; see docs/service.md for the methods",
                crate::metrics::log_safe(method.as_bytes(), 64)
            ),
        );
    }
    // A declared length over the limit is refused before reading; an undeclared
    // (chunked) body is cut off at the limit; either must arrive within the read
    // timeout.
    let limit = body_limit(&shared);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        shared.metrics.error(ErrorClass::TooLarge);
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
            &format!("the request body is over the limit of {limit} bytes"),
        );
    }
    let read = axum::body::to_bytes(body, limit);
    let body = match tokio::time::timeout(shared.cfg.read_timeout, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            shared.metrics.error(ErrorClass::TooLarge);
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too large",
                &format!("the request body is over the limit of {limit} bytes, or was cut off"),
            );
        }
        Err(_) => {
            shared.metrics.error(ErrorClass::Protocol);
            return json_error(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "the request body did not arrive within the read timeout",
            );
        }
    };
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
    let result = crate::conn::off_loop(run);
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

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(want) = &shared.cfg.metrics_token {
        let ok = bearer(&headers).is_some_and(|t| {
            bool::from(subtle::ConstantTimeEq::ct_eq(t.as_bytes(), want.as_bytes()))
        });
        if !ok {
            log_refused(&shared, "metrics scrape");
            return json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid bearer token (this server was started with --metrics-token)",
            );
        }
    }
    if shared.metrics.claim_store_count() {
        let sh = shared.clone();
        tokio::task::spawn_blocking(move || sh.metrics.count_store(sh.svc.store()));
    }
    let text = shared.metrics.render();
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
