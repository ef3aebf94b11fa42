#!/usr/bin/env python3
"""Print the criterion results of `cargo bench -p state-core --bench ops` as the
markdown tables of docs/benchmarks.md: libstate beside raw sled (and any other
target measured in the same run), with the ratio to raw sled.

usage: scripts/bench_table.py [target/criterion]
"""
import json
import pathlib
import sys

OPS = ["get1", "set1", "seek1", "next1", "next1000", "next1000lent", "set1000x", "setmultiple1000",
       "get1000x", "getmultiple1000"]
BASE = "raw-sled"


def fmt(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def median(path: pathlib.Path) -> float | None:
    est = path / "new" / "estimates.json"
    if not est.exists():
        return None
    return json.loads(est.read_text())["median"]["point_estimate"]


def main() -> None:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    groups = sorted((p for p in root.glob("ops-*") if p.is_dir()),
                    key=lambda p: int(p.name.split("-")[1]))
    for group in groups:
        n = int(group.name.split("-")[1])
        targets = sorted({t.name for op in OPS for t in (group / op).glob("*")
                          if (group / op).is_dir() and t.name != "report"})
        others = [t for t in targets if t != BASE]
        print(f"\n**{n:,} records** (median per call)\n")
        head = "| operation | " + " | ".join([BASE] + others) + " | " + \
            " | ".join(f"{t} / {BASE}" for t in others) + " |"
        print(head)
        print("|" + "---|" * (1 + len(targets) + len(others)))
        for op in OPS:
            vals = {t: median(group / op / t) for t in targets}
            if vals.get(BASE) is None:
                continue
            cells = [fmt(vals[t]) if vals[t] is not None else "-" for t in [BASE] + others]
            ratios = [f"{vals[t] / vals[BASE]:.2f}x" if vals[t] else "-" for t in others]
            print(f"| {op} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    for extra in ["durable", "sweep"]:
        g = root / extra
        if not g.is_dir():
            continue
        print(f"\n**{extra}**\n")
        print("| benchmark | median |")
        print("|---|---|")
        for b in sorted(g.rglob("new/estimates.json")):
            name = str(b.parent.parent.relative_to(g))
            print(f"| {name} | {fmt(json.loads(b.read_text())['median']['point_estimate'])} |")


if __name__ == "__main__":
    main()
