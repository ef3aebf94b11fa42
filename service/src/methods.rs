//! The original state service's JSON messages: [`METHODS`], the one table of
//! the methods (name, arguments, response and handler) that
//! [`StateService::handle`] dispatches through, `state serve`'s HTTP API routes by,
//! and docs/service.md's table is checked against.
//!
//! Values are base64 strings, as Go's `encoding/json` writes a `[]byte`
//! ([`state_core::go_bytes`], the codec the store's import shares; `null` is an
//! empty value, as in Go).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use state_core::go_bytes::{self, GoBytes};
use state_core::{ttl_from_millis, Bucket, Ttl};

use crate::error::{Error, Result};
use crate::service::StateService;

/// One method: its name, its arguments and response as docs/service.md shows
/// them, and its handler.
#[derive(Clone, Copy)]
pub struct Method {
    /// The name (`POST /v1/{name}`, `handle(client, name, args)`).
    pub name: &'static str,
    /// The JSON arguments, in docs/service.md's notation.
    pub args: &'static str,
    /// The JSON response, in docs/service.md's notation.
    pub response: &'static str,
    /// Whether its work may grow with the bucket or with its arguments (many
    /// keys, a cursor's many steps, a cursor's creation) rather than being one
    /// point read or write: a front end runs such a method where it may block
    /// (for `state serve`'s HTTP, off its event loop's worker thread).
    pub long: bool,
    run: fn(&StateService, &Bucket, &str, &str) -> Result<String>,
}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Method").field("name", &self.name).finish()
    }
}

const fn method(
    name: &'static str,
    args: &'static str,
    response: &'static str,
    run: fn(&StateService, &Bucket, &str, &str) -> Result<String>,
) -> Method {
    Method {
        name,
        args,
        response,
        long: false,
        run,
    }
}

impl Method {
    /// The method, marked [`Method::long`].
    const fn long(mut self) -> Method {
        self.long = true;
        self
    }
}

const CURSOR_STEP: &str =
    "`{\"key\",\"value\",\"valid\"}` (valid false, key and value null, past either end)";
const CURSOR_N_ARGS: &str = "`{\"cursorKey\",\"limit\"}` (1..=10000)";
const CURSOR_N_RESP: &str = "`{\"values\":[{\"key\",\"value\"}],\"itemsRemaining\"}`";

/// Every method, in the order of docs/service.md's table.
pub static METHODS: &[Method] = &[
    method(
        "get",
        "`{\"key\"}`",
        "`{\"key\",\"found\",\"value\"}` (value null if not found)",
        get,
    ),
    method(
        "set",
        "`{\"key\",\"value\"[,\"ttlMs\"]}`",
        "`{}` (without ttlMs the key has no expiry)",
        set,
    ),
    method(
        "delete",
        "`{\"key\"}`",
        "`{\"key\",\"found\"}` (whether it existed)",
        delete,
    ),
    method(
        "getMultiple",
        "`{\"keys\":[...]}`",
        "`{\"kv\":{key: value}}` (missing keys absent)",
        get_multiple,
    )
    .long(),
    method(
        "setMultiple",
        "`{\"kv\":{key: value}}`",
        "`{}` (one atomic batch)",
        set_multiple,
    )
    .long(),
    method(
        "ttl",
        "`{\"key\"}`",
        "`{\"key\",\"found\",\"ttlMs\"}` (ttlMs null: no expiry)",
        ttl,
    ),
    method(
        "expire",
        "`{\"key\",\"ttlMs\"}`",
        "`{\"key\",\"found\"}`",
        expire,
    ),
    method(
        "persist",
        "`{\"key\"}`",
        "`{\"key\",\"found\"}` (false: it had no TTL)",
        persist,
    ),
    method("getCursor", "`{}`", "`{\"cursorKey\"}`", get_cursor).long(),
    method(
        "cursorFirst",
        "`{\"cursorKey\"}`",
        CURSOR_STEP,
        cursor_first,
    ),
    method("cursorLast", "`{\"cursorKey\"}`", CURSOR_STEP, cursor_last),
    method("cursorNext", "`{\"cursorKey\"}`", CURSOR_STEP, cursor_next),
    method("cursorPrev", "`{\"cursorKey\"}`", CURSOR_STEP, cursor_prev),
    method(
        "cursorSeek",
        "`{\"cursorKey\",\"key\"}`",
        "as above: the first key >= `key`",
        cursor_seek,
    ),
    method("cursorNextN", CURSOR_N_ARGS, CURSOR_N_RESP, cursor_next_n).long(),
    method("cursorPrevN", CURSOR_N_ARGS, CURSOR_N_RESP, cursor_prev_n).long(),
    method(
        "cursorRelease",
        "`{\"cursorKey\"}`",
        "`{\"found\"}`",
        cursor_release,
    ),
];

/// The method called `name`.
pub fn method_named(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// [`METHODS`] as docs/service.md's Markdown table: methods in a row when their
/// arguments and response are the same.
pub fn markdown_table() -> String {
    let mut out = String::from("| method | body | response |\n|---|---|---|\n");
    let mut i = 0;
    while i < METHODS.len() {
        let m = &METHODS[i];
        let mut names = vec![format!("`{}`", m.name)];
        let mut j = i + 1;
        while j < METHODS.len() && METHODS[j].args == m.args && METHODS[j].response == m.response {
            names.push(format!("`{}`", METHODS[j].name));
            j += 1;
        }
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            names.join(", "),
            m.args,
            m.response
        ));
        i = j;
    }
    out
}

impl StateService {
    /// Handles one message of the original state service (a method of
    /// [`METHODS`], docs/service.md) for `client_id` and returns the JSON
    /// response. Writes go through the client's quota (see
    /// [`StateService::with_quotas`]).
    ///
    /// # Errors
    /// *invalid argument* for an unknown method, malformed JSON or wrong fields (the
    /// message says which), or a bad key or value; *quota exceeded*; store errors
    /// as from [`Bucket`].
    pub fn handle(&self, client_id: &str, method: &str, json_args: &str) -> Result<String> {
        let bucket = self.client(client_id)?;
        match method_named(method) {
            Some(m) => (m.run)(self, &bucket, method, json_args),
            None => {
                let names: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
                Err(invalid(format!(
                    "unknown method {method:?} (expected one of {})",
                    names.join(", ")
                )))
            }
        }
    }
}

/// `get` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyArgs {
    key: String,
}

/// `get` response: `{key, found, value}`; `value` is null when not found.
#[derive(Debug, Serialize)]
struct GetResp {
    key: String,
    found: bool,
    #[serde(with = "go_bytes::option")]
    value: Option<Vec<u8>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetArgs {
    key: String,
    value: GoBytes,
    /// Optional time to live in milliseconds (> 0).
    #[serde(default, rename = "ttlMs")]
    ttl_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpireArgs {
    key: String,
    #[serde(rename = "ttlMs")]
    ttl_ms: i64,
}

/// `ttl` response: `found` false for a missing key; `ttlMs` null for no expiry.
#[derive(Debug, Serialize)]
struct TtlResp {
    key: String,
    found: bool,
    #[serde(rename = "ttlMs")]
    ttl_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
struct FoundResp {
    key: String,
    found: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetMultipleArgs {
    keys: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KvMsg {
    #[serde(with = "go_bytes::map")]
    kv: BTreeMap<String, Vec<u8>>,
}

fn get(_: &StateService, bucket: &Bucket, method: &str, json: &str) -> Result<String> {
    let a: KeyArgs = parse(method, json)?;
    let value = bucket.get(&a.key)?;
    reply(&GetResp {
        found: value.is_some(),
        key: a.key,
        value,
    })
}

fn set(svc: &StateService, bucket: &Bucket, method: &str, json: &str) -> Result<String> {
    let a: SetArgs = parse(method, json)?;
    let ttl = a.ttl_ms.map(ttl_from_millis).transpose()?;
    svc.set(bucket.name(), &a.key, &a.value.0, ttl)?;
    Ok("{}".to_string())
}

fn delete(svc: &StateService, bucket: &Bucket, method: &str, json: &str) -> Result<String> {
    let a: KeyArgs = parse(method, json)?;
    // Through the quota-checked path when the client has a quota, so its usage
    // figure stays exact without a recount.
    let found = if svc.has_quota(bucket.name()) {
        svc.transaction_in(bucket, |tx| tx.delete(&a.key))?
    } else {
        bucket.delete(&a.key)?
    };
    reply(&FoundResp { key: a.key, found })
}

fn get_multiple(_: &StateService, bucket: &Bucket, method: &str, json: &str) -> Result<String> {
    let a: GetMultipleArgs = parse(method, json)?;
    let kv = bucket.get_multiple(&a.keys)?;
    reply(&KvMsg { kv })
}

fn set_multiple(svc: &StateService, bucket: &Bucket, method: &str, json: &str) -> Result<String> {
    let a: KvMsg = parse(method, json)?;
    svc.set_multiple(bucket.name(), &a.kv)?;
    Ok("{}".to_string())
}

fn expire(_: &StateService, bucket: &Bucket, method: &str, json: &str) -> Result<String> {
    let a: ExpireArgs = parse(method, json)?;
    let found = bucket.expire(&a.key, ttl_from_millis(a.ttl_ms)?)?;
    reply(&FoundResp { key: a.key, found })
}

fn persist(_: &StateService, bucket: &Bucket, method: &str, json: &str) -> Result<String> {
    let a: KeyArgs = parse(method, json)?;
    let found = bucket.persist(&a.key)?;
    reply(&FoundResp { key: a.key, found })
}

fn ttl(_: &StateService, bucket: &Bucket, method: &str, json: &str) -> Result<String> {
    let a: KeyArgs = parse(method, json)?;
    let (found, ttl_ms) = match bucket.ttl(&a.key)? {
        Ttl::Missing => (false, None),
        Ttl::NoExpiry => (true, None),
        Ttl::Expires(d) => (true, Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
    };
    reply(&TtlResp {
        key: a.key,
        found,
        ttl_ms,
    })
}

fn get_cursor(svc: &StateService, bucket: &Bucket, method: &str, json: &str) -> Result<String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let _: Empty = parse(method, json)?;
    let id = svc.open_cursor(bucket.name())?;
    reply(&CursorKeyMsg {
        cursor_key: id.to_string(),
    })
}

/// One step of a cursor: the entry it lands on, if any.
type CursorStep = fn(&mut state_core::Cursor) -> state_core::Result<Option<(String, Vec<u8>)>>;

/// `cursorFirst` and friends: one step of the cursor named in the arguments.
fn cursor_step(
    svc: &StateService,
    bucket: &Bucket,
    method: &str,
    json: &str,
    step: CursorStep,
) -> Result<String> {
    let a: CursorKeyMsg = parse(method, json)?;
    let id = cursor_id(&a.cursor_key)?;
    let entry = svc.with_cursor(bucket.name(), id, step)?;
    reply(&CursorEntryResp::from(entry))
}

fn cursor_first(svc: &StateService, b: &Bucket, method: &str, json: &str) -> Result<String> {
    cursor_step(svc, b, method, json, |c| c.first())
}

fn cursor_last(svc: &StateService, b: &Bucket, method: &str, json: &str) -> Result<String> {
    cursor_step(svc, b, method, json, |c| c.last())
}

fn cursor_next(svc: &StateService, b: &Bucket, method: &str, json: &str) -> Result<String> {
    cursor_step(svc, b, method, json, |c| c.next())
}

fn cursor_prev(svc: &StateService, b: &Bucket, method: &str, json: &str) -> Result<String> {
    cursor_step(svc, b, method, json, |c| c.prev())
}

fn cursor_seek(svc: &StateService, bucket: &Bucket, method: &str, json: &str) -> Result<String> {
    let a: CursorSeekArgs = parse(method, json)?;
    let id = cursor_id(&a.cursor_key)?;
    let entry = svc.with_cursor(bucket.name(), id, |c| c.seek(&a.key))?;
    reply(&CursorEntryResp::from(entry))
}

fn cursor_next_n(svc: &StateService, b: &Bucket, method: &str, json: &str) -> Result<String> {
    cursor_n(svc, b, method, json, true)
}

fn cursor_prev_n(svc: &StateService, b: &Bucket, method: &str, json: &str) -> Result<String> {
    cursor_n(svc, b, method, json, false)
}

fn cursor_n(
    svc: &StateService,
    bucket: &Bucket,
    method: &str,
    json: &str,
    forward: bool,
) -> Result<String> {
    let a: CursorNArgs = parse(method, json)?;
    let id = cursor_id(&a.cursor_key)?;
    let limit = usize::try_from(a.limit)
        .ok()
        .filter(|n| (1..=MAX_CURSOR_N).contains(n))
        .ok_or_else(|| invalid(format!("limit must be 1..={MAX_CURSOR_N}, got {}", a.limit)))?;
    let (entries, remaining) = svc.with_cursor(bucket.name(), id, |c| {
        let entries = if forward {
            c.next_n(limit)?
        } else {
            c.prev_n(limit)?
        };
        // Whether another step would find an entry, without moving.
        let remaining = entries.len() == limit && {
            let probe = if forward { c.next()? } else { c.prev()? };
            if probe.is_some() {
                if forward {
                    c.prev()?;
                } else {
                    c.next()?;
                }
            }
            probe.is_some()
        };
        Ok((entries, remaining))
    })?;
    reply(&CursorNResp {
        values: entries
            .into_iter()
            .map(|(key, value)| KeyValue {
                key,
                value: GoBytes(value),
            })
            .collect(),
        items_remaining: remaining,
    })
}

fn cursor_release(svc: &StateService, bucket: &Bucket, method: &str, json: &str) -> Result<String> {
    let a: CursorKeyMsg = parse(method, json)?;
    let id = cursor_id(&a.cursor_key)?;
    let found = svc.release_cursor(bucket.name(), id);
    reply(&ReleasedResp { found })
}

/// Most entries one `cursorNextN` / `cursorPrevN` returns.
pub const MAX_CURSOR_N: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorKeyMsg {
    #[serde(rename = "cursorKey")]
    cursor_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorSeekArgs {
    #[serde(rename = "cursorKey")]
    cursor_key: String,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorNArgs {
    #[serde(rename = "cursorKey")]
    cursor_key: String,
    limit: i64,
}

/// A cursor step's result: `valid` false (key and value null) past either end.
#[derive(Debug, Serialize)]
struct CursorEntryResp {
    key: Option<String>,
    #[serde(with = "go_bytes::option")]
    value: Option<Vec<u8>>,
    valid: bool,
}

impl From<Option<(String, Vec<u8>)>> for CursorEntryResp {
    fn from(e: Option<(String, Vec<u8>)>) -> Self {
        match e {
            Some((k, v)) => CursorEntryResp {
                key: Some(k),
                value: Some(v),
                valid: true,
            },
            None => CursorEntryResp {
                key: None,
                value: None,
                valid: false,
            },
        }
    }
}

#[derive(Debug, Serialize)]
struct KeyValue {
    key: String,
    value: GoBytes,
}

#[derive(Debug, Serialize)]
struct CursorNResp {
    values: Vec<KeyValue>,
    #[serde(rename = "itemsRemaining")]
    items_remaining: bool,
}

#[derive(Debug, Serialize)]
struct ReleasedResp {
    found: bool,
}

fn invalid(msg: String) -> Error {
    Error::Store(state_core::Error::InvalidArgument(msg))
}

fn cursor_id(key: &str) -> Result<u64> {
    key.parse::<u64>()
        .map_err(|_| invalid(format!("cursorKey {key:?} is not a cursor key")))
}

fn parse<T: DeserializeOwned>(method: &str, json: &str) -> Result<T> {
    serde_json::from_str(json)
        .map_err(|e| invalid(format!("malformed arguments for {method:?}: {e}")))
}

fn reply<T: Serialize>(resp: &T) -> Result<String> {
    serde_json::to_string(resp).map_err(|e| {
        Error::Store(state_core::Error::Internal(format!(
            "cannot encode a reply: {e}"
        )))
    })
}
