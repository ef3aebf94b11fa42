//! The argument cursor every command reads its arguments with, and the argument
//! rules they share (Redis's integer syntax, libstate's key rules). The model is
//! mini-redis's `Parse`, over borrowed bytes: nothing is copied or allocated to
//! read an argument.

use std::borrow::Cow;

use state_core::{Error, ErrorKind};

/// Redis's reply for an argument that is not a 64-bit integer.
pub(crate) const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// Redis's reply for options it cannot make sense of.
pub(crate) const SYNTAX: &str = "ERR syntax error";

/// A command's failure: a reply for this command only, or a store error (inside
/// a transaction it aborts the transaction).
#[derive(Debug)]
pub(crate) enum Fail {
    /// An error reply (`ERR ...`), and the command changes nothing.
    Reply(Cow<'static, str>),
    /// The store failed.
    Store(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        match e.kind() {
            // A bad value or key for this command: Redis-style error reply.
            ErrorKind::InvalidArgument => Fail::Reply(format!("ERR {}", strip_kind(&e)).into()),
            _ => Fail::Store(e),
        }
    }
}

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail::Reply(s.into())
    }
}

impl From<&'static str> for Fail {
    fn from(s: &'static str) -> Fail {
        Fail::Reply(s.into())
    }
}

/// What a data command's handler returns.
pub(crate) type Res = Result<(), Fail>;

/// A cursor over one request's arguments (the command name is behind it).
///
/// The table's arity check runs before a handler does, so the arguments a
/// command's arity guarantees are there; reading one that is not is still an
/// error reply, never a panic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Args<'a> {
    name: &'static str,
    argv: &'a [&'a [u8]],
    pos: usize,
}

impl<'a> Args<'a> {
    /// A cursor over `argv` (name first) of the command `name`, at the first
    /// argument.
    pub(crate) fn new(name: &'static str, argv: &'a [&'a [u8]]) -> Args<'a> {
        Args { name, argv, pos: 1 }
    }

    /// The command's name, as the table spells it (lowercase).
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The arguments not read yet.
    pub(crate) fn rest(&self) -> &'a [&'a [u8]] {
        self.argv.get(self.pos..).unwrap_or_default()
    }

    /// How many arguments are not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.rest().len()
    }

    /// The next argument, if any, without moving past it.
    pub(crate) fn peek(&self) -> Option<&'a [u8]> {
        self.argv.get(self.pos).copied()
    }

    /// The next argument as bytes; a missing one is the arity error.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Fail> {
        match self.next() {
            Some(b) => Ok(b),
            None => Err(Fail::Reply(arity_message(self.name).into())),
        }
    }

    /// The next argument as a key (libstate's key rules).
    pub(crate) fn key(&mut self) -> Result<&'a str, Fail> {
        key_arg(self.bytes()?).map_err(|m| Fail::Reply(m.into()))
    }

    /// The next argument as a Redis integer.
    pub(crate) fn int(&mut self) -> Result<i64, Fail> {
        parse_i64(self.bytes()?).ok_or(Fail::Reply(NOT_INTEGER.into()))
    }
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let a = self.argv.get(self.pos).copied();
        if a.is_some() {
            self.pos += 1;
        }
        a
    }
}

/// `ERR wrong number of arguments ...` for the command `name`.
pub(crate) fn arity_message(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

/// Parses an integer as Redis's `string2ll` does: no spaces, no `+`, no leading
/// zeros, within i64.
pub(crate) fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    match digits.first() {
        Some(c) if (b'1'..=b'9').contains(c) => {}
        _ => return None,
    }
    let mut n: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = i64::from(c - b'0');
        n = if neg {
            n.checked_mul(10)?.checked_sub(d)?
        } else {
            n.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(n)
}

/// A key argument as a `str` within libstate's rules, or the error reply naming
/// the rule.
pub(crate) fn key_arg(b: &[u8]) -> Result<&str, String> {
    let s = ascii_str(b).map_or_else(|| std::str::from_utf8(b), Ok).map_err(|_| {
        "ERR invalid key: libstate keys are UTF-8 text of 1 to 1024 bytes, and this one is not UTF-8"
            .to_string()
    })?;
    state_core::limits::check_key(s).map_err(|e| {
        format!(
            "ERR invalid key: libstate keys are UTF-8 text of 1 to 1024 bytes ({})",
            strip_kind(&e)
        )
    })?;
    Ok(s)
}

/// `b` as text if every byte is ASCII: most keys are, and this check costs a
/// fraction of a full UTF-8 validation on a short key (it runs for every key of
/// every request).
#[allow(unsafe_code)]
fn ascii_str(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: every byte of `b` is below 0x80 (checked just above), and a
        // sequence of such bytes is valid UTF-8 (each is a one-byte code point),
        // which is the whole precondition of from_utf8_unchecked; the &str
        // borrows `b` for the same lifetime.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        None
    }
}

/// A core error's message without its kind's prefix, for an invalid argument.
pub(crate) fn strip_kind(e: &Error) -> String {
    let s = e.to_string();
    match s.split_once(": ") {
        Some((_, rest)) if e.kind() == ErrorKind::InvalidArgument => rest.to_string(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_reads_in_order_and_reports_what_is_left() {
        let argv: [&[u8]; 4] = [b"set", b"k", b"12", b"EX"];
        let mut a = Args::new("set", &argv);
        assert_eq!(a.name(), "set");
        assert_eq!(a.remaining(), 3);
        assert_eq!(a.key().unwrap(), "k");
        assert_eq!(a.int().unwrap(), 12);
        assert_eq!(a.peek(), Some(&b"EX"[..]));
        assert_eq!(a.rest(), &[&b"EX"[..]]);
        assert_eq!(a.next(), Some(&b"EX"[..]));
        assert_eq!(a.remaining(), 0);
        match a.bytes() {
            Err(Fail::Reply(m)) => assert_eq!(m, "ERR wrong number of arguments for 'set' command"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_keys_and_integers_are_replies_not_panics() {
        let argv: [&[u8]; 3] = [b"incrby", b"", b"+1"];
        let mut a = Args::new("incrby", &argv);
        assert!(matches!(a.key(), Err(Fail::Reply(m)) if m.starts_with("ERR invalid key")));
        assert!(matches!(a.int(), Err(Fail::Reply(m)) if m == NOT_INTEGER));
    }

    #[test]
    fn integers_follow_redis() {
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b"01"[..], b"+1", b" 1", b"-0", b"", b"1.0"] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }
}
