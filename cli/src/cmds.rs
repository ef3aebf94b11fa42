//! The record-level commands: buckets, info, get, set, del, keys, ttl, expire,
//! persist, rm-bucket.

use std::io::Read;
use std::ops::Bound;
use std::path::Path;
use std::time::Duration;

use indicatif::HumanBytes;
use serde_json::json;
use state_core::{Bucket, Store, Ttl};

use crate::fail::{CmdResult, Failure};
use crate::output::{b64, human_key, human_value, Output};

/// `state buckets`.
pub fn buckets(store: &Store, out: &mut Output) -> CmdResult {
    let names = store.bucket_names()?;
    if out.json {
        return out.json_line(&names);
    }
    for name in &names {
        out.line(human_key(name))?;
    }
    Ok(())
}

/// `state info`.
pub fn info(store: &Store, out: &mut Output) -> CmdResult {
    let info = store.info()?;
    if out.json {
        return out.json_line(&json!({
            "path": info.path,
            "engine": info.engine.as_str(),
            "buckets": info.buckets,
            "records": info.records,
            "expiring": info.expiring,
            "disk_bytes": info.disk_bytes,
        }));
    }
    out.line(format!("path      {}", info.path.display()))?;
    out.line(format!("engine    {}", info.engine))?;
    out.line(format!("buckets   {}", info.buckets))?;
    out.line(format!("records   {}", info.records))?;
    out.line(format!("expiring  {}", info.expiring))?;
    out.line(format!(
        "disk      {} ({} bytes)",
        HumanBytes(info.disk_bytes),
        info.disk_bytes
    ))
}

fn key_not_found(bucket: &str, key: &str) -> Failure {
    Failure::not_found(format!("key {key:?} not found in bucket {bucket:?}"))
}

/// `state get`.
pub fn get(store: &Store, bucket: &str, key: &str, raw: bool, out: &mut Output) -> CmdResult {
    if raw && out.json {
        return Err(Failure::usage("--raw and --json cannot be combined"));
    }
    let value = store.bucket(bucket)?.get(key)?;
    if out.json {
        out.json_line(&json!({
            "bucket": bucket,
            "key": key,
            "found": value.is_some(),
            "value": value.as_deref().map(b64),
        }))?;
    }
    let Some(value) = value else {
        return Err(key_not_found(bucket, key));
    };
    if raw {
        out.bytes(&value)
    } else if !out.json {
        out.line(human_value(&value, true))
    } else {
        Ok(())
    }
}

/// Where `set` takes its value from.
pub enum ValueSource<'a> {
    /// The command line (`-` means standard input).
    Arg(&'a str),
    /// A file (`-` means standard input).
    File(&'a Path),
}

impl ValueSource<'_> {
    /// The value's bytes.
    pub fn read(&self) -> CmdResult<Vec<u8>> {
        match self {
            ValueSource::Arg("-") => read_stdin(),
            ValueSource::Arg(s) => Ok(s.as_bytes().to_vec()),
            ValueSource::File(p) if p.as_os_str() == "-" => read_stdin(),
            ValueSource::File(p) => std::fs::read(p).map_err(|e| Failure::input(p, e)),
        }
    }
}

fn read_stdin() -> CmdResult<Vec<u8>> {
    if let Some(given) = crate::remote::take_stdin() {
        return Ok(given);
    }
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut buf)
        .map_err(|e| Failure::input(Path::new("standard input"), e))?;
    Ok(buf)
}

/// `state set`.
pub fn set(
    store: &Store,
    bucket: &str,
    key: &str,
    value: &[u8],
    ttl: Option<Duration>,
    out: &mut Output,
) -> CmdResult {
    let b = store.bucket(bucket)?;
    match ttl {
        Some(ttl) => b.set_with_ttl(key, value, ttl)?,
        None => b.set(key, value)?,
    }
    if out.json {
        out.json_line(&json!({
            "bucket": bucket,
            "key": key,
            "bytes": value.len(),
            "ttl_ms": ttl.map(|t| t.as_millis() as u64),
        }))?;
    }
    Ok(())
}

/// `state del`.
pub fn del(store: &Store, bucket: &str, key: &str, out: &mut Output) -> CmdResult {
    let found = store.bucket(bucket)?.delete(key)?;
    if out.json {
        out.json_line(&json!({"bucket": bucket, "key": key, "found": found}))?;
    }
    if found {
        Ok(())
    } else {
        Err(key_not_found(bucket, key))
    }
}

/// The options of `state keys`.
pub struct KeysQuery<'a> {
    /// Only keys with this prefix.
    pub prefix: Option<&'a str>,
    /// Start here (inclusive), in the direction of travel.
    pub from: Option<&'a str>,
    /// At most this many.
    pub limit: Option<u64>,
    /// Descending.
    pub reverse: bool,
    /// Print values too.
    pub values: bool,
}

/// The entries a `keys` query selects, in its order.
pub fn select(
    b: &Bucket,
    q: &KeysQuery<'_>,
) -> Box<dyn Iterator<Item = state_core::Result<state_core::Entry>>> {
    let it: Box<dyn Iterator<Item = _>> = match (q.prefix, q.from, q.reverse) {
        (None, None, false) => Box::new(b.iter()),
        (None, None, true) => Box::new(b.iter().rev()),
        (None, Some(f), false) => Box::new(b.range((Bound::Included(f), Bound::Unbounded))),
        (None, Some(f), true) => Box::new(b.range((Bound::Unbounded, Bound::Included(f))).rev()),
        (Some(p), from, reverse) => prefixed(b, p, from, reverse),
    };
    match q.limit {
        Some(n) => Box::new(it.take(usize::try_from(n).unwrap_or(usize::MAX))),
        None => it,
    }
}

/// Keys with prefix `p`, starting at `from` in the direction of travel. Every key
/// with the prefix sorts between `p` and any larger key that lacks it, so `from`
/// either lies inside the prefix's run of keys or wholly before or after it.
fn prefixed(
    b: &Bucket,
    p: &str,
    from: Option<&str>,
    reverse: bool,
) -> Box<dyn Iterator<Item = state_core::Result<state_core::Entry>>> {
    let p_owned = p.to_string();
    let keep = move |e: &state_core::Result<state_core::Entry>| match e {
        Ok((k, _)) => k.starts_with(&p_owned),
        Err(_) => true,
    };
    match from {
        None if !reverse => Box::new(b.prefix(p)),
        None => Box::new(b.prefix(p).rev()),
        Some(f) if f.starts_with(p) => {
            if reverse {
                Box::new(
                    b.range((Bound::Unbounded, Bound::Included(f)))
                        .rev()
                        .take_while(keep),
                )
            } else {
                Box::new(
                    b.range((Bound::Included(f), Bound::Unbounded))
                        .take_while(keep),
                )
            }
        }
        // `from` sorts before every prefixed key.
        Some(f) if f < p => {
            if reverse {
                Box::new(std::iter::empty())
            } else {
                Box::new(b.prefix(p))
            }
        }
        // `from` sorts after every prefixed key.
        Some(_) => {
            if reverse {
                Box::new(b.prefix(p).rev())
            } else {
                Box::new(std::iter::empty())
            }
        }
    }
}

/// `state keys`.
pub fn keys(store: &Store, bucket: &str, q: &KeysQuery<'_>, out: &mut Output) -> CmdResult {
    let b = store.bucket(bucket)?;
    let mut first = true;
    if out.json {
        out.bytes(b"[")?;
    }
    for entry in select(&b, q) {
        let (key, value) = entry?;
        if out.json {
            if !first {
                out.bytes(b",")?;
            }
            let item = if q.values {
                json!({"key": key, "value": b64(&value)})
            } else {
                json!({ "key": key })
            };
            serde_json::to_writer(out.writer(), &item)
                .map_err(|e| crate::output::stdout_failure(e.into()))?;
        } else if q.values {
            out.line(format!(
                "{}\t{}",
                human_key(&key),
                human_value(&value, false)
            ))?;
        } else {
            out.line(human_key(&key))?;
        }
        first = false;
    }
    if out.json {
        out.bytes(b"]\n")?;
    }
    Ok(())
}

/// `state ttl`.
pub fn ttl(store: &Store, bucket: &str, key: &str, out: &mut Output) -> CmdResult {
    let ttl = store.bucket(bucket)?.ttl(key)?;
    if out.json {
        let ttl_ms = match ttl {
            Ttl::Expires(d) => Some(d.as_millis() as u64),
            _ => None,
        };
        out.json_line(&json!({
            "bucket": bucket,
            "key": key,
            "found": ttl != Ttl::Missing,
            "ttl_ms": ttl_ms,
        }))?;
    }
    match ttl {
        Ttl::Missing => Err(key_not_found(bucket, key)),
        _ if out.json => Ok(()),
        Ttl::NoExpiry => out.line("no expiry"),
        Ttl::Expires(d) => out.line(format!("expires in {}", human_duration(d))),
    }
}

/// `state expire`.
pub fn expire(
    store: &Store,
    bucket: &str,
    key: &str,
    ttl: Duration,
    out: &mut Output,
) -> CmdResult {
    let found = store.bucket(bucket)?.expire(key, ttl)?;
    if out.json {
        out.json_line(&json!({"bucket": bucket, "key": key, "found": found}))?;
    }
    if found {
        Ok(())
    } else {
        Err(key_not_found(bucket, key))
    }
}

/// `state persist`: exit code 1 only if the key is missing; a key that had no TTL
/// is already persistent.
pub fn persist(store: &Store, bucket: &str, key: &str, out: &mut Output) -> CmdResult {
    let b = store.bucket(bucket)?;
    let had_ttl = b.persist(key)?;
    let found = had_ttl || b.contains_key(key)?;
    if out.json {
        out.json_line(&json!({
            "bucket": bucket,
            "key": key,
            "found": found,
            "had_ttl": had_ttl,
        }))?;
    }
    if !found {
        return Err(key_not_found(bucket, key));
    }
    if !had_ttl && !out.json {
        out.note(format_args!("key {key:?} in bucket {bucket:?} had no TTL"));
    }
    Ok(())
}

/// `state rm-bucket`.
pub fn rm_bucket(store: &Store, bucket: &str, out: &mut Output) -> CmdResult {
    let found = store.remove_bucket(bucket)?;
    if out.json {
        out.json_line(&json!({"bucket": bucket, "found": found}))?;
    }
    if found {
        Ok(())
    } else {
        Err(Failure::not_found(format!("bucket {bucket:?} not found")))
    }
}

/// A remaining time for humans: milliseconds only matter below ten seconds.
fn human_duration(d: Duration) -> String {
    let shown = if d >= Duration::from_secs(10) {
        Duration::from_secs(d.as_secs())
    } else {
        Duration::from_millis(d.as_millis() as u64)
    };
    humantime::format_duration(shown).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_times_drop_milliseconds_above_ten_seconds() {
        assert_eq!(human_duration(Duration::from_millis(1_799_947)), "29m 59s");
        assert_eq!(human_duration(Duration::from_millis(2_500)), "2s 500ms");
    }
}
