"""Sharing stores, buckets, cursors and iterators between threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import libstate

from conftest import OpenStore


def test_concurrent_writers_and_readers_on_one_bucket(bucket: libstate.Bucket) -> None:
    def writer(t: int) -> None:
        for i in range(200):
            bucket[f"t{t}/{i:03}"] = bytes([t, i % 256])
        bucket.set_many({f"t{t}/batch{i}": b"b" for i in range(50)})

    def reader(t: int) -> int:
        seen = 0
        for _ in range(200):
            seen += len(bucket.get_many([f"t{t}/{i:03}" for i in range(0, 200, 20)]))
            list(bucket.range(f"t{t}/", f"t{t}/~"))
        return seen

    with ThreadPoolExecutor(max_workers=8) as ex:
        futs = [ex.submit(writer, t) for t in range(4)] + [ex.submit(reader, t) for t in range(4)]
        for f in futs:
            f.result()
    assert len(bucket) == 4 * 250
    for t in range(4):
        assert bucket[f"t{t}/123"] == bytes([t, 123])


def test_one_cursor_shared_by_threads_hands_out_each_entry_once(bucket: libstate.Bucket) -> None:
    n = 2000
    bucket.set_many({f"k{i:05}": b"" for i in range(n)})
    cur = bucket.cursor()
    got: list[list[str]] = [[] for _ in range(4)]

    def drain(t: int) -> None:
        while True:
            e = cur.next()
            if e is None:
                return
            got[t].append(e[0])

    threads = [threading.Thread(target=drain, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    everything = sorted(k for part in got for k in part)
    assert everything == [f"k{i:05}" for i in range(n)]
    # Each thread saw its own entries in ascending order.
    assert all(part == sorted(part) for part in got)


def test_one_iterator_shared_by_threads_yields_each_key_once(bucket: libstate.Bucket) -> None:
    n = 3000
    bucket.set_many({f"k{i:05}": b"" for i in range(n)})
    it = iter(bucket)
    got: list[list[str]] = [[] for _ in range(4)]

    def drain(t: int) -> None:
        for k in it:
            got[t].append(k)

    threads = [threading.Thread(target=drain, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(k for part in got for k in part) == [f"k{i:05}" for i in range(n)]


def test_sync_mode_writers_in_threads_all_land(store_path: Path, open_store: OpenStore) -> None:
    with open_store(sync=True) as store:
        b = store.bucket("b")
        with ThreadPoolExecutor(max_workers=4) as ex:
            list(ex.map(lambda i: b.set(f"k{i:03}", b"v"), range(100)))
        assert len(b) == 100


def test_close_while_other_threads_work_raises_only_store_closed(store_path: Path, open_store: OpenStore) -> None:
    store = open_store()
    b = store.bucket("b")
    b.set_many({f"k{i:04}": b"v" for i in range(1000)})
    errors: list[BaseException] = []
    stop = threading.Event()
    # Each worker has done a full round before the close (a handshake, not a sleep
    # that a loaded machine may outlast), so the close lands among running calls.
    working = threading.Barrier(4)

    def work() -> None:
        try:
            first = True
            while not stop.is_set():
                b.get("k0001")
                list(b.range("k0100", "k0200"))
                b["x"] = b"y"
                if first:
                    first = False
                    working.wait()
        except libstate.StoreClosed:
            return
        except BaseException as e:  # noqa: BLE001 - the test reports anything else
            errors.append(e)
            working.abort()  # a worker that failed early must not leave the close waiting

    threads = [threading.Thread(target=work) for _ in range(3)]
    for th in threads:
        th.start()
    try:
        working.wait(timeout=60)
    except threading.BrokenBarrierError:
        pass  # a worker failed; `errors` says how
    store.close()
    stop.set()
    for th in threads:
        th.join()
    assert errors == []


def test_blocking_work_releases_the_gil(bucket: libstate.Bucket) -> None:
    """While one thread is inside a long batch write, another Python thread runs.

    Not a speed check: with the GIL held for the whole call, the ticker could not
    run at all between the call's start and end; with it released it runs freely.
    """
    items = [(f"k{i:07}", b"x" * 100) for i in range(200_000)]
    ticks: list[float] = []
    done = threading.Event()
    window: list[float] = []

    def ticker() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())

    th = threading.Thread(target=ticker)
    th.start()
    try:
        while not ticks:
            time.sleep(0.001)
        window.append(time.perf_counter())
        bucket.set_many(items)
        window.append(time.perf_counter())
    finally:
        done.set()
        th.join()
    start, end = window
    inside = [t for t in ticks if start < t < end]
    assert len(inside) > 100, (len(inside), end - start)
