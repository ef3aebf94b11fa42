//! [`Target`]: where a client connects and how it signs in, from a `state://`,
//! `states://` or `state+unix://` URL.

use std::fmt;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;
use state_core::Error as CoreError;

use crate::Result;

/// The TCP port of `state serve`'s Redis-protocol listener by default (its
/// `--resp 127.0.0.1:7379`), used when a URL names none.
pub const DEFAULT_PORT: u16 = 7379;

/// Where to connect.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// A Unix socket (`state+unix:///path`).
    Unix {
        /// The socket's path.
        path: PathBuf,
    },
    /// TCP, in the clear (`state://`) or with TLS (`states://`).
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
        /// Whether the connection uses TLS.
        tls: bool,
        /// The client name of the URL's credentials, if any.
        name: Option<String>,
        /// The token of the URL's credentials, if any.
        token: Option<String>,
    },
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token: Debug output ends up in logs.
        write!(f, "Target({self})")
    }
}

/// The URL without its token: what errors and logs name.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix { path } => write!(f, "state+unix://{}", path.display()),
            Target::Tcp {
                host,
                port,
                tls,
                name,
                ..
            } => {
                let scheme = if *tls { "states" } else { "state" };
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                match name {
                    Some(n) => write!(f, "{scheme}://{n}@{host}:{port}"),
                    None => write!(f, "{scheme}://{host}:{port}"),
                }
            }
        }
    }
}

fn bad(url: &str, why: &str) -> crate::Error {
    // The URL may hold a token: it is named without its credentials.
    let shown = match url.split_once('@') {
        Some((head, tail)) => match head.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://…@{tail}"),
            None => format!("…@{tail}"),
        },
        None => url.to_string(),
    };
    CoreError::InvalidArgument(format!(
        "bad server URL {shown:?}: {why} (use state+unix:///path/to/state.sock, state://[NAME:TOKEN@]host:port or states://...)"
    ))
    .into()
}

fn decode(part: &str, url: &str) -> Result<String> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| bad(url, "the credentials are not UTF-8"))
}

impl Target {
    /// Parses a `state+unix://`, `state://` or `states://` URL.
    ///
    /// # Errors
    /// *invalid argument*, naming the URL without its token, for anything else.
    pub fn parse(url: &str) -> Result<Target> {
        let u = url::Url::parse(url).map_err(|e| bad(url, &e.to_string()))?;
        if u.query().is_some() || u.fragment().is_some() {
            return Err(bad(url, "a query or fragment is not part of a server URL"));
        }
        match u.scheme() {
            "state+unix" => {
                if u.has_host() && u.host_str() != Some("") {
                    return Err(bad(url, "a socket URL has no host: state+unix:///path"));
                }
                if !u.username().is_empty() || u.password().is_some() {
                    return Err(bad(
                        url,
                        "a socket URL carries no credentials (the Unix user signs in; a token goes in the options)",
                    ));
                }
                let path = decode(u.path(), url)?;
                if path.is_empty() || path == "/" {
                    return Err(bad(url, "no socket path"));
                }
                Ok(Target::Unix {
                    path: PathBuf::from(path),
                })
            }
            scheme @ ("state" | "states") => {
                let host = match u.host() {
                    Some(url::Host::Ipv6(a)) => a.to_string(),
                    Some(h) => h.to_string(),
                    None => return Err(bad(url, "no host")),
                };
                if host.is_empty() {
                    return Err(bad(url, "no host"));
                }
                if !matches!(u.path(), "" | "/") {
                    return Err(bad(url, "a server URL has no path"));
                }
                let name = match u.username() {
                    "" => None,
                    n => Some(decode(n, url)?),
                };
                let token = u.password().map(|t| decode(t, url)).transpose()?;
                if name.is_some() && token.is_none() {
                    return Err(bad(url, "a client name needs its token: NAME:TOKEN@"));
                }
                Ok(Target::Tcp {
                    host,
                    port: u.port().unwrap_or(DEFAULT_PORT),
                    tls: scheme == "states",
                    name,
                    token,
                })
            }
            other => Err(bad(url, &format!("unknown scheme {other:?}"))),
        }
    }

    /// The default store's socket (`$STATE_STORE/state.sock`, else
    /// `./state-data/state.sock`): the `state` CLI's rule.
    pub fn default_socket() -> Target {
        Target::Unix {
            path: state_service::default_socket(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_parse() {
        assert_eq!(
            Target::parse("state+unix:///run/state/state.sock").unwrap(),
            Target::Unix {
                path: "/run/state/state.sock".into()
            }
        );
        assert_eq!(
            Target::parse("state://alice:t0k-_en@127.0.0.1:7000").unwrap(),
            Target::Tcp {
                host: "127.0.0.1".into(),
                port: 7000,
                tls: false,
                name: Some("alice".into()),
                token: Some("t0k-_en".into()),
            }
        );
        let t = Target::parse("states://[::1]").unwrap();
        assert_eq!(
            t,
            Target::Tcp {
                host: "::1".into(),
                port: DEFAULT_PORT,
                tls: true,
                name: None,
                token: None,
            }
        );
        assert_eq!(t.to_string(), "states://[::1]:7379");
    }

    #[test]
    fn bad_urls_are_invalid_arguments_that_never_show_the_token() {
        for url in [
            "redis://x:1",
            "state://alice@host:1",
            "state://host:1/path",
            "state+unix://host/path",
            "state+unix:///",
            "state://h:1?x=1",
            "state://alice:secret@:1",
            "nonsense",
        ] {
            let e = Target::parse(url).unwrap_err();
            assert!(e.is_invalid_argument(), "{url}: {e}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
        let t = Target::parse("state://alice:secret@h:1").unwrap();
        assert_eq!(t.to_string(), "state://alice@h:1");
        assert!(!format!("{t:?}").contains("secret"));
    }
}
