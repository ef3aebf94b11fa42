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
    /// The next chunk: the notices queued now (up to [`SSE_CHUNK_BYTES`], and at
    /// least one), or a keep-alive comment; `None` at the end.
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Stream)> {
        if self.done {
            return None;
        }
        loop {
            let (chunk, ended) = gather(&self.watcher);
            self.done = ended;
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

/// The messages of the notices queued on `w` now, up to [`SSE_CHUNK_BYTES`] (and
/// at least one), and whether the watcher has ended. Bounded: a writer that keeps
/// the queue filling as fast as this drains it must not grow one chunk without end.
fn gather(w: &Watcher) -> (String, bool) {
    let mut chunk = String::new();
    while chunk.len() < SSE_CHUNK_BYTES {
        match w.try_recv() {
            Ok(n) => message(&mut chunk, &n),
            Err(RecvError::Empty) => break,
            Err(RecvError::Ended) => return (chunk, true),
        }
    }
    (chunk, false)
}

/// Most bytes of messages one chunk gathers before it is handed to the connection
/// (a single message may be larger: it is never split).
const SSE_CHUNK_BYTES: usize = 1 << 20;

/// Appends one SSE message for `n`, written in place: a value is copied once, as
/// its base64 text.
fn message(out: &mut String, n: &Notice) {
    out.push_str("data: ");
    match n {
        Notice::Change(e) => {
            out.push_str("{\"key\":");
            // A key is a JSON string; its escaping is serde_json's.
            out.push_str(&serde_json::Value::from(e.key()).to_string());
            out.push_str(",\"kind\":\"");
            out.push_str(e.kind().as_str());
            out.push('"');
            if let Some(v) = e.value() {
                out.push_str(",\"value\":\"");
                base64::engine::general_purpose::STANDARD.encode_string(v, out);
                out.push('"');
            }
            out.push('}');
        }
        Notice::Lagged(missed) => {
            out.push_str("{\"kind\":\"lagged\",\"missed\":");
            out.push_str(&missed.to_string());
            out.push('}');
        }
    }
    out.push_str("\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk stops gathering at its bound; the rest stays queued for the next.
    #[test]
    fn a_chunk_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = state_core::Store::open(dir.path().join("s")).unwrap();
        let b = store.bucket("alice").unwrap();
        let w = b
            .watch_with(
                "",
                WatchOptions::new(SSE_QUEUE_NOTICES, SSE_QUEUE_BYTES, true),
            )
            .unwrap();
        let value = vec![b'v'; 10_000];
        for i in 0..300 {
            b.set(&format!("k{i}"), &value).unwrap();
        }
        let one = 13_400; // a message: its key, its value's base64, the JSON around them
        let (first, ended) = gather(&w);
        assert!(!ended);
        assert!(first.len() >= SSE_CHUNK_BYTES && first.len() < SSE_CHUNK_BYTES + one);
        let mut total = first.matches("data: ").count();
        loop {
            let (next, _) = gather(&w);
            if next.is_empty() {
                break;
            }
            assert!(next.len() < SSE_CHUNK_BYTES + one);
            total += next.matches("data: ").count();
        }
        assert_eq!(total, 300);
    }

    /// The hand-written JSON is what serde_json reads back, keys escaped.
    #[test]
    fn messages_are_json() {
        let mut out = String::new();
        message(&mut out, &Notice::Lagged(7));
        let body = out
            .strip_prefix("data: ")
            .and_then(|s| s.strip_suffix("\n\n"));
        let v: serde_json::Value = serde_json::from_str(body.unwrap_or_default()).unwrap();
        assert_eq!(v, serde_json::json!({"kind": "lagged", "missed": 7}));
    }
}
