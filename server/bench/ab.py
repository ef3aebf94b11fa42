#!/usr/bin/env python3
"""A/B comparison of two `state` binaries beside redis-server, for a change's
before/after figures: each memfile server and redis-server 7 (AOF everysec) answer
redis-benchmark (50 clients, -r 100000) for GET, SET and INCR over TCP and the Unix
socket, at -P 1 and -P 32, in rounds that alternate the order of the three servers.
Prints a markdown table of the medians. The servers share the cores with
redis-benchmark, so run it on a quiet machine and read the ratios.

Usage: python3 server/bench/ab.py OLD_STATE_BIN NEW_STATE_BIN [ROUNDS]
(e.g. an older commit's target/release/state built in a worktree).
"""
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import bench


class Served(bench.Server):
    """`state serve` (memfile) from one binary, with a client `bench`."""

    def __init__(self, bin_: str, tmp: Path, tag: str) -> None:
        self.name = tag
        store = tmp / f"store-{tag}"
        self.token = subprocess.run(
            [bin_, "--store", str(store), "client", "add", "bench"],
            check=True, capture_output=True, text=True).stdout.strip()
        self.sock = str(tmp / f"{tag}.sock")
        self.port = bench.free_port()
        serve = ["serve"]
        # Binaries from before `--create` existed created the directory themselves.
        if "--create" in subprocess.run([bin_, "serve", "--help"], capture_output=True, text=True).stdout:
            serve.append("--create")
        self.proc = subprocess.Popen(
            [bin_, "--store", str(store), "--engine", "memfile", *serve,
             "--resp", f"127.0.0.1:{self.port}", "--http", f"127.0.0.1:{bench.free_port()}",
             "--unix", self.sock, "--max-connections", "4096"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("state serve: ready"):
                break
        else:
            raise RuntimeError(f"{bin_} did not start")
        self.auth = ["--user", "bench", "-a", self.token]


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) == 4 else 3
    tmp = Path(tempfile.mkdtemp(prefix="ab-"))
    servers: list[bench.Server] = [Served(old, tmp, "old"), Served(new, tmp, "new"), bench.RedisServer(tmp)]
    rps: dict[tuple[str, int, str, str], list[float]] = {}
    try:
        for r in range(rounds):
            order = servers if r % 2 == 0 else servers[::-1]
            for unix in (False, True):
                for pipeline, n in ((1, 100_000), (32, 1_000_000)):
                    for s in order:
                        for test, row in bench.rb(s, ["get", "set", "incr"], 50, pipeline, n, unix).items():
                            key = ("Unix" if unix else "TCP", pipeline, test, s.name)
                            rps.setdefault(key, []).append(row["rps"])
            print(f"round {r + 1} of {rounds} done", file=sys.stderr, flush=True)
    finally:
        for s in servers:
            s.stop()
    redis = servers[2].name
    print(f"| transport | -P | command | old | new | redis | old / redis | new / redis |  (medians of {rounds})")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for t, p, c in sorted({k[:3] for k in rps}):
        o, nw, rd = (statistics.median(rps[(t, p, c, name)]) for name in ("old", "new", redis))
        print(f"| {t} | {p} | {c.upper()} | {o:,.0f} | {nw:,.0f} | {rd:,.0f} | {o / rd:.2f}x | {nw / rd:.2f}x |")


if __name__ == "__main__":
    main()
