#!/usr/bin/env python3
"""The import graph between a Rust crate's top-level modules, and its cycles.

usage: scripts/module_graph.py [--edges] SRC_DIR...   (e.g. core/src ffi/src)

Every file under SRC_DIR belongs to the top-level module it sits in (`store/slot.rs`
is `store`; `lib.rs` is the crate root, left out). An edge A -> B is a path
`crate::B` named in a file of A (in a `use`, also `use crate::{B, ...}`, or inline),
outside comments and `#[cfg(test)]` modules. Prints each crate's cycles (strongly
connected components of more than one module); with --edges, every edge too. Exits
1 if any crate has a cycle.
"""
import argparse
import pathlib
import re
import sys

USE_GROUP = re.compile(r"crate::\{([^}]*)\}", re.S)
PATH = re.compile(r"crate::([A-Za-z_][A-Za-z0-9_]*)")
REEXPORT = re.compile(r"pub use (?:self::|crate::)?([a-z_][a-z0-9_]*)::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)", re.S)


def reexports(src: pathlib.Path) -> dict[str, str]:
    """Names the crate root re-exports (`pub use store::{Store, ...}`) -> module."""
    root = src / "lib.rs"
    out: dict[str, str] = {}
    if root.exists():
        for module, names in REEXPORT.findall(code_of(root.read_text())):
            for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", names):
                out.setdefault(name, module)
    return out


def module_of(src: pathlib.Path, f: pathlib.Path) -> str | None:
    rel = f.relative_to(src)
    if rel.parts == ("lib.rs",) or rel.parts == ("main.rs",):
        return None
    return rel.parts[0].removesuffix(".rs")


def code_of(text: str) -> str:
    """`text` without comments and without `#[cfg(test)]` items that are modules."""
    out, depth, skipping, pending = [], 0, False, False
    for line in text.splitlines():
        stripped = line.strip()
        if not skipping:
            if stripped.startswith("#[cfg(test)]"):
                pending = True
                continue
            if pending:
                pending = False
                if re.match(r"(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", stripped):
                    skipping, depth = True, 0
                else:
                    continue  # a test-only item on one line (a use, a fn header...)
        if skipping:
            depth += line.count("{") - line.count("}")
            if depth <= 0 and "}" in line:
                skipping = False
            continue
        out.append(line.split("//", 1)[0])
    return "\n".join(out)


def graph(src: pathlib.Path) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    via_root = reexports(src)
    for f in sorted(src.rglob("*.rs")):
        m = module_of(src, f)
        if m is None:
            continue
        edges.setdefault(m, set())
        code = code_of(f.read_text())
        names = set(PATH.findall(code))
        for group in USE_GROUP.findall(code):
            names.update(re.findall(r"(?:^|[,{\s])([A-Za-z_][A-Za-z0-9_]*)\s*(?:::|,|$|\s)", group))
        for n in names:
            n = via_root.get(n, n)
            if n != m and ((src / f"{n}.rs").exists() or (src / n / "mod.rs").exists()):
                edges[m].add(n)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", action="store_true", help="print every edge")
    ap.add_argument("src", nargs="+", type=pathlib.Path)
    args = ap.parse_args()
    failed = False
    for src in args.src:
        edges = graph(src)
        if args.edges:
            for m in sorted(edges):
                print(f"{src}: {m} -> {', '.join(sorted(edges[m])) or '(nothing)'}")
        found = cycles(edges)
        for c in found:
            print(f"{src}: cycle: {' <-> '.join(c)}")
        if not found:
            print(f"{src}: no cycles among {len(edges)} modules")
        failed |= bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
