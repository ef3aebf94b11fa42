#!/usr/bin/env python3
"""Lists the crates whose features differ between `make`'s workspace release build and
maturin's build of the Python extension alone (bindings/python/Cargo.toml, "Build
alignment"). Each difference makes the wheel build compile that crate, and everything
above it, a second time. Exit status 1 when anything differs.

Usage: python3 scripts/feature_alignment.py   (from the repository root; no build)
"""
import re
import subprocess
import sys

LINE = re.compile(r"^(\S+ v\S+)(?: \([^)]*\))* \[(.*)\]$")


def features(*selection: str) -> dict[str, set[str]]:
    out = subprocess.run(
        ["cargo", "tree", "--locked", *selection, "-e", "normal,build",
         "-f", "{p} [{f}]", "--prefix", "none"],
        check=True, capture_output=True, text=True).stdout
    found: dict[str, set[str]] = {}
    for line in out.splitlines():
        m = LINE.match(line.replace(" (*)", "").strip())
        if m:
            found.setdefault(m.group(1), set()).update(
                f for f in m.group(2).split(",") if f)
    return found


def main() -> int:
    workspace = features("--workspace", "--exclude", "libstate-python")
    python = features("-p", "libstate-python")
    differ = 0
    for pkg in sorted(python.keys() & workspace.keys()):
        if python[pkg] != workspace[pkg]:
            differ += 1
            print(f"{pkg}: workspace only {sorted(workspace[pkg] - python[pkg])}, "
                  f"extension only {sorted(python[pkg] - workspace[pkg])}")
    if differ:
        print(f"{differ} crate(s) differ: add the features to bindings/python/Cargo.toml's "
              "build-alignment dependencies")
        return 1
    print(f"feature alignment: the {len(python)} crates of the extension's build resolve "
          "as in the workspace build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
