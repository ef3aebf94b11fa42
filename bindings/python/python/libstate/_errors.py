"""The exception hierarchy of libstate.

Every error libstate raises is a :class:`StateError`; each subclass stands for one
kind of the core's errors (``state_core::ErrorKind``), or of the state service's
(``state_service::ErrorKind``: :class:`QuotaExceeded`). The mapping from kinds to
these classes lives in one place, ``bindings/python/src/boundary.rs``.
"""

__all__ = [
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
]


class StateError(Exception):
    """Base class of every libstate error. The message names the offending key,
    bucket or path."""


class InvalidArgument(StateError, ValueError):
    """A key, bucket name, value, TTL or option broke a documented rule (empty or
    over-long key, invalid bucket name, value above ``max_value_size``, unknown
    engine, ...). Nothing was written. Also a :class:`ValueError`."""


class StoreLocked(StateError):
    """Another process has the store directory open. Close it there and retry."""


class CorruptStore(StateError):
    """The store's files failed a check. libstate changed none of them (with the sled
    engine, sled itself may have rewritten parts of them while opening; the message
    says so)."""


class StoreClosed(StateError):
    """The store handle (or the bucket, cursor or iterator taken from it) was closed,
    or a cursor was closed."""


class StoreIOError(StateError, OSError):
    """The operating system reported an I/O error. Also an :class:`OSError`, with
    ``errno`` set when the system gave one."""


class TooLarge(StateError):
    """A request exceeded a configured size limit, such as a ``set_many`` batch above
    the store's ``max_batch_size``. Nothing was written."""


class Conflict(StateError):
    """A read-modify-write (a transaction, ``delete``, ``expire``, ...) on a store
    that other processes write at the same time (a Redis URL) lost the race to their
    writes too many times in a row. Nothing was written; retrying is safe."""


class InternalError(StateError):
    """A bug in libstate (for example a caught panic). Please report it."""


class QuotaExceeded(StateError):
    """A write through the :class:`StateService` would take the client over its
    quota (records, bytes or value size). Nothing was written."""
