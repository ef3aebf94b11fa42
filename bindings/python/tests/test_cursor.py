"""Cursor: positions, stepping, seek, batches, context manager, iteration."""

from __future__ import annotations

import pytest

import libstate

from conftest import OpenStore


@pytest.fixture
def abc_bucket(bucket: libstate.Bucket) -> libstate.Bucket:
    bucket.set_many({"a": b"1", "c": b"3", "e": b"5"})
    return bucket


def test_new_cursor_is_before_first(abc_bucket: libstate.Bucket) -> None:
    c = abc_bucket.cursor()
    assert c.key is None
    assert c.next() == ("a", b"1")
    assert c.key == "a"


def test_prev_on_new_cursor_returns_nothing_then_next_returns_first(abc_bucket: libstate.Bucket) -> None:
    c = abc_bucket.cursor()
    assert c.prev() is None
    assert c.next() == ("a", b"1")


def test_next_past_end_stays_after_last_and_prev_returns_last(abc_bucket: libstate.Bucket) -> None:
    c = abc_bucket.cursor()
    assert c.last() == ("e", b"5")
    assert c.next() is None
    assert c.key is None
    assert c.next() is None
    assert c.prev() == ("e", b"5")


def test_prev_past_start_then_next_returns_first(abc_bucket: libstate.Bucket) -> None:
    c = abc_bucket.cursor()
    assert c.first() == ("a", b"1")
    assert c.prev() is None
    assert c.next() == ("a", b"1")


def test_first_and_last_on_empty_bucket(bucket: libstate.Bucket) -> None:
    c = bucket.cursor()
    assert c.first() is None
    assert c.last() is None
    assert c.next() is None and c.prev() is None


def test_seek_exact_between_and_past_end(abc_bucket: libstate.Bucket) -> None:
    c = abc_bucket.cursor()
    assert c.seek("c") == ("c", b"3")
    assert c.seek("b") == ("c", b"3")
    assert c.next() == ("e", b"5")
    assert c.seek("f") is None
    assert c.key is None
    assert c.prev() == ("e", b"5")


def test_seek_with_invalid_key_is_invalid_argument(abc_bucket: libstate.Bucket) -> None:
    c = abc_bucket.cursor()
    with pytest.raises(libstate.InvalidArgument):
        c.seek("")
    with pytest.raises(TypeError):
        c.seek(5)  # type: ignore[arg-type]


def test_next_n_and_prev_n_follow_the_direction_of_travel(abc_bucket: libstate.Bucket) -> None:
    c = abc_bucket.cursor()
    assert c.next_n(2) == [("a", b"1"), ("c", b"3")]
    assert c.next_n(5) == [("e", b"5")]
    assert c.key is None
    assert c.prev_n(2) == [("e", b"5"), ("c", b"3")]
    assert c.prev_n(0) == []
    assert c.key == "c"
    assert c.prev_n(9) == [("a", b"1")]
    assert c.next_n(0) == []


def test_negative_step_count_is_refused(abc_bucket: libstate.Bucket) -> None:
    with pytest.raises(OverflowError):
        abc_bucket.cursor().next_n(-1)


def test_cursor_is_an_iterator_from_its_position(abc_bucket: libstate.Bucket) -> None:
    c = abc_bucket.cursor()
    assert iter(c) is c
    assert list(c) == [("a", b"1"), ("c", b"3"), ("e", b"5")]
    c.seek("c")
    assert next(c) == ("e", b"5")
    with pytest.raises(StopIteration):
        next(c)


def test_cursor_steps_by_key_across_writes(abc_bucket: libstate.Bucket) -> None:
    c = abc_bucket.cursor()
    assert c.seek("c") == ("c", b"3")
    del abc_bucket["c"]
    abc_bucket["d"] = b"4"
    assert c.next() == ("d", b"4")
    assert c.prev() == ("a", b"1")


def test_context_manager_closes_the_cursor(abc_bucket: libstate.Bucket) -> None:
    with abc_bucket.cursor() as c:
        assert c.first() == ("a", b"1")
    for call in (c.first, c.last, c.next, c.prev, lambda: c.seek("a"), lambda: c.next_n(1),
                 lambda: c.prev_n(1), lambda: next(c), lambda: c.key):
        with pytest.raises(libstate.StoreClosed, match="cursor is closed"):
            call()
    c.close()  # idempotent
    # The bucket itself is still usable.
    assert abc_bucket["a"] == b"1"


def test_cursors_are_independent(abc_bucket: libstate.Bucket) -> None:
    c1, c2 = abc_bucket.cursor(), abc_bucket.cursor()
    c1.last()
    assert c2.next() == ("a", b"1")
    assert c1.key == "e"


def test_cursor_after_store_close_raises_store_closed(store_path: object, open_store: OpenStore) -> None:
    store = open_store()
    b = store.bucket("b")
    b["a"] = b"1"
    c = b.cursor()
    store.close()
    with pytest.raises(libstate.StoreClosed, match="store is closed"):
        c.next()
