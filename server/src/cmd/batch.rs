//! Pipelines as batches: consecutive plain GETs parsed from one read go to the
//! core as one lent multi-get ([`Bucket::get_multiple_with`]), consecutive plain
//! SETs as one batch write ([`Bucket::set_multiple`]), consecutive INCR, DECR,
//! INCRBY and DECRBY (mixed) as one multi-key read-modify-write
//! ([`Bucket::update_many`]), with each command's reply, error, metrics and events
//! as if it had run alone through [`super::request_found`].
//!
//! A request joins a run ([`Run::allowed`], [`Run::kind_for`]) only when nothing about the session
//! could make it behave differently from its fast path: signed in, not in MULTI,
//! not subscribed, no CLIENT TRACKING, replies on, a store whose writes do not wait
//! for fsync, a RESP array (an inline command is rewritten in place when parsed,
//! so a run that stops early could not parse it again), and the exact arity.
//! Anything else ends the run and runs alone. Inside a run, keys are validated
//! first (a bad key gets the error GET or SET would reply, in its place); a SET
//! run whose batch the core refuses (a value over the limit, a batch over the
//! store's batch size, a quota, any store error) runs its SETs one by one
//! instead, so every reply is the one-by-one reply. A counter run reads each
//! command's key and amount first (a bad key, a bad amount, DECRBY of the lowest
//! integer: that command's error in its place), then updates the rest in order in
//! one batch, a key repeated in the run counting on from its earlier result; a
//! value that is not an integer or an overflow is that command's error and writes
//! nothing, the others go on. A counter run of a client with a quota, or whose
//! batch fails (a store error), runs one by one instead. A GET run stops once the
//! replies reach the connection's flush mark, as the one-by-one loop does, and
//! the connection parses the rest again after writing.
//!
//! `STATE_SERVE_SQUASH=off` in the server's environment turns squashing off (for
//! comparisons: the replies must be byte-identical either way).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use state_core::Bucket;

use super::args::{key_arg, Args, Fail};
use super::{counters, lookup, request_found, After, Found, Spec};
use crate::metrics::ErrorClass;
use crate::resp::Out;
use crate::session::{Reply, Session};
use crate::Shared;

/// Most requests in one run: bounds the run's bookkeeping (and a GET run's
/// replies past the flush mark, which are read but not sent).
const MAX_RUN: usize = 64;

/// Most SETs in one run: the core's commit point finds an earlier write of the
/// same key in a batch of up to 16 by looking back through it, and builds a
/// hash map for a longer one (measured: a 32-SET batch cost more per SET than
/// two of 16).
const MAX_SET_RUN: usize = 16;

/// Whether squashing is on (`STATE_SERVE_SQUASH=off` turns it off).
static SQUASH: LazyLock<bool> = LazyLock::new(|| {
    !std::env::var("STATE_SERVE_SQUASH").is_ok_and(|v| v.eq_ignore_ascii_case("off") || v == "0")
});

/// The command table's GET and SET entries (their metrics slots; a counter run
/// looks each command up).
static INDEXES: LazyLock<(Option<usize>, Option<usize>)> = LazyLock::new(|| {
    (
        lookup(b"get").map(|(i, _)| i),
        lookup(b"set").map(|(i, _)| i),
    )
});

/// The command table's counter entries, in the order of [`COUNTER_NAMES`].
static COUNTERS: LazyLock<[Option<(usize, &'static Spec)>; 4]> =
    LazyLock::new(|| COUNTER_NAMES.map(lookup));

/// The commands a counter run takes.
const COUNTER_NAMES: [&[u8]; 4] = [b"incr", b"decr", b"incrby", b"decrby"];

/// The table entry of counter command `name` (any case), without the general
/// lookup.
fn counter_of(name: &[u8]) -> Option<(usize, &'static Spec)> {
    let i = COUNTER_NAMES
        .iter()
        .position(|n| name.eq_ignore_ascii_case(n))?;
    COUNTERS[i]
}

/// What a run squashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `GET key`.
    Get,
    /// `SET key value` (no options).
    Set,
    /// `INCR key`, `DECR key`, `INCRBY key n`, `DECRBY key n`, mixed.
    Incr,
}

/// One request of a run: where it starts in the read buffer and its arguments'
/// ranges there (a run's requests have two or three: `GET key`, `SET key value`;
/// held inline, so queueing a request allocates nothing).
struct Pending {
    start: usize,
    args: [Range<usize>; 3],
    n: usize,
}

impl Pending {
    fn args(&self) -> &[Range<usize>] {
        &self.args[..self.n]
    }
}

/// A run of squashable requests parsed from one read and not yet run.
#[derive(Default)]
pub(crate) struct Run {
    kind: Option<Kind>,
    reqs: Vec<Pending>,
}

/// The output limit of one reply: the connection's, or what is left of the
/// server's total (a small reply always fits), as the connection loop sets it.
pub(crate) fn reply_room(shared: &Shared) -> usize {
    let total_room = shared
        .cfg
        .max_buffered_bytes
        .saturating_sub(shared.buffered.load(std::sync::atomic::Ordering::Relaxed))
        .max(crate::SMALL_CONNECTION);
    shared.cfg.max_output_bytes.min(total_room)
}

/// Replaces a reply (from `mark`) that passed its output limit `room` with the
/// error that says so.
pub(crate) fn refused(shared: &Shared, out: &mut Out, mark: usize, room: usize) {
    out.buf.truncate(mark);
    out.set_limit(usize::MAX);
    shared.metrics.error(ErrorClass::TooLarge);
    out.error(&format!(
        "ERR the reply would exceed the output limit of {room} bytes (--max-output-bytes); nothing was sent"
    ));
}

/// Runs one request alone, writing its reply under its output limit and counting
/// its latency: what the connection loop does for every request not squashed.
pub(crate) fn one(shared: &Shared, sess: &mut Session, argv: &[&[u8]], out: &mut Out) -> After {
    let started = Instant::now();
    let room = reply_room(shared);
    let mark = out.buf.len();
    out.set_limit(mark + room);
    let found = lookup(argv.first().copied().unwrap_or_default());
    let after = request_found(shared, sess, found, argv, out);
    if out.overflowed() {
        refused(shared, out, mark, room);
    }
    sess.local.latency(started.elapsed());
    after
}

impl Run {
    /// Whether no request is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether the run has as many requests as it takes.
    pub(crate) fn is_full(&self) -> bool {
        let max = match self.kind {
            Some(Kind::Set) => MAX_SET_RUN,
            _ => MAX_RUN,
        };
        self.reqs.len() >= max
    }

    /// Whether the session lets requests gather into runs at all: nothing about
    /// it could make a GET or SET behave differently from its fast path. Only a
    /// request run alone can change this (runs change no session state).
    pub(crate) fn allowed(shared: &Shared, sess: &Session) -> bool {
        *SQUASH
            && sess.client.is_some()
            && sess.multi.is_none()
            && !sess.subs.active()
            && sess.tracking.is_none()
            && sess.reply == Reply::On
            && !shared.cfg.blocking_store
    }

    /// The kind of run a request may join, if any, in a session where runs are
    /// [`Run::allowed`]: `req` is the buffer from the request's first byte,
    /// `found` its command, `nargs` its argument count.
    pub(crate) fn kind_for(req: &[u8], found: Found, nargs: usize) -> Option<Kind> {
        if req.first() != Some(&b'*') {
            return None;
        }
        let index = found.map(|(i, _)| i)?;
        let (get, set) = *INDEXES;
        match nargs {
            2 if Some(index) == get => return Some(Kind::Get),
            3 if Some(index) == set => return Some(Kind::Set),
            _ => {}
        }
        // INCR and DECR (the first two of COUNTER_NAMES) take a key, INCRBY and
        // DECRBY a key and an amount.
        let at = COUNTERS
            .iter()
            .position(|c| c.is_some_and(|(i, _)| i == index))?;
        (nargs == if at < 2 { 2 } else { 3 }).then_some(Kind::Incr)
    }

    /// Whether a request of `kind` joins this run (else the run must be run first).
    pub(crate) fn takes(&self, kind: Kind) -> bool {
        self.kind.is_none_or(|k| k == kind) && !self.is_full()
    }

    /// Adds the request that starts at `start` in the buffer, its arguments at
    /// `args` relative to `start`.
    /// ([`Run::kind_for`] said it joins: it has two or three arguments).
    pub(crate) fn push(&mut self, kind: Kind, start: usize, args: &[Range<usize>]) {
        let mut p = Pending {
            start,
            args: [0..0, 0..0, 0..0],
            n: args.len().min(3),
        };
        for (slot, r) in p.args.iter_mut().zip(args) {
            *slot = r.start + start..r.end + start;
        }
        self.kind = Some(kind);
        self.reqs.push(p);
    }

    /// Runs the waiting requests (their bytes in `buf`), writing their replies.
    /// Returns where in `buf` to parse again, if the run stopped early because
    /// its replies reached `flush_at` bytes: the requests from there on have not
    /// run.
    pub(crate) fn run(
        &mut self,
        shared: &Shared,
        sess: &mut Session,
        buf: &[u8],
        out: &mut Out,
        flush_at: usize,
    ) -> Option<usize> {
        let kind = self.kind.take();
        let reqs = std::mem::take(&mut self.reqs);
        let resume = match kind {
            _ if reqs.is_empty() => None,
            Some(Kind::Get) if reqs.len() > 1 => run_gets(shared, sess, buf, &reqs, out, flush_at),
            Some(Kind::Set) if reqs.len() > 1 => {
                run_sets(shared, sess, buf, &reqs, out);
                None
            }
            Some(Kind::Incr) if reqs.len() > 1 => {
                run_counters(shared, sess, buf, &reqs, out);
                None
            }
            _ => one_by_one(shared, sess, buf, &reqs, out, flush_at),
        };
        // Keep the list's room for the next run.
        self.reqs = reqs;
        self.reqs.clear();
        resume
    }
}

/// Runs `reqs` one by one, as the connection loop would; stops (returning where
/// to parse again) once the output reaches `flush_at`.
fn one_by_one(
    shared: &Shared,
    sess: &mut Session,
    buf: &[u8],
    reqs: &[Pending],
    out: &mut Out,
    flush_at: usize,
) -> Option<usize> {
    for (i, p) in reqs.iter().enumerate() {
        // GET, SET and the counters never close the connection.
        let _ = crate::resp::with_argv(buf, 0, p.args(), |argv| one(shared, sess, argv, out));
        if out.buf.len() >= flush_at {
            if let Some(next) = reqs.get(i + 1) {
                return Some(next.start);
            }
        }
    }
    None
}

/// Counts `n` commands of table slot `index` that ran in `took` together.
fn count(sess: &mut Session, index: Option<usize>, n: usize, took: Duration) {
    for _ in 0..n {
        sess.local.command(index);
    }
    sess.local
        .latencies(took, u32::try_from(n).unwrap_or(u32::MAX));
}

/// The session's bucket, or `None` when it cannot be had (the requests then run
/// one by one and reply with the error).
fn session_bucket<'s>(shared: &Shared, sess: &'s mut Session) -> Option<&'s Bucket> {
    super::bucket(shared, sess).ok()
}

/// A run of `GET key`: one lent multi-get, each reply written as its value is
/// lent, in request order.
fn run_gets(
    shared: &Shared,
    sess: &mut Session,
    buf: &[u8],
    reqs: &[Pending],
    out: &mut Out,
    flush_at: usize,
) -> Option<usize> {
    let started = Instant::now();
    out.resp3 = sess.resp3;
    let Some(bucket) = session_bucket(shared, sess) else {
        return one_by_one(shared, sess, buf, reqs, out, flush_at);
    };
    let room = reply_room(shared);
    // Each request's key, or the reply to its bad key.
    let mut keys: Vec<&str> = Vec::with_capacity(reqs.len());
    let mut slots: Vec<Result<usize, String>> = Vec::with_capacity(reqs.len());
    for p in reqs {
        match key_arg(&buf[p.args[1].clone()]) {
            Ok(k) => {
                slots.push(Ok(keys.len()));
                keys.push(k);
            }
            Err(msg) => slots.push(Err(msg)),
        }
    }
    let start = out.buf.len();
    // The next request to reply to, and where the run stopped (the first request
    // not run), if it did.
    let mut next = 0;
    let mut stopped: Option<usize> = None;
    let (mut hits, mut misses) = (0u64, 0u64);
    // Replies to requests `next..upto` whose key is missing or bad.
    let mut fill = |out: &mut Out, next: &mut usize, upto: usize, stopped: &mut Option<usize>| {
        while *next < upto && stopped.is_none() {
            match &slots[*next] {
                Ok(_) => {
                    misses += 1;
                    out.null();
                }
                Err(msg) => out.error(msg),
            }
            *next += 1;
            if out.buf.len() >= flush_at && *next < reqs.len() {
                *stopped = Some(*next);
            }
        }
    };
    let mut at_key = Vec::with_capacity(keys.len());
    for (i, s) in slots.iter().enumerate() {
        if s.is_ok() {
            at_key.push(i);
        }
    }
    let r = bucket.get_multiple_with(&keys, |j, v| {
        let i = at_key[j];
        fill(out, &mut next, i, &mut stopped);
        if stopped.is_some() {
            return;
        }
        let mark = out.buf.len();
        out.set_limit(mark + room);
        out.bulk(v);
        if out.overflowed() {
            refused(shared, out, mark, room);
        }
        out.set_limit(usize::MAX);
        hits += 1;
        next = i + 1;
        if out.buf.len() >= flush_at && next < reqs.len() {
            stopped = Some(next);
        }
    });
    if r.is_err() {
        // A store error: nothing of the run was counted; each request replies for
        // itself.
        out.buf.truncate(start);
        return one_by_one(shared, sess, buf, reqs, out, flush_at);
    }
    fill(out, &mut next, reqs.len(), &mut stopped);
    let ran = stopped.unwrap_or(reqs.len());
    out.lookups(hits, misses);
    count(sess, INDEXES.0, ran, started.elapsed());
    stopped.map(|i| reqs[i].start)
}

/// A run of `SET key value`: one batch write of the valid keys; a refused batch
/// runs one by one.
fn run_sets(shared: &Shared, sess: &mut Session, buf: &[u8], reqs: &[Pending], out: &mut Out) {
    let started = Instant::now();
    out.resp3 = sess.resp3;
    let Some(bucket) = session_bucket(shared, sess) else {
        one_by_one(shared, sess, buf, reqs, out, usize::MAX);
        return;
    };
    if shared.svc.has_quota(bucket.name()) {
        one_by_one(shared, sess, buf, reqs, out, usize::MAX);
        return;
    }
    let mut pairs: Vec<(&str, &[u8])> = Vec::with_capacity(reqs.len());
    let mut bad: Vec<Option<String>> = Vec::with_capacity(reqs.len());
    for p in reqs {
        match key_arg(&buf[p.args[1].clone()]) {
            Ok(k) => {
                pairs.push((k, &buf[p.args[2].clone()]));
                bad.push(None);
            }
            Err(msg) => bad.push(Some(msg)),
        }
    }
    match bucket.set_multiple(pairs) {
        Ok(()) => {
            for b in &bad {
                match b {
                    None => out.ok(),
                    Some(msg) => out.error(msg),
                }
            }
            count(sess, INDEXES.1, reqs.len(), started.elapsed());
        }
        // The batch was refused whole (a value over the limit, a batch over the
        // store's batch size, a store error): each SET runs alone and replies
        // for itself.
        Err(_) => {
            one_by_one(shared, sess, buf, reqs, out, usize::MAX);
        }
    }
}

/// A counter command's place among its run's keys, or its error reply.
type KeyOrError = Result<usize, Cow<'static, str>>;

/// A run of INCR, DECR, INCRBY and DECRBY: each command's key and amount read
/// first (a bad one is its error reply, in its place), then one
/// [`Bucket::update_many`] of the rest in order, each key's step the one its
/// command runs alone ([`counters::add_update`]). A client with a quota, or a
/// batch that fails (a store error: nothing of it was written), runs one by one.
fn run_counters(shared: &Shared, sess: &mut Session, buf: &[u8], reqs: &[Pending], out: &mut Out) {
    let started = Instant::now();
    out.resp3 = sess.resp3;
    let Some(bucket) = session_bucket(shared, sess) else {
        one_by_one(shared, sess, buf, reqs, out, usize::MAX);
        return;
    };
    if shared.svc.has_quota(bucket.name()) {
        one_by_one(shared, sess, buf, reqs, out, usize::MAX);
        return;
    }
    // Each request's arguments, held for the run (its keys borrow them).
    let argvs: Vec<[&[u8]; 3]> = reqs
        .iter()
        .map(|p| {
            let mut argv: [&[u8]; 3] = [&[]; 3];
            for (slot, r) in argv.iter_mut().zip(p.args()) {
                *slot = &buf[r.clone()];
            }
            argv
        })
        .collect();
    let mut keys: Vec<&str> = Vec::with_capacity(reqs.len());
    let mut amounts: Vec<i64> = Vec::with_capacity(reqs.len());
    // Each request's table slot, and its place in `keys` or its error reply.
    let mut slots: Vec<(usize, KeyOrError)> = Vec::with_capacity(reqs.len());
    for (p, argv) in reqs.iter().zip(&argvs) {
        let argv = &argv[..p.n];
        let Some((index, spec)) = counter_of(argv.first().copied().unwrap_or_default()) else {
            // kind_for let only counter commands in.
            one_by_one(shared, sess, buf, reqs, out, usize::MAX);
            return;
        };
        let slot = match counters::counter_args(&mut Args::new(spec.name, argv)) {
            Ok((k, by)) => {
                keys.push(k);
                amounts.push(by);
                Ok(keys.len() - 1)
            }
            Err(Fail::Reply(msg)) => Err(msg),
            Err(Fail::Store(_)) => {
                one_by_one(shared, sess, buf, reqs, out, usize::MAX);
                return;
            }
        };
        slots.push((index, slot));
    }
    let Ok(counts) = bucket.update_many(&keys, |i, u| Ok(counters::add_update(u, amounts[i])))
    else {
        // Nothing of the batch was written: each command runs alone and replies
        // for itself.
        one_by_one(shared, sess, buf, reqs, out, usize::MAX);
        return;
    };
    for (index, slot) in &slots {
        match slot {
            Ok(i) => match counts[*i] {
                Ok(n) => out.int(n),
                Err(msg) => out.error(msg),
            },
            Err(msg) => out.error(msg),
        }
        sess.local.command(Some(*index));
    }
    sess.local.latencies(
        started.elapsed(),
        u32::try_from(reqs.len()).unwrap_or(u32::MAX),
    );
}
