//! Redis keyspace notifications over one connection: SUBSCRIBE / PSUBSCRIBE /
//! UNSUBSCRIBE / PUNSUBSCRIBE on `__keyspace@0__:<key>` (message: the event name)
//! and `__keyevent@0__:<event>` (message: the key), fed by a core watcher on the
//! connection's own bucket, so a client only ever hears of its own keys.
//!
//! Event names are Redis's, filtered by the client's `notify-keyspace-events`
//! classes (CONFIG SET, per client: every connection of the client shares them).
//! A command names its events itself by labelling its writes (see
//! [`crate::cmd`]'s handlers, [`state_core::Txn::label`] and
//! [`state_core::Update::label`]): `incrby`, `append`,
//! `rename_from`/`rename_to`, `set` then `expire` for SET EX, nothing for
//! FLUSHDB (its `flushdb` label is client tracking's), each with Redis's class ([`label_class`]). A write no command
//! labelled (the fast paths, the expiry sweeper, the embedded API or the HTTP
//! API on the same store) is named from its kind: `new` (when it created the
//! key), then `set`, `del`, `expire`, `persist` or `expired`. Other channels may be subscribed to (as in Redis) but
//! carry what PUBLISH sends, between the connections of the same client only
//! ([`Broker`]: one client can neither hear nor publish into another's channels).
//! A connection that falls so far behind that its watcher's queue (or its queue
//! of published messages) overflows is closed, as Redis closes a pub/sub client
//! over its output buffer limit.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use state_core::{Bucket, EventKind, Notice, RecvError, WatchOptions, Watcher};
use tokio::sync::Notify;

use crate::glob::Pattern;
use crate::resp::Out;

/// Most events queued for a subscribed connection that does not read; past it (or
/// [`QUEUE_BYTES`]) the connection is closed, as Redis closes a pub/sub client over
/// its output buffer limit.
const QUEUE_NOTICES: usize = 1024;
/// Most bytes of queued events (keys only: keyspace notifications carry no values).
const QUEUE_BYTES: usize = 1 << 20;

/// The keyspace channel prefix of database 0.
pub(crate) const KEYSPACE: &[u8] = b"__keyspace@0__:";
/// The keyevent channel prefix of database 0.
pub(crate) const KEYEVENT: &[u8] = b"__keyevent@0__:";

/// The classes of `notify-keyspace-events` (Redis's flags, same bits' meaning).
pub(crate) mod class {
    /// `g`: generic commands (DEL, EXPIRE, RENAME, ...).
    pub const GENERIC: u32 = 1 << 0;
    /// `$`: string commands.
    pub const STRING: u32 = 1 << 1;
    /// `l`: list commands (no lists in libstate).
    pub const LIST: u32 = 1 << 2;
    /// `s`: set commands (no sets in libstate).
    pub const SET: u32 = 1 << 3;
    /// `h`: hash commands (no hashes in libstate).
    pub const HASH: u32 = 1 << 4;
    /// `z`: sorted-set commands (no sorted sets in libstate).
    pub const ZSET: u32 = 1 << 5;
    /// `x`: expired keys.
    pub const EXPIRED: u32 = 1 << 6;
    /// `e`: evicted keys (libstate never evicts).
    pub const EVICTED: u32 = 1 << 7;
    /// `t`: stream commands (no streams in libstate).
    pub const STREAM: u32 = 1 << 8;
    /// `d`: module key types (no modules).
    pub const MODULE: u32 = 1 << 9;
    /// `n`: new keys.
    pub const NEW: u32 = 1 << 10;
    /// `K`: keyspace channels.
    pub const KEYSPACE: u32 = 1 << 11;
    /// `E`: keyevent channels.
    pub const KEYEVENT: u32 = 1 << 12;
    /// `m`: key misses.
    pub const MISS: u32 = 1 << 13;
    /// `A`: every class but `n` and `m`.
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;
    /// What a client hears until it sets its own: its keys' `set`, `del` and
    /// `expired` on both kinds of channel ("g$xKE"; Redis's default is none).
    pub const DEFAULT: u32 = GENERIC | STRING | EXPIRED | KEYSPACE | KEYEVENT;
}

/// Parses `notify-keyspace-events` classes as Redis does; `None` for a character
/// Redis refuses.
pub(crate) fn parse_classes(s: &[u8]) -> Option<u32> {
    use class::*;
    s.iter().try_fold(0, |flags, c| {
        Some(
            flags
                | match c {
                    b'A' => ALL,
                    b'g' => GENERIC,
                    b'$' => STRING,
                    b'l' => LIST,
                    b's' => SET,
                    b'h' => HASH,
                    b'z' => ZSET,
                    b'x' => EXPIRED,
                    b'e' => EVICTED,
                    b'K' => KEYSPACE,
                    b'E' => KEYEVENT,
                    b't' => STREAM,
                    b'm' => MISS,
                    b'd' => MODULE,
                    b'n' => NEW,
                    _ => return None,
                },
        )
    })
}

/// `notify-keyspace-events` classes as Redis writes them back (CONFIG GET).
pub(crate) fn classes_string(flags: u32) -> String {
    use class::*;
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (MISS, 'm')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// The class of an event kind, as Redis files it: `set` is a string event (`$`),
/// `expired` (removed after its deadline) is `x`, and `del`, `expire` and
/// `persist` are generic (`g`).
fn event_class(kind: EventKind) -> u32 {
    match kind {
        EventKind::Set => class::STRING,
        EventKind::Expired => class::EXPIRED,
        _ => class::GENERIC,
    }
}

/// The class of a labelled event (a label is the Redis event name a command
/// gave its write): the string commands' events are `$`, `new` is `n`,
/// `expired` is `x`, the rest (`del`, `expire`, `persist`, `rename_from`,
/// `rename_to`, `copy_to`) are generic.
fn label_class(label: &str) -> u32 {
    match label {
        "new" => class::NEW,
        "set" | "incrby" | "incrbyfloat" | "append" | "setrange" | "setbit" => class::STRING,
        "expired" => class::EXPIRED,
        _ => class::GENERIC,
    }
}

/// Redis's name for an event kind.
pub(crate) fn redis_event_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Set => "set",
        EventKind::Delete => "del",
        EventKind::Expired => "expired",
        EventKind::Expire => "expire",
        EventKind::Persist => "persist",
        _ => "changed",
    }
}

/// Why a connection's subscriptions cannot go on.
#[derive(Debug)]
pub(crate) enum Broken {
    /// The watcher's queue overflowed: this many events were lost.
    Lagged(u64),
    /// The store closed.
    Ended,
}

/// One message PUBLISH queued for a subscribed connection.
struct Published {
    /// The pattern it matched (a `pmessage`), or none (a `message`).
    pattern: Option<Arc<[u8]>>,
    channel: Arc<[u8]>,
    message: Arc<[u8]>,
}

#[derive(Default)]
struct InboxState {
    items: VecDeque<Published>,
    /// Bytes of channels and messages queued.
    bytes: usize,
    /// Set when a message did not fit: the connection must close.
    overflowed: bool,
}

/// A subscribed connection's queue of published messages, bounded like its
/// watcher's ([`QUEUE_NOTICES`], [`QUEUE_BYTES`]).
struct Inbox {
    state: Mutex<InboxState>,
    ready: Arc<Notify>,
}

impl Inbox {
    fn push(&self, p: Published) {
        {
            let mut s = self.state.lock();
            if s.overflowed {
                return;
            }
            let size = 64 + p.channel.len() + p.message.len();
            if s.items.len() >= QUEUE_NOTICES
                || (!s.items.is_empty() && s.bytes + size > QUEUE_BYTES)
            {
                s.overflowed = true;
                s.items.clear();
                s.bytes = 0;
            } else {
                s.bytes += size;
                s.items.push_back(p);
            }
        }
        self.ready.notify_one();
    }
}

/// A connection's queue and its patterns, each compiled once.
type PatternSubs = (Arc<Inbox>, Vec<(Arc<[u8]>, Pattern)>);

/// One client's subscribed connections, by channel and by pattern.
#[derive(Default)]
struct ClientSubs {
    channels: HashMap<Vec<u8>, Vec<(u64, Arc<Inbox>)>>,
    /// Per connection: its patterns, each compiled once.
    patterns: BTreeMap<u64, PatternSubs>,
}

impl ClientSubs {
    fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty()
    }
}

/// PUBLISH's side of pub/sub: who is subscribed to what, per client, so a
/// message reaches the subscribed connections of the publishing client only.
/// One per server; PUBLISH, PUBSUB and (un)subscribing take its lock briefly.
#[derive(Default)]
pub(crate) struct Broker {
    clients: Mutex<HashMap<String, ClientSubs>>,
}

impl Broker {
    /// Queues `message` on `channel` for `client`'s subscribed connections;
    /// returns how many received it (one per matching channel or pattern
    /// subscription, as Redis counts).
    pub(crate) fn publish(&self, client: &str, channel: &[u8], message: &[u8]) -> i64 {
        let clients = self.clients.lock();
        let Some(subs) = clients.get(client) else {
            return 0;
        };
        let channel: Arc<[u8]> = Arc::from(channel);
        let message: Arc<[u8]> = Arc::from(message);
        let mut n = 0;
        for (_, inbox) in subs.channels.get(&*channel).into_iter().flatten() {
            inbox.push(Published {
                pattern: None,
                channel: Arc::clone(&channel),
                message: Arc::clone(&message),
            });
            n += 1;
        }
        for (inbox, patterns) in subs.patterns.values() {
            for (name, p) in patterns {
                if p.matches(&channel) {
                    inbox.push(Published {
                        pattern: Some(Arc::clone(name)),
                        channel: Arc::clone(&channel),
                        message: Arc::clone(&message),
                    });
                    n += 1;
                }
            }
        }
        n
    }

    /// PUBSUB CHANNELS [pattern]: `client`'s channels with a subscriber.
    pub(crate) fn channels(&self, client: &str, pattern: Option<&Pattern>) -> Vec<Vec<u8>> {
        let clients = self.clients.lock();
        let mut out: Vec<Vec<u8>> = clients
            .get(client)
            .map(|s| {
                s.channels
                    .keys()
                    .filter(|c| pattern.is_none_or(|p| p.matches(c)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// PUBSUB NUMSUB: subscribers of `channel` among `client`'s connections.
    pub(crate) fn numsub(&self, client: &str, channel: &[u8]) -> usize {
        self.clients
            .lock()
            .get(client)
            .and_then(|s| s.channels.get(channel))
            .map_or(0, Vec::len)
    }

    /// PUBSUB NUMPAT: distinct patterns `client`'s connections subscribe to.
    pub(crate) fn numpat(&self, client: &str) -> usize {
        let clients = self.clients.lock();
        let Some(s) = clients.get(client) else {
            return 0;
        };
        let unique: BTreeSet<&[u8]> = s
            .patterns
            .values()
            .flat_map(|(_, ps)| ps.iter().map(|(n, _)| &**n))
            .collect();
        unique.len()
    }

    /// Replaces connection `id`'s registrations with `channels` and `patterns`
    /// under `client` (none: unregistered).
    fn register(
        &self,
        id: u64,
        client: Option<&str>,
        inbox: &Arc<Inbox>,
        channels: &BTreeSet<Vec<u8>>,
        patterns: &BTreeMap<Vec<u8>, Pattern>,
    ) {
        let mut clients = self.clients.lock();
        clients.retain(|_, s| {
            s.channels.retain(|_, conns| {
                conns.retain(|(c, _)| *c != id);
                !conns.is_empty()
            });
            s.patterns.remove(&id);
            !s.is_empty()
        });
        let Some(client) = client else {
            return;
        };
        if channels.is_empty() && patterns.is_empty() {
            return;
        }
        let s = clients.entry(client.to_string()).or_default();
        for c in channels {
            s.channels
                .entry(c.clone())
                .or_default()
                .push((id, Arc::clone(inbox)));
        }
        if !patterns.is_empty() {
            let ps = patterns
                .iter()
                .map(|(n, p)| (Arc::from(n.as_slice()), p.clone()))
                .collect();
            s.patterns.insert(id, (Arc::clone(inbox), ps));
        }
    }
}

/// Where a connection's subscriptions are registered for PUBLISH.
struct Link {
    broker: Arc<Broker>,
    id: u64,
    client: Option<String>,
}

/// A connection's subscriptions and the watcher behind them.
pub(crate) struct Subscriptions {
    channels: BTreeSet<Vec<u8>>,
    /// Patterns, each compiled once when subscribed.
    patterns: BTreeMap<Vec<u8>, Pattern>,
    /// The client whose bucket is watched, and the watcher.
    watcher: Option<(String, Watcher)>,
    /// Woken by the watcher whenever an event is queued, and by PUBLISH.
    pub(crate) ready: Arc<Notify>,
    /// Messages PUBLISH queued for this connection.
    inbox: Arc<Inbox>,
    /// The broker this connection's subscriptions are registered with (set at
    /// its first SUBSCRIBE).
    link: Option<Link>,
}

impl Default for Subscriptions {
    fn default() -> Self {
        let ready = Arc::new(Notify::new());
        Subscriptions {
            channels: BTreeSet::new(),
            patterns: BTreeMap::new(),
            watcher: None,
            inbox: Arc::new(Inbox {
                state: Mutex::new(InboxState::default()),
                ready: Arc::clone(&ready),
            }),
            ready,
            link: None,
        }
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        if let Some(l) = &self.link {
            l.broker
                .register(l.id, None, &self.inbox, &BTreeSet::new(), &BTreeMap::new());
        }
    }
}

impl Subscriptions {
    /// Channels plus patterns: the count Redis replies with.
    pub(crate) fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Whether the connection is in subscribed mode.
    pub(crate) fn active(&self) -> bool {
        self.count() > 0
    }

    /// Registers the subscriptions as they are now with the broker (as `client`
    /// when given, else as before).
    fn sync_broker(&mut self, client: Option<&str>) {
        if let Some(l) = &mut self.link {
            if let Some(c) = client {
                l.client = Some(c.to_string());
            }
            l.broker.register(
                l.id,
                l.client.as_deref(),
                &self.inbox,
                &self.channels,
                &self.patterns,
            );
        }
    }

    /// Starts (or, after AUTH as someone else, restarts) the watcher on `bucket`
    /// when there are subscriptions, and stops it when there are none.
    fn sync_watcher(&mut self, bucket: Option<&Bucket>) -> state_core::Result<()> {
        match bucket {
            Some(b) if self.active() => {
                if self.watcher.as_ref().is_some_and(|(c, _)| c == b.name()) {
                    return Ok(());
                }
                let opts = WatchOptions::new(QUEUE_NOTICES, QUEUE_BYTES, false).with_labels(true);
                let w = b.watch_with("", opts)?;
                let ready = Arc::clone(&self.ready);
                w.set_waker(move || ready.notify_one());
                self.watcher = Some((b.name().to_string(), w));
            }
            _ => self.watcher = None,
        }
        Ok(())
    }

    /// SUBSCRIBE / PSUBSCRIBE: one confirmation per name. Refuses, before
    /// subscribing to any, names that would take the connection past `max`
    /// subscriptions and patterns over the glob length limit.
    pub(crate) fn subscribe(
        &mut self,
        bucket: &Bucket,
        (broker, id): (&Arc<Broker>, u64),
        names: &[&[u8]],
        pattern: bool,
        max: usize,
        out: &mut Out,
    ) -> state_core::Result<()> {
        if self.link.is_none() {
            self.link = Some(Link {
                broker: Arc::clone(broker),
                id,
                client: None,
            });
        }
        let mut compiled = Vec::with_capacity(names.len());
        for name in names {
            if pattern {
                match Pattern::new(name) {
                    Ok(p) => compiled.push(Some(p)),
                    Err(e) => {
                        out.error(&e.to_string());
                        return Ok(());
                    }
                }
            } else if name.len() > crate::glob::MAX_PATTERN_LEN {
                out.error(&format!(
                    "ERR channel name is {} bytes, over libstate's limit of {}",
                    name.len(),
                    crate::glob::MAX_PATTERN_LEN
                ));
                return Ok(());
            } else {
                compiled.push(None);
            }
        }
        let new: BTreeSet<&[u8]> = names
            .iter()
            .copied()
            .filter(|n| {
                if pattern {
                    !self.patterns.contains_key(*n)
                } else {
                    !self.channels.contains(*n)
                }
            })
            .collect();
        if self.count() + new.len() > max {
            out.error(&format!(
                "ERR a connection may subscribe to at most {max} channels and patterns (--max-subscriptions)"
            ));
            return Ok(());
        }
        for (name, p) in names.iter().zip(compiled) {
            match p {
                Some(p) => {
                    self.patterns.insert(name.to_vec(), p);
                }
                None => {
                    self.channels.insert(name.to_vec());
                }
            }
            out.push(3);
            out.bulk(if pattern { b"psubscribe" } else { b"subscribe" });
            out.bulk(name);
            out.int(self.count() as i64);
        }
        self.sync_broker(Some(bucket.name()));
        self.sync_watcher(Some(bucket))
    }

    /// UNSUBSCRIBE / PUNSUBSCRIBE: the names given, or all of that kind.
    pub(crate) fn unsubscribe(&mut self, names: &[&[u8]], pattern: bool, out: &mut Out) {
        let kind: &[u8] = if pattern {
            b"punsubscribe"
        } else {
            b"unsubscribe"
        };
        let names: Vec<Vec<u8>> = if !names.is_empty() {
            names.iter().map(|n| n.to_vec()).collect()
        } else if pattern {
            std::mem::take(&mut self.patterns).into_keys().collect()
        } else {
            std::mem::take(&mut self.channels).into_iter().collect()
        };
        if names.is_empty() {
            out.push(3);
            out.bulk(kind);
            out.null();
            out.int(self.count() as i64);
        }
        for name in names {
            if pattern {
                self.patterns.remove(&name);
            } else {
                self.channels.remove(&name);
            }
            out.push(3);
            out.bulk(kind);
            out.bulk(&name);
            out.int(self.count() as i64);
        }
        if !self.active() {
            self.watcher = None;
        }
        self.sync_broker(None);
    }

    /// Drops every subscription (RESET).
    pub(crate) fn clear(&mut self) {
        self.channels.clear();
        self.patterns.clear();
        self.watcher = None;
        self.sync_broker(None);
        let mut s = self.inbox.state.lock();
        *s = InboxState::default();
    }

    /// After AUTH as another client: watch the new client's bucket, and hear
    /// that client's PUBLISH, instead.
    pub(crate) fn rebind(&mut self, bucket: &Bucket) -> state_core::Result<()> {
        self.sync_broker(Some(bucket.name()));
        self.sync_watcher(Some(bucket))
    }

    /// Writes a message for every queued event that a subscription matches and
    /// the client's `notify-keyspace-events` classes (`flags`) let through.
    ///
    /// # Errors
    /// [`Broken`] when the watcher overflowed or ended: the connection must close.
    pub(crate) fn drain(&mut self, flags: u32, out: &mut Out) -> Result<(), Broken> {
        let published = {
            let mut s = self.inbox.state.lock();
            if s.overflowed {
                return Err(Broken::Lagged(1));
            }
            s.bytes = 0;
            std::mem::take(&mut s.items)
        };
        for p in published {
            match &p.pattern {
                None => {
                    out.push(3);
                    out.bulk(b"message");
                }
                Some(pattern) => {
                    out.push(4);
                    out.bulk(b"pmessage");
                    out.bulk(pattern);
                }
            }
            out.bulk(&p.channel);
            out.bulk(&p.message);
        }
        let Some((_, w)) = &self.watcher else {
            return Ok(());
        };
        loop {
            match w.try_recv() {
                // FLUSHDB's deletes: no keyspace event, as in Redis.
                Ok(Notice::Change(e)) if e.label() == Some(crate::tracking::FLUSH_LABEL) => {}
                Ok(Notice::Change(e)) => {
                    let events = match e.label() {
                        // The command named it.
                        Some(label) => [None, Some((label, label_class(label)))],
                        // A key that did not exist gets Redis's `new` (class `n`)
                        // first.
                        None => [
                            e.is_new().then_some(("new", class::NEW)),
                            Some((redis_event_name(e.kind()), event_class(e.kind()))),
                        ],
                    };
                    for (name, cls) in events.into_iter().flatten() {
                        if flags & cls == 0 {
                            continue;
                        }
                        let event = name.as_bytes();
                        if flags & class::KEYSPACE != 0 {
                            let mut space = KEYSPACE.to_vec();
                            space.extend_from_slice(e.key().as_bytes());
                            self.deliver(&space, event, out);
                        }
                        if flags & class::KEYEVENT != 0 {
                            let mut keyevent = KEYEVENT.to_vec();
                            keyevent.extend_from_slice(event);
                            self.deliver(&keyevent, e.key().as_bytes(), out);
                        }
                    }
                }
                Ok(Notice::Lagged(n)) => return Err(Broken::Lagged(n)),
                Err(RecvError::Empty) => return Ok(()),
                Err(RecvError::Ended) => return Err(Broken::Ended),
            }
        }
    }

    fn deliver(&self, channel: &[u8], message: &[u8], out: &mut Out) {
        if self.channels.contains(channel) {
            out.push(3);
            out.bulk(b"message");
            out.bulk(channel);
            out.bulk(message);
        }
        for (p, compiled) in &self.patterns {
            if compiled.matches(channel) {
                out.push(4);
                out.bulk(b"pmessage");
                out.bulk(p);
                out.bulk(channel);
                out.bulk(message);
            }
        }
    }
}
