//! Go's `[]byte` in JSON: the one codec for values in the original state service's
//! messages (the `state-service` crate) and in its store files (import, export).
//!
//! Go's `encoding/json` writes a `[]byte` as a standard base64 string with padding,
//! and decodes JSON `null` into a nil (empty) `[]byte`; both directions here do the
//! same, so a file or message the original wrote always reads back.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Serialize, Serializer};

/// A value encoded as Go encodes a `[]byte`: standard base64 with padding.
pub fn encode(value: &[u8]) -> String {
    BASE64.encode(value)
}

/// Decodes a base64 string as Go decodes a `[]byte`.
///
/// # Errors
/// The string is not standard base64 with padding (the message says why).
pub fn decode(s: &str) -> Result<Vec<u8>, String> {
    BASE64
        .decode(s)
        .map_err(|e| format!("value is not base64: {e}"))
}

/// A `[]byte` value in JSON: a base64 string, or `null` for an empty one (Go's nil
/// slice). Serializes as a base64 string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoBytes(pub Vec<u8>);

impl Serialize for GoBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(&self.0))
    }
}

impl<'de> serde::Deserialize<'de> for GoBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GoBytes, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GoBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string or null")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<GoBytes, E> {
                decode(s).map(GoBytes).map_err(E::custom)
            }
            fn visit_unit<E: de::Error>(self) -> Result<GoBytes, E> {
                Ok(GoBytes(Vec::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<GoBytes, E> {
                Ok(GoBytes(Vec::new()))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<GoBytes, D::Error> {
                d.deserialize_any(V)
            }
        }
        // Not `deserialize_option`: serde reads a missing field as `None` through it,
        // and a missing value is an error, not an empty one.
        d.deserialize_any(V)
    }
}

/// A Go `map[string][]byte` in JSON, for `#[serde(with = "go_bytes::map")]`: a bad
/// value's error names its key.
pub mod map {
    use super::*;

    /// Writes every value as base64.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(
        m: &BTreeMap<String, Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k, encode(v))))
    }

    /// Reads base64 values (`null` is empty).
    ///
    /// # Errors
    /// Not an object; a value that is neither base64 nor null (naming its key).
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BTreeMap<String, Vec<u8>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of key: base64-value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = m.next_key::<String>()? {
                    let value: Option<String> = m.next_value()?;
                    let value = match value {
                        None => Vec::new(),
                        Some(s) => decode(&s)
                            .map_err(|e| de::Error::custom(format!("value of key {key:?}: {e}")))?,
                    };
                    out.insert(key, value);
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// An optional `[]byte` for `#[serde(with = "go_bytes::option")]`: `None` is
/// `null`, `Some` a base64 string.
pub mod option {
    use super::*;

    /// Writes `null` or a base64 string.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&encode(v)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_null_is_empty_as_in_go() {
        let v: GoBytes = serde_json::from_str("\"dmFsdWU=\"").unwrap();
        assert_eq!(v.0, b"value");
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"dmFsdWU=\"");
        let v: GoBytes = serde_json::from_str("null").unwrap();
        assert!(v.0.is_empty());
        let e = serde_json::from_str::<GoBytes>("\"***\"").unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
        assert!(serde_json::from_str::<GoBytes>("12").is_err());
        // null is an empty value; a missing one is an error.
        #[derive(serde::Deserialize)]
        struct V {
            #[allow(dead_code)]
            value: GoBytes,
        }
        assert!(serde_json::from_str::<V>(r#"{"value":null}"#).is_ok());
        let e = serde_json::from_str::<V>("{}").err().unwrap();
        assert!(e.to_string().contains("missing field `value`"), "{e}");
    }

    #[test]
    fn maps_accept_null_and_name_a_bad_key() {
        #[derive(serde::Deserialize)]
        struct M {
            #[serde(with = "map")]
            kv: BTreeMap<String, Vec<u8>>,
        }
        let m: M = serde_json::from_str(r#"{"kv":{"a":"MQ==","n":null}}"#).unwrap();
        assert_eq!(m.kv["a"], b"1");
        assert!(m.kv["n"].is_empty());
        let e = serde_json::from_str::<M>(r#"{"kv":{"bad":"!!"}}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("value of key \"bad\""), "{e}");
    }
}
