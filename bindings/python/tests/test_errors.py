"""The exception hierarchy and the mapping from core error kinds."""

from __future__ import annotations

import pickle

import pytest

import libstate

ALL = [
    libstate.InvalidArgument,
    libstate.StoreLocked,
    libstate.CorruptStore,
    libstate.StoreClosed,
    libstate.StoreIOError,
    libstate.TooLarge,
    libstate.QuotaExceeded,
    libstate.Conflict,
    libstate.InternalError,
]


def test_every_core_error_kind_has_its_own_exception() -> None:
    """The mapping covers every kind of the core's ``ErrorKind::ALL``: only
    *internal* becomes InternalError, and no two kinds share a class."""
    kinds = libstate._native._error_kinds()
    assert len(kinds) >= 8
    classes = [cls for _, cls in kinds]
    assert len(set(classes)) == len(classes), kinds
    for name, cls in kinds:
        assert cls in ALL, (name, cls)
        assert (cls is libstate.InternalError) == (name == "internal"), (name, cls)
    assert dict(kinds)["conflict"] is libstate.Conflict


@pytest.mark.parametrize("cls", ALL)
def test_every_error_is_a_state_error_with_a_docstring(cls: type[Exception]) -> None:
    assert issubclass(cls, libstate.StateError)
    assert issubclass(libstate.StateError, Exception)
    assert cls.__doc__


def test_python_bases() -> None:
    assert issubclass(libstate.InvalidArgument, ValueError)
    assert issubclass(libstate.StoreIOError, OSError)
    assert not issubclass(libstate.StoreClosed, ValueError)


@pytest.mark.parametrize("cls", ALL)
def test_errors_pickle(cls: type[Exception]) -> None:
    e = cls("message")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is cls and str(back) == str(e)


def test_core_message_is_kept(bucket: libstate.Bucket) -> None:
    with pytest.raises(libstate.InvalidArgument) as ei:
        bucket["x" * 2000] = b""
    assert "2000 bytes" in str(ei.value) and "limit of 1024" in str(ei.value)


def test_invalid_argument_can_be_caught_as_value_error(bucket: libstate.Bucket) -> None:
    with pytest.raises(ValueError):
        bucket.get("")


def test_no_panic_exception_reaches_python_on_hostile_input(bucket: libstate.Bucket) -> None:
    # Surrogates cannot be encoded as UTF-8: the conversion fails cleanly.
    with pytest.raises(UnicodeEncodeError):
        bucket["\udc80"] = b"x"
    with pytest.raises(libstate.InvalidArgument):
        bucket.cursor().seek("")
    big = 1 << 70
    with pytest.raises(OverflowError):
        bucket.cursor().next_n(big)
