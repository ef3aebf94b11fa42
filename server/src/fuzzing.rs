//! Drives the Redis-protocol command path ([`Harness`]) and the HTTP router
//! ([`HttpHarness`]) without sockets, for the fuzz targets (fuzz/) and their corpus
//! replay tests. Not a stable API.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Uri};
use state_service::StateService;
use tower::ServiceExt;

use crate::requests::{Requests, Stop};
use crate::resp::Out;
use crate::session::Session;
use crate::{Config, Registry, Shared};

/// A server context with no listeners and no clients file.
pub struct Harness {
    shared: Arc<Shared>,
}

impl Harness {
    /// A harness serving `svc`.
    pub fn new(svc: StateService) -> Harness {
        let registry = Registry::empty();
        Harness {
            shared: Arc::new(Shared::new(svc, registry, Config::default())),
        }
    }

    /// Feeds `data` as everything one connection of `client` sends and returns
    /// what the server replies, as `state serve` would: requests run in order
    /// until the input ends, QUIT, or a protocol error (which is replied to).
    pub fn run(&self, client: &str, data: &[u8]) -> Vec<u8> {
        let shared = &*self.shared;
        let mut sess = Session::new(
            0,
            "fuzz".into(),
            Some(client.to_string()),
            "fuzz",
            shared.metrics.local(),
        );
        let mut out = Out::new(false);
        let mut replies = Vec::new();
        // Inline commands are decoded in place: the loop gets its own copy.
        let mut data = data.to_vec();
        // The connection's loop (requests.rs), with the offloaded requests run
        // in place and the replies collected where a connection writes them.
        let mut reqs = Requests::new(shared, &sess);
        loop {
            reqs.begin(shared, &sess);
            let stop = loop {
                match reqs.step(shared, &mut sess, &mut data, &mut out) {
                    Stop::Offload(job) => {
                        let after = job.run(shared, &mut sess, &data, &mut out);
                        if let Some(stop) = reqs.finish(shared, &mut sess, &mut out, &job, after) {
                            break stop;
                        }
                    }
                    stop => break stop,
                }
            };
            reqs.end(&mut sess);
            replies.append(&mut out.buf);
            if !matches!(stop, Stop::Flush) {
                return replies;
            }
        }
    }
}

/// What the HTTP router answered.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, if `complete`.
    pub body: Vec<u8>,
    /// Whether the body ended. An event stream (`text/event-stream`) is not read (it
    /// ends only when the server shuts down); any other body that has not ended
    /// within 10 s, or fails, leaves this false.
    pub complete: bool,
}

/// The HTTP listener's router with a clients file, served in-process on a
/// current-thread runtime, one request at a time.
pub struct HttpHarness {
    router: axum::Router,
    rt: tokio::runtime::Runtime,
}

impl HttpHarness {
    /// A harness serving `svc` to the clients in `clients_file`, with CORS for
    /// `cors` and the static files of `web_dir`, as `state serve --cors ... --web ...`.
    ///
    /// # Errors
    /// An unreadable or malformed clients file; a runtime that cannot start.
    pub fn new(
        svc: StateService,
        clients_file: PathBuf,
        cors: Vec<String>,
        web_dir: Option<PathBuf>,
    ) -> io::Result<HttpHarness> {
        let registry = Registry::open(clients_file).map_err(|e| io::Error::other(e.0))?;
        let shared = Arc::new(Shared::new(
            svc,
            registry,
            Config {
                cors,
                web_dir,
                ..Config::default()
            },
        ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(HttpHarness {
            router: crate::http::router(shared),
            rt,
        })
    }

    /// Sends one request through the router and reads the response. `None` if the
    /// method, URI or a header is one that hyper refuses before routing (not a
    /// token, not a URI, not a header name or value).
    pub fn call(
        &self,
        method: &[u8],
        uri: &[u8],
        headers: &[(&[u8], &[u8])],
        body: &[u8],
    ) -> Option<HttpResponse> {
        let mut req = Request::builder()
            .method(Method::from_bytes(method).ok()?)
            .uri(Uri::try_from(uri).ok()?);
        for (name, value) in headers {
            req = req.header(
                HeaderName::from_bytes(name).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            );
        }
        let req = req.body(Body::from(body.to_vec())).ok()?;
        let router = self.router.clone();
        self.rt.block_on(async move {
            let Ok(resp) = router.oneshot(req).await;
            let (parts, body) = resp.into_parts();
            let headers = parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                .collect();
            let stream = parts
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            let (body, complete) = if stream {
                (Vec::new(), false)
            } else {
                match tokio::time::timeout(
                    Duration::from_secs(10),
                    axum::body::to_bytes(body, usize::MAX),
                )
                .await
                {
                    Ok(Ok(b)) => (b.to_vec(), true),
                    _ => (Vec::new(), false),
                }
            };
            Some(HttpResponse {
                status: parts.status.as_u16(),
                headers,
                body,
                complete,
            })
        })
    }
}
