"""libstate: an embeddable key-value state store.

A store is a directory holding named *buckets*; each bucket is an ordered mapping
from ``str`` keys to ``bytes`` values (a real
:class:`collections.abc.MutableMapping`), with atomic batches, cursors, JSON helpers
and a per-client service layer. The engine is written in Rust (``state-core``).

>>> import libstate, tempfile, os
>>> with libstate.open(os.path.join(tempfile.mkdtemp(), "state")) as store:
...     b = store.bucket("user1")
...     b["layout"] = b'{"cols": 3}'
...     b.get_json("layout")
{'cols': 3}

Rules (the same in every language): keys are non-empty str of at most 1024 bytes
of UTF-8, ordered by their UTF-8 bytes; bucket names are 1..255 bytes without
control characters; values are bytes-like, at most ``max_value_size`` bytes
(16 MiB by default). Breaking a rule raises :class:`InvalidArgument` and writes
nothing. Every error is a :class:`StateError`.

Durability: by default writes become durable at the next background flush (every
``flush_interval`` seconds, 0.5 s by default); a crash loses at most that window and
never corrupts the store. With ``sync=True`` every write call returns only once its
data is on disk. :meth:`Store.flush` forces it; closing the store flushes.

Threads: stores, buckets, cursors and iterators may be shared between threads.
Calls that can block (writes, batches, scans, cursor steps, and point reads with the
sled engine) release the GIL.
"""

from __future__ import annotations

import asyncio as _asyncio
import json as _json
from collections.abc import AsyncIterator, ItemsView, Iterator, KeysView, MutableMapping, ValuesView
from os import PathLike
from typing import IO, Any, Literal, NamedTuple, cast

from . import _native
from ._errors import (
    Conflict,
    CorruptStore,
    InternalError,
    InvalidArgument,
    QuotaExceeded,
    StateError,
    StoreClosed,
    StoreIOError,
    StoreLocked,
    TooLarge,
)
from ._native import BucketIterator, Cursor, ManualClock, RemoteCursor, RemoteIterator

__all__ = [
    "open",
    "connect",
    "Store",
    "Bucket",
    "Cursor",
    "BucketIterator",
    "ManualClock",
    "StateService",
    "Watcher",
    "Event",
    "RemoteBucket",
    "RemoteCursor",
    "RemoteIterator",
    "RemoteWatcher",
    "DEFAULT_TIMEOUT",
    "StoreInfo",
    "CheckReport",
    "BucketCheck",
    "CompactReport",
    "BackupReport",
    "ExportReport",
    "ImportReport",
    "StateError",
    "InvalidArgument",
    "StoreLocked",
    "CorruptStore",
    "StoreClosed",
    "StoreIOError",
    "TooLarge",
    "QuotaExceeded",
    "Conflict",
    "InternalError",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_SWEEP_INTERVAL",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_MAX_VALUE_SIZE",
    "DEFAULT_MAX_BATCH_SIZE",
    "MAX_KEY_LEN",
    "DEFAULT_WATCH_CAPACITY",
    "MAX_BUCKET_NAME_LEN",
    "__version__",
]

__version__: str = _native.__version__

#: Seconds between background flushes in the default (periodic) durability mode.
DEFAULT_FLUSH_INTERVAL: float = _native.DEFAULT_FLUSH_INTERVAL
#: Seconds between runs of the background expiry sweeper.
DEFAULT_SWEEP_INTERVAL: float = _native.DEFAULT_SWEEP_INTERVAL
#: Default page-cache size of the sled engine, in bytes.
DEFAULT_CACHE_SIZE: int = _native.DEFAULT_CACHE_SIZE
#: Default largest value, in bytes (16 MiB).
DEFAULT_MAX_VALUE_SIZE: int = _native.DEFAULT_MAX_VALUE_SIZE
#: Default largest total size (keys plus values) of one ``set_many``, in bytes (256 MiB).
DEFAULT_MAX_BATCH_SIZE: int = _native.DEFAULT_MAX_BATCH_SIZE
#: Longest key, in bytes of UTF-8.
MAX_KEY_LEN: int = _native.MAX_KEY_LEN
DEFAULT_WATCH_CAPACITY: int = _native.DEFAULT_WATCH_CAPACITY
#: Longest bucket name, in bytes of UTF-8.
MAX_BUCKET_NAME_LEN: int = _native.MAX_BUCKET_NAME_LEN
#: Seconds :func:`connect` waits by default for a connection, a request or a reply.
DEFAULT_TIMEOUT: float = _native.DEFAULT_TIMEOUT


def open(  # noqa: A001 - the conventional name, as gzip.open and dbm.open
    path: str | PathLike[str],
    engine: str = "sled",
    *,
    sync: bool = False,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    cache_size: int = DEFAULT_CACHE_SIZE,
    max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    sweep_interval: float | None = DEFAULT_SWEEP_INTERVAL,
    clock: ManualClock | None = None,
) -> Store:
    """Open (creating if needed) the store in directory ``path``, or on a Redis
    server or cluster when ``path`` is a URL: ``redis://host:port/db``,
    ``rediss://...`` (TLS), ``redis+unix:///path/to/socket`` or
    ``redis+cluster://host1:port1,host2:port2``, optionally followed by
    ``?namespace=NAME&timeout_ms=N``. A Redis store has no lock: several processes
    on several hosts may open it at once.

    :param engine: the storage engine: ``"sled"`` (the default; an on-disk B-tree
        with a page cache) or ``"memfile"`` (the whole store in memory, persisted
        to an append-only log; fastest, the data must fit in RAM); a Redis URL as
        ``path`` selects ``"redis"`` whatever this says, and ``"redis"`` requires one.
    :param sync: ``False`` (default): periodic durability, writes reach the disk
        within ``flush_interval`` seconds. ``True``: every write call returns only
        after its data is on disk (concurrent writers share one fsync).
    :param flush_interval: seconds between background flushes (> 0).
    :param cache_size: page-cache bytes for engines that have one (> 0).
    :param max_value_size: largest value accepted, in bytes (> 0).
    :param max_batch_size: largest total size of one ``set_many``, in bytes (> 0).
    :param sweep_interval: seconds between background removals of expired records
        (> 0), or ``None`` for no background sweeping (:meth:`Store.sweep_expired`
        still works). Expired records are invisible to reads either way.
    :param clock: a :class:`ManualClock` to judge TTLs by instead of the wall clock
        (for tests: ``clock.advance(5)`` expires a 5-second TTL without waiting).
    :returns: a :class:`Store`; use it in a ``with`` block or call ``close()``.
    :raises InvalidArgument: an option is out of range, the engine is unknown, the
        path exists and is not a directory, or the store is already open in this
        process with another engine.
    :raises StoreLocked: another process has the store open.
    :raises CorruptStore: the store's files cannot be read (libstate changes none of
        them; sled itself may rewrite parts while opening, as the message then says).
    :raises StoreIOError: the directory cannot be created, read or written.

    Opening a directory already open in this process returns another handle on the
    same store, and the options of the first open stay in force.
    """
    return Store(
        path,
        engine,
        sync=sync,
        flush_interval=flush_interval,
        cache_size=cache_size,
        max_value_size=max_value_size,
        max_batch_size=max_batch_size,
        sweep_interval=sweep_interval,
        clock=clock,
    )


class StoreInfo(NamedTuple):
    """Counts and sizes describing an open store (see :meth:`Store.info`)."""

    #: The store directory (canonical path).
    path: str
    #: The engine's name.
    engine: str
    #: Number of buckets holding at least one live record.
    buckets: int
    #: Number of live (not expired) records over all buckets.
    records: int
    #: Number of live records that have a time to live.
    expiring: int
    #: Bytes the store occupies on disk (0 for a store kept on a server).
    disk_bytes: int
    #: What the engine says about where its data lives (the Redis engine: server
    #: version, standalone or cluster, persistence settings), or ``None``.
    engine_details: str | None


class BucketCheck(NamedTuple):
    """What :meth:`Store.check` read from one bucket."""

    #: The bucket's name.
    name: str
    #: Records that could be read (expired ones not yet swept included).
    records: int
    #: Readable records that carry a TTL.
    with_ttl: int
    #: Readable records whose TTL has run out but that are not removed yet.
    expired_unswept: int
    #: Every record that could not be read (not only the first), one line each.
    problems: list[str]


class CheckReport(NamedTuple):
    """What :meth:`Store.check` found."""

    #: Every bucket, in key order.
    buckets: list[BucketCheck]
    #: Records with a TTL that the expiry index covers (None if it is unreadable).
    indexed_ttl: int | None
    #: Every problem, buckets' first (``bucket NAME: ...``), then the store's.
    problems: list[str]

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return not self.problems

    @property
    def records(self) -> int:
        """Readable records over all buckets."""
        return sum(b.records for b in self.buckets)

    @property
    def with_ttl(self) -> int:
        """Readable records that carry a TTL."""
        return sum(b.with_ttl for b in self.buckets)


class CompactReport(NamedTuple):
    """What :meth:`Store.compact` did."""

    #: Bytes of the store's files before.
    before_bytes: int
    #: Bytes of the store's files after.
    after_bytes: int
    #: Buckets holding a record afterwards.
    buckets: int
    #: Records afterwards.
    records: int


class BackupReport(NamedTuple):
    """What :meth:`Store.backup` wrote."""

    #: The copy's directory.
    path: str
    #: Buckets in the copy holding a record.
    buckets: int
    #: Records in the copy (expired ones not yet swept included).
    records: int
    #: Bytes of the copy's files.
    bytes: int
    #: The longest time the backup held writers up, in seconds.
    write_pause: float


class ExportReport(NamedTuple):
    """What :meth:`Store.export` wrote."""

    #: Buckets written.
    buckets: int
    #: Records written.
    records: int
    #: Records written that have a TTL (dropped by the ``"json"`` format).
    with_ttl: int


class ImportReport(NamedTuple):
    """What :meth:`Store.import_` loaded."""

    #: Buckets written to.
    buckets: int
    #: Records written.
    records: int
    #: Bytes of values written.
    value_bytes: int
    #: JSON-lines records skipped because their deadline had passed.
    expired_skipped: int


def _is_path(x: object) -> bool:
    return isinstance(x, (str, bytes, PathLike))


class Store(_native.Store):
    """An open store: a directory of named buckets. Get one with :func:`open`.

    A context manager: the ``with`` block closes it. Safe to share between threads.
    After :meth:`close`, every operation on this handle and on the buckets, cursors
    and iterators taken from it raises :class:`StoreClosed`.
    """

    __slots__ = ()

    def bucket(self, name: str) -> Bucket:
        """The bucket ``name``. Buckets need no creating: a bucket exists while it
        holds a record. Cheap; the bucket may be shared between threads.

        :raises InvalidArgument: the name is empty, over 255 bytes, or contains a
            control character.
        :raises StoreClosed: the store is closed.
        """
        return Bucket(self, name)

    def info(self) -> StoreInfo:
        """Counts and sizes of the store. Counting records reads every key."""
        return StoreInfo(*self._info())

    def service(self) -> StateService:
        """A :class:`StateService` over this store."""
        return StateService(self)

    def check(self) -> CheckReport:
        """Reads every stored record of every bucket and reports each one that
        cannot be read (every bad record, not only a bucket's first), plus records
        with a TTL that the expiry index misses. Damage is in the report
        (``report.ok`` is False), not raised. Nothing is changed.

        :raises StoreClosed: the store is closed.
        """
        rows, indexed, store_problems = self._check()
        buckets = [BucketCheck(*r) for r in rows]
        problems = [f"bucket {b.name}: {p}" for b in buckets for p in b.problems]
        return CheckReport(buckets, indexed, problems + store_problems)

    def compact(self) -> CompactReport:
        """Gives disk space back to the file system, keeping every live record and
        TTL (expired records are removed first). memfile folds its logs into a
        snapshot while reads and writes go on; sled's store is copied into
        ``.NAME.compact`` beside it, verified and swapped in, and every other call on
        the store waits meanwhile.

        :raises StoreIOError: a ``.NAME.compact`` directory left by an interrupted
            compaction exists (delete it once no compaction runs), or I/O failed.
        :raises CorruptStore: the copy did not verify (the store is untouched).
        """
        return CompactReport(*self._compact())

    def backup(self, dest: str | PathLike[str]) -> BackupReport:
        """Writes a point-in-time copy of this open store to the new directory
        ``dest`` while other threads go on reading and writing it: the copy holds
        every write that returned before the call and none that began after it, and
        opens as a store of the same engine. Readers are never blocked; writers
        wait only while the backup swaps a pointer, twice. The copy is built beside
        ``dest`` and renamed into place once complete. The GIL is released meanwhile.

        :raises StoreIOError: ``dest`` exists, or I/O failed (nothing is left at
            ``dest``).
        :raises InvalidArgument: a store kept on a Redis server (back it up with
            Redis's tools: ``BGSAVE``, ``redis-cli --rdb FILE``), ``dest`` inside
            the store, or another backup of the store running.
        """
        path, buckets, records, size, pause = self._backup(dest)
        return BackupReport(str(path), buckets, records, size, pause)

    def export(
        self,
        dest: str | PathLike[str] | IO[bytes],
        format: Literal["json", "jsonl"] = "json",
        *,
        buckets: list[str] | None = None,
    ) -> ExportReport:
        """Writes the store (or the named ``buckets``) to ``dest``: a path, written
        atomically (a temporary file beside it, synced and renamed), or a binary
        file object (its ``write`` is called). Buckets and keys in key order;
        expired records left out.

        ``format="json"``: the original state service's ``{bucket: {key: base64}}``
        (TTLs are not kept). ``format="jsonl"``: one
        ``{"bucket", "key", "value", "expires_at_ms"}`` object per line (TTLs kept).

        :raises InvalidArgument: unknown format or bad bucket name.
        :raises StoreIOError: the file cannot be written.
        """
        names = None if buckets is None else list(buckets)
        if _is_path(dest):
            return ExportReport(*self._export_path(dest, format, names))  # type: ignore[arg-type]
        return ExportReport(*self._export_file(dest, format, names))

    def import_(
        self,
        src: str | PathLike[str] | IO[bytes],
        format: Literal["json", "jsonl"] | None = None,
    ) -> ImportReport:
        """Loads ``src`` (a path or a binary file object) into the store; keys
        already present are overwritten. ``format`` defaults to ``"jsonl"`` for
        paths ending in ``.jsonl`` / ``.ndjson`` and ``"json"`` otherwise.

        ``"json"``: everything is checked first; nothing is written if anything is
        wrong; then one atomic batch per bucket. ``"jsonl"``: streamed in atomic
        batches; each record keeps its deadline, one already expired is skipped; a
        bad line raises (its message names the line) and the records before it stay
        written.

        :raises InvalidArgument: malformed input (line and column in the message).
        :raises TooLarge: a JSON bucket over the store's batch limit.
        :raises StoreIOError: the file cannot be read.
        """
        if _is_path(src):
            return ImportReport(*self._import_path(src, format))  # type: ignore[arg-type]
        return ImportReport(*self._import_file(src, format or "json"))


class _Keys(KeysView[str]):
    """The keys of a bucket, in key order (a live view)."""

    __slots__ = ()
    _mapping: Bucket | RemoteBucket

    def __iter__(self) -> Iterator[str]:
        return self._mapping._iterate(0)

    def __reversed__(self) -> Iterator[str]:
        return self._mapping._iterate(0, True)


class _Values(ValuesView[bytes]):
    """The values of a bucket, in key order (a live view)."""

    __slots__ = ()
    _mapping: Bucket | RemoteBucket

    def __iter__(self) -> Iterator[bytes]:
        return self._mapping._iterate(1)

    def __reversed__(self) -> Iterator[bytes]:
        return self._mapping._iterate(1, True)


class _Items(ItemsView[str, bytes]):
    """The ``(key, value)`` pairs of a bucket, in key order (a live view)."""

    __slots__ = ()
    _mapping: Bucket | RemoteBucket

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        return self._mapping._iterate(2)

    def __reversed__(self) -> Iterator[tuple[str, bytes]]:
        return self._mapping._iterate(2, True)


def _get_json(raw: bytes | None, key: str, where: str, default: Any) -> Any:
    """``raw`` decoded from JSON (``default`` for ``None``); the rule of every
    bucket's ``get_json``. ``where`` names the bucket in the error."""
    if raw is None:
        return default
    try:
        return _json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"invalid argument: value of key {key!r} {where} is not JSON: {e}") from e


def _to_json(key: str, value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON; the rule of every bucket's ``set_json``."""
    try:
        data = _json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"invalid argument: value for key {key!r} cannot be encoded as JSON: {e}") from e
    return data.encode()


class Bucket(_native.Bucket, MutableMapping[str, bytes]):
    """A named, ordered mapping from ``str`` keys to ``bytes`` values in a store.

    Get one with :meth:`Store.bucket`. It is a
    :class:`collections.abc.MutableMapping`: ``b[k]``, ``b[k] = v``, ``del b[k]``,
    ``k in b``, ``len(b)``, iteration (ascending key order; ``reversed(b)`` for
    descending), ``keys()``, ``values()``, ``items()``, ``get``, ``pop``,
    ``popitem``, ``setdefault``, ``update``, ``clear`` and ``==`` all work.
    Values are bytes-like going in and ``bytes`` coming out; a ``str`` value raises
    :class:`TypeError` (use ``.encode()`` or :meth:`set_json`).

    Keys may expire (Redis-like): ``set(k, v, ttl=seconds)``, ``set_many(items,
    ttl=...)``, :meth:`expire`, :meth:`persist`, :meth:`ttl`. A plain ``set`` or
    ``b[k] = v`` clears a key's expiry. An expired key is invisible to every read
    from the moment it expires.

    ``len()`` reads every key (O(n)); ``bool(b)`` reads at most one. Iteration reads
    in batches without holding a snapshot, so writes made meanwhile by other threads
    may or may not be seen. Expired keys are invisible to every read.
    """

    __slots__ = ()

    def keys(self) -> KeysView[str]:
        """A live view of the keys, in ascending key order."""
        return _Keys(self)

    def values(self) -> ValuesView[bytes]:
        """A live view of the values, in ascending key order."""
        return _Values(self)

    def items(self) -> ItemsView[str, bytes]:
        """A live view of the ``(key, value)`` pairs, in ascending key order."""
        return _Items(self)

    def get_json(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` decoded from JSON, or ``default`` if it is missing.

        :raises InvalidArgument: the stored value is not valid JSON.
        """
        return _get_json(self.get(key), key, f"in bucket {self.name!r}", default)

    def set_json(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` encoded as compact UTF-8 JSON; ``ttl`` as in :meth:`set`.

        :raises InvalidArgument: ``value`` cannot be encoded as JSON (the
            :class:`TypeError` or :class:`ValueError` from :mod:`json` is chained),
            or the key is invalid.
        """
        self.set(key, _to_json(key, value), ttl)

    def watch(self, prefix: str = "", capacity: int = DEFAULT_WATCH_CAPACITY) -> Watcher:
        """Watch the keys of this bucket that start with ``prefix`` (``""``: all).

        Returns a :class:`Watcher`: iterate it (``for event in w``) or, in asyncio,
        ``async for event in w``. It yields an :class:`Event` for every change
        committed after this call, in commit order, each once its write is visible
        to reads. See :class:`Watcher` for lag, expiry delay and ending.

        :raises InvalidArgument: ``prefix`` is longer than 1024 bytes, or
            ``capacity`` is 0.
        :raises StoreClosed: the store is closed.
        """
        return Watcher(self, prefix, capacity)




class Event(NamedTuple):
    """One notice from a :class:`Watcher`.

    ``kind`` is ``"set"`` (``value`` is the new value; ``new`` says whether the
    key was created), ``"delete"``, ``"expire"`` (the key's deadline was set or
    changed, its value kept), ``"persist"`` (its deadline removed), ``"expired"``
    (its deadline passed and the record was removed; ``value`` is ``None`` for all
    but ``"set"``), or ``"lagged"``: the watcher fell behind and ``missed``
    changes were dropped here (``key`` is ``None``); read the keys again to catch
    up. The names are those of Redis's keyspace events (its ``del`` is
    ``"delete"``).
    """

    kind: Literal["set", "delete", "expire", "persist", "expired", "lagged"]
    key: str | None
    value: bytes | None
    missed: int = 0
    new: bool = False


class Watcher(_native.Watcher):
    """The changes under a key prefix of one bucket; get one with :meth:`Bucket.watch`.

    Iterating blocks with the GIL released (Ctrl-C interrupts it); ``async for``
    waits on the event loop without a thread. Writers never wait for a watcher:
    one that falls ``capacity`` events behind gets an ``Event("lagged", ...)``
    with the number it missed, in their place. ``"expired"`` events come when the
    expired key is removed: by the background sweeper, so up to ``sweep_interval``
    (1 s by default) after its deadline, or when a write touches the key. Changing
    only a key's TTL is an ``"expire"`` or ``"persist"`` event.

    The iteration ends when the store is closed or :meth:`close` is called (after
    the events queued before). A watcher is also a context manager that closes it.
    """

    __slots__ = ()

    def __iter__(self) -> Iterator[Event]:
        """The watcher itself: iterating yields its events until it ends."""
        return self

    def __next__(self) -> Event:
        """The next event, waiting for one with the GIL released."""
        ev = _event(self._recv(None))
        if ev is None:
            raise StopIteration
        return ev

    def recv(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting at most ``timeout`` seconds (``None``: until
        one comes, ``0``: not at all); ``None`` if none came in time or the
        watcher has ended."""
        return _event(self._recv(timeout))

    def __aiter__(self) -> AsyncIterator[Event]:
        """The watcher itself: ``async for`` yields its events until it ends."""
        return self

    async def __anext__(self) -> Event:
        """The next event, waiting on the running event loop."""
        loop = _asyncio.get_running_loop()
        fd = self._wakeup_fd()
        while True:
            self._drain_wakeup()
            raw = self._recv(0)
            if raw is not None:
                ev = _event(raw)
                if ev is None:
                    raise StopAsyncIteration
                return ev
            ready: _asyncio.Future[None] = loop.create_future()

            def wake() -> None:
                if not ready.done():
                    ready.set_result(None)

            try:
                loop.add_reader(fd, wake)
            except NotImplementedError:
                # A loop without add_reader (Windows' proactor): wait in a thread.
                raw = await loop.run_in_executor(None, self._recv, 0.1)
                if raw is not None:
                    ev = _event(raw)
                    if ev is None:
                        raise StopAsyncIteration
                    return ev
                continue
            try:
                await ready
            finally:
                loop.remove_reader(fd)

    def __enter__(self) -> Watcher:
        """The watcher itself; leaving the ``with`` block closes it."""
        return self

    def __exit__(self, *_args: object) -> None:
        """Closes the watcher."""
        self.close()


def _event(raw: tuple[str, str | None, bytes | None, int, bool] | None) -> Event | None:
    """The Event of a native notice; None for none (a timeout) or the end."""
    if raw is None or raw[0] == "ended":
        return None
    kind, key, value, missed, new = raw
    return Event(cast('Literal["set", "delete", "expire", "persist", "expired", "lagged"]', kind), key, value, missed, new)


class StateService(_native.StateService):
    """The state service over a store: each client reaches exactly one bucket, named
    by its authenticated client id, and can never address another client's state.

    :meth:`handle` speaks the original service's JSON messages (values base64);
    the methods and their messages are in docs/service.md ("HTTP"). A write over the
    client's quota raises :class:`QuotaExceeded`.
    """

    __slots__ = ()

    def client(self, client_id: str) -> Bucket:
        """The bucket of client ``client_id``: the only bucket that client reaches.

        :raises InvalidArgument: the id is not a valid bucket name.
        """
        return Bucket(self.store, client_id)



def connect(url: str | None = None, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT, cache: int | None = None) -> RemoteBucket:
    """Connect to a ``state serve`` and return the signed-in client's bucket: a
    :class:`RemoteBucket`, with :class:`Bucket`'s interface, so a program moves from
    an embedded store to the shared service by changing one line::

        b = libstate.open("state-data").bucket("user1")          # embedded
        b = libstate.connect("state+unix:///srv/app/state-data/state.sock")  # shared

    :param url: ``state+unix:///path/to/state.sock`` (signs in as the process's
        Unix user, by peer credentials), ``state://[NAME:TOKEN@]host:port`` (TCP,
        as the client NAME) or ``states://...`` (the same over TLS); ``None``: the
        default store's socket, ``$STATE_STORE/state.sock``, else
        ``./state-data/state.sock`` (the ``state`` CLI's rule).
    :param token: a client token to sign in with when the URL carries none (on a
        Unix socket: act as that token's client instead of the Unix user).
    :param timeout: seconds (> 0) a connection attempt, a request or a reply may
        take before the call raises :class:`StoreIOError`.
    :param cache: turn the client-side cache on, keeping up to this many keys
        (and 64 MiB) that ``get`` / ``b[k]`` read, until the server says they
        changed; a repeated read of an unchanged key then costs no round trip.
        ``None`` (the default): off. A reader never sees a value older than this
        handle's own last write to the key, older than an invalidation it has
        received, or past its TTL; a change made through another connection is
        seen once its invalidation arrives (shortly after that write was
        acknowledged). See docs/python.md, "Connecting to a server".
    :returns: a :class:`RemoteBucket`; use it in a ``with`` block or call ``close()``.
    :raises InvalidArgument: a malformed URL, a timeout <= 0, or credentials the
        server refuses.
    :raises StoreIOError: the server cannot be reached.

    The connection is made and checked before this returns. A token never
    appears in an error message or ``repr``.
    """
    return RemoteBucket(url, token=token, timeout=timeout, cache=cache)


class RemoteBucket(_native.RemoteBucket, MutableMapping[str, bytes]):
    """The bucket of the client a ``state serve`` signed the connection in as; get
    one with :func:`connect`.

    The same interface as :class:`Bucket`, as far as it makes sense over a network:
    a :class:`collections.abc.MutableMapping` (``b[k]``, ``b[k] = v``,
    ``del b[k]``, ``in``, ``len``, iteration in key order, ``keys()``, ``values()``,
    ``items()``, ...), :meth:`set` with ``ttl``, :meth:`get_many` (one round
    trip), :meth:`set_many` (one atomic batch), :meth:`range`, :meth:`prefix`,
    :meth:`cursor` (a :class:`RemoteCursor`), :meth:`get_json` / :meth:`set_json`,
    :meth:`ttl` / :meth:`expire` / :meth:`persist`, :meth:`watch`, and the same
    exceptions (:class:`InvalidArgument` for the same bad keys, values and TTLs,
    checked before anything is sent; :class:`QuotaExceeded` over the client's
    quota). There is no store: no ``name`` (the server chose the bucket),
    ``Store`` methods or ``clear()`` in one call (``MutableMapping.clear`` deletes
    key by key).

    A server that cannot be reached, or a lost connection, raises
    :class:`StoreIOError` naming the server. A read is retried once on a fresh
    connection; a write never is (its error says the outcome is unknown). Every
    call releases the GIL while it waits for the network. Safe to share between
    threads: each call takes a pooled connection of its own. A context manager: the
    ``with`` block closes it; after :meth:`close` every call on it, and on its
    cursors and iterators, raises :class:`StoreClosed`.
    """

    __slots__ = ()

    def keys(self) -> KeysView[str]:
        """A live view of the keys, in ascending key order."""
        return _Keys(self)

    def values(self) -> ValuesView[bytes]:
        """A live view of the values, in ascending key order."""
        return _Values(self)

    def items(self) -> ItemsView[str, bytes]:
        """A live view of the ``(key, value)`` pairs, in ascending key order."""
        return _Items(self)

    def get_json(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` decoded from JSON, or ``default`` if it is missing
        (the original's typed ``Get``).

        :raises InvalidArgument: the stored value is not valid JSON.
        """
        return _get_json(self.get(key), key, f"at {self.endpoint}", default)

    def set_json(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` encoded as compact UTF-8 JSON (the original's typed
        ``Put``); ``ttl`` as in :meth:`set`.

        :raises InvalidArgument: ``value`` cannot be encoded as JSON, or the key is
            invalid.
        """
        self.set(key, _to_json(key, value), ttl)

    def watch(self, prefix: str = "") -> RemoteWatcher:
        """Watch the keys of this bucket that start with ``prefix`` (``""``: all),
        through the server's keyspace notifications on a connection of the
        watcher's own. Every change committed once this returns reaches it. See
        :class:`RemoteWatcher` for how it differs from :class:`Watcher`.

        :raises StoreIOError: the server cannot be reached.
        :raises StoreClosed: the bucket is closed.
        """
        return RemoteWatcher(self, prefix)


class RemoteWatcher(_native.RemoteWatcher):
    """The changes under a key prefix of a :class:`RemoteBucket`; get one with
    :meth:`RemoteBucket.watch`. An iterator and an async iterator of :class:`Event`,
    as :class:`Watcher`, with these differences: an event carries no ``value``
    (the server's notifications carry none: read the key), ``new`` is ``True``
    only when the client's ``notify-keyspace-events`` includes ``n``, and there
    is no ``"lagged"``: a watcher the server drops (1024 events behind) or whose
    connection is lost raises :class:`StoreIOError`; watch again and reread what
    matters. ``async for`` waits in the event loop's default executor, 0.1 s at a
    time. The iteration ends when :meth:`close` is called; a ``with`` block
    closes it.
    """

    __slots__ = ()

    def __iter__(self) -> Iterator[Event]:
        """The watcher itself: iterating yields its events until it ends."""
        return self

    def __next__(self) -> Event:
        """The next event, waiting for one with the GIL released."""
        ev = _event(self._recv(None))
        if ev is None:
            raise StopIteration
        return ev

    def recv(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting at most ``timeout`` seconds (``None``: until
        one comes); ``None`` if none came in time or the watcher has ended."""
        return _event(self._recv(timeout))

    def __aiter__(self) -> AsyncIterator[Event]:
        """The watcher itself: ``async for`` yields its events until it ends."""
        return self

    async def __anext__(self) -> Event:
        """The next event, waited for in the loop's default executor."""
        loop = _asyncio.get_running_loop()
        while True:
            raw = await loop.run_in_executor(None, self._recv, 0.1)
            if raw is not None:
                ev = _event(raw)
                if ev is None:
                    raise StopAsyncIteration
                return ev

    def __enter__(self) -> RemoteWatcher:
        """The watcher itself; leaving the ``with`` block closes it."""
        return self

    def __exit__(self, *_args: object) -> None:
        """Closes the watcher."""
        self.close()
