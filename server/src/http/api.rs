//! `POST /v1/{method}`, the original state service's JSON messages, and
//! `GET /metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::common::{
    bearer, count_request, error_response, json_error, log_refused, mark_signed_in, ConnId,
};
use crate::metrics::ErrorClass;
use crate::Shared;

/// A request body past this many bytes (a large value to decode and write) runs
/// off the worker thread whatever its method.
const LONG_BODY: usize = 64 << 10;

/// Most bytes of a request body: a value of the store's largest size is 4/3 of
/// that in base64, plus the JSON around it.
fn body_limit(shared: &Shared) -> usize {
    shared.max_bulk().saturating_mul(4) / 3 + (64 << 10)
}

/// `POST /v1/{method}`: one call of the service for the bearer token's client.
pub(super) async fn call(
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
    let Some(spec) = state_service::method_named(&method) else {
        shared.metrics.error(ErrorClass::Invalid);
        return json_error(
            StatusCode::NOT_FOUND,
            "not found",
            &format!(
                "unknown method {:?}; see docs/service.md for the methods",
                crate::metrics::log_safe(method.as_bytes(), 64)
            ),
        );
    };
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
    let started = Instant::now();
    let run = || shared.svc.handle(&client, &method, body);
    // A point read or write runs on the worker thread as it is; a method whose
    // work grows with the data or its arguments, a large body, a write that
    // waits for fsync, or a client with a quota (whose first checked write counts
    // its usage) first hands the thread's other connections to another worker
    // (`off_loop`), which costs more than a point read itself.
    let long = spec.long
        || body.len() > LONG_BODY
        || shared.cfg.blocking_store
        || shared.svc.has_quota(&client);
    let result = if long { crate::off_loop(run) } else { run() };
    shared.metrics.latency(started.elapsed());
    match result {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => error_response(
            &shared,
            &e,
            format_args!("client {client}, method {method}"),
        ),
    }
}

/// `POST /admin/run` with `{"args": ["client", "usage"]}`: a `state client ...`
/// command run by the server for a client added with `--admin` (bearer token), as
/// LIBSTATE.RUN runs it; replies `{"code", "stdout", "stderr"}` (outputs as text).
/// Other tokens get 403; other commands are the owner's (on the Unix socket): 403.
pub(super) async fn admin_run(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    count_request(&shared);
    let Some(client) = bearer(&headers).and_then(|t| shared.registry.verify(None, t)) else {
        log_refused(&shared, "admin request");
        return json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        );
    };
    if !shared.registry.is_admin(&client) {
        return json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this is for clients added with `state client add NAME --admin`",
        );
    }
    let Some(runner) = shared.cfg.admin_runner.clone() else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not found",
            "this server runs no state commands",
        );
    };
    #[derive(serde::Deserialize)]
    struct Body {
        args: Vec<String>,
    }
    let Ok(parsed) = serde_json::from_slice::<Body>(&body) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "expected {\"args\": [\"client\", ...]}",
        );
    };
    let req = crate::config::AdminRequest {
        cwd: std::path::PathBuf::from("/"),
        stdin: Vec::new(),
        input: None,
        args: parsed.args,
        owner: false,
    };
    let sh = shared.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let reply = (runner.0)(req);
        if reply.clients_changed {
            if let Err(e) = sh.registry.reload() {
                tracing::error!("keeping the previous client list: {e}");
            }
            sh.revoke_stale();
        }
        reply
    })
    .await;
    match reply {
        Ok(r) => match r.refused {
            Some(why) => json_error(StatusCode::FORBIDDEN, "forbidden", &why),
            None => {
                let body = serde_json::json!({
                    "code": r.code,
                    "stdout": String::from_utf8_lossy(&r.stdout),
                    "stderr": String::from_utf8_lossy(&r.stderr),
                });
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response()
            }
        },
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

/// `GET /readyz`: 200 once the store is open and takes a write
/// ([`state_core::Store::probe_write`]), 503 with the reason otherwise (a closed
/// store, or one whose engine refuses writes after a failed sync). Open, like
/// `/livez` and `/healthz`: it says nothing about the data.
pub(super) async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let sh = shared.clone();
    let probed = tokio::task::spawn_blocking(move || sh.svc.store().probe_write()).await;
    match probed {
        Ok(Ok(())) => "ready\n".into_response(),
        Ok(Err(e)) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready",
            &format!("the store takes no writes: {e}"),
        ),
        Err(e) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready",
            &format!("the probe failed: {e}"),
        ),
    }
}

/// `GET /metrics` (Prometheus text), behind `--metrics-token` if given.
pub(super) async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(want) = &shared.cfg.metrics_token {
        // The metrics token, or any administrator client's token.
        let ok = bearer(&headers).is_some_and(|t| {
            bool::from(subtle::ConstantTimeEq::ct_eq(t.as_bytes(), want.as_bytes()))
                || shared
                    .registry
                    .verify(None, t)
                    .is_some_and(|c| shared.registry.is_admin(&c))
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
    // O(1): the counts are kept as writes commit (counted once as the server
    // started); `None` for an engine other processes write to.
    let counts = shared.svc.store().counts().ok().flatten();
    let text = shared.metrics.render(counts);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
