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

import json as _json
from collections.abc import ItemsView, Iterator, KeysView, MutableMapping, ValuesView
from os import PathLike
from typing import Any, NamedTuple

from . import _native
from ._errors import (
    CorruptStore,
    InternalError,
    InvalidArgument,
    StateError,
    StoreClosed,
    StoreIOError,
    StoreLocked,
    TooLarge,
)
from ._native import BucketIterator, Cursor

__all__ = [
    "open",
    "Store",
    "Bucket",
    "Cursor",
    "BucketIterator",
    "StateService",
    "StoreInfo",
    "StateError",
    "InvalidArgument",
    "StoreLocked",
    "CorruptStore",
    "StoreClosed",
    "StoreIOError",
    "TooLarge",
    "InternalError",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_SWEEP_INTERVAL",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_MAX_VALUE_SIZE",
    "DEFAULT_MAX_BATCH_SIZE",
    "MAX_KEY_LEN",
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
#: Longest bucket name, in bytes of UTF-8.
MAX_BUCKET_NAME_LEN: int = _native.MAX_BUCKET_NAME_LEN


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
    #: Bytes the store occupies on disk.
    disk_bytes: int


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


class _Keys(KeysView[str]):
    """The keys of a bucket, in key order (a live view)."""

    __slots__ = ()
    _mapping: Bucket

    def __iter__(self) -> Iterator[str]:
        return self._mapping._iterate(0)

    def __reversed__(self) -> Iterator[str]:
        return self._mapping._iterate(0, True)


class _Values(ValuesView[bytes]):
    """The values of a bucket, in key order (a live view)."""

    __slots__ = ()
    _mapping: Bucket

    def __iter__(self) -> Iterator[bytes]:
        return self._mapping._iterate(1)

    def __reversed__(self) -> Iterator[bytes]:
        return self._mapping._iterate(1, True)


class _Items(ItemsView[str, bytes]):
    """The ``(key, value)`` pairs of a bucket, in key order (a live view)."""

    __slots__ = ()
    _mapping: Bucket

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        return self._mapping._iterate(2)

    def __reversed__(self) -> Iterator[tuple[str, bytes]]:
        return self._mapping._iterate(2, True)


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
        raw = self.get(key)
        if raw is None:
            return default
        try:
            return _json.loads(raw)
        except ValueError as e:
            raise InvalidArgument(
                f"invalid argument: value of key {key!r} in bucket {self.name!r} is not JSON: {e}"
            ) from e

    def set_json(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` encoded as compact UTF-8 JSON; ``ttl`` as in :meth:`set`.

        :raises InvalidArgument: ``value`` cannot be encoded as JSON (the
            :class:`TypeError` or :class:`ValueError` from :mod:`json` is chained),
            or the key is invalid.
        """
        try:
            data = _json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InvalidArgument(
                f"invalid argument: value for key {key!r} cannot be encoded as JSON: {e}"
            ) from e
        self.set(key, data.encode(), ttl)


class StateService(_native.StateService):
    """The state service over a store: each client reaches exactly one bucket, named
    by its authenticated client id, and can never address another client's state.

    :meth:`handle` speaks the original service's JSON messages (values base64).
    """

    __slots__ = ()

    def client(self, client_id: str) -> Bucket:
        """The bucket of client ``client_id``: the only bucket that client reaches.

        :raises InvalidArgument: the id is not a valid bucket name.
        """
        return Bucket(self.store, client_id)

