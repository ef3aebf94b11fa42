//! The static web page (`--web DIR`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::Shared;

/// The static web page (`--web DIR`): tower-http's `ServeDir`, behind checks for the
/// request targets it would answer with a 500 although the fault is the client's (found
/// by the `http` fuzz target): a target that is not a path (`GET host HTTP/1.1`, the
/// authority form) is 400; a name longer than file systems take (a component over 255
/// bytes or a path near 4096, which `open` refuses with ENAMETOOLONG) names no file: 404.
pub(super) async fn serve(State(shared): State<Arc<Shared>>, req: Request) -> Response {
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
