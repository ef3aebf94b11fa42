#!/usr/bin/env python3
"""Instructions per call of `Bucket.get` (and `get_many`), counted by callgrind:
a figure that does not depend on the machine's load, for comparing two builds of
the extension (docs/bench-python.md, "Cost of a call").

Each case is run twice under `valgrind --tool=callgrind`, with N and 2N calls;
the difference of the two instruction totals, divided by N, is the cost of one
call plus one turn of the Python loop around it. The `loop` case (the same loop
calling nothing) is that turn alone, and is subtracted in the summary.

  python bindings/python/bench/calls.py [--records 20000] [--n 20000] [--cases get,...]

The store is a memfile store of `--records` records (10-character keys, 100-byte
values, as bench.py); every read is of a present key.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import string
import subprocess
import sys
import tempfile

ALNUM = string.ascii_letters + string.digits

# The cases: what one turn of the timed loop does (`k` is a present key, `ks` a
# list of 1000 present keys, `b` the bucket, `d` a dict of the same records).
CASES = {
    "loop": "pass",
    "dict.get": "d.get(k)",
    "get": "b.get(k)",
    "get-default": "b.get(k, None)",
    "getitem": "b[k]",
    "contains": "k in b",
    "get_many(1000)": "b.get_many(ks)",
    "dict-comprehension(1000)": "{x: d[x] for x in ks}",
}


def child(case: str, records: int, n: int) -> None:
    """The measured process: a store of `records` records, then `n` turns of the
    case's loop."""
    import libstate

    rng = random.Random(42)
    keys = sorted({"".join(rng.choices(ALNUM, k=10)) for _ in range(records)})
    with tempfile.TemporaryDirectory() as tmp:
        store = libstate.open(os.path.join(tmp, "s"), "memfile")
        b = store.bucket("bench")
        d = {}
        for i in range(0, len(keys), 10_000):
            items = [(k, rng.randbytes(100)) for k in keys[i:i + 10_000]]
            b.set_many(items)
            d.update(items)
        picks = random.Random(1).choices(keys, k=n)
        ks = random.Random(2).choices(keys, k=1000)
        body = CASES[case]
        code = compile(f"for k in picks:\n    {body}\n", "<loop>", "exec")
        exec(code, {"picks": picks, "b": b, "d": d, "ks": ks})
        store.close()


def instructions(case: str, records: int, n: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, os.path.abspath(__file__), "--child", case,
         "--records", str(records), "--n", str(n)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    m = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    if m is None:
        raise SystemExit(f"no instruction count from callgrind:\n{out.stderr}")
    return int(m.group(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--cases", default=",".join(CASES),
                   help="comma-separated, of: " + ", ".join(CASES))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.records, args.n)
        return
    cases = args.cases.split(",")
    if "loop" not in cases:
        cases.insert(0, "loop")
    per = {}
    for case in cases:
        n = args.n if "1000" not in case else max(1, args.n // 200)
        one = instructions(case, args.records, n)
        two = instructions(case, args.records, 2 * n)
        per[case] = (two - one) / n
    loop = per["loop"]
    print(f"instructions per call ({args.records} records; the loop's {loop:.0f} per turn "
          "subtracted)")
    for case in cases:
        if case != "loop":
            print(f"  {case:26} {per[case] - loop:10.0f}")


if __name__ == "__main__":
    main()
