#!/usr/bin/env python3
"""Draws the benchmark charts in docs/img/ from the tables in the benchmark docs, so a
reader sees libstate beside its peers at a glance.

usage: scripts/bench_charts.py [--docs docs] [--out docs/img]

Each chart reads one table between `<!-- bench:NAME begin -->` and
`<!-- bench:NAME end -->` markers; the tables are written by the benchmark commands
(scripts/bench_table.py for the Rust core, bindings/python/bench/bench.py report for
Python), so a chart always shows the figures its page states. Needs matplotlib
(`make bench-charts` installs it into .venv).
"""
import argparse
import pathlib
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

LIBSTATE = "#d95f02"
LIBSTATE_ALT = "#f4a261"
PEER = "#7f8c8d"
BASE = "#1b9e77"

UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}


def seconds(cell: str) -> float | None:
    """`1.23 µs` -> 1.23e-6; anything else -> None."""
    m = re.fullmatch(r"\s*\**([\d.]+)\s*(ns|us|µs|ms|s)\**\s*", cell)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def table(doc: pathlib.Path, name: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the first markdown table between the markers `name`."""
    text = doc.read_text()
    m = re.search(rf"<!-- bench:{name} begin -->\n(.*?)<!-- bench:{name} end -->", text, re.S)
    if not m:
        raise SystemExit(f"{doc}: no bench:{name} markers")
    return tables(m.group(1))[0]


def tables(block: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every markdown table in `block`, in order."""
    found, cur = [], []
    for line in block.splitlines() + [""]:
        if line.startswith("|"):
            cur.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif cur:
            found.append((cur[0], [r for r in cur[2:]]))
            cur = []
    return found


def name_of(cell: str) -> str:
    return cell.replace("*", "").strip()


def core_ops(docs: pathlib.Path, out: pathlib.Path) -> None:
    """libstate on each engine beside raw sled, per operation, at the largest size."""
    text = (docs / "benchmarks.md").read_text()
    m = re.search(r"<!-- bench:ops begin -->\n(.*?)<!-- bench:ops end -->", text, re.S)
    if not m:
        raise SystemExit("benchmarks.md: no bench:ops markers")
    sizes = re.findall(r"\*\*([\d,]+) records\*\*", m.group(1))
    head, rows = tables(m.group(1))[-1]
    targets = [h for h in head[1:] if "/" not in h]
    colors = {"raw-sled": BASE, "libstate-sled": LIBSTATE_ALT, "libstate-memfile": LIBSTATE}
    fig, ax = plt.subplots(figsize=(10, 4.8))
    width = 0.8 / len(targets)
    for i, t in enumerate(targets):
        col = head.index(t)
        vals = [seconds(r[col]) or 0 for r in rows]
        xs = [j + (i - (len(targets) - 1) / 2) * width for j in range(len(rows))]
        ax.bar(xs, [v * 1e6 for v in vals], width, label=t, color=colors.get(t, PEER))
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("median per call, µs (log scale; lower is better)")
    ax.set_title(f"libstate vs raw sled, {sizes[-1] if sizes else ''} records")
    ax.legend()
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "core-ops.png", dpi=110)
    plt.close(fig)


def python_peers(docs: pathlib.Path, out: pathlib.Path) -> None:
    """libstate beside the Python stores on the per-call columns."""
    head, rows = table(docs / "bench-python.md", "python")
    columns = ["get 1", "set 1", "get 1000", "set 1000 (batch)", "iter 1000 from key"]
    fig, axes = plt.subplots(1, len(columns), figsize=(15, 4.6), sharey=True)
    libs = [name_of(r[0]) for r in rows]
    for ax, column in zip(axes, columns):
        col = head.index(column)
        vals = [seconds(r[col]) for r in rows]
        ys = range(len(libs))
        colors = [LIBSTATE if "libstate" in lib else PEER for lib in libs]
        ax.barh(ys, [v * 1e6 if v else 0 for v in vals], color=colors)
        for y, v in zip(ys, vals):
            if v is None:
                ax.text(0.02, y, "n/a", va="center", fontsize=8, transform=ax.get_yaxis_transform())
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(column)
        ax.set_xlabel("µs (log)")
        ax.grid(axis="x", which="both", alpha=0.3)
    axes[0].set_yticks(range(len(libs)), libs)
    axes[0].invert_yaxis()
    fig.suptitle("Python, 1M records: time per call (shorter is better)")
    fig.tight_layout()
    fig.savefig(out / "python-1m.png", dpi=110)
    plt.close(fig)


def memfile_btreemap(docs: pathlib.Path, out: pathlib.Path) -> None:
    """The memfile engine beside a BTreeMap behind a RwLock."""
    head, rows = table(docs / "bench-memfile.md", "memfile-1m")
    ops = [r[0].replace("`", "") for r in rows]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.38
    for i, (label, color) in enumerate([("memfile", LIBSTATE), ("BTreeMap+RwLock", BASE)]):
        col = head.index(label)
        vals = [(seconds(r[col]) or 0) * 1e6 for r in rows]
        ax.barh([j + (i - 0.5) * width for j in range(len(rows))], vals, width,
                label=label, color=color)
    ax.set_yticks(range(len(rows)), ops)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("µs per call (log scale; shorter is better)")
    ax.set_title("memfile engine vs BTreeMap, 1M records, after reopening")
    ax.legend()
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "memfile-1m.png", dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", default="docs", type=pathlib.Path)
    ap.add_argument("--out", default="docs/img", type=pathlib.Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for chart in (core_ops, python_peers, memfile_btreemap):
        chart(args.docs, args.out)
    print(f"charts written to {args.out}")


if __name__ == "__main__":
    main()
