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
/// Bindings map these one to one: C `state_status` codes, Python exception classes.
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
    /// A write would take a service client over its quota (records, bytes or value
    /// size). Nothing was written.
    QuotaExceeded,
    /// A bug in libstate or an engine (for example a caught panic). Please report it.
    Internal,
}

impl ErrorKind {
    /// A short lowercase name, stable across releases (used by bindings and the CLI).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Locked => "locked",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Io => "I/O",
            ErrorKind::TooLarge => "too large",
            ErrorKind::Closed => "closed",
            ErrorKind::QuotaExceeded => "quota exceeded",
            ErrorKind::Internal => "internal",
        }
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
    /// See [`ErrorKind::QuotaExceeded`].
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
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
            Error::QuotaExceeded(_) => ErrorKind::QuotaExceeded,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
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
            Error::QuotaExceeded(m) => Error::QuotaExceeded(m.clone()),
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
