//! Failures and the exit codes they map to (documented in `state --help`).

use std::fmt::Display;
use std::path::Path;

use state_core::{Error, ErrorKind};

/// An exit code of `state`, other than 0 (success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The key or bucket named does not exist.
    NotFound = 1,
    /// Bad arguments or bad input; nothing of the rejected input was written.
    Usage = 2,
    /// The store cannot be used, or `check` found problems.
    Store = 3,
}

/// Why a command failed: a message for standard error, an optional hint on what to
/// do, and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: Code,
    /// One line saying what went wrong, naming the thing.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

/// The result of a command.
pub type CmdResult<T = ()> = Result<T, Failure>;

impl Failure {
    fn new(code: Code, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// Exit code 1.
    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(Code::NotFound, message)
    }

    /// Exit code 2.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Code::Usage, message)
    }

    /// Exit code 3.
    pub fn store(message: impl Into<String>) -> Failure {
        Failure::new(Code::Store, message)
    }

    /// An input file (given on the command line) could not be read: exit code 2.
    pub fn input(path: &Path, e: impl Display) -> Failure {
        Failure::usage(format!("cannot read {}: {e}", path.display()))
    }

    /// An output file or stream could not be written: exit code 3.
    pub fn output(what: impl Display, e: impl Display) -> Failure {
        Failure::store(format!("cannot write {what}: {e}"))
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
}

impl From<state_service::Error> for Failure {
    /// The core's errors as above; a write over a quota is about the store: 3.
    fn from(e: state_service::Error) -> Failure {
        match e {
            state_service::Error::Store(e) => Failure::from(e),
            other => Failure::store(other.to_string()),
        }
    }
}

impl From<Error> for Failure {
    /// Rejected input is a usage error (2); everything else about the store is 3.
    /// A locked store gets a hint on what to do.
    fn from(e: Error) -> Failure {
        match e.kind() {
            ErrorKind::InvalidArgument | ErrorKind::TooLarge => Failure::usage(e.to_string()),
            ErrorKind::Locked => {
                let holders = match &e {
                    Error::Locked { path } => crate::locked::holders(path),
                    _ => Vec::new(),
                };
                let who = if holders.is_empty() {
                    "a service or program using libstate".to_string()
                } else {
                    let list: Vec<String> = holders
                        .iter()
                        .map(|(pid, name)| format!("process {pid} ({name})"))
                        .collect();
                    list.join(", ")
                };
                let served = holders.iter().any(|(_, cmd)| cmd.contains(" serve"));
                let hint = if served {
                    format!(
                        "one process owns a store at a time, and {who} has this one open; \
                         commands go through `state serve` over its Unix socket \
                         (<store>/state.sock), which this one runs without: restart it \
                         without `--unix off`, or reach it with redis-cli or HTTP"
                    )
                } else {
                    format!(
                        "one process owns a store at a time, and {who} has this one open: stop \
                         it (or make the change through it), then run this command again"
                    )
                };
                Failure::store(e.to_string()).with_hint(hint)
            }
            _ => Failure::store(e.to_string()),
        }
    }
}
