//! `GET /v1/watch?prefix=P`: the changes to the client's keys under a prefix as
//! Server-Sent Events, one JSON message per change:
//! `{"key":"k","kind":"set","value":"<base64>"}` (`kind` is `set`, `delete` or
//! `expire`; only `set` has a value), and `{"kind":"lagged","missed":N}` where the
//! stream fell behind and N changes were dropped (read the keys again).
//!
//! The token comes as `Authorization: Bearer` or, because a browser's EventSource
//! cannot set headers, as `?token=` (this route only). The watcher is registered
//! before the response headers are sent, so once a client sees the response open
//! every later change reaches it. The stream ends when the client goes away or the
//! server shuts down; a comment line every 15 s keeps idle proxies from closing it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use state_core::{Notice, RecvError, WatchOptions, Watcher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::common::{
    bearer, count_request, error_response, json_error, log_refused, mark_signed_in, ConnId,
};
use crate::Shared;

/// How often an idle stream sends a comment line.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /v1/watch?prefix=P`: the event stream of the token's client.
pub(super) async fn watch(
    State(shared): State<Arc<Shared>>,
    conn: Option<Extension<ConnId>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    count_request(&shared);
    let token = bearer(&headers).or(query.get("token").map(String::as_str));
    let Some(client) = token.and_then(|t| shared.registry.verify(None, t)) else {
        log_refused(&shared, "watch request");
        return json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        );
    };
    let token_hash = crate::auth::hash_token(token.unwrap_or_default());
    mark_signed_in(
        &shared,
        conn.as_ref().map(|c| &c.0),
        &client,
        token.unwrap_or_default(),
    );
    let prefix = query.get("prefix").map_or("", String::as_str);
    let opts = WatchOptions::new(SSE_QUEUE_NOTICES, SSE_QUEUE_BYTES, true);
    let watcher = match shared
        .svc
        .client(&client)
        .and_then(|b| b.watch_with(prefix, opts).map_err(Into::into))
    {
        Ok(w) => w,
        Err(e) => return error_response(&shared, &e, format_args!("watch for client {client}")),
    };
    let ready = Arc::new(Notify::new());
    {
        let ready = Arc::clone(&ready);
        watcher.set_waker(move || ready.notify_one());
    }
    // The stream is tracked on its own (it outlives the request's connection
    // bookkeeping): removing the client or rotating its token ends it.
    let id = shared.next_id();
    let kill = shared.track(id, Some((client, token_hash)), false);
    let stream = Stream {
        watcher,
        ready,
        shutdown: kill,
        done: false,
        _tracked: Untrack(shared.clone(), id),
    };
    let body = Body::from_stream(futures_util::stream::unfold(stream, Stream::next));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Most notices one stream queues for a client that reads slowly; past it (or
/// [`SSE_QUEUE_BYTES`]) the client gets a `lagged` message.
const SSE_QUEUE_NOTICES: usize = 1024;
/// Most bytes of keys and values one stream queues (one change is always queued,
/// however large its value).
const SSE_QUEUE_BYTES: usize = 4 << 20;

/// Stops tracking a stream when it is dropped.
struct Untrack(Arc<Shared>, u64);

impl Drop for Untrack {
    fn drop(&mut self) {
        self.0.untrack(self.1);
    }
}

/// The state of one event stream.
struct Stream {
    watcher: Watcher,
    ready: Arc<Notify>,
    /// Cancelled at shutdown and on revocation.
    shutdown: CancellationToken,
    done: bool,
    _tracked: Untrack,
}

impl Stream {
    /// The next chunk: every notice queued now, or a keep-alive comment; `None` at
    /// the end.
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Stream)> {
        if self.done {
            return None;
        }
        loop {
            let mut chunk = String::new();
            loop {
                match self.watcher.try_recv() {
                    Ok(n) => message(&mut chunk, &n),
                    Err(RecvError::Empty) => break,
                    Err(RecvError::Ended) => {
                        self.done = true;
                        break;
                    }
                }
            }
            if !chunk.is_empty() || self.done {
                return if chunk.is_empty() {
                    None
                } else {
                    Some((Ok(Bytes::from(chunk)), self))
                };
            }
            tokio::select! {
                () = self.ready.notified() => {}
                () = self.shutdown.cancelled() => return None,
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), self));
                }
            }
        }
    }
}

/// Appends one SSE message for `n`.
fn message(out: &mut String, n: &Notice) {
    let json = match n {
        Notice::Change(e) => {
            let mut m = serde_json::json!({ "key": e.key(), "kind": e.kind().as_str() });
            if let Some(v) = e.value() {
                m["value"] = base64::engine::general_purpose::STANDARD.encode(v).into();
            }
            m
        }
        Notice::Lagged(missed) => serde_json::json!({ "kind": "lagged", "missed": missed }),
    };
    out.push_str("data: ");
    out.push_str(&json.to_string());
    out.push_str("\n\n");
}
