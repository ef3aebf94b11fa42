#!/usr/bin/env python3
"""`Bucket.get` beside `dict.get` in one process, their chunks interleaved, so that
a loaded machine slows both alike: the ratio of the two medians is what this
prints (and `get_many(1000)` beside a dict comprehension over the same keys).

  python bindings/python/bench/get_ratio.py [--n 1000000] [--rounds 41]

The store is a memfile store of `--n` records (10-character keys, 100-byte
values, as bench.py); every read is of a present key, drawn at random.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import string
import tempfile
import time

import libstate

ALNUM = string.ascii_letters + string.digits


def per_call(fn, keys: list[str]) -> float:
    t = time.perf_counter_ns()
    for k in keys:
        fn(k)
    return (time.perf_counter_ns() - t) / len(keys)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=41)
    args = p.parse_args()
    rng = random.Random(42)
    keys = list({"".join(rng.choices(ALNUM, k=10)) for _ in range(args.n)})
    with tempfile.TemporaryDirectory() as tmp:
        store = libstate.open(os.path.join(tmp, "s"), "memfile")
        b = store.bucket("bench")
        d: dict[str, bytes] = {}
        for i in range(0, len(keys), 10_000):
            items = [(k, rng.randbytes(100)) for k in keys[i:i + 10_000]]
            b.set_many(items)
            d.update(items)
        get, dget = b.get, d.get
        gets: dict[str, list[float]] = {"get": [], "dict.get": [], "get_many": [], "dict-comp": []}
        for r in range(args.rounds):
            chunk = rng.choices(keys, k=2000)
            pairs = [("get", get), ("dict.get", dget)]
            for name, fn in pairs if r % 2 else pairs[::-1]:
                gets[name].append(per_call(fn, chunk))
            batch = rng.choices(keys, k=1000)
            for name in (("get_many", "dict-comp") if r % 2 else ("dict-comp", "get_many")):
                t = time.perf_counter_ns()
                if name == "get_many":
                    b.get_many(batch)
                else:
                    {k: d[k] for k in batch}
                gets[name].append((time.perf_counter_ns() - t) / 1000)
        store.close()
    med = {k: statistics.median(v) for k, v in gets.items()}
    print(f"n={args.n} load={os.getloadavg()[0]:.2f} "
          f"get {med['get']:.0f} ns, dict.get {med['dict.get']:.0f} ns: "
          f"{med['get'] / med['dict.get']:.2f}x; "
          f"get_many {med['get_many']:.0f} ns/key, dict comprehension "
          f"{med['dict-comp']:.0f} ns/key: {med['get_many'] / med['dict-comp']:.2f}x")


if __name__ == "__main__":
    main()
