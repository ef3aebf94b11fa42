//! The Redis engine's connections and its [`StorageEngine`] implementation (cargo
//! feature `redis`); the layout is described in the parent module.

use std::collections::HashSet;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{ConnectionLike, RedisError, Script, Value};

use super::super::{home_bucket, StorageEngine, StoreContext, Visit, WriteOp};
use super::{check_namespace, RedisConfig, Target};
use crate::error::{Error, Result};

/// Connections kept open for reuse; more are opened while more threads are busy.
const MAX_IDLE: usize = 32;
/// Keys read per `ZRANGE` of a scan, at first; doubled up to `MAX_SCAN_CHUNK`.
const FIRST_SCAN_CHUNK: usize = 128;
/// The largest chunk a scan reads in one `ZRANGE` plus `MGET`.
const MAX_SCAN_CHUNK: usize = 2048;
/// Members removed per script call by `remove_bucket`.
const REMOVE_CHUNK: usize = 1000;
/// A pooled connection: to one server, or the crate's cluster connection.
enum Conn {
    Single(redis::Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }
}

enum Client {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// The Redis engine (see the module docs for the layout).
pub(crate) struct RedisEngine {
    client: Client,
    idle: Mutex<Vec<Conn>>,
    location: PathBuf,
    namespace: String,
    timeout: Duration,
    /// Buckets this process has added to `ns:buckets` (it never removes any).
    registered: Mutex<HashSet<String>>,
    write_script: Script,
    remove_script: Script,
    details: String,
}

/// One batch, on one slot: `KEYS[1]` is the bucket's version key, then a record key
/// and an index key per op; `ARGV[1]` is the version expected (empty: any), then per
/// op `p`/`d`, the key, the value.
const WRITE_LUA: &str = r"
local v = redis.call('GET', KEYS[1])
if ARGV[1] ~= '' and (v or '0') ~= ARGV[1] then return 0 end
local n = (#KEYS - 1) / 2
for i = 0, n - 1 do
  local rk, zk = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local m = ARGV[3 + 3 * i]
  if ARGV[2 + 3 * i] == 'p' then
    redis.call('SET', rk, ARGV[4 + 3 * i])
    redis.call('ZADD', zk, 0, m)
  else
    redis.call('DEL', rk)
    redis.call('ZREM', zk, m)
  end
end
redis.call('INCR', KEYS[1])
return 1
";

/// Removes up to `ARGV[2]` members of index `KEYS[2]` and their records (keys
/// `ARGV[1] .. member`, on the same slot); returns how many.
const REMOVE_LUA: &str = r"
local ms = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1)
if #ms == 0 then return 0 end
for _, m in ipairs(ms) do redis.call('DEL', ARGV[1] .. m) end
redis.call('ZREM', KEYS[2], unpack(ms))
redis.call('INCR', KEYS[1])
return #ms
";

/// `%`, `{` and `}` %-escaped, so a name cannot end a hash tag early.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

impl RedisEngine {
    pub(crate) fn connect(config: &RedisConfig, store: &StoreContext) -> Result<RedisEngine> {
        check_namespace(&config.namespace)?;
        if config.timeout.is_zero() {
            return Err(Error::invalid(
                "the Redis timeout must be greater than zero",
            ));
        }
        let location = PathBuf::from(config.location());
        let client = match &config.target {
            Target::Single(url) => Client::Single(
                redis::Client::open(url.as_str()).map_err(|e| invalid_url(&location, &e))?,
            ),
            Target::Cluster(nodes) => Client::Cluster(
                ClusterClient::builder(nodes.clone())
                    .connection_timeout(config.timeout)
                    .response_timeout(config.timeout)
                    .retries(3)
                    .min_retry_wait(10)
                    .max_retry_wait(config.timeout.as_millis().min(1000) as u64)
                    .build()
                    .map_err(|e| invalid_url(&location, &e))?,
            ),
            Target::Unset => return Err(super::needs_url(&location)),
        };
        let mut engine = RedisEngine {
            client,
            idle: Mutex::new(Vec::new()),
            location,
            namespace: config.namespace.clone(),
            timeout: config.timeout,
            registered: Mutex::new(HashSet::new()),
            write_script: Script::new(WRITE_LUA),
            remove_script: Script::new(REMOVE_LUA),
            details: String::new(),
        };
        engine.details = engine.check_server(store.sync)?;
        Ok(engine)
    }

    /// Reads the server's version and persistence settings; in sync mode, refuses a
    /// server (or any cluster master) without `appendfsync always`.
    fn check_server(&self, sync: bool) -> Result<String> {
        let (info, fsync) = self.with_conn(|conn| {
            let info = match conn {
                Conn::Single(c) => redis::cmd("INFO").arg("server").query::<Value>(c)?,
                Conn::Cluster(c) => c.route_command(
                    redis::cmd("INFO").arg("server"),
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                )?,
            };
            let mut config_get = redis::cmd("CONFIG");
            config_get.arg("GET").arg("append*");
            let fsync = match conn {
                Conn::Single(c) => config_get.query::<Value>(c),
                Conn::Cluster(c) => c.route_command(
                    &config_get,
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                ),
            };
            Ok((info, fsync))
        })?;
        let mut texts = Vec::new();
        strings_of(&info, &mut texts);
        let version = texts
            .iter()
            .flat_map(|t| t.lines())
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_string();
        let mode = match self.client {
            Client::Single(_) => "standalone".to_string(),
            Client::Cluster(_) => "cluster".to_string(),
        };
        let (appendonly, appendfsync) = match &fsync {
            Ok(v) => {
                let mut s = Vec::new();
                strings_of(v, &mut s);
                (setting(&s, "appendonly"), setting(&s, "appendfsync"))
            }
            Err(_) => (Vec::new(), Vec::new()),
        };
        let persistence = match &fsync {
            Ok(_) => format!(
                "appendonly {}, appendfsync {}",
                joined(&appendonly),
                joined(&appendfsync)
            ),
            Err(e) => format!("persistence settings unknown (CONFIG GET failed: {e})"),
        };
        if sync {
            let always = appendonly.iter().all(|v| v == "yes")
                && !appendfsync.is_empty()
                && appendfsync.iter().all(|v| v == "always");
            if let Err(e) = &fsync {
                return Err(Error::invalid(format!(
                    "sync mode on {} needs a Redis server with appendonly yes and appendfsync \
                     always, and libstate checks that with CONFIG GET, which failed ({e}); \
                     allow CONFIG GET for this user, or open the store in periodic mode",
                    self.location.display()
                )));
            }
            if !always || appendonly.is_empty() {
                return Err(Error::invalid(format!(
                    "sync mode on {} needs a Redis server with appendonly yes and appendfsync \
                     always (every acknowledged write fsynced); the server has {persistence}",
                    self.location.display()
                )));
            }
        }
        Ok(format!("redis {version} ({mode}), {persistence}"))
    }

    /// Runs `f` on a pooled connection (a new one if none is idle). A connection
    /// that failed with an I/O error is dropped, and so is every idle one (they
    /// were most likely cut by the same event); the next call connects again.
    fn with_conn<T>(&self, f: impl FnOnce(&mut Conn) -> redis::RedisResult<T>) -> Result<T> {
        let pooled = self.idle.lock().pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.open_conn().map_err(|e| self.error(&e))?,
        };
        match f(&mut conn) {
            Ok(out) => {
                let mut idle = self.idle.lock();
                if idle.len() < MAX_IDLE {
                    idle.push(conn);
                }
                Ok(out)
            }
            Err(e) => {
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                    self.idle.lock().clear();
                } else if matches!(conn, Conn::Single(_)) {
                    // A server error leaves the connection usable.
                    let mut idle = self.idle.lock();
                    if idle.len() < MAX_IDLE {
                        idle.push(conn);
                    }
                }
                Err(self.error(&e))
            }
        }
    }

    fn open_conn(&self) -> redis::RedisResult<Conn> {
        match &self.client {
            Client::Single(client) => {
                // The crate bounds the TCP connect by the timeout but reads its
                // handshake replies (AUTH, SELECT, CLIENT SETINFO) without one: a
                // server that accepts and never answers would hang the caller. So
                // the connect runs on a thread of its own, waited for at most the
                // timeout; a thread left waiting ends when the server answers or
                // its connection is cut.
                let (tx, rx) = std::sync::mpsc::channel();
                let (client, timeout) = (client.clone(), self.timeout);
                std::thread::Builder::new()
                    .name("libstate-redis-connect".into())
                    .spawn(move || {
                        let c = client.get_connection_with_timeout(timeout).and_then(|c| {
                            c.set_read_timeout(Some(timeout))?;
                            c.set_write_timeout(Some(timeout))?;
                            Ok(c)
                        });
                        let _ = tx.send(c);
                    })
                    .map_err(RedisError::from)?;
                match rx.recv_timeout(self.timeout) {
                    Ok(c) => Ok(Conn::Single(c?)),
                    Err(_) => Err(RedisError::from(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer while connecting within {:?}", self.timeout),
                    ))),
                }
            }
            Client::Cluster(client) => Ok(Conn::Cluster(Box::new(client.get_connection()?))),
        }
    }

    /// A Redis error as an *I/O* error naming the store's location.
    fn error(&self, e: &RedisError) -> Error {
        let kind = if e.is_timeout() {
            io::ErrorKind::TimedOut
        } else if e.is_connection_refusal() {
            io::ErrorKind::ConnectionRefused
        } else if e.is_io_error() || e.is_connection_dropped() {
            io::ErrorKind::ConnectionAborted
        } else {
            io::ErrorKind::Other
        };
        Error::io(&self.location, io::Error::new(kind, format!("redis: {e}")))
    }

    /// The hash tag of `bucket`'s home bucket, with braces.
    fn tag(&self, bucket: &str) -> String {
        format!("{{{}:{}}}", self.namespace, escape(home_bucket(bucket)))
    }

    /// The prefix of `bucket`'s keys: its tag, then `:c:<kind>` for a companion.
    fn prefix(&self, bucket: &str) -> String {
        let home = home_bucket(bucket);
        let tag = self.tag(bucket);
        if home == bucket {
            tag
        } else {
            let kind = bucket
                .strip_suffix(home)
                .unwrap_or(bucket)
                .trim_matches(|c: char| c.is_control());
            format!("{tag}:c:{}", escape(kind).replace(':', "%3A"))
        }
    }

    /// Visits the entries of `bucket` within the bounds (see
    /// [`StorageEngine::scan`]), reading `first` entries in the first chunk (one
    /// `ZRANGE ... BYLEX` and one `MGET`), then chunks that double up to
    /// `MAX_SCAN_CHUNK`.
    fn scan_chunks(
        &self,
        bucket: &str,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        first: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<()> {
        let prefix = self.prefix(bucket);
        let zk = Self::index_key(&prefix);
        let mut rk = Self::record_key(&prefix, b"");
        let at = rk.len();
        let mut lo = lex_bound(lower, b"-");
        let mut hi = lex_bound(upper, b"+");
        let mut chunk = first.clamp(1, MAX_SCAN_CHUNK);
        loop {
            let mut range = redis::cmd("ZRANGE");
            range.arg(&zk);
            if reverse {
                range.arg(&hi).arg(&lo).arg("BYLEX").arg("REV");
            } else {
                range.arg(&lo).arg(&hi).arg("BYLEX");
            }
            range.arg("LIMIT").arg(0).arg(chunk);
            let members: Vec<Vec<u8>> = self.with_conn(|c| range.query(c.like()))?;
            if members.is_empty() {
                return Ok(());
            }
            let mut mget = redis::cmd("MGET");
            for m in &members {
                rk.truncate(at);
                rk.extend_from_slice(m);
                mget.arg(&rk[..]);
            }
            let values: Vec<Option<Vec<u8>>> = self.with_conn(|c| mget.query(c.like()))?;
            for (m, v) in members.iter().zip(&values) {
                // A key deleted between the two reads is skipped.
                if let Some(v) = v {
                    if visit(m, v) == Visit::Stop {
                        return Ok(());
                    }
                }
            }
            if members.len() < chunk {
                return Ok(());
            }
            let Some(last) = members.last() else {
                return Ok(());
            };
            let next = lex_bound(Bound::Excluded(last), b"");
            if reverse {
                hi = next;
            } else {
                lo = next;
            }
            chunk = (chunk * 2).clamp(FIRST_SCAN_CHUNK, MAX_SCAN_CHUNK);
        }
    }

    fn record_key(prefix: &str, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(prefix.len() + 3 + key.len());
        k.extend_from_slice(prefix.as_bytes());
        k.extend_from_slice(b":k:");
        k.extend_from_slice(key);
        k
    }

    fn index_key(prefix: &str) -> String {
        format!("{prefix}:i")
    }

    fn version_key(&self, bucket: &str) -> String {
        format!("{}:v", self.tag(bucket))
    }

    fn buckets_key(&self) -> String {
        format!("{}:buckets", self.namespace)
    }

    /// Adds the buckets `ops` write to `ns:buckets` (once per bucket per process),
    /// before the batch itself.
    fn register(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        let new: Vec<&str> = {
            let registered = self.registered.lock();
            let mut new: Vec<&str> = ops
                .iter()
                .filter_map(|op| match op {
                    WriteOp::Put { bucket, .. } if !registered.contains(*bucket) => Some(*bucket),
                    _ => None,
                })
                .collect();
            new.sort_unstable();
            new.dedup();
            new
        };
        if new.is_empty() {
            return Ok(());
        }
        let key = self.buckets_key();
        self.with_conn(|c| {
            redis::cmd("SADD")
                .arg(&key)
                .arg(&new)
                .query::<i64>(c.like())
        })?;
        self.registered
            .lock()
            .extend(new.into_iter().map(str::to_string));
        Ok(())
    }

    /// Runs one batch as the write script; `expected` is a version to check.
    fn run_batch(&self, ops: &[WriteOp<'_>], expected: Option<u64>) -> Result<bool> {
        let Some(first) = ops.first() else {
            return Ok(true);
        };
        let home = home_bucket(op_bucket(first));
        if let Some(other) = ops.iter().find(|op| home_bucket(op_bucket(op)) != home) {
            return Err(Error::invalid(format!(
                "a batch of the Redis engine must stay within one bucket and its companions \
                 (one cluster slot), but it writes to {home:?} and {:?}",
                home_bucket(op_bucket(other))
            )));
        }
        self.register(ops)?;
        let mut inv = self.write_script.prepare_invoke();
        inv.key(self.version_key(home));
        inv.arg(expected.map(|v| v.to_string()).unwrap_or_default());
        let mut prefixes: Vec<(&str, String)> = Vec::new();
        for op in ops {
            let bucket = op_bucket(op);
            let prefix = match prefixes.iter().find(|(b, _)| *b == bucket) {
                Some((_, p)) => p.clone(),
                None => {
                    let p = self.prefix(bucket);
                    prefixes.push((bucket, p.clone()));
                    p
                }
            };
            match *op {
                WriteOp::Put { key, value, .. } => {
                    inv.key(Self::record_key(&prefix, key));
                    inv.key(Self::index_key(&prefix));
                    inv.arg("p").arg(key).arg(value);
                }
                WriteOp::Delete { key, .. } => {
                    inv.key(Self::record_key(&prefix, key));
                    inv.key(Self::index_key(&prefix));
                    inv.arg("d").arg(key).arg(&[] as &[u8]);
                }
            }
        }
        let applied: i64 = self.with_conn(|c| inv.invoke(c.like()))?;
        Ok(applied == 1)
    }
}

fn op_bucket<'a>(op: &WriteOp<'a>) -> &'a str {
    match *op {
        WriteOp::Put { bucket, .. } | WriteOp::Delete { bucket, .. } => bucket,
    }
}

fn invalid_url(location: &Path, e: &RedisError) -> Error {
    Error::invalid(format!("bad Redis URL {}: {e}", location.display()))
}

/// Every string in a reply, depth first (a cluster's replies are per node).
fn strings_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => out.push(s.clone()),
        Value::Array(items) | Value::Set(items) => items.iter().for_each(|i| strings_of(i, out)),
        Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            strings_of(k, out);
            strings_of(v, out);
        }),
        _ => {}
    }
}

/// The values following each `name` in a flattened CONFIG GET reply.
fn setting(strings: &[String], name: &str) -> Vec<String> {
    strings
        .windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].clone())
        .collect()
}

fn joined(values: &[String]) -> String {
    let mut v = values.to_vec();
    v.dedup();
    if v.is_empty() {
        "unknown".into()
    } else {
        v.join("/")
    }
}

/// A `ZRANGE ... BYLEX` bound.
fn lex_bound(b: Bound<&[u8]>, unbounded: &[u8]) -> Vec<u8> {
    match b {
        Bound::Included(k) => [b"[".as_slice(), k].concat(),
        Bound::Excluded(k) => [b"(".as_slice(), k].concat(),
        Bound::Unbounded => unbounded.to_vec(),
    }
}

impl StorageEngine for RedisEngine {
    fn get(&self, bucket: &str, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        let rk = Self::record_key(&self.prefix(bucket), key);
        let v: Option<Vec<u8>> = self.with_conn(|c| redis::cmd("GET").arg(&rk).query(c.like()))?;
        match v {
            Some(v) => {
                visit(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get_many(
        &self,
        bucket: &str,
        keys: &[&[u8]],
        visit: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("MGET");
        // Each record key is built in one reused buffer (the command copies it).
        let mut rk = Self::record_key(&self.prefix(bucket), b"");
        let at = rk.len();
        for k in keys {
            rk.truncate(at);
            rk.extend_from_slice(k);
            cmd.arg(&rk[..]);
        }
        let values: Vec<Option<Vec<u8>>> = self.with_conn(|c| cmd.query(c.like()))?;
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                visit(i, v);
            }
        }
        Ok(())
    }

    fn write(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        self.run_batch(ops, None).map(drop)
    }

    fn scan(
        &self,
        bucket: &str,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<()> {
        self.scan_chunks(bucket, lower, upper, reverse, FIRST_SCAN_CHUNK, visit)
    }

    fn scan_limited(
        &self,
        bucket: &str,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<()> {
        self.scan_chunks(bucket, lower, upper, reverse, limit, visit)
    }

    fn count(&self, bucket: &str) -> Result<u64> {
        let zk = Self::index_key(&self.prefix(bucket));
        self.with_conn(|c| redis::cmd("ZCARD").arg(&zk).query(c.like()))
    }

    fn bucket_names(&self) -> Result<Vec<String>> {
        let key = self.buckets_key();
        let mut names: Vec<String> =
            self.with_conn(|c| redis::cmd("SMEMBERS").arg(&key).query(c.like()))?;
        names.sort_unstable();
        let zkeys: Vec<String> = names
            .iter()
            .map(|n| Self::index_key(&self.prefix(n)))
            .collect();
        let present: Vec<bool> = self.with_conn(|c| match c {
            Conn::Single(conn) => {
                let mut pipe = redis::pipe();
                for zk in &zkeys {
                    pipe.cmd("EXISTS").arg(zk);
                }
                pipe.query(conn)
            }
            // Each index is on its bucket's own slot: one command each.
            Conn::Cluster(conn) => zkeys
                .iter()
                .map(|zk| redis::cmd("EXISTS").arg(zk).query(&mut **conn))
                .collect(),
        })?;
        Ok(names
            .into_iter()
            .zip(present)
            .filter_map(|(n, p)| p.then_some(n))
            .collect())
    }

    fn remove_bucket(&self, bucket: &str) -> Result<bool> {
        let prefix = self.prefix(bucket);
        let record_prefix = format!("{prefix}:k:");
        let mut inv = self.remove_script.prepare_invoke();
        inv.key(self.version_key(bucket))
            .key(Self::index_key(&prefix))
            .arg(&record_prefix)
            .arg(REMOVE_CHUNK);
        let mut any = false;
        loop {
            let n: i64 = self.with_conn(|c| inv.invoke(c.like()))?;
            if n == 0 {
                return Ok(any);
            }
            any = true;
        }
    }

    /// Nothing to do: a write the server acknowledged is as durable as its
    /// persistence settings make it (sync mode was refused at open unless they make
    /// it durable at once).
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn disk_size(&self) -> Result<u64> {
        Ok(0)
    }

    fn version(&self, bucket: &str) -> Result<Option<u64>> {
        let vk = self.version_key(bucket);
        let v: Option<u64> = self.with_conn(|c| redis::cmd("GET").arg(&vk).query(c.like()))?;
        Ok(Some(v.unwrap_or(0)))
    }

    fn write_if_unchanged(&self, bucket: &str, version: u64, ops: &[WriteOp<'_>]) -> Result<bool> {
        if let Some(op) = ops
            .iter()
            .find(|op| home_bucket(op_bucket(op)) != home_bucket(bucket))
        {
            return Err(Error::Internal(format!(
                "a read-modify-write of bucket {bucket:?} writes to {:?}",
                op_bucket(op)
            )));
        }
        self.run_batch(ops, Some(version))
    }

    fn details(&self) -> Result<Option<String>> {
        Ok(Some(self.details.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_end_a_hash_tag_early() {
        assert_eq!(escape("a}b{c%"), "a%7Db%7Bc%25");
    }
}
