//! The Redis protocol's framing: requests (RESP arrays of bulk strings, and inline
//! commands as telnet users type them) and replies (RESP2 or RESP3).
//!
//! The parser is incremental and zero-copy: [`parse`] looks at the bytes received so
//! far and either returns one complete request, as ranges into the buffer, or says
//! that more bytes are needed. (An inline command's arguments are decoded, quotes
//! and escapes as Redis reads them, over the line's own bytes in the buffer.) Lengths are checked before anything is buffered, so a
//! peer announcing a 4 GiB bulk or a billion-element array is refused at once.

use std::ops::Range;

/// Limits on what one request may announce.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Most elements in one request array.
    pub max_args: usize,
    /// Longest bulk string (an argument), in bytes.
    pub max_bulk: usize,
    /// Longest inline command line, in bytes.
    pub max_inline: usize,
    /// Most bytes one request may take in all (framing included): checked as each
    /// length header arrives, before the bytes it announces are buffered.
    pub max_request: usize,
}

/// What [`parse`] found at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete request: its arguments as ranges of the buffer, and how many bytes
    /// it took.
    Request {
        /// Each argument's bytes in the buffer.
        args: Vec<Range<usize>>,
        /// Bytes consumed.
        len: usize,
    },
    /// An empty line or an empty array: nothing to run; skip `len` bytes.
    Empty(usize),
    /// More bytes are needed.
    Incomplete,
}

/// A protocol error: the connection gets `-ERR Protocol error: ...` and is closed.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

/// What a length header (`*N` or `$N`) holds.
#[derive(Debug, PartialEq, Eq)]
enum Header {
    /// Its number, and where its CRLF starts.
    Len(i64, usize),
    /// Its CRLF has not arrived yet (and nothing wrong was seen).
    Incomplete,
    /// Malformed: not a decimal integer, longer than any limit allows, or a CR
    /// without its LF.
    Bad,
}

/// Reads the length header whose marker (`*` or `$`) is at `at`, in one pass:
/// an optional `-`, at most 18 digits (every limit is far below 10^18), CRLF.
#[inline(always)]
fn header(buf: &[u8], at: usize) -> Header {
    let mut i = at + 1;
    let neg = buf.get(i) == Some(&b'-');
    if neg {
        i += 1;
    }
    let digits = i;
    let mut n: i64 = 0;
    while let Some(&c) = buf.get(i) {
        match c {
            b'0'..=b'9' if i - digits < 18 => {
                n = n * 10 + i64::from(c - b'0');
                i += 1;
            }
            b'\r' if i > digits => {
                return match buf.get(i + 1) {
                    Some(b'\n') => Header::Len(if neg { -n } else { n }, i),
                    Some(_) => Header::Bad,
                    None => Header::Incomplete,
                };
            }
            _ => return Header::Bad,
        }
    }
    Header::Incomplete
}

/// Longest length header (`*N` or `$N` line) accepted before its CRLF: [`header`]
/// refuses one of over 18 digits (and a sign) as soon as it sees it.
#[cfg(test)]
const MAX_HEADER: usize = 32;

/// How far a partly received array request has been parsed (its complete
/// arguments so far are the parser's `args`).
#[derive(Debug, Default)]
struct Progress {
    /// Elements the array announced.
    n: usize,
    /// Where the next element starts (relative to the request's first byte).
    pos: usize,
}

/// What [`Parser::parse_next`] found at the start of the buffer: as [`Parsed`],
/// with a complete request's arguments left in the parser ([`Parser::args`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A complete request of this many bytes; its arguments are [`Parser::args`].
    Request(usize),
    /// An empty line or an empty array: nothing to run; skip this many bytes.
    Empty(usize),
    /// More bytes are needed.
    Incomplete,
}

/// An incremental request parser for one connection.
///
/// It keeps its progress through a partly received request between calls, so bytes
/// it has parsed are never parsed again: a request trickled in one byte at a time
/// costs time in proportion to its length, not to its length squared. Between calls
/// the caller must keep the partly received request at the start of the buffer it
/// passes (dropping only the bytes of requests already returned), and must call
/// [`Parser::reset`] if it drops the request's bytes some other way.
#[derive(Debug, Default)]
pub struct Parser {
    progress: Option<Progress>,
    /// For an inline command: bytes already searched for the end of the line.
    inline_scanned: usize,
    /// Bytes examined in all (for tests that prove the work is linear).
    scanned: u64,
    /// After [`Parsed::Incomplete`] inside a bulk string: how many bytes (from the
    /// request's first) complete that bulk; 0 otherwise.
    awaiting: usize,
    /// The arguments of the request being parsed, or of the one just returned:
    /// one vector for the connection's life, so a request costs no allocation.
    args: Vec<Range<usize>>,
}

impl Parser {
    /// A parser with no request in progress.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Forgets a request in progress.
    pub fn reset(&mut self) {
        self.progress = None;
        self.inline_scanned = 0;
        self.awaiting = 0;
    }

    /// After [`Parsed::Incomplete`] in the middle of a bulk string whose length has
    /// arrived: the bytes, counted from the request's first, that complete it (a
    /// reader can make room for them at once instead of growing step by step).
    /// 0 when no length is pending.
    pub fn awaiting(&self) -> usize {
        if self.progress.is_some() {
            self.awaiting
        } else {
            0
        }
    }

    /// Bytes this parser has examined so far, over all calls.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// Whether part of a request has been received (and parsed) but not all.
    pub fn in_progress(&self) -> bool {
        self.progress.is_some() || self.inline_scanned > 0
    }

    /// Parses one request from the start of `buf`, resuming where the last call that
    /// returned [`Parsed::Incomplete`] stopped. A complete inline command's bytes are
    /// overwritten with its decoded arguments (which the returned ranges point at);
    /// nothing else in `buf` is changed.
    ///
    /// # Errors
    /// A [`ProtocolError`] for malformed framing or a length over `limits`; the bytes
    /// of the bad request are never run. After an error the parser must not be used
    /// again (the connection closes).
    pub fn parse(&mut self, buf: &mut [u8], limits: &ParseLimits) -> Result<Parsed, ProtocolError> {
        Ok(match self.parse_next(buf, limits)? {
            Next::Request(len) => Parsed::Request {
                args: self.args.clone(),
                len,
            },
            Next::Empty(n) => Parsed::Empty(n),
            Next::Incomplete => Parsed::Incomplete,
        })
    }

    /// The arguments of the request the last [`Parser::parse_next`] returned, as
    /// ranges of the buffer it was given.
    pub fn args(&self) -> &[Range<usize>] {
        &self.args
    }

    /// [`Parser::parse`] without allocating: a complete request's arguments are
    /// left in the parser ([`Parser::args`]), in a vector it keeps from one request
    /// to the next (inline commands, as telnet users type them, still allocate).
    ///
    /// # Errors
    /// As [`Parser::parse`].
    pub fn parse_next(
        &mut self,
        buf: &mut [u8],
        limits: &ParseLimits,
    ) -> Result<Next, ProtocolError> {
        self.awaiting = 0;
        let Some(&first) = buf.first() else {
            return Ok(Next::Incomplete);
        };
        if first != b'*' {
            return self.parse_inline(buf, limits);
        }
        let mut p = match self.progress.take() {
            Some(p) => p,
            None => {
                let (n, end) = match header(buf, 0) {
                    Header::Len(n, end) => (n, end),
                    Header::Incomplete => {
                        self.scanned += buf.len() as u64;
                        return Ok(Next::Incomplete);
                    }
                    Header::Bad => return Err(ProtocolError("invalid multibulk length".into())),
                };
                self.scanned += (end + 2) as u64;
                if n > limits.max_args as i64 {
                    return Err(ProtocolError("invalid multibulk length".into()));
                }
                let pos = end + 2;
                if n <= 0 {
                    return Ok(Next::Empty(pos));
                }
                let n = n as usize;
                self.args.clear();
                if self.args.capacity() < n.min(1024) {
                    self.args.reserve(n.min(1024));
                }
                Progress { n, pos }
            }
        };
        while self.args.len() < p.n {
            let pos = p.pos;
            if pos >= buf.len() {
                self.progress = Some(p);
                return Ok(Next::Incomplete);
            }
            if buf[pos] != b'$' {
                return Err(ProtocolError(format!(
                    "expected '$', got '{}'",
                    char::from(buf[pos]).escape_default()
                )));
            }
            let (len, end) = match header(buf, pos) {
                Header::Len(l, end) if l >= 0 && l as u64 <= limits.max_bulk as u64 => {
                    (l as usize, end)
                }
                Header::Incomplete => {
                    self.scanned += (buf.len() - pos) as u64;
                    self.progress = Some(p);
                    return Ok(Next::Incomplete);
                }
                _ => return Err(ProtocolError("invalid bulk length".into())),
            };
            let start = end + 2;
            let stop = start + len;
            if stop + 2 > limits.max_request {
                return Err(ProtocolError(format!(
                    "request over the limit of {} bytes",
                    limits.max_request
                )));
            }
            if buf.len() < stop + 2 {
                // Resume at this bulk's header: re-reading it (at most 21 bytes)
                // is cheaper than keeping its parsed length.
                self.scanned += (end + 2 - pos) as u64;
                self.awaiting = stop + 2;
                self.progress = Some(p);
                return Ok(Next::Incomplete);
            }
            self.scanned += (stop + 2 - pos) as u64;
            if buf[stop] != b'\r' || buf[stop + 1] != b'\n' {
                return Err(ProtocolError("bulk string not followed by CRLF".into()));
            }
            self.args.push(start..stop);
            p.pos = stop + 2;
        }
        Ok(Next::Request(p.pos))
    }

    fn parse_inline(
        &mut self,
        buf: &mut [u8],
        limits: &ParseLimits,
    ) -> Result<Next, ProtocolError> {
        let from = self.inline_scanned.min(buf.len());
        let Some(nl) = buf[from..]
            .iter()
            .position(|&c| c == b'\n')
            .map(|i| i + from)
        else {
            self.scanned += (buf.len() - from) as u64;
            self.inline_scanned = buf.len();
            if buf.len() > limits.max_inline.min(limits.max_request) {
                return Err(ProtocolError("too big inline request".into()));
            }
            return Ok(Next::Incomplete);
        };
        self.scanned += (nl + 1 - from) as u64;
        self.inline_scanned = 0;
        if nl > limits.max_inline.min(limits.max_request) {
            return Err(ProtocolError("too big inline request".into()));
        }
        let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        self.args = split_inline(&mut buf[..line_end], limits)?;
        if self.args.is_empty() {
            return Ok(Next::Empty(nl + 1));
        }
        Ok(Next::Request(nl + 1))
    }
}

/// Calls `f` with the arguments at `ranges` (offset by `base`) of `buf` as byte
/// slices: those of a request of up to eight arguments are held on the stack, so
/// running a request allocates nothing for them.
pub fn with_argv<R>(
    buf: &[u8],
    base: usize,
    ranges: &[Range<usize>],
    f: impl FnOnce(&[&[u8]]) -> R,
) -> R {
    let arg = |r: &Range<usize>| buf.get(base + r.start..base + r.end).unwrap_or_default();
    let mut small: [&[u8]; 8] = [&[]; 8];
    if ranges.len() <= small.len() {
        for (slot, r) in small.iter_mut().zip(ranges) {
            *slot = arg(r);
        }
        f(&small[..ranges.len()])
    } else {
        let spilled: Vec<&[u8]> = ranges.iter().map(arg).collect();
        f(&spilled)
    }
}

/// Parses one request from the start of `buf` with a fresh [`Parser`] (no progress
/// kept between calls: for callers that hold the whole input).
///
/// # Errors
/// As [`Parser::parse`].
pub fn parse(buf: &mut [u8], limits: &ParseLimits) -> Result<Parsed, ProtocolError> {
    Parser::new().parse(buf, limits)
}

/// C's `isspace` in the "C" locale, which Redis's `sdssplitargs` uses.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline command line into arguments as Redis's `sdssplitargs` does,
/// writing the decoded arguments over the start of `line` (they are never longer
/// than the text they come from) and returning where each one is.
///
/// Arguments are separated by blanks. In double quotes `\xHH` is a byte,
/// `\n \r \t \b \a` are control characters and `\` before any other byte is
/// that byte; in single quotes only `\'` is an escape. A quote may start in the
/// middle of an argument (`a"b c"` is `ab c`), but a closing quote must be
/// followed by a blank or the end of the line. An unterminated quote, or a
/// closing quote followed by something else, is a protocol error ("unbalanced
/// quotes"), and so is a NUL byte anywhere in the line.
fn split_inline(line: &mut [u8], limits: &ParseLimits) -> Result<Vec<Range<usize>>, ProtocolError> {
    let unbalanced = || ProtocolError("unbalanced quotes in request".into());
    // Redis reads the line as a C string: it never finds the end of a line with a
    // NUL in it and waits for ever. Here that is a protocol error.
    if line.contains(&0) {
        return Err(ProtocolError("NUL byte in an inline request".into()));
    }
    let end = line.len();
    let at = |i: usize| if i < end { line[i] } else { 0 };
    let mut decoded: Vec<u8> = Vec::with_capacity(end);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < end && is_c_space(line[p]) {
            p += 1;
        }
        if p >= end {
            break;
        }
        let start = decoded.len();
        let (mut inq, mut insq) = (false, false);
        loop {
            let c = at(p);
            if inq {
                if c == b'\\' && at(p + 1) == b'x' {
                    if let (Some(h), Some(l)) = (hex_val(at(p + 2)), hex_val(at(p + 3))) {
                        decoded.push(h * 16 + l);
                        p += 4;
                        continue;
                    }
                }
                if c == b'\\' && at(p + 1) != 0 {
                    decoded.push(match at(p + 1) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    p += 2;
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return Err(unbalanced());
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(unbalanced());
                } else {
                    decoded.push(c);
                    p += 1;
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    decoded.push(b'\'');
                    p += 2;
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return Err(unbalanced());
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(unbalanced());
                } else {
                    decoded.push(c);
                    p += 1;
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    _ => decoded.push(c),
                }
                p += 1;
            }
        }
        args.push(start..decoded.len());
        if args.len() > limits.max_args {
            return Err(ProtocolError("invalid multibulk length".into()));
        }
    }
    line[..decoded.len()].copy_from_slice(&decoded);
    Ok(args)
}

/// A reply writer for one connection: appends RESP2 or RESP3 encodings.
///
/// It has a byte limit ([`Out::set_limit`]): a bulk string that would take the
/// buffer past it is not appended and marks the writer [`Out::overflowed`], so a
/// reply too large to send (MGET of many large values, KEYS over many keys) fails
/// before its memory is allocated.
#[derive(Debug)]
pub struct Out {
    /// The encoded replies not yet sent.
    pub buf: Vec<u8>,
    /// RESP3 (after `HELLO 3`) rather than RESP2.
    pub resp3: bool,
    limit: usize,
    overflow: bool,
    /// Key lookups of read commands since the last [`Out::take_lookups`]: hits,
    /// misses.
    lookups: (u64, u64),
}

impl Default for Out {
    fn default() -> Self {
        Out::new(false)
    }
}

impl Out {
    /// A writer for the given protocol version, with no limit.
    pub fn new(resp3: bool) -> Out {
        Out {
            buf: Vec::with_capacity(4096),
            resp3,
            limit: usize::MAX,
            overflow: false,
            lookups: (0, 0),
        }
    }

    /// Counts a read command's key lookup (Redis's keyspace hits and misses):
    /// whether the key was found.
    pub fn lookup(&mut self, found: bool) {
        if found {
            self.lookups.0 += 1;
        } else {
            self.lookups.1 += 1;
        }
    }

    /// Counts `hits` lookups that found their key and `misses` that did not.
    pub fn lookups(&mut self, hits: u64, misses: u64) {
        self.lookups.0 += hits;
        self.lookups.1 += misses;
    }

    /// The lookups counted since the last call (hits, misses), and zero again.
    pub fn take_lookups(&mut self) -> (u64, u64) {
        std::mem::take(&mut self.lookups)
    }

    /// Sets the most bytes the buffer may hold, and clears the overflow mark.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        self.overflow = false;
    }

    /// Whether a bulk string was refused because it would have passed the limit
    /// (since the last [`Out::set_limit`]).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Bytes left under the limit.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.buf.len())
    }

    /// Marks the reply refused for its size (as a bulk string past the limit does).
    pub fn refuse(&mut self) {
        self.overflow = true;
    }

    /// Whether `n` more bytes fit under the limit; marks the overflow if not.
    fn fits(&mut self, n: usize) -> bool {
        if self.overflow || self.buf.len().saturating_add(n) > self.limit {
            self.overflow = true;
            return false;
        }
        true
    }

    fn int_line(&mut self, prefix: u8, n: i64) {
        // Built on the stack and appended in one piece: the prefix, at most 20
        // digits and a sign, CRLF.
        let mut line = [0u8; 24];
        let mut digits = [0u8; 20];
        let at = itoa_buf(n, &mut digits);
        let len = digits.len() - at;
        line[0] = prefix;
        line[1..=len].copy_from_slice(&digits[at..]);
        line[len + 1] = b'\r';
        line[len + 2] = b'\n';
        self.buf.extend_from_slice(&line[..len + 3]);
    }

    /// `+OK`-style simple string (must not contain CR or LF).
    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// An error reply; `msg` starts with its prefix (`ERR ...`, `WRONGPASS ...`).
    /// Line breaks in `msg` become spaces.
    pub fn error(&mut self, msg: &str) {
        self.buf.push(b'-');
        self.buf.extend(
            msg.bytes()
                .map(|c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer.
    pub fn int(&mut self, n: i64) {
        self.int_line(b':', n);
    }

    /// A bulk string (not appended if it would pass the limit: see [`Out`]).
    pub fn bulk(&mut self, b: &[u8]) {
        if !self.fits(b.len() + 32) {
            return;
        }
        // One reservation for the whole reply.
        self.buf.reserve(b.len() + 26);
        self.int_line(b'$', b.len() as i64);
        self.buf.extend_from_slice(b);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// The null reply (`$-1` in RESP2, `_` in RESP3).
    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    /// The null array (`*-1` in RESP2, `_` in RESP3): EXEC after a failed WATCH.
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }

    /// An array header; `n` elements follow.
    pub fn array(&mut self, n: usize) {
        self.int_line(b'*', n as i64);
    }

    /// A push header with `n` elements (RESP3 `>`; RESP2 an array): pub/sub
    /// confirmations and messages.
    pub fn push(&mut self, n: usize) {
        self.int_line(if self.resp3 { b'>' } else { b'*' }, n as i64);
    }

    /// A set header with `n` elements (RESP3 `~`; RESP2 an array).
    pub fn set(&mut self, n: usize) {
        self.int_line(if self.resp3 { b'~' } else { b'*' }, n as i64);
    }

    /// A map header with `n` pairs (RESP2: an array of 2n elements).
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.int_line(b'%', n as i64);
        } else {
            self.int_line(b'*', (2 * n) as i64);
        }
    }

    /// A verbatim text reply (RESP3 `=` with format `txt`; RESP2 a bulk string),
    /// as INFO and CLIENT INFO send.
    pub fn verbatim(&mut self, text: &str) {
        if !self.fits(text.len() + 32) {
            return;
        }
        if self.resp3 {
            self.int_line(b'=', (text.len() + 4) as i64);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }
}

/// `n` in decimal, written at the end of `buf`: the digits are `buf[at..]` for
/// the returned `at` (no allocation; an i64 takes at most 20 bytes).
fn itoa_buf(n: i64, buf: &mut [u8; 20]) -> usize {
    let mut v = n.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot parse of a copy (inline commands are decoded in place).
    fn parse(buf: &[u8], limits: &ParseLimits) -> Result<Parsed, ProtocolError> {
        super::parse(&mut buf.to_vec(), limits)
    }

    const L: ParseLimits = ParseLimits {
        max_args: 1024,
        max_bulk: 1 << 20,
        max_inline: 64 << 10,
        max_request: 4 << 20,
    };

    fn args(buf: &[u8]) -> Vec<Vec<u8>> {
        let mut buf = buf.to_vec();
        let total = buf.len();
        match super::parse(&mut buf, &L).unwrap() {
            Parsed::Request { args, len } => {
                assert_eq!(len, total);
                args.into_iter().map(|r| buf[r].to_vec()).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn arrays_of_bulks_binary_safe() {
        assert_eq!(
            args(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\n\0\r\n"),
            vec![b"SET".to_vec(), b"k".to_vec(), b"a\r\n\0".to_vec()]
        );
        assert_eq!(args(b"*1\r\n$0\r\n\r\n"), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete() {
        let full = b"*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
        for cut in 0..full.len() {
            assert_eq!(
                parse(&full[..cut], &L).unwrap(),
                Parsed::Incomplete,
                "{cut}"
            );
        }
    }

    #[test]
    fn inline_commands() {
        assert_eq!(args(b"PING\r\n"), vec![b"PING".to_vec()]);
        assert_eq!(
            args(b"set  k \"a b\"\n"),
            vec![b"set".to_vec(), b"k".to_vec(), b"a b".to_vec()]
        );
        assert_eq!(parse(b"\r\n", &L).unwrap(), Parsed::Empty(2));
        assert!(parse(b"set \"a\n", &L).is_err());
    }

    /// Each line's arguments as redis-server 7.0.15 reads them (checked by sending
    /// `RPUSH l LINE` and `LRANGE l 0 -1` to it).
    #[test]
    fn inline_quoting_follows_redis_sdssplitargs() {
        let v = |xs: &[&[u8]]| xs.iter().map(|x| x.to_vec()).collect::<Vec<_>>();
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"a \"b c\" d", &[b"a", b"b c", b"d"]),
            (
                b"\"\\x41\\x4a\\x4\" \"\\n\\r\\t\\b\\a\\z\\\\\"",
                &[b"AJx4", b"\n\r\t\x08\x07z\\"],
            ),
            (b"'a\\'b' 'c\\nd'", &[b"a'b", b"c\\nd"]),
            (b"a\"b c\"", &[b"ab c"]),
            (b"\"\"  '' x", &[b"", b"", b"x"]),
            (b"a\x0bb", &[b"a\x0bb"]),
            (b"\x0ba b", &[b"a", b"b"]),
            (b"\"\\xZZ\\x4\"", &[b"xZZx4"]),
            (b"\"a\\\"b\"", &[b"a\"b"]),
            (b"x \"\\\\x41\"", &[b"x", b"\\x41"]),
        ];
        for (line, want) in cases {
            let mut req = line.to_vec();
            req.extend_from_slice(b"\r\n");
            assert_eq!(args(&req), v(want), "{}", line.escape_ascii());
        }
    }

    #[test]
    fn unbalanced_inline_quotes_are_a_protocol_error() {
        for line in [
            &b"\"ab\"c\r\n"[..],
            b"'ab'c\r\n",
            b"\"abc\r\n",
            b"'abc\r\n",
            b"a\\\"b\r\n",
            b"set \"\"\"test-key\"\"\" test-value\r\n",
        ] {
            let e = parse(line, &L).unwrap_err();
            assert_eq!(
                e.0,
                "unbalanced quotes in request",
                "{}",
                line.escape_ascii()
            );
        }
        assert!(parse(b"a\0b c\r\n", &L).is_err());
        assert!(parse(b"\"a\0b\"\r\n", &L).is_err());
    }

    /// The decoded arguments are written over the line itself; the bytes after the
    /// line (the next request) are untouched.
    #[test]
    fn inline_decoding_stays_within_its_line() {
        let mut buf = b"set k \"\\x41\\x42\"\r\nGET k\r\n".to_vec();
        let Parsed::Request { args, len } = super::parse(&mut buf, &L).unwrap() else {
            panic!("a request");
        };
        let got: Vec<&[u8]> = args.iter().map(|r| &buf[r.clone()]).collect();
        assert_eq!(got, [&b"set"[..], b"k", b"AB"]);
        assert_eq!(&buf[len..], b"GET k\r\n");
    }

    #[test]
    fn lengths_over_the_limits_are_refused_before_buffering() {
        assert!(parse(b"*2000\r\n", &L).is_err());
        assert!(parse(b"*1\r\n$2000000\r\n", &L).is_err());
        assert!(parse(b"*1\r\n$-5\r\n", &L).is_err());
        assert!(parse(b"*x\r\n", &L).is_err());
        assert!(parse(b"*1\r\n+OK\r\n", &L).is_err());
        assert!(parse(b"*1\r\n$1\r\nab\r\n", &L).is_err());
        assert!(parse(b"*99999999999999999999999\r\n", &L).is_err());
        // A header that never ends is not buffered forever.
        assert!(parse(&[b'*'; 100], &L).is_err());
        assert!(parse(&vec![b'a'; (64 << 10) + 1], &L).is_err());
    }

    #[test]
    fn a_request_over_the_total_limit_is_refused_at_its_header() {
        let l = ParseLimits {
            max_request: 100,
            ..L
        };
        // The second bulk's header announces more than the request may hold: refused
        // before any of its bytes arrive.
        assert!(parse(b"*2\r\n$3\r\nSET\r\n$200\r\n", &l).is_err());
        assert!(parse(b"*2\r\n$3\r\nSET\r\n$20\r\n", &l).is_ok());
    }

    /// A request trickled in one byte at a time is parsed in time linear in its
    /// length: the parser never examines a byte it has parsed again (bar one bulk
    /// header per call).
    #[test]
    fn a_trickled_request_costs_linear_work() {
        let n = 2000;
        let mut req = format!("*{n}\r\n").into_bytes();
        for i in 0..n {
            let a = format!("arg{i}");
            req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        let l = ParseLimits {
            max_args: 4096,
            ..L
        };
        let mut p = Parser::new();
        for cut in 1..req.len() {
            assert_eq!(
                p.parse(&mut req[..cut], &l).unwrap(),
                Parsed::Incomplete,
                "{cut}"
            );
        }
        match p.parse(&mut req, &l).unwrap() {
            Parsed::Request { args, len } => {
                assert_eq!(len, req.len());
                assert_eq!(args.len(), n);
                assert_eq!(
                    &req[args[n - 1].clone()],
                    format!("arg{}", n - 1).as_bytes()
                );
            }
            other => panic!("{other:?}"),
        }
        // Each call re-reads at most one bulk header (<= 32 bytes); restarting from
        // byte 0 would cost len^2/2 (about 4e8 here).
        let bound = (req.len() as u64) * (super::MAX_HEADER as u64 + 2);
        assert!(p.scanned() <= bound, "scanned {} > {bound}", p.scanned());
        // And an inline line trickled byte by byte is searched once.
        let mut line = vec![b'a'; 10_000];
        let mut p = Parser::new();
        for cut in 1..=line.len() {
            assert_eq!(p.parse(&mut line[..cut], &L).unwrap(), Parsed::Incomplete);
        }
        assert!(p.scanned() <= line.len() as u64);
    }

    #[test]
    fn length_headers_in_one_pass() {
        use super::{header, Header};
        assert_eq!(header(b"*12\r\n", 0), Header::Len(12, 3));
        assert_eq!(header(b"x$-1\r\n", 1), Header::Len(-1, 4));
        assert_eq!(header(b"$0\r\n", 0), Header::Len(0, 2));
        for incomplete in [&b"$"[..], b"$1", b"$-", b"$12\r"] {
            assert_eq!(header(incomplete, 0), Header::Incomplete);
        }
        for bad in [
            &b"$\r\n"[..],
            b"$-\r\n",
            b"$1x",
            b"$1\rx",
            b"$ 1\r\n",
            b"$1234567890123456789",
        ] {
            assert_eq!(header(bad, 0), Header::Bad, "{}", bad.escape_ascii());
        }
        assert_eq!(
            header(b"$123456789012345678\r\n", 0),
            Header::Len(123_456_789_012_345_678, 19)
        );
    }

    #[test]
    fn integers_are_formatted_without_allocating() {
        let mut o = Out::new(false);
        for n in [0, 7, -7, 1234567890, i64::MAX, i64::MIN] {
            o.buf.clear();
            o.int(n);
            assert_eq!(o.buf, format!(":{n}\r\n").into_bytes());
        }
    }

    #[test]
    fn replies_in_both_protocols() {
        let mut o = Out::new(false);
        o.null();
        o.map(1);
        o.int(-2);
        o.error("ERR a\r\nb");
        assert_eq!(o.buf, b"$-1\r\n*2\r\n:-2\r\n-ERR a  b\r\n");
        let mut o = Out::new(true);
        o.null();
        o.map(1);
        o.verbatim("x");
        assert_eq!(o.buf, b"_\r\n%1\r\n=5\r\ntxt:x\r\n");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_parse_or_fail_cleanly(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Ok(Parsed::Request { args, len }) = parse(&data, &L) {
                proptest::prop_assert!(len <= data.len());
                for r in args {
                    proptest::prop_assert!(r.end <= len);
                }
            }
        }

        #[test]
        fn encoded_requests_round_trip(parts in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 1..8)) {
            let mut buf = format!("*{}\r\n", parts.len()).into_bytes();
            for p in &parts {
                buf.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
                buf.extend_from_slice(p);
                buf.extend_from_slice(b"\r\n");
            }
            proptest::prop_assert_eq!(args(&buf), parts);
        }
    }
}
