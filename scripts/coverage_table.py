#!/usr/bin/env python3
"""Writes docs/coverage.md from an lcov trace file: line coverage per module and per file.

A module is a directory under src/ (src/forward/fhir counts to forward) with its headers under
include/vitalgate/<module>/.

  scripts/coverage_table.py build/coverage/vitalgate.info --root . --scope unit > docs/coverage.md
"""

import argparse
import datetime
import subprocess
from collections import defaultdict
from pathlib import Path

TARGET = 85.0
GATED = ("forward", "store", "engine")


def read_trace(path):
    """{file: (lines found, lines hit)} from an lcov .info file."""
    files = {}
    current, found, hit = None, 0, 0
    for line in Path(path).read_text().splitlines():
        if line.startswith("SF:"):
            current, found, hit = line[3:], 0, 0
        elif line.startswith("LF:"):
            found = int(line[3:])
        elif line.startswith("LH:"):
            hit = int(line[3:])
        elif line == "end_of_record" and current:
            old = files.get(current, (0, 0))
            files[current] = (old[0] + found, old[1] + hit)
            current = None
    return files


def module_of(rel):
    parts = rel.split("/")
    if parts[0] == "src" and len(parts) > 2:
        return parts[1]
    if parts[0] == "include" and len(parts) > 3:
        return parts[2]
    return parts[0]


def pct(hit, found):
    return 100.0 * hit / found if found else 100.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("trace")
    p.add_argument("--root", default=".")
    p.add_argument("--scope", default="unit")
    p.add_argument("--command", default="scripts/coverage.sh")
    a = p.parse_args()
    root = Path(a.root).resolve()
    files = {}
    for name, counts in read_trace(a.trace).items():
        files[str(Path(name).resolve().relative_to(root))] = counts
    modules = defaultdict(lambda: [0, 0])
    for rel, (found, hit) in files.items():
        m = modules[module_of(rel)]
        m[0] += found
        m[1] += hit
    total_found = sum(f for f, _ in files.values())
    total_hit = sum(h for _, h in files.values())
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    tests = "the unit tests (ctest -L unit)" if a.scope == "unit" else \
        "the unit and integration tests (every ctest test)"

    out = ["# Line coverage", "",
           f"Measured with gcov (GCC) and lcov from Debian packages over {tests}, on commit "
           f"`{commit}` ({datetime.date.today().isoformat()}):", "",
           "```sh", a.command, "```", "",
           "Lines of vitalgate's own code only (`src/` and `include/`); tests, plugins and "
           "third-party headers are not counted. The HTML report with every line is written to "
           "`build/coverage/html`.", "",
           f"The forward, store and engine modules carry the delivery and alarm guarantees; their "
           f"target is {TARGET:.0f} %.", "",
           "| module | lines | covered | line coverage |", "| --- | ---: | ---: | ---: |"]
    for name in sorted(modules):
        found, hit = modules[name]
        mark = ""
        if name in GATED:
            mark = " (target met)" if pct(hit, found) >= TARGET else f" (**below {TARGET:.0f} %**)"
        out.append(f"| {name} | {found} | {hit} | {pct(hit, found):.1f} %{mark} |")
    out.append(f"| **all** | {total_found} | {total_hit} | **{pct(total_hit, total_found):.1f} %** |")
    out += ["", "## Per file", "", "| file | lines | line coverage |", "| --- | ---: | ---: |"]
    for rel in sorted(files):
        found, hit = files[rel]
        out.append(f"| `{rel}` | {found} | {pct(hit, found):.1f} % |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
