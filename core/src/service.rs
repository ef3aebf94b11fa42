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

use crate::bucket::Bucket;
use crate::error::{Error, Result};
use crate::expiry::{ttl_from_millis, Ttl};
use crate::store::Store;

/// The state service: per-client buckets over one store.
#[derive(Debug, Clone)]
pub struct StateService {
    store: Store,
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
        StateService { store }
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
                match a.ttl_ms {
                    Some(ms) => bucket.set_with_ttl(&a.key, &a.value, ttl_from_millis(ms)?)?,
                    None => bucket.set(&a.key, &a.value)?,
                }
                Ok("{}".to_string())
            }
            "delete" => {
                let a: KeyArgs = parse(method, json_args)?;
                let found = bucket.delete(&a.key)?;
                reply(&FoundResp { key: a.key, found })
            }
            "getMultiple" => {
                let a: GetMultipleArgs = parse(method, json_args)?;
                let kv = bucket.get_multiple(&a.keys)?;
                reply(&KvMsg { kv })
            }
            "setMultiple" => {
                let a: KvMsg = parse(method, json_args)?;
                bucket.set_multiple(&a.kv)?;
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
                    Ttl::Expires(d) => (true, Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
                };
                reply(&TtlResp { key: a.key, found, ttl_ms })
            }
            other => Err(Error::invalid(format!(
                "unknown method {other:?} (expected get, set, delete, getMultiple, setMultiple, expire, persist or ttl)"
            ))),
        }
    }
}

fn parse<T: DeserializeOwned>(method: &str, json: &str) -> Result<T> {
    serde_json::from_str(json)
        .map_err(|e| Error::invalid(format!("malformed arguments for {method:?}: {e}")))
}

fn reply<T: Serialize>(resp: &T) -> Result<String> {
    serde_json::to_string(resp).map_err(|e| Error::Internal(format!("cannot encode a reply: {e}")))
}
