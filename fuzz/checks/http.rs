//! Any HTTP request to the server's router (the JSON API, `/v1/watch`, `/healthz`,
//! `/metrics`, CORS preflights, the static web page) gets a well-formed response,
//! never a panic; no 5xx but 507 (the client's quota, a reply the API documents) —
//! the store is healthy, so a 500 or 503 would be a bug; and a request never sees
//! another client's data or a file outside the web directory, nor a 2xx from the
//! API without the client's token.
//!
//! The input is a request as text: a request line `METHOD URI`, header lines
//! `Name: value`, an empty line, then the body (lines end in `\n`, an optional `\r`
//! before it is dropped). `$TOKEN` in the URI or a header value stands for the
//! token of client `fuzz`, so that the fuzzer reaches the authenticated paths; the
//! other client's token appears nowhere. `$CURSOR` anywhere stands for the last
//! `cursorKey` a response held, so that a cursor can be opened, then read.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use state_server::fuzzing::{HttpHarness, HttpResponse};
use state_server::ClientsFile;
use state_service::{Quota, StateService};

/// The only origin the server allows (`--cors`).
const ORIGIN: &str = "https://app.example";

struct Setup {
    _dir: tempfile::TempDir,
    http: HttpHarness,
    token: String,
    /// Byte strings no response may contain: client `other`'s key and value (raw and
    /// base64) and the contents of a file next to the web directory.
    secrets: Vec<Vec<u8>>,
}

fn random_hex() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u8(0);
    let a = h.finish();
    let mut h = RandomState::new().build_hasher();
    h.write_u8(1);
    format!("{a:016x}{:016x}", h.finish())
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let (dir, store) = crate::support::memfile_store();
        let svc = StateService::new(store);
        let mut clients = ClientsFile::default();
        // A small quota, so that 507 is reached.
        let token = clients
            .add(
                "fuzz",
                Quota {
                    max_records: Some(64),
                    max_bytes: Some(1 << 20),
                    max_value_size: Some(1 << 14),
                },
            )
            .unwrap();
        clients.add("other", Quota::default()).unwrap();
        let clients_file = dir.path().join("clients.toml");
        clients.save(&clients_file).unwrap();
        let (key, value, file) = (random_hex(), random_hex(), random_hex());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&value);
        let req = format!(r#"{{"key":"{key}","value":"{b64}"}}"#);
        svc.handle("other", "set", &req).unwrap();
        let web = dir.path().join("web");
        std::fs::create_dir(&web).unwrap();
        std::fs::write(web.join("index.html"), "<p>libstate</p>\n").unwrap();
        std::fs::write(dir.path().join("outside.txt"), &file).unwrap();
        let http =
            HttpHarness::new(svc, clients_file, vec![ORIGIN.to_string()], Some(web)).unwrap();
        let secrets = [key, value, b64, file]
            .into_iter()
            .map(String::into_bytes)
            .collect();
        Setup {
            _dir: dir,
            http,
            token,
            secrets,
        }
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether `hay` holds `secret`, found by a rolling hash: comparing bytes with the
/// secret would show it to the fuzzer's comparison tracing, which would then send it
/// to have it echoed back (a false alarm that the first runs of this target raised).
fn holds_secret(hay: &[u8], secret: &[u8]) -> bool {
    const B: u64 = 0x0100_0000_01b3;
    let n = secret.len();
    if n == 0 || hay.len() < n {
        return false;
    }
    let hash = |s: &[u8]| {
        s.iter()
            .fold(0u64, |h, &b| h.wrapping_mul(B).wrapping_add(u64::from(b)))
    };
    let target = hash(secret);
    let top = (1..n).fold(1u64, |p, _| p.wrapping_mul(B));
    let mut h = hash(&hay[..n]);
    for i in n..=hay.len() {
        if h == target {
            return true;
        }
        if i < hay.len() {
            h = h
                .wrapping_sub(u64::from(hay[i - n]).wrapping_mul(top))
                .wrapping_mul(B)
                .wrapping_add(u64::from(hay[i]));
        }
    }
    false
}

/// The path of a request target: origin form `/p?q` or absolute form `s://host/p?q`.
fn path_of(uri: &[u8]) -> &[u8] {
    let after_scheme = uri
        .windows(3)
        .position(|w| w == b"://")
        .map_or(uri, |i| &uri[i + 3..]);
    let rest = if uri.starts_with(b"/") {
        uri
    } else {
        after_scheme
            .iter()
            .position(|&b| b == b'/')
            .map_or(&[][..], |i| &after_scheme[i..])
    };
    let end = rest
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The last `cursorKey` a response held, for `$CURSOR`.
static CURSOR: Mutex<String> = Mutex::new(String::new());

/// `s` with `$TOKEN` and `$CURSOR` replaced.
fn expand(s: &[u8], token: &str) -> Vec<u8> {
    let cursor = CURSOR.lock().unwrap().clone();
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(b"$TOKEN") {
            out.extend_from_slice(token.as_bytes());
            i += 6;
        } else if s[i..].starts_with(b"$CURSOR") {
            out.extend_from_slice(cursor.as_bytes());
            i += 7;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Checks the response `r` to `request` (all its bytes, placeholders expanded).
fn check_response(r: &HttpResponse, request: &[u8], method: &[u8], path: &[u8], with_token: bool) {
    let s = setup();
    let what = || {
        format!(
            "{} {} -> {} {:?}",
            String::from_utf8_lossy(method),
            String::from_utf8_lossy(path),
            r.status,
            String::from_utf8_lossy(&r.body[..r.body.len().min(400)])
        )
    };
    assert!((100..600).contains(&r.status), "{}", what());
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    };
    let json_body = header("content-type") == Some(b"application/json");
    let stream = header("content-type").is_some_and(|v| v.starts_with(b"text/event-stream"));
    // The body ends, except an event stream, which only a watch with the token opens.
    if stream {
        assert!(
            r.status == 200 && with_token && path == b"/v1/watch",
            "{}",
            what()
        );
    } else {
        assert!(r.complete, "the body did not end: {}", what());
    }
    // JSON is JSON; an error in JSON says what and which kind.
    let parsed: Option<serde_json::Value> = json_body
        .then(|| serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", what())));
    if let Some(v) = &parsed {
        if let Some(c) = v["cursorKey"].as_str() {
            *CURSOR.lock().unwrap() = c.to_string();
        }
        if r.status >= 400 {
            assert!(
                v["error"].is_string() && v["kind"].is_string(),
                "{}",
                what()
            );
        }
    }
    // Server errors: only the quota's 507.
    if r.status >= 500 {
        let quota = r.status == 507
            && parsed
                .as_ref()
                .is_some_and(|v| v["kind"] == "quota exceeded");
        assert!(quota, "a server error: {}", what());
    }
    // Nothing of client `other`, nothing outside the web directory (unless the
    // request itself held it).
    for secret in &s.secrets {
        if holds_secret(request, secret) {
            continue;
        }
        assert!(
            !holds_secret(&r.body, secret),
            "a secret in the body: {}",
            what()
        );
        for (n, v) in &r.headers {
            assert!(
                !holds_secret(v, secret),
                "a secret in header {n}: {}",
                what()
            );
        }
    }
    // No API success without the token (a CORS preflight answers for any path).
    if !with_token && (200..300).contains(&r.status) && method != b"OPTIONS" {
        assert!(
            !path.starts_with(b"/v1/"),
            "2xx without the token: {}",
            what()
        );
    }
    // CORS allows the configured origin only.
    if let Some(o) = header("access-control-allow-origin") {
        assert_eq!(o, ORIGIN.as_bytes(), "{}", what());
    }
}

pub fn check(data: &[u8]) {
    let s = setup();
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let Some(request_line) = lines.next() else {
        return;
    };
    let mut parts = request_line.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let uri = expand(parts.next().unwrap_or(b"/"), &s.token);
    let mut headers = Vec::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = &line[colon + 1..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        headers.push((&line[..colon], expand(value, &s.token)));
    }
    let with_token = contains(data, b"$TOKEN");
    let headers: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    let body = expand(body, &s.token);
    if let Some(r) = s.http.call(method, &uri, &headers, &body) {
        let mut request = [method, &uri[..], &body[..]].concat();
        for (n, v) in &headers {
            request.extend_from_slice(n);
            request.extend_from_slice(v);
        }
        check_response(&r, &request, method, path_of(&uri), with_token);
    }
}
