"""Key expiry (TTL), Redis-like: set with ttl, expire, persist, ttl, sweeping.

The stores here judge TTLs by a libstate.ManualClock that the tests move, so keys
expire exactly when a test says, whatever the machine's load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import libstate

from conftest import OpenStore

HOUR = 3600.0
SHORT = 0.2


@pytest.fixture
def clock() -> libstate.ManualClock:
    return libstate.ManualClock()


@pytest.fixture
def store(open_store: OpenStore, clock: libstate.ManualClock) -> Iterator[libstate.Store]:
    s = open_store(clock=clock)
    yield s
    s.close()


@pytest.fixture
def bucket(store: libstate.Store) -> libstate.Bucket:
    return store.bucket("user1")


def test_the_manual_clock_moves_only_when_told() -> None:
    c = libstate.ManualClock(1000.0)
    assert c.now() == 1000.0
    c.advance(0.25)
    assert c.now() == 1000.25
    c.set(5.0)
    assert c.now() == 5.0
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            c.advance(bad)


def test_set_with_ttl_reports_remaining_time(bucket: libstate.Bucket, clock: libstate.ManualClock) -> None:
    bucket.set("k", b"v", ttl=HOUR)
    assert bucket.ttl("k") == HOUR
    clock.advance(600)
    assert bucket.ttl("k") == HOUR - 600
    assert bucket["k"] == b"v"
    clock.advance(HOUR - 600 - 0.001)
    assert bucket["k"] == b"v"
    clock.advance(0.001)
    assert "k" not in bucket


def test_key_without_ttl_reports_none(bucket: libstate.Bucket) -> None:
    bucket["k"] = b"v"
    assert bucket.ttl("k") is None


def test_ttl_of_missing_key_is_key_error(bucket: libstate.Bucket) -> None:
    with pytest.raises(KeyError):
        bucket.ttl("nope")


def test_expired_key_is_invisible_to_every_read(bucket: libstate.Bucket, clock: libstate.ManualClock) -> None:
    bucket["stay"] = b"s"
    bucket.set("go", b"g", ttl=SHORT)
    bucket.set_many({"go2": b"x", "go3": b"y"}, ttl=SHORT)
    assert len(bucket) == 4
    clock.advance(SHORT)
    assert bucket.get("go") is None and "go" not in bucket
    with pytest.raises(KeyError):
        bucket["go"]
    with pytest.raises(KeyError):
        bucket.ttl("go")
    assert bucket.get_many(["go", "go2", "stay"]) == {"stay": b"s"}
    assert list(bucket) == ["stay"] and len(bucket) == 1
    assert list(bucket.range()) == [("stay", b"s")]
    c = bucket.cursor()
    assert c.first() == ("stay", b"s") and c.next() is None
    assert bucket.delete("go") is False
    assert bucket.expire("go", HOUR) is False


def test_plain_set_clears_the_ttl(bucket: libstate.Bucket) -> None:
    bucket.set("k", b"v", ttl=HOUR)
    bucket["k"] = b"w"
    assert bucket.ttl("k") is None
    bucket.set("k", b"v", ttl=HOUR)
    bucket.set_many({"k": b"x"})
    assert bucket.ttl("k") is None
    bucket.set_json("k", [1], ttl=HOUR)
    assert bucket.ttl("k") is not None and bucket.get_json("k") == [1]


def test_expire_and_persist(bucket: libstate.Bucket, clock: libstate.ManualClock) -> None:
    assert bucket.expire("nope", HOUR) is False
    bucket["k"] = b"v"
    assert bucket.persist("k") is False
    assert bucket.expire("k", HOUR) is True
    assert bucket.ttl("k") is not None
    assert bucket.persist("k") is True
    assert bucket.ttl("k") is None
    assert bucket.persist("nope") is False
    assert bucket.expire("k", SHORT) is True
    clock.advance(SHORT)
    assert "k" not in bucket


@pytest.mark.parametrize("ttl", [0, 0.0, -1, float("nan"), float("inf"), float("-inf")])
def test_non_positive_or_non_finite_ttl_is_invalid_and_writes_nothing(bucket: libstate.Bucket, ttl: float) -> None:
    bucket["old"] = b"v"
    for call in (lambda: bucket.set("k", b"v", ttl=ttl), lambda: bucket.set_many({"k": b"v"}, ttl=ttl),
                 lambda: bucket.expire("old", ttl), lambda: bucket.set_json("k", 1, ttl=ttl)):
        with pytest.raises(libstate.InvalidArgument, match="TTL"):
            call()
    assert "k" not in bucket and bucket.ttl("old") is None


def test_ttl_survives_reopen(store_path: Path, open_store: OpenStore, clock: libstate.ManualClock) -> None:
    with open_store(clock=clock) as store:
        b = store.bucket("b")
        b.set("long", b"1", ttl=HOUR)
        b.set("short", b"2", ttl=SHORT)
    clock.advance(SHORT)
    with open_store(clock=clock) as store:
        b = store.bucket("b")
        assert b.ttl("long") == HOUR - SHORT
        assert "short" not in b


def test_sweep_expired_removes_expired_records(store_path: Path, open_store: OpenStore, clock: libstate.ManualClock) -> None:
    with open_store(sweep_interval=None, clock=clock) as store:
        b = store.bucket("b")
        b.set_many({f"k{i}": b"v" for i in range(10)}, ttl=SHORT)
        b["stay"] = b"v"
        assert store.sweep_expired() == 0
        clock.advance(SHORT)
        assert store.sweep_expired() == 10
        assert store.sweep_expired() == 0
        assert list(b) == ["stay"]


def test_sweep_interval_must_be_positive(store_path: Path, open_store: OpenStore) -> None:
    with pytest.raises(libstate.InvalidArgument, match="sweep_interval"):
        open_store(sweep_interval=0)
    assert libstate.DEFAULT_SWEEP_INTERVAL == 1.0


def test_bad_ttl_types_are_type_errors(bucket: libstate.Bucket) -> None:
    with pytest.raises(TypeError):
        bucket.set("k", b"v", ttl="5")  # type: ignore[arg-type]


def test_rewritten_key_is_not_swept_by_its_old_ttl(store_path: Path, open_store: OpenStore, clock: libstate.ManualClock) -> None:
    with open_store(sweep_interval=None, clock=clock) as store:
        b = store.bucket("b")
        b.set("cleared", b"1", ttl=SHORT)
        b.clear()
        b["cleared"] = b"2"
        b.set("deleted", b"1", ttl=SHORT)
        del b["deleted"]
        b["deleted"] = b"2"
        clock.advance(SHORT)
        store.sweep_expired()
        assert dict(b) == {"cleared": b"2", "deleted": b"2"}
