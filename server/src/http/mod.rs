//! HTTP: the router of the HTTP listener and the checks every request passes
//! (Host, CORS, the security headers). The routes: the original state service's
//! JSON messages at `POST /v1/{method}` and `/metrics` ([`api`]), the event
//! stream `GET /v1/watch` ([`sse`]), `/healthz`, and the optional static web page
//! ([`web`]). What they share (bearer tokens, JSON errors, the one map from an
//! error kind to an HTTP status) is in [`common`].

mod api;
mod common;
mod sse;
mod web;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

use common::json_error;
pub(crate) use common::ConnId;

use crate::metrics::ErrorClass;
use crate::Shared;

/// The router of the HTTP listener.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut r = Router::new()
        .route("/v1/watch", get(sse::watch))
        .route("/v1/{method}", post(api::call))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(api::readyz))
        .route("/admin/run", post(api::admin_run))
        .route("/metrics", get(api::metrics));
    if shared.cfg.web_dir.is_some() {
        r = r.fallback(web::serve);
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
