#!/usr/bin/env python3
"""The tables of docs/benchmarks.md from the criterion results of
`cargo bench -p state-core --bench ops`: libstate on each engine beside raw sled,
with the ratio to raw sled, and the durable-write and sweep figures.

usage: scripts/bench_table.py [--write DOC] [target/criterion]

Without --write the tables are printed. With --write, the text between
`<!-- bench:ops begin -->` / `<!-- bench:ops end -->` (and the same for `durable`) in
DOC is replaced; a table whose results are missing is left as it is.
"""
import argparse
import json
import pathlib
import re

OPS = ["get1", "set1", "seek1", "next1", "next1000", "next1000lent", "set1000x", "setmultiple1000",
       "get1000x", "getmultiple1000"]
BASE = "raw-sled"
WRITES_PER_THREAD = 50  # core/benches/ops.rs: each writer thread does 50 sync sets


def fmt(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def fmt1(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} us"
    return f"{ns:.0f} ns"


def median(path: pathlib.Path) -> float | None:
    est = path / "new" / "estimates.json"
    if not est.exists():
        return None
    return json.loads(est.read_text())["median"]["point_estimate"]


def ops_tables(root: pathlib.Path) -> str | None:
    groups = sorted((p for p in root.glob("ops-*") if p.is_dir()),
                    key=lambda p: int(p.name.split("-")[1]))
    out = []
    for group in groups:
        n = int(group.name.split("-")[1])
        targets = sorted({t.name for op in OPS if (group / op).is_dir()
                          for t in (group / op).glob("*") if t.name != "report"})
        others = [t for t in targets if t != BASE]
        rows = []
        for op in OPS:
            vals = {t: median(group / op / t) for t in targets}
            if vals.get(BASE) is None:
                continue
            cells = [fmt(vals[t]) if vals[t] is not None else "-" for t in [BASE] + others]
            ratios = [f"{vals[t] / vals[BASE]:.2f}x" if vals[t] else "-" for t in others]
            rows.append(f"| {op} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        if not rows:
            continue
        out.append(f"**{n:,} records** (median per call)\n")
        out.append("| operation | " + " | ".join([BASE] + others) + " | " +
                   " | ".join(f"{t} / {BASE}" for t in others) + " |")
        out.append("|" + "---|" * (1 + len(targets) + len(others)))
        out.extend(rows)
        out.append("")
    return "\n".join(out).rstrip() + "\n" if out else None


def durable_table(root: pathlib.Path) -> str | None:
    floor = median(root / "durable" / "disk-append-fdatasync")
    one = median(root / "durable" / "libstate-sled-sync-set1")
    w1 = median(root / "durable" / "libstate-sled-sync-writers" / "1")
    w4 = median(root / "durable" / "libstate-sled-sync-writers" / "4")
    sweep = median(root / "sweep" / "sled-10k-expired-among-100k")
    if None in (floor, one, w1, w4):
        return None
    rows = ["| benchmark | median |", "|---|---|",
            f"| disk: 128-byte append + fdatasync (the floor) | {fmt1(floor)} |",
            f"| libstate-sled, sync mode, one set (new key each time) | {fmt1(one)} "
            f"({one / floor:.2f}x the floor) |",
            f"| libstate-sled, sync mode, 1 writer thread x {WRITES_PER_THREAD} sets | {fmt(w1)} "
            f"({w1 / WRITES_PER_THREAD / 1e3:.0f} us per set) |",
            f"| libstate-sled, sync mode, 4 writer threads x {WRITES_PER_THREAD} sets | {fmt(w4)} "
            f"({w4 / (4 * WRITES_PER_THREAD) / 1e3:.0f} us per set: {4 * w1 / w4:.1f}x one writer) |"]
    if sweep is not None:
        rows.append(f"| sled: sweep 10K expired keys among 100K persistent | {fmt(sweep)} "
                    f"(~{10_000 / (sweep / 1e9) / 1e3:.0f}K expired keys/s) |")
    return "\n".join(rows) + "\n"


def replace_between(doc: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- bench:{name} begin -->\n).*?(<!-- bench:{name} end -->)", re.S)
    if not pattern.search(doc):
        raise SystemExit(f"no bench:{name} markers in the document")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), doc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("criterion", nargs="?", default="target/criterion")
    ap.add_argument("--write", metavar="DOC", help="rewrite the marked tables in DOC")
    args = ap.parse_args()
    root = pathlib.Path(args.criterion)
    tables = {"ops": ops_tables(root), "durable": durable_table(root)}
    if not args.write:
        for body in tables.values():
            if body:
                print(body)
        return
    doc_path = pathlib.Path(args.write)
    doc = doc_path.read_text()
    for name, body in tables.items():
        if body is None:
            print(f"bench_table: no results for {name} under {root}; its table is unchanged")
            continue
        doc = replace_between(doc, name, body)
    doc_path.write_text(doc)


if __name__ == "__main__":
    main()
