//! The service's error: the core's errors, plus the one the service adds (a write
//! over a client's quota).

/// The result type of the service's fallible methods.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A service error: [`Error::kind`] gives its stable category.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store's error (invalid argument, closed, I/O, ...).
    #[error(transparent)]
    Store(#[from] state_core::Error),
    /// A write would take the client over its quota (records, bytes or value
    /// size). Nothing was written.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
}

/// The stable category of an [`Error`]: one of the core's kinds, or the
/// service's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`state_core::ErrorKind`].
    Store(state_core::ErrorKind),
    /// See [`Error::QuotaExceeded`].
    QuotaExceeded,
}

impl ErrorKind {
    /// A short lowercase name, stable across releases (the core's for its kinds).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Store(k) => k.as_str(),
            ErrorKind::QuotaExceeded => "quota exceeded",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The stable category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Store(e) => ErrorKind::Store(e.kind()),
            Error::QuotaExceeded(_) => ErrorKind::QuotaExceeded,
        }
    }

    /// The core's error, if this is one.
    pub fn as_store(&self) -> Option<&state_core::Error> {
        match self {
            Error::Store(e) => Some(e),
            Error::QuotaExceeded(_) => None,
        }
    }

    /// Whether this is the core's *invalid argument*.
    pub fn is_invalid_argument(&self) -> bool {
        self.kind() == ErrorKind::Store(state_core::ErrorKind::InvalidArgument)
    }
}
