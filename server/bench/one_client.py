#!/usr/bin/env python3
"""One client, no pipelining, over the Unix socket: redis-benchmark -c 1 -P 1 GET
and SET against `state serve` (memfile) and redis-server 7 (AOF everysec), in
rounds that alternate which server goes first. Prints each run's p50 and p99 (ms,
as redis-benchmark reports them) and the medians, for issue 27's goal "p50 <= 25
us and p99 <= redis-server's in the same run". The client shares the cores with
the servers: run it on a quiet machine.

Usage: python3 server/bench/one_client.py STATE_BIN [ROUNDS] [REQUESTS]
"""
import statistics
import sys
import tempfile
from pathlib import Path

import bench


def main() -> None:
    state_bin = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 50000
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        servers = [bench.StateServer(state_bin, tmp, "memfile"), bench.RedisServer(tmp)]
        try:
            for s in servers:
                # Most GETs find their key (200000 SETs over 100000 keys).
                bench.rb(s, ["set"], 10, 32, 200000, True)
            for r in range(rounds):
                order = servers if r % 2 == 0 else servers[::-1]
                for s in order:
                    rows = bench.rb(s, ["get", "set"], 1, 1, n, True)
                    for test, row in rows.items():
                        runs.setdefault(s.name, {}).setdefault(test, []).append(
                            (row["p50_latency_ms"], row["p99_latency_ms"]))
        finally:
            for s in servers:
                s.stop()
    print(f"redis-benchmark -s SOCKET -c 1 -P 1 -n {n} -r 100000, {rounds} rounds (p50 / p99 in us):")
    print("| server | test | runs (p50 / p99) | median p50 | median p99 |\n|---|---|---|---:|---:|")
    for name, tests in runs.items():
        for test, xs in tests.items():
            each = ", ".join(f"{a * 1000:.0f} / {b * 1000:.0f}" for a, b in xs)
            p50 = statistics.median(a for a, _ in xs) * 1000
            p99 = statistics.median(b for _, b in xs) * 1000
            print(f"| {name} | {test.upper()} | {each} | {p50:.0f} | {p99:.0f} |")


if __name__ == "__main__":
    main()
