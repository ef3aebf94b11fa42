//! [`StateService`]: the HiveOT state service's per-client API and its JSON RPC.
//!
//! Each client reaches exactly one bucket, named by its authenticated client id; no
//! method takes a bucket name, so a client can never address another client's state.
//! [`StateService::handle`] speaks the original `stateapi` messages, with values
//! base64-encoded as Go encodes `[]byte` in JSON (standard alphabet, padded).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::sync::Arc;
use std::time::Duration;

use crate::bucket::Bucket;
use crate::clients::{Clients, Quota};
use crate::cursor::Cursor;
use crate::error::{Error, Result};
use crate::expiry::{ttl_from_millis, Ttl};
use crate::store::Store;
use crate::txn::{Expiry, Txn, Usage};

/// The state service: per-client buckets over one store, with per-client quotas
/// and server-side cursors. Cheap to clone; clones share quotas and cursors.
#[derive(Debug, Clone)]
pub struct StateService {
    store: Store,
    clients: Arc<Clients>,
}

/// Base64 as Go's `encoding/json` writes a `[]byte`.
mod go_bytes {
    use super::*;
    use serde::Deserializer;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<u8>, D::Error> {
        // Go decodes JSON null into a nil []byte.
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(Vec::new()),
            Some(s) => B64.decode(s).map_err(serde::de::Error::custom),
        }
    }
}

mod go_bytes_opt {
    use super::*;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(
        v: &Option<Vec<u8>>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&B64.encode(v)),
            None => s.serialize_none(),
        }
    }
}

mod go_bytes_map {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<String, Vec<u8>>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k, B64.encode(v))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<BTreeMap<String, Vec<u8>>, D::Error> {
        let raw: BTreeMap<String, Option<String>> = BTreeMap::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                let bytes = match v {
                    None => Ok(Vec::new()),
                    Some(s) => B64
                        .decode(s)
                        .map_err(|e| serde::de::Error::custom(format!("value of key {k:?}: {e}"))),
                };
                bytes.map(|b| (k, b))
            })
            .collect()
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
    #[serde(with = "go_bytes_opt")]
    value: Option<Vec<u8>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetArgs {
    key: String,
    #[serde(with = "go_bytes")]
    value: Vec<u8>,
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
    #[serde(with = "go_bytes_map")]
    kv: BTreeMap<String, Vec<u8>>,
}

impl StateService {
    /// A service over `store`.
    pub fn new(store: Store) -> StateService {
        StateService {
            store,
            clients: Arc::new(Clients::new()),
        }
    }

    /// Sets `client`'s quota; writes through the service that would take the
    /// client's bucket over it fail with *quota exceeded* and write nothing.
    /// Deletes are always allowed.
    pub fn set_quota(&self, client_id: &str, quota: Quota) {
        self.clients.set_quota(client_id, quota);
    }

    /// `client`'s quota (unlimited unless set).
    pub fn quota(&self, client_id: &str) -> Quota {
        self.clients.quota(client_id)
    }

    /// Sets how long an unused server-side cursor lives (default
    /// [`crate::DEFAULT_CURSOR_LIFESPAN`]) and how many one client may hold (default
    /// [`crate::DEFAULT_MAX_CURSORS`]; at the limit, a new cursor evicts the client's
    /// least recently used one).
    pub fn set_cursor_limits(&self, lifespan: Duration, max_per_client: usize) {
        *self.clients.cursor_lifespan.lock() = lifespan;
        *self.clients.max_cursors.lock() = max_per_client.max(1);
    }

    /// The live records of `client`'s bucket and their key plus value bytes, counted
    /// now (O(records)) without the store's write lock: writers are not held up,
    /// and a count taken while the bucket changes is what a scan saw (each record
    /// counted at most once).
    ///
    /// # Errors
    /// *invalid argument* for a bad client id; store errors.
    pub fn usage(&self, client_id: &str) -> Result<Usage> {
        let mut u = Usage::default();
        self.client(client_id)?.scan(.., false, |k, v| {
            u.records += 1;
            u.bytes += (k.len() + v.len()) as u64;
            std::ops::ControlFlow::Continue(())
        })?;
        Ok(u)
    }

    /// Runs `f` as one atomic transaction on `client`'s bucket (see
    /// [`Bucket::transaction`]), refusing with *quota exceeded* (and writing nothing)
    /// if its changes would take the client over its quota.
    ///
    /// # Errors
    /// Whatever `f` returns; *quota exceeded*; store errors.
    pub fn transaction<T>(
        &self,
        client_id: &str,
        f: impl FnMut(&mut Txn<'_>) -> Result<T>,
    ) -> Result<T> {
        let bucket = self.client(client_id)?;
        self.transaction_in(&bucket, f)
    }

    /// [`StateService::transaction`] on a client's bucket already at hand (from
    /// [`StateService::client`]): the client is the bucket's name.
    ///
    /// # Errors
    /// As [`StateService::transaction`].
    pub fn transaction_in<T>(
        &self,
        bucket: &Bucket,
        f: impl FnMut(&mut Txn<'_>) -> Result<T>,
    ) -> Result<T> {
        let client_id = bucket.name();
        bucket.transaction_checked(f, |tx, d| self.clients.check(client_id, tx, d))
    }

    /// Removes every record of `client`'s bucket. Returns how many live records it held.
    ///
    /// # Errors
    /// Store errors.
    pub fn clear(&self, client_id: &str) -> Result<u64> {
        let n = self.transaction(client_id, |tx| tx.clear())?;
        self.clients.forget_usage(client_id);
        Ok(n)
    }

    /// Whether `client` writes are quota-checked (a write path may skip the
    /// transaction when not).
    pub fn has_quota(&self, client_id: &str) -> bool {
        !self.clients.quota(client_id).is_unlimited()
    }

    /// Sets `key` for `client` (optionally with a TTL), through the quota check when
    /// the client has a quota.
    ///
    /// # Errors
    /// As [`Bucket::set`]; *quota exceeded*.
    pub fn set(
        &self,
        client_id: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        if !self.has_quota(client_id) {
            let b = self.client(client_id)?;
            return match ttl {
                Some(ttl) => b.set_with_ttl(key, value, ttl),
                None => b.set(key, value),
            };
        }
        self.transaction(client_id, |tx| {
            let expiry = match ttl {
                Some(ttl) => Expiry::At(crate::expiry::deadline(tx.now_ms(), ttl)?),
                None => Expiry::Never,
            };
            tx.put(key, value.to_vec(), expiry)
        })
    }

    /// Sets several keys for `client` in one atomic batch, through the quota check
    /// when the client has a quota.
    ///
    /// # Errors
    /// As [`Bucket::set_multiple`]; *quota exceeded*.
    pub fn set_multiple(&self, client_id: &str, kv: &BTreeMap<String, Vec<u8>>) -> Result<()> {
        if !self.has_quota(client_id) {
            return self.client(client_id)?.set_multiple(kv);
        }
        self.transaction(client_id, |tx| {
            for (k, v) in kv {
                tx.put(k, v.clone(), Expiry::Never)?;
            }
            Ok(())
        })
    }

    /// A new server-side cursor over `client`'s bucket, positioned before the first
    /// key. Returns its id. The client's least recently used cursor is dropped if it
    /// already holds the maximum.
    ///
    /// # Errors
    /// *invalid argument* for a bad client id; *closed*.
    pub fn open_cursor(&self, client_id: &str) -> Result<u64> {
        let cursor = self.client(client_id)?.cursor()?;
        Ok(self.clients.add_cursor(client_id, cursor, self.now_ms()))
    }

    /// Runs `f` on `client`'s cursor `id`, which stays valid afterwards (its idle
    /// time starts again).
    ///
    /// # Errors
    /// *invalid argument* if there is no such cursor of this client (released,
    /// expired, evicted, or another client's: the message does not say which);
    /// whatever `f` returns.
    pub fn with_cursor<T>(
        &self,
        client_id: &str,
        id: u64,
        f: impl FnOnce(&mut Cursor) -> Result<T>,
    ) -> Result<T> {
        let mut cursor = self.clients.take_cursor(client_id, id, self.now_ms())?;
        let out = f(&mut cursor);
        self.clients.put_back(client_id, id, cursor, self.now_ms());
        out
    }

    /// Drops `client`'s cursor `id`. Returns whether it existed.
    pub fn release_cursor(&self, client_id: &str, id: u64) -> bool {
        self.clients.release_cursor(client_id, id)
    }

    /// How many server-side cursors `client` holds.
    pub fn cursor_count(&self, client_id: &str) -> usize {
        self.clients.cursor_count(client_id)
    }

    fn now_ms(&self) -> u64 {
        self.store.clock_now_ms()
    }

    /// The store behind the service.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The bucket of client `client_id`: the only bucket that client can reach.
    ///
    /// # Errors
    /// *invalid argument* if the id is not a valid bucket name (empty, over 255 bytes,
    /// control characters).
    pub fn client(&self, client_id: &str) -> Result<Bucket> {
        self.store.bucket(client_id)
    }

    /// Handles one RPC message of the original state service for `client_id` and
    /// returns the JSON response.
    ///
    /// | method        | arguments              | response                          |
    /// |---------------|------------------------|-----------------------------------|
    /// | `get`         | `{"key"}`              | `{"key","found","value"}` (value null if not found) |
    /// | `set`         | `{"key","value"}`      | `{}`                              |
    /// | `delete`      | `{"key"}`              | `{"key","found"}` (whether it existed) |
    /// | `getMultiple` | `{"keys":[...]}`       | `{"kv":{key: value}}` (missing keys absent) |
    /// | `setMultiple` | `{"kv":{key: value}}`  | `{}` (one atomic batch)           |
    /// | `expire`      | `{"key","ttlMs"}`      | `{"key","found"}` (false: key missing) |
    /// | `persist`     | `{"key"}`              | `{"key","found"}` (false: no TTL was set) |
    /// | `ttl`         | `{"key"}`              | `{"key","found","ttlMs"}` (ttlMs null: no expiry) |
    /// | `getCursor`   | `{}`                   | `{"cursorKey"}` (see [`StateService::open_cursor`]) |
    /// | `cursorFirst`, `cursorLast`, `cursorNext`, `cursorPrev` | `{"cursorKey"}` | `{"key","value","valid"}` (valid false past either end) |
    /// | `cursorSeek`  | `{"cursorKey","key"}`  | as above, at the first key >= `key` |
    /// | `cursorNextN`, `cursorPrevN` | `{"cursorKey","limit"}` | `{"values":[{"key","value"}],"itemsRemaining"}` |
    /// | `cursorRelease` | `{"cursorKey"}`      | `{"found"}` |
    ///
    /// Writes go through the client's quota (see [`StateService::set_quota`]).
    ///
    /// Values are base64 strings (Go's `[]byte` JSON encoding). `set` takes an
    /// optional `"ttlMs"` (milliseconds, > 0); without it, `set` clears any TTL.
    ///
    /// # Errors
    /// *invalid argument* for an unknown method, malformed JSON or wrong fields (the
    /// message says which), or a bad key or value; store errors as from [`Bucket`].
    pub fn handle(&self, client_id: &str, method: &str, json_args: &str) -> Result<String> {
        let bucket = self.client(client_id)?;
        match method {
            "get" => {
                let a: KeyArgs = parse(method, json_args)?;
                let value = bucket.get(&a.key)?;
                reply(&GetResp {
                    found: value.is_some(),
                    key: a.key,
                    value,
                })
            }
            "set" => {
                let a: SetArgs = parse(method, json_args)?;
                let ttl = a.ttl_ms.map(ttl_from_millis).transpose()?;
                self.set(client_id, &a.key, &a.value, ttl)?;
                Ok("{}".to_string())
            }
            "delete" => {
                let a: KeyArgs = parse(method, json_args)?;
                // Through the quota-checked path when the client has a quota, so
                // its usage figure stays exact without a recount.
                let found = if self.has_quota(client_id) {
                    self.transaction_in(&bucket, |tx| tx.delete(&a.key))?
                } else {
                    bucket.delete(&a.key)?
                };
                reply(&FoundResp { key: a.key, found })
            }
            "getMultiple" => {
                let a: GetMultipleArgs = parse(method, json_args)?;
                let kv = bucket.get_multiple(&a.keys)?;
                reply(&KvMsg { kv })
            }
            "setMultiple" => {
                let a: KvMsg = parse(method, json_args)?;
                self.set_multiple(client_id, &a.kv)?;
                Ok("{}".to_string())
            }
            "expire" => {
                let a: ExpireArgs = parse(method, json_args)?;
                let found = bucket.expire(&a.key, ttl_from_millis(a.ttl_ms)?)?;
                reply(&FoundResp { key: a.key, found })
            }
            "persist" => {
                let a: KeyArgs = parse(method, json_args)?;
                let found = bucket.persist(&a.key)?;
                reply(&FoundResp { key: a.key, found })
            }
            "ttl" => {
                let a: KeyArgs = parse(method, json_args)?;
                let (found, ttl_ms) = match bucket.ttl(&a.key)? {
                    Ttl::Missing => (false, None),
                    Ttl::NoExpiry => (true, None),
                    Ttl::Expires(d) => {
                        (true, Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
                    }
                };
                reply(&TtlResp {
                    key: a.key,
                    found,
                    ttl_ms,
                })
            }
            "getCursor" => {
                let _: Empty = parse(
                    method,
                    if json_args.trim().is_empty() {
                        "{}"
                    } else {
                        json_args
                    },
                )?;
                let id = self.open_cursor(client_id)?;
                reply(&CursorKeyMsg {
                    cursor_key: id.to_string(),
                })
            }
            "cursorFirst" | "cursorLast" | "cursorNext" | "cursorPrev" => {
                let a: CursorKeyMsg = parse(method, json_args)?;
                let id = cursor_id(&a.cursor_key)?;
                let entry = self.with_cursor(client_id, id, |c| match method {
                    "cursorFirst" => c.first(),
                    "cursorLast" => c.last(),
                    "cursorNext" => c.next(),
                    _ => c.prev(),
                })?;
                reply(&CursorEntryResp::from(entry))
            }
            "cursorSeek" => {
                let a: CursorSeekArgs = parse(method, json_args)?;
                let id = cursor_id(&a.cursor_key)?;
                let entry = self.with_cursor(client_id, id, |c| c.seek(&a.key))?;
                reply(&CursorEntryResp::from(entry))
            }
            "cursorNextN" | "cursorPrevN" => {
                let a: CursorNArgs = parse(method, json_args)?;
                let id = cursor_id(&a.cursor_key)?;
                let limit = usize::try_from(a.limit)
                    .ok()
                    .filter(|n| (1..=MAX_CURSOR_N).contains(n))
                    .ok_or_else(|| {
                        Error::invalid(format!("limit must be 1..={MAX_CURSOR_N}, got {}", a.limit))
                    })?;
                let forward = method == "cursorNextN";
                let (entries, remaining) = self.with_cursor(client_id, id, |c| {
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
                        .map(|(key, value)| KeyValue { key, value })
                        .collect(),
                    items_remaining: remaining,
                })
            }
            "cursorRelease" => {
                let a: CursorKeyMsg = parse(method, json_args)?;
                let id = cursor_id(&a.cursor_key)?;
                let found = self.release_cursor(client_id, id);
                reply(&ReleasedResp { found })
            }
            other => Err(Error::invalid(format!(
                "unknown method {other:?} (expected get, set, delete, getMultiple, \
                 setMultiple, expire, persist, ttl, getCursor, cursorFirst, cursorLast, \
                 cursorNext, cursorPrev, cursorSeek, cursorNextN, cursorPrevN or cursorRelease)"
            ))),
        }
    }
}

/// Every method [`StateService::handle`] answers, in the order of its table.
pub const SERVICE_METHODS: &[&str] = &[
    "get",
    "set",
    "delete",
    "getMultiple",
    "setMultiple",
    "ttl",
    "expire",
    "persist",
    "getCursor",
    "cursorFirst",
    "cursorLast",
    "cursorNext",
    "cursorPrev",
    "cursorSeek",
    "cursorNextN",
    "cursorPrevN",
    "cursorRelease",
];

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
    #[serde(with = "go_bytes_opt")]
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
    #[serde(serialize_with = "go_bytes_one")]
    value: Vec<u8>,
}

fn go_bytes_one<S: serde::Serializer>(v: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&B64.encode(v))
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

fn cursor_id(key: &str) -> Result<u64> {
    key.parse::<u64>()
        .map_err(|_| Error::invalid(format!("cursorKey {key:?} is not a cursor key")))
}

fn parse<T: DeserializeOwned>(method: &str, json: &str) -> Result<T> {
    serde_json::from_str(json)
        .map_err(|e| Error::invalid(format!("malformed arguments for {method:?}: {e}")))
}

fn reply<T: Serialize>(resp: &T) -> Result<String> {
    serde_json::to_string(resp).map_err(|e| Error::Internal(format!("cannot encode a reply: {e}")))
}
