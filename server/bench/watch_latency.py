#!/usr/bin/env python3
"""Delivery latency of change notifications over the service, on loopback: a SET
on one connection until the keyspace notification arrives on another (RESP, redis-py
pubsub) or the event arrives on an SSE stream (HTTP, httpx). One write in flight at
a time; prints p50 and p99 in microseconds.

    python server/bench/watch_latency.py STATE_BIN [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "py"))
import httpx  # noqa: E402
import redis  # noqa: E402

import conftest  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main() -> None:
    conftest.STATE_BIN = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    with tempfile.TemporaryDirectory() as d:
        s = conftest.start_state(Path(d) / "s")
        try:
            writer = s.client("alice")
            sub = s.client("alice").pubsub()
            sub.subscribe("__keyspace@0__:k")
            assert sub.get_message(timeout=5)["type"] == "subscribe"
            resp: list[float] = []
            for i in range(n):
                t = time.perf_counter()
                writer.set("k", str(i))
                m = sub.get_message(timeout=5)
                while m is None or m["type"] != "message":
                    m = sub.get_message(timeout=5)
                resp.append((time.perf_counter() - t) * 1e6)
            sse: list[float] = []
            headers = {"Authorization": f"Bearer {s.tokens['alice']}"}
            with httpx.stream("GET", f"{s.http}/v1/watch?prefix=k", headers=headers, timeout=30) as r:
                lines = r.iter_lines()
                for i in range(n):
                    t = time.perf_counter()
                    writer.set("k", str(i))
                    for line in lines:
                        if line.startswith("data:"):
                            break
                    sse.append((time.perf_counter() - t) * 1e6)
            base: list[float] = []
            for i in range(n):
                t = time.perf_counter()
                writer.set("k", str(i))
                base.append((time.perf_counter() - t) * 1e6)
            for name, xs in (("SET alone (round trip)", base), ("RESP keyspace notification", resp), ("SSE event", sse)):
                print(f"| {name} | {statistics.median(xs):.0f} | {pct(xs, 0.99):.0f} |")
        finally:
            s.stop()


if __name__ == "__main__":
    main()
