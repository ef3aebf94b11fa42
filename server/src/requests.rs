//! Running the complete requests a connection has received: parsed in order from
//! its read buffer, consecutive plain GETs (or SETs) gathered into a run that goes
//! to the core at once ([`Run`], cmd/batch.rs), every other request run alone,
//! each reply written under its output limit. The connection loop (conn.rs) and
//! the fuzz harness (fuzzing.rs) both drive this one loop, so the harness and the
//! benchmarks built on it run the path `state serve` runs.
//!
//! The loop itself does no I/O: it stops ([`Stop`]) when the replies should be
//! written out, when the connection must close, and when a request must run off
//! the event loop ([`Offloaded`]); the caller does that and calls again.

use std::ops::Range;
use std::time::Instant;

use crate::cmd::{self, After, Found, Run};
use crate::metrics::ErrorClass;
use crate::resp::{self, Next, Out, ParseLimits, Parser};
use crate::session::Session;
use crate::Shared;

/// Replies are written out once this many bytes are pending, even in the middle of
/// a pipeline, so a long pipeline needs no unbounded buffer.
pub(crate) const FLUSH_AT: usize = 64 << 10;

/// The framing limits for a session: small ones until it has signed in.
pub(crate) fn limits_for(shared: &Shared, sess: &Session) -> ParseLimits {
    if sess.client.is_some() {
        ParseLimits {
            max_args: shared.cfg.max_multibulk,
            max_bulk: shared.max_bulk_for(sess.client.as_deref().unwrap_or_default()),
            max_inline: 64 << 10,
            max_request: shared.cfg.max_query_bytes,
        }
    } else {
        ParseLimits {
            max_args: crate::PREAUTH_MAX_ARGS,
            max_bulk: crate::PREAUTH_MAX_BULK,
            max_inline: crate::PREAUTH_MAX_BULK,
            max_request: crate::PREAUTH_MAX_QUERY,
        }
    }
}

/// Why [`Requests::step`] stopped.
pub(crate) enum Stop {
    /// Every complete request has run; what is left of the buffer (from
    /// [`Requests::take_consumed`]'s count on) is an incomplete request or
    /// nothing.
    Drained,
    /// The replies reached [`FLUSH_AT`] bytes: write them out, then begin again
    /// (requests remain).
    Flush,
    /// A request closes the connection (QUIT): write the replies and close.
    Close,
    /// A protocol error: its error reply is written; write it and close.
    Broken,
    /// This request may take long: run it where it may block
    /// ([`Offloaded::run`]), then hand its outcome to [`Requests::finish`].
    Offload(Offloaded),
}

/// A request to be run off the event loop.
pub(crate) struct Offloaded {
    /// Where the request starts in the buffer.
    base: usize,
    /// Its arguments' ranges, relative to `base`.
    ranges: Vec<Range<usize>>,
    found: Found,
    /// Where its reply starts in the output, and its output limit.
    mark: usize,
    room: usize,
}

impl Offloaded {
    /// Runs the request (its bytes in `buf`, the buffer [`Requests::step`] was
    /// given), writing its reply.
    pub(crate) fn run(
        &self,
        shared: &Shared,
        sess: &mut Session,
        buf: &[u8],
        out: &mut Out,
    ) -> After {
        resp::with_argv(buf, self.base, &self.ranges, |argv| {
            cmd::request_found(shared, sess, self.found, argv, out)
        })
    }
}

/// One connection's request loop state: the parser (one argument vector for all
/// requests) and the run being gathered, kept across reads for their room; and
/// the counts of the batch being run (from [`Requests::begin`] to
/// [`Requests::end`]).
pub(crate) struct Requests {
    /// The connection's parser (how much a partly received request still needs:
    /// [`Parser::awaiting`]).
    pub(crate) parser: Parser,
    /// Squashable requests parsed and not yet run.
    run: Run,
    /// Bytes of the buffer used since the last [`Requests::take_consumed`].
    consumed: usize,
    /// When the first request run alone started (latencies are counted once per
    /// batch, not per request).
    started: Option<Instant>,
    /// Requests run alone in this batch.
    ran: u32,
    /// The framing limits (again after a command that may sign in or out).
    limits: ParseLimits,
    /// Whether the session lets requests gather into runs ([`Run::allowed`]),
    /// again after every request run alone.
    squash: bool,
}

impl Requests {
    /// A connection's loop state, before anything was received.
    pub(crate) fn new(shared: &Shared, sess: &Session) -> Requests {
        Requests {
            parser: Parser::new(),
            run: Run::default(),
            consumed: 0,
            started: None,
            ran: 0,
            limits: limits_for(shared, sess),
            squash: Run::allowed(shared, sess),
        }
    }

    /// Starts a batch, from where the last one stopped in the buffer (or its
    /// start, after [`Requests::take_consumed`]).
    pub(crate) fn begin(&mut self, shared: &Shared, sess: &Session) {
        self.started = None;
        self.ran = 0;
        self.limits = limits_for(shared, sess);
        self.squash = Run::allowed(shared, sess);
    }

    /// Ends a batch: counts the latency of the requests it ran alone.
    pub(crate) fn end(&mut self, sess: &mut Session) {
        if let Some(t) = self.started.take() {
            sess.local.latencies(t.elapsed(), self.ran);
        }
    }

    /// How many bytes of the buffer the batches since the last call have used;
    /// the caller drops them from the buffer's front before it reads more. (Not
    /// after every batch: a batch that stops to write its replies out leaves the
    /// rest of a long pipeline where it is rather than moving it.)
    pub(crate) fn take_consumed(&mut self) -> usize {
        std::mem::take(&mut self.consumed)
    }

    /// Runs the gathered run, if any; `Some(Stop::Flush)` if the replies must be
    /// written out first (the run stopped early, or the output is full), with
    /// the parser reset to parse again from where the batch goes on.
    fn run_gathered(
        &mut self,
        shared: &Shared,
        sess: &mut Session,
        buf: &[u8],
        out: &mut Out,
    ) -> Option<Stop> {
        if self.run.is_empty() {
            return None;
        }
        if let Some(resume) = self.run.run(shared, sess, buf, out, FLUSH_AT) {
            self.parser.reset();
            self.consumed = resume;
            return Some(Stop::Flush);
        }
        if out.buf.len() >= FLUSH_AT {
            self.parser.reset();
            return Some(Stop::Flush);
        }
        None
    }

    /// Runs the requests of `buf` from where this batch stands until one of the
    /// reasons of [`Stop`].
    pub(crate) fn step(
        &mut self,
        shared: &Shared,
        sess: &mut Session,
        buf: &mut [u8],
        out: &mut Out,
    ) -> Stop {
        loop {
            // A run goes before anything but a RESP array is parsed (an inline
            // command is rewritten in place when parsed: a run that stops early
            // must be able to parse what follows it again).
            if buf.get(self.consumed) != Some(&b'*') {
                if let Some(stop) = self.run_gathered(shared, sess, buf, out) {
                    return stop;
                }
            }
            let parsed = self
                .parser
                .parse_next(&mut buf[self.consumed..], &self.limits);
            let len = match parsed {
                Ok(Next::Request(len)) => len,
                Ok(Next::Empty(n)) => {
                    self.consumed += n;
                    continue;
                }
                Ok(Next::Incomplete) => {
                    // The last requests of the read.
                    return self
                        .run_gathered(shared, sess, buf, out)
                        .unwrap_or(Stop::Drained);
                }
                Err(e) => {
                    if let Some(stop) = self.run_gathered(shared, sess, buf, out) {
                        // Run and written first; the error is found again.
                        return stop;
                    }
                    shared.metrics.error(ErrorClass::Protocol);
                    tracing::info!(conn = sess.id, peer = %sess.peer, "protocol error, closing: {}", e.0);
                    out.set_limit(usize::MAX);
                    out.error(&format!("ERR Protocol error: {}", e.0));
                    return Stop::Broken;
                }
            };
            let base = self.consumed;
            let args = self.parser.args();
            let name = args
                .first()
                .map_or(&[][..], |r| &buf[base + r.start..base + r.end]);
            let found = cmd::lookup(name);
            // A lone request (nothing before it in a run, nothing after it in the
            // buffer) runs as it is: -P 1 pays nothing for runs.
            let kind = if self.squash && (!self.run.is_empty() || base + len < buf.len()) {
                Run::kind_for(&buf[base..], found, args.len())
            } else {
                None
            };
            if let Some(kind) = kind.filter(|&k| self.run.takes(k)) {
                self.run.push(kind, base, args);
                self.consumed += len;
                continue;
            }
            // This request does not join the run: the run goes first, and if its
            // replies must be written out first, this request is parsed again
            // from its start.
            if let Some(stop) = self.run_gathered(shared, sess, buf, out) {
                return stop;
            }
            if let Some(kind) = kind {
                // It starts the next run.
                self.run.push(kind, base, self.parser.args());
                self.consumed += len;
                continue;
            }
            self.consumed += len;
            self.started.get_or_insert_with(Instant::now);
            self.ran += 1;
            // A reply may not pass this connection's output limit, nor take the
            // server past its total (a small reply always fits).
            let room = cmd::reply_room(shared);
            let mark = out.buf.len();
            out.set_limit(mark + room);
            let args = self.parser.args();
            if cmd::runs_long(shared, found, args.len()) {
                return Stop::Offload(Offloaded {
                    base,
                    ranges: args.to_vec(),
                    found,
                    mark,
                    room,
                });
            }
            let after = resp::with_argv(buf, base, args, |argv| {
                cmd::request_found(shared, sess, found, argv, out)
            });
            if let Some(stop) = self.after_one(shared, sess, out, found, mark, room, after) {
                return stop;
            }
        }
    }

    /// What follows an offloaded request once it has run: `Some` if the loop
    /// must stop ([`Stop::Close`], [`Stop::Flush`]), else [`Requests::step`] goes
    /// on.
    pub(crate) fn finish(
        &mut self,
        shared: &Shared,
        sess: &mut Session,
        out: &mut Out,
        job: &Offloaded,
        after: After,
    ) -> Option<Stop> {
        self.after_one(shared, sess, out, job.found, job.mark, job.room, after)
    }

    /// What follows a request run alone: the framing limits again after a sign
    /// in or out, a reply over its limit replaced by the error that says so, and
    /// whether to stop.
    #[allow(clippy::too_many_arguments)]
    fn after_one(
        &mut self,
        shared: &Shared,
        sess: &mut Session,
        out: &mut Out,
        found: Found,
        mark: usize,
        room: usize,
        after: After,
    ) -> Option<Stop> {
        // AUTH, HELLO, RESET (the `open` ones) and EXEC (which may run a queued
        // AUTH) may sign in or out.
        if found.is_some_and(|(_, s)| s.open || s.txn_control) {
            self.limits = limits_for(shared, sess);
        }
        // MULTI, SUBSCRIBE, CLIENT TRACKING or REPLY, a sign-in...
        self.squash = Run::allowed(shared, sess);
        if out.overflowed() {
            cmd::refused(shared, out, mark, room);
        }
        if after == After::Close {
            return Some(Stop::Close);
        }
        if out.buf.len() >= FLUSH_AT {
            return Some(Stop::Flush);
        }
        None
    }
}
