#!/usr/bin/env python3
"""Remote reads from Python: `libstate.connect()`'s `get` beside redis-py's `GET`
on the same `state serve` (memfile, Unix socket), in the same run (issue 28's
goal: no more than redis-py's), and a `get_many` of 1000 keys beside redis-py's
`MGET` (one round trip each).

Rounds alternate the two clients; each figure is the median over rounds of the
mean time per call. The server shares the machine's cores with this process, so
read the ratio more than the absolute figures.

  python bindings/python/bench/remote.py [--n 20000] [--rounds 7] [--state target/release/state]

`make bench-python-remote` runs it with the checkout's binary and extension.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import libstate
import redis

ROOT = Path(__file__).resolve().parents[3]


def start(state: str, d: Path) -> tuple[subprocess.Popen[str], Path]:
    """Starts `state serve` on a fresh memfile store in `d`; returns it and its socket
    once it has printed its ready line."""
    store, sock = d / "store", d / "state.sock"
    proc = subprocess.Popen(
        [state, "--store", str(store), "--engine", "memfile", "serve", "--create",
         "--resp", "off", "--http", "off", "--unix", str(sock)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("state serve: ready"):
            return proc, sock
    raise SystemExit(f"state serve exited with {proc.wait()}")


def per_call(f, n: int) -> float:
    """Mean microseconds of `f(i)` over n calls."""
    t = time.perf_counter_ns()
    for i in range(n):
        f(i)
    return (time.perf_counter_ns() - t) / n / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="calls per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--state", default=str(ROOT / "target/release/state"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, sock = start(a.state, Path(tmp))
        try:
            ours = libstate.connect(f"state+unix://{sock}")
            # redis-py over the same socket: peer credentials sign it in as the
            # store owner's client, the bucket `ours` uses.
            theirs = redis.Redis(unix_socket_path=str(sock))
            keys = [f"bench/{i:04d}" for i in range(1000)]
            ours.set_many({k: b"v" * 100 for k in keys})
            assert theirs.get(keys[0]) == b"v" * 100, "redis-py reads another bucket"
            rows: dict[str, list[float]] = {k: [] for k in
                                            ("get", "GET", "get_many(1000)", "MGET(1000)")}
            for r in range(a.rounds):
                order = [("get", lambda i: ours.get(keys[i % 1000])),
                         ("GET", lambda i: theirs.get(keys[i % 1000]))]
                if r % 2:
                    order.reverse()
                for name, f in order:
                    rows[name].append(per_call(f, a.n))
                many = [("get_many(1000)", lambda i: ours.get_many(keys)),
                        ("MGET(1000)", lambda i: theirs.mget(keys))]
                if r % 2:
                    many.reverse()
                for name, f in many:
                    rows[name].append(per_call(f, max(a.n // 200, 10)))
            med = {k: statistics.median(v) for k, v in rows.items()}
            print(f"| call | median of {a.rounds} rounds (us per call) | ratio |")
            print("|---|---:|---:|")
            print(f"| libstate get | {med['get']:.1f} | {med['get'] / med['GET']:.2f}x redis-py |")
            print(f"| redis-py GET | {med['GET']:.1f} | 1.00x |")
            print(f"| libstate get_many(1000) | {med['get_many(1000)']:.0f} | "
                  f"{med['get_many(1000)'] / med['MGET(1000)']:.2f}x redis-py |")
            print(f"| redis-py MGET(1000) | {med['MGET(1000)']:.0f} | 1.00x |")
            ours.close()
            theirs.close()
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
