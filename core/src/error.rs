//! The one error type of libstate and its stable kinds.
//!
//! Every fallible function in the core returns [`Result<T>`]. The C status codes and
//! the Python exceptions are each mapped from [`ErrorKind`] in exactly one place, so
//! a new variant here is the only thing a binding has to learn about.

use std::io;
use std::path::{Path, PathBuf};

/// The result type of every fallible libstate operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The stable category of an [`Error`].
///
/// Each binding maps every kind to its own C `state_status` code and Python
/// exception class ([`ErrorKind::ALL`] lists them for their tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A key, bucket name, value, TTL or option broke a documented rule. Nothing was written.
    InvalidArgument,
    /// Another process holds the store directory.
    Locked,
    /// Stored data failed a check (checksum, format, or an engine that could not open it).
    /// libstate changes none of the store's files when it reports this. An engine
    /// that rewrites parts of its own files while it opens them, before any check can
    /// run, says so in the message; otherwise the message says the files were left
    /// untouched.
    Corrupt,
    /// The operating system reported an I/O error.
    Io,
    /// A request exceeded a configured size limit (for example a batch's total size).
    TooLarge,
    /// The store handle (or the bucket or cursor taken from it) was closed.
    Closed,
    /// A read-modify-write (a transaction, `delete`, `expire`, a sweep) on a store
    /// that other processes write at the same time (the Redis engine) lost the race
    /// to their writes too many times in a row. Nothing was written; retrying is
    /// safe.
    Conflict,
    /// A bug in libstate or an engine (for example a caught panic). Please report it.
    Internal,
}

impl ErrorKind {
    /// Every kind, for the bindings and their tests: each binding maps every kind
    /// listed here to a code or exception of its own (only *internal* to its
    /// internal one), and its tests iterate this list, so a kind added here fails
    /// them until they learn it.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::InvalidArgument,
        ErrorKind::Locked,
        ErrorKind::Corrupt,
        ErrorKind::Io,
        ErrorKind::TooLarge,
        ErrorKind::Closed,
        ErrorKind::Conflict,
        ErrorKind::Internal,
    ];

    /// A short lowercase name, stable across releases (used by bindings and the CLI).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Locked => "locked",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Io => "I/O",
            ErrorKind::TooLarge => "too large",
            ErrorKind::Closed => "closed",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether the operation may succeed if tried again unchanged (a *conflict*).
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Conflict)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A libstate error. Its message names the offending key, bucket or path;
/// [`Error::kind`] gives its stable category.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`ErrorKind::InvalidArgument`].
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// See [`ErrorKind::Locked`].
    #[error("store {} is locked by another process; close it there (or stop that process) and retry", path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// See [`ErrorKind::Corrupt`].
    #[error("store {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The damaged file or store directory.
        path: PathBuf,
        /// What was found to be wrong, and whether the files may have been changed.
        detail: String,
    },
    /// See [`ErrorKind::Io`].
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// See [`ErrorKind::TooLarge`].
    #[error("too large: {0}")]
    TooLarge(String),
    /// See [`ErrorKind::Closed`].
    #[error("the store is closed")]
    Closed,
    /// See [`ErrorKind::Conflict`].
    #[error("conflict: {0}")]
    Conflict(String),
    /// See [`ErrorKind::Internal`].
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Io { .. } => ErrorKind::Io,
            Error::TooLarge(_) => ErrorKind::TooLarge,
            Error::Closed => ErrorKind::Closed,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// An error of `kind` with `message`, for the bindings' tests of their mapping
    /// of kinds (see [`ErrorKind::ALL`]). Not a stable API.
    #[doc(hidden)]
    pub fn example(kind: ErrorKind, message: &str) -> Error {
        let path = PathBuf::from(message);
        match kind {
            ErrorKind::InvalidArgument => Error::InvalidArgument(message.into()),
            ErrorKind::Locked => Error::Locked { path },
            ErrorKind::Corrupt => Error::Corrupt {
                path,
                detail: message.into(),
            },
            ErrorKind::Io => Error::Io {
                path,
                source: io::Error::other(message),
            },
            ErrorKind::TooLarge => Error::TooLarge(message.into()),
            ErrorKind::Closed => Error::Closed,
            ErrorKind::Conflict => Error::Conflict(message.into()),
            ErrorKind::Internal => Error::Internal(message.into()),
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }

    /// An *I/O* error on `path`. Every engine's I/O errors come through here, so
    /// each reads as the OS says it (`No space left on device (os error 28)`), also
    /// when a library handed over a Debug-formatted copy (see [`plain_io_error`]).
    pub(crate) fn io(path: &Path, source: io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source: plain_io_error(source),
        }
    }

    /// The same error for another caller: what a failed sync tells every writer that
    /// waited for it. An I/O error keeps its kind and message.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::Locked { path } => Error::Locked { path: path.clone() },
            Error::Corrupt { path, detail } => Error::Corrupt {
                path: path.clone(),
                detail: detail.clone(),
            },
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::TooLarge(m) => Error::TooLarge(m.clone()),
            Error::Conflict(m) => Error::Conflict(m.clone()),
            Error::Closed => Error::Closed,
            Error::Internal(m) => Error::Internal(m.clone()),
        }
    }

    /// A *corrupt* error whose files were left untouched.
    pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!("{}; its files were left untouched", detail.into()),
        }
    }
}

/// `e` as the operating system reported it, if `e` is a copy whose message is the
/// original's Debug text; otherwise `e` unchanged.
///
/// sled 0.34 copies an I/O error as `io::Error::new(kind, format!("{:?}", e))` (its
/// `impl Clone for sled::Error`), and hands every write after a failed flush such a
/// copy: its message would read `Os { code: 28, kind: StorageFull, message: "No
/// space left on device" }`. A copy of an OS error becomes that OS error again (its
/// message `No space left on device (os error 28)`); a copy of an error with a
/// message keeps the message, a copy of a bare kind the kind. Copies of copies are
/// undone too.
pub(crate) fn plain_io_error(e: io::Error) -> io::Error {
    if e.raw_os_error().is_some() {
        return e;
    }
    let Some(inner) = e.get_ref() else {
        return e;
    };
    match from_debug_text(e.kind(), &inner.to_string()) {
        Some(plain) => plain,
        None => e,
    }
}

/// The error whose `{:?}` is `text` (`kind` is the copy's, which sled keeps), or
/// `None` if `text` is not an `io::Error`'s Debug text.
fn from_debug_text(kind: io::ErrorKind, text: &str) -> Option<io::Error> {
    if let Some(rest) = text.strip_prefix("Os { code: ") {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        return rest[..digits]
            .parse()
            .ok()
            .map(io::Error::from_raw_os_error);
    }
    if text.starts_with("Kind(") && text.ends_with(')') {
        return Some(io::Error::from(kind));
    }
    // `Custom { kind: K, error: "msg" }` (a message of its own) and `Error { kind: K,
    // message: "msg" }` (one of std's static messages).
    let fields = text
        .strip_prefix("Custom { kind: ")
        .or_else(|| text.strip_prefix("Error { kind: "))?
        .strip_suffix(" }")?;
    let (_, literal) = fields
        .split_once(", error: ")
        .or_else(|| fields.split_once(", message: "))?;
    let message = unquote(literal)?;
    Some(from_debug_text(kind, &message).unwrap_or_else(|| io::Error::new(kind, message)))
}

/// The string a `{:?}`-formatted string literal stands for, or `None` if `literal`
/// is not one.
fn unquote(literal: &str) -> Option<String> {
    let body = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            '0' => '\0',
            'u' => {
                let hex: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            other => other, // \\, \", \'
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What sled 0.34's `Clone` makes of an I/O error.
    fn sled_copy(e: &io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("{e:?}"))
    }

    /// `ErrorKind::ALL` holds every kind once: a kind added to the enum does not
    /// compile here until it has a position, and the length check then fails until
    /// it is listed.
    #[test]
    fn all_lists_every_kind_once() {
        for (i, &k) in ErrorKind::ALL.iter().enumerate() {
            let position = match k {
                ErrorKind::InvalidArgument => 0,
                ErrorKind::Locked => 1,
                ErrorKind::Corrupt => 2,
                ErrorKind::Io => 3,
                ErrorKind::TooLarge => 4,
                ErrorKind::Closed => 5,
                ErrorKind::Conflict => 6,
                ErrorKind::Internal => 7,
            };
            assert_eq!(position, i, "{k}");
            assert_eq!(Error::example(k, "m").kind(), k);
            assert_eq!(k.is_retryable(), k == ErrorKind::Conflict);
        }
        assert_eq!(ErrorKind::ALL.len(), 8);
    }

    #[test]
    fn a_debug_formatted_copy_of_an_os_error_reads_as_the_os_error() {
        let original = io::Error::from_raw_os_error(28);
        let copy = sled_copy(&original);
        assert!(copy.to_string().starts_with("Os { code: 28"), "{copy}");
        for e in [sled_copy(&original), sled_copy(&sled_copy(&original))] {
            let plain = plain_io_error(e);
            assert_eq!(plain.raw_os_error(), Some(28));
            assert_eq!(plain.kind(), original.kind());
            assert_eq!(plain.to_string(), original.to_string());
        }
        let e = Error::io(Path::new("/store"), sled_copy(&original));
        assert_eq!(e.to_string(), format!("I/O error on /store: {original}"));
        assert_eq!(
            e.to_string(),
            "I/O error on /store: No space left on device (os error 28)"
        );
    }

    #[test]
    fn debug_formatted_copies_of_messages_and_kinds_keep_their_text() {
        let custom = io::Error::new(io::ErrorKind::InvalidData, "bad \"frame\"\tat\n\u{1}0");
        for e in [sled_copy(&custom), sled_copy(&sled_copy(&custom))] {
            let plain = plain_io_error(e);
            assert_eq!(plain.kind(), io::ErrorKind::InvalidData);
            assert_eq!(plain.to_string(), custom.to_string());
        }
        let bare = io::Error::from(io::ErrorKind::UnexpectedEof);
        let plain = plain_io_error(sled_copy(&bare));
        assert_eq!(plain.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(plain.to_string(), bare.to_string());
        // std's static messages (`SimpleMessage`).
        let text = "Error { kind: InvalidData, message: \"stream did not contain valid UTF-8\" }";
        let plain = plain_io_error(io::Error::new(io::ErrorKind::InvalidData, text));
        assert_eq!(plain.to_string(), "stream did not contain valid UTF-8");
    }

    #[test]
    fn other_errors_are_left_alone() {
        for text in [
            "Os { code: x }",
            "Custom { kind: Other, error: unquoted }",
            "disk on fire",
        ] {
            let e = plain_io_error(io::Error::other(text));
            assert_eq!(e.to_string(), text);
        }
        let os = plain_io_error(io::Error::from_raw_os_error(5));
        assert_eq!(os.raw_os_error(), Some(5));
    }
}
