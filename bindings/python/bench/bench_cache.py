"""The client-side cache's cost against an embedded store, from Python.

    python bindings/python/bench/bench_cache.py state+unix:///path/to/state.sock [N]

Reads 1000 keys of 100 bytes N times each way (default 200 000 reads): a remote
`get` without the cache (N/20 reads), a repeated `get` of cached keys
(`libstate.connect(url, cache=10_000)`), and an embedded memfile bucket's `get`
of the same keys in a temporary directory. The cache's goal: a cached `get` at
most 2x the embedded one. Prints nanoseconds per read (best of 3 runs).
"""

from __future__ import annotations

import sys
import tempfile
import time

import libstate


def per_read(get: object, keys: list[str], n: int) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for i in range(n):
            get(keys[i % 1000])  # type: ignore[operator]
        best = min(best, (time.perf_counter() - t) / n * 1e9)
    return best


def main() -> None:
    url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    keys = [f"bench/{i:04}" for i in range(1000)]
    value = b"v" * 100
    with libstate.connect(url) as plain:
        plain.set_many({k: value for k in keys})
        remote_ns = per_read(plain.get, keys, max(n // 20, 1000))
    with libstate.connect(url, cache=10_000) as cached:
        for k in keys:
            cached.get(k)
        cached_ns = per_read(cached.get, keys, n)
    with tempfile.TemporaryDirectory() as d, libstate.open(d, "memfile") as store:
        b = store.bucket("bench")
        b.set_many({k: value for k in keys})
        embedded_ns = per_read(b.get, keys, n)
    print(f"remote get, no cache:  {remote_ns:9.0f} ns")
    print(f"cached get:            {cached_ns:9.0f} ns")
    print(f"embedded memfile get:  {embedded_ns:9.0f} ns")
    print(f"cached / embedded:     {cached_ns / embedded_ns:9.2f}x (goal <= 2x)")


if __name__ == "__main__":
    main()
