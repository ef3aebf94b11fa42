"""Bucket.watch: an iterator and an async iterator of Events, in commit order, with
lag notices, expiry, isolation and ending. Threads meet through queues and
events, never sleeps."""

from __future__ import annotations

import asyncio
import threading

import pytest

import libstate
from libstate import Event

from conftest import OpenStore


def test_sets_deletes_and_batches_arrive_in_order(open_store: OpenStore) -> None:
    with open_store() as store:
        b = store.bucket("b")
        w = b.watch("k")
        b["k1"] = b"1"
        b.set_many({"k2": b"2", "other": b"x", "k3": b"3"})
        del b["k1"]
        assert [w.recv(30) for _ in range(4)] == [
            Event("set", "k1", b"1", new=True),
            Event("set", "k2", b"2", new=True),
            Event("set", "k3", b"3", new=True),
            Event("delete", "k1", None),
        ]
        assert w.recv(0) is None


def test_another_bucket_and_other_prefixes_are_not_seen(open_store: OpenStore) -> None:
    with open_store() as store:
        w = store.bucket("alice").watch("layout")
        store.bucket("bob")["layout"] = b"bob's"
        store.bucket("alice")["other"] = b"x"
        store.bucket("alice")["layout"] = b"mine"
        assert w.recv(30) == Event("set", "layout", b"mine", new=True)
        assert w.recv(0) is None


def test_a_stalled_watcher_is_told_how_many_it_missed(open_store: OpenStore) -> None:
    with open_store() as store:
        b = store.bucket("b")
        w = b.watch(capacity=2)
        for i in range(5):
            b[f"k{i}"] = b"v"
        got = [w.recv(30) for _ in range(3)]
        assert got == [Event("set", "k0", b"v", new=True), Event("set", "k1", b"v", new=True), Event("lagged", None, None, 3)]


def test_expiry_events_come_with_the_sweep(open_store: OpenStore) -> None:
    with open_store(sweep_interval=None) as store:
        b = store.bucket("b")
        w = b.watch()
        b.set("s", b"x", ttl=0.001)
        assert w.recv(30) == Event("set", "s", b"x", new=True)
        # Wait until it has expired (a read says so), then sweep.
        while b.get("s") is not None:
            threading.Event().wait(0.001)
        assert store.sweep_expired() == 1
        assert w.recv(30) == Event("expired", "s", None)


def test_events_name_deadline_changes_and_new_keys(open_store: OpenStore) -> None:
    with open_store(sweep_interval=None) as store:
        b = store.bucket("b")
        b["k"] = b"1"
        w = b.watch()
        b["k"] = b"2"
        assert w.recv(30) == Event("set", "k", b"2", new=False)
        assert b.expire("k", 60)
        assert w.recv(30) == Event("expire", "k", None)
        assert b.persist("k")
        assert w.recv(30) == Event("persist", "k", None)
        assert w.recv(0) is None


def test_iteration_releases_the_gil_and_ends_when_the_store_closes(open_store: OpenStore) -> None:
    store = open_store()
    b = store.bucket("b")
    w = b.watch()
    got: list[Event] = []
    first = threading.Event()

    def consume() -> None:
        for ev in w:
            got.append(ev)
            first.set()

    t = threading.Thread(target=consume)
    t.start()
    # The consumer waits with the GIL released: this thread keeps running Python.
    b["a"] = b"1"
    assert first.wait(30)
    b["b"] = b"2"
    store.close()
    t.join(30)
    assert not t.is_alive()
    assert got == [Event("set", "a", b"1", new=True), Event("set", "b", b"2", new=True)]
    with pytest.raises(libstate.StoreClosed):
        b.watch()


def test_close_ends_the_iteration_and_the_watcher_is_released(open_store: OpenStore) -> None:
    with open_store() as store:
        b = store.bucket("b")
        with b.watch() as w:
            b["a"] = b"1"
        assert w.closed
        assert list(w) == [Event("set", "a", b"1", new=True)]
        with pytest.raises(libstate.InvalidArgument):
            b.watch("p" * 1025)
        with pytest.raises(libstate.InvalidArgument):
            b.watch(capacity=0)


def test_async_for_waits_on_the_event_loop(open_store: OpenStore) -> None:
    with open_store() as store:
        b = store.bucket("b")

        async def main() -> list[Event]:
            w = b.watch("k")
            loop = asyncio.get_running_loop()
            # Writes from another thread while the loop waits; nothing blocks the loop.
            writer = loop.run_in_executor(None, lambda: [b.set(f"k{i}", b"v") for i in range(3)])
            got = []
            async for ev in w:
                got.append(ev)
                if len(got) == 3:
                    w.close()
            await writer
            return got

        assert asyncio.run(main()) == [Event("set", f"k{i}", b"v", new=True) for i in range(3)]
