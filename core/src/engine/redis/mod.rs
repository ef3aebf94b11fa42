//! The Redis engine: a store kept on a Redis server or a Redis Cluster, which any
//! number of processes on any number of hosts open at once.
//!
//! # Layout (namespace `ns`, default `libstate`)
//!
//! Every key of bucket `B` shares the hash tag `{ns:B}` (`{`, `}` and `%` in `B`
//! are %-escaped), so a bucket lives on one cluster slot:
//!
//! - `{ns:B}:k:<key>`: a record, as a string (libstate's encoded value);
//! - `{ns:B}:i`: the bucket's ordered index, a sorted set of its keys, all scores 0,
//!   read with `ZRANGE ... BYLEX [REV] LIMIT`;
//! - `{ns:B}:v`: the bucket's version, incremented by every write (optimistic
//!   read-modify-writes across processes, see [`StorageEngine::version`]);
//! - `{ns:B}:c:<kind>:k:<key>` and `{ns:B}:c:<kind>:i`: the records and index of
//!   `B`'s companion buckets (its expiry index), on the same slot;
//! - `ns:buckets`: a set of every bucket name ever written (listing filters out the
//!   empty ones). A name is added before the first batch that writes to it, in a
//!   step of its own: idempotent, and never after the data it lists.
//!
//! Each batch is one Lua script (loaded once, run by `EVALSHA`, loaded again on
//! `NOSCRIPT`) touching one slot; a batch spanning two buckets is refused.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::{EngineFactory, StorageEngine, StoreContext};
use crate::error::{Error, Result};

// The connection side, which needs the `redis` crate. Without the `redis` feature the
// configuration and URL rules above stay (so every caller compiles unchanged) and
// opening a store on Redis is an *invalid argument* error saying why.
#[cfg(feature = "redis")]
mod engine;

/// The namespace used when none is given.
pub const DEFAULT_NAMESPACE: &str = "libstate";
/// The connect and response timeout used when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The URL schemes the engine is opened with.
const SCHEMES: [&str; 4] = ["redis://", "rediss://", "redis+unix://", "redis+cluster://"];

/// Whether `s` is a Redis engine URL (starts with `redis://`, `rediss://`,
/// `redis+unix://` or `redis+cluster://`) rather than a directory. A directory whose
/// name starts like that is opened as `./redis://...`.
pub fn is_url(s: &str) -> bool {
    SCHEMES.iter().any(|scheme| s.starts_with(scheme))
}

/// The Redis engine's options: where the server is, the key namespace, timeouts.
///
/// ```
/// # use std::time::Duration;
/// use state_core::engine::RedisConfig;
/// let config = RedisConfig::new("redis://127.0.0.1:6379/0?namespace=app")
///     .unwrap()
///     .timeout(Duration::from_secs(2));
/// assert_eq!(config.namespace_name(), "app");
/// ```
///
/// URLs: `redis://[user:password@]host:port/db`, `rediss://...` (TLS, rustls with
/// the platform's root certificates), `redis+unix:///path/to/socket[?db=N]`, and
/// `redis+cluster://[user:password@]host1:port1,host2:port2` (seed nodes of a Redis
/// Cluster; the crate's cluster client routes by slot and follows failovers). Two
/// query parameters are libstate's own and are removed before connecting:
/// `namespace=NAME` and `timeout_ms=N`.
#[derive(Clone)]
pub struct RedisConfig {
    // Read only by the connection side (feature `redis`).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    target: Target,
    /// The URL as given, without libstate's parameters and with any password hidden.
    location: String,
    namespace: String,
    timeout: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("location", &self.location)
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Clone)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
enum Target {
    Single(String),
    Cluster(Vec<String>),
    /// No server: the engine was chosen by name ([`crate::Engine::Redis`]) and the
    /// store's path must be the URL; a store opened otherwise is refused with
    /// [`needs_url`].
    Unset,
}

/// The one refusal of the Redis engine chosen by name without a server's URL (the
/// core's builder, so the CLI, the C library and Python all say this).
pub(crate) fn needs_url(path: &Path) -> Error {
    Error::invalid(format!(
        "engine \"redis\" needs the server's URL as the store path (redis://host:port/db, \
         rediss://, redis+unix:///socket or redis+cluster://host1:port1,host2:port2), not {}",
        path.display()
    ))
}

impl RedisConfig {
    /// The engine chosen by name, without a server: usable only with a URL as the
    /// store's path (which supplies the server).
    pub(crate) fn unset() -> RedisConfig {
        RedisConfig {
            target: Target::Unset,
            location: String::new(),
            namespace: DEFAULT_NAMESPACE.to_string(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Whether this config names a server (every config but [`RedisConfig::unset`]).
    pub(crate) fn has_server(&self) -> bool {
        !matches!(self.target, Target::Unset)
    }

    /// The config for the server or cluster at `url` (see [`RedisConfig`] for the
    /// forms), with the default namespace and timeout unless the URL sets them.
    ///
    /// # Errors
    /// *invalid argument* for a URL of another scheme, a cluster URL without nodes,
    /// a bad `namespace` (empty, or with `{`, `}` or a control character) or
    /// `timeout_ms` (not a positive integer).
    pub fn new(url: &str) -> Result<RedisConfig> {
        if !is_url(url) {
            return Err(Error::invalid(format!(
                "{url:?} is not a Redis URL (redis://, rediss://, redis+unix:// or redis+cluster://)"
            )));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut namespace = DEFAULT_NAMESPACE.to_string();
        let mut timeout = DEFAULT_TIMEOUT;
        let mut rest: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("namespace", ns)) => namespace = ns.to_string(),
                Some(("timeout_ms", ms)) => timeout = parse_timeout(ms)?,
                _ => rest.push(pair),
            }
        }
        check_namespace(&namespace)?;
        let suffix = if rest.is_empty() {
            String::new()
        } else {
            format!("?{}", rest.join("&"))
        };
        let target = if let Some(nodes) = base.strip_prefix("redis+cluster://") {
            let (auth, hosts) = match nodes.rsplit_once('@') {
                Some((auth, hosts)) => (format!("{auth}@"), hosts),
                None => (String::new(), nodes),
            };
            let hosts: Vec<String> = hosts
                .trim_end_matches('/')
                .split(',')
                .filter(|h| !h.is_empty())
                .map(|h| format!("redis://{auth}{h}{suffix}"))
                .collect();
            if hosts.is_empty() {
                return Err(Error::invalid(format!(
                    "Redis cluster URL {:?} names no node",
                    redact(url)
                )));
            }
            Target::Cluster(hosts)
        } else {
            Target::Single(format!("{base}{suffix}"))
        };
        Ok(RedisConfig {
            target,
            location: redact(&format!("{base}{suffix}")),
            namespace,
            timeout,
        })
    }

    /// This config with key namespace `namespace` (default `libstate`): stores with
    /// different namespaces on one server are independent. Checked when the store
    /// opens: it must be non-empty, without `{`, `}` or control characters.
    pub fn namespace(mut self, namespace: &str) -> RedisConfig {
        self.namespace = namespace.to_string();
        self
    }

    /// This config with `timeout` as the connect timeout and the response timeout
    /// of every command (default 5 s): a server that went away or stopped
    /// answering is reported as an *I/O* error after at most about this long.
    pub fn timeout(mut self, timeout: Duration) -> RedisConfig {
        self.timeout = timeout;
        self
    }

    /// The key namespace.
    pub fn namespace_name(&self) -> &str {
        &self.namespace
    }

    /// The connect and response timeout.
    pub fn timeout_duration(&self) -> Duration {
        self.timeout
    }

    /// Where the store is, as shown in messages and [`crate::Store::path`]: the URL
    /// without libstate's parameters and with any password replaced by `***`, then
    /// `?namespace=NAME`.
    pub fn location(&self) -> String {
        let sep = if self.location.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}namespace={}", self.location, self.namespace)
    }
}

fn parse_timeout(ms: &str) -> Result<Duration> {
    match ms.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_millis(n)),
        _ => Err(Error::invalid(format!(
            "timeout_ms must be a positive number of milliseconds, got {ms:?}"
        ))),
    }
}

fn check_namespace(ns: &str) -> Result<()> {
    if ns.is_empty() || ns.contains(['{', '}']) || ns.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "Redis namespace {ns:?} must be non-empty, without '{{', '}}' or control characters"
        )));
    }
    Ok(())
}

/// `url` with the password of its user info replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{scheme}://{hidden}@{hosts}{path}")
        }
        None => url.to_string(),
    }
}

impl EngineFactory for RedisConfig {
    fn name(&self) -> &str {
        "redis"
    }

    /// Connects (the directory is not used: the data is on the server) and checks
    /// the server: sync mode needs `appendfsync always`.
    #[cfg(feature = "redis")]
    fn open(&self, _dir: &Path, store: &StoreContext) -> Result<Box<dyn StorageEngine>> {
        Ok(Box::new(engine::RedisEngine::connect(self, store)?))
    }

    /// Without the `redis` feature there is no client: an *invalid argument* error.
    #[cfg(not(feature = "redis"))]
    fn open(&self, _dir: &Path, _store: &StoreContext) -> Result<Box<dyn StorageEngine>> {
        Err(Error::invalid(format!(
            "cannot open {}: this libstate was built without the Redis engine (cargo feature `redis`)",
            self.location()
        )))
    }

    fn shared_between_processes(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_directories() {
        assert!(is_url("redis://h:1/0"));
        assert!(is_url("redis+cluster://a:1,b:2"));
        assert!(!is_url("./redis://h"));
        assert!(!is_url("/var/lib/state"));
    }

    #[test]
    fn libstate_parameters_are_taken_from_the_url() {
        let c = RedisConfig::new("redis://:pw@h:1/2?namespace=app&timeout_ms=250&protocol=resp2")
            .unwrap();
        assert_eq!(c.namespace_name(), "app");
        assert_eq!(c.timeout_duration(), Duration::from_millis(250));
        assert_eq!(
            c.location(),
            "redis://:***@h:1/2?protocol=resp2&namespace=app"
        );
        assert!(RedisConfig::new("redis://h?namespace=a{b").is_err());
        assert!(RedisConfig::new("redis://h?timeout_ms=0").is_err());
        assert!(RedisConfig::new("redis+cluster://").is_err());
        let Target::Cluster(nodes) = RedisConfig::new("redis+cluster://u:p@a:1,b:2")
            .unwrap()
            .target
        else {
            panic!("not a cluster target")
        };
        assert_eq!(nodes, vec!["redis://u:p@a:1", "redis://u:p@b:2"]);
    }

    /// Runs in `cargo test -p state-core --no-default-features` only.
    #[cfg(not(feature = "redis"))]
    #[test]
    fn without_the_redis_feature_a_redis_url_is_an_invalid_argument() {
        let Err(e) = crate::Store::open("redis://:secret@127.0.0.1:1/0") else {
            panic!("a Redis store opened without the redis feature")
        };
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        let msg = e.to_string();
        assert!(msg.contains("cargo feature `redis`"), "{msg}");
        assert!(!msg.contains("secret"), "the password leaked: {msg}");
    }
}
