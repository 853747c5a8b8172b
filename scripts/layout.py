#!/usr/bin/env python
"""The architecture's numbers, for a closing note: lines per package at two revisions, and the
places outside the registry (alembert/terms) that name a loss term in a string.

usage: python scripts/layout.py [BEFORE_REV] [AFTER_REV]   (defaults: 0592718, the commit
before the architecture work of issue 15, and HEAD)
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter


def files_at(rev: str) -> dict[str, int]:
    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev, "alembert"], capture_output=True, text=True, check=True
    ).stdout.split()
    out = {}
    for name in names:
        if name.endswith(".py"):
            text = subprocess.run(["git", "show", f"{rev}:{name}"], capture_output=True, text=True, check=True).stdout
            out[name] = text.count("\n")
    return out


def package(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:2]) + "/" if len(parts) > 2 else path


def loss_name_sites(rev: str) -> list[str]:
    """``file:line`` of every quoted term name in alembert/ outside terms/ and losses/: a string
    that is a term's name, not a dict key, a subscript or a ``needs(...)`` output kind (the words
    ``attention`` and ``cosine`` are also metadata keys and a similarity's name)."""
    sys.path.insert(0, ".")
    from alembert.terms import TERMS

    names = "|".join(map(re.escape, TERMS))
    pattern = re.compile(r"""(?<![\[(])["'](""" + names + r""")["'](?!\s*[:\]])""")
    sites = []
    for name in files_at(rev):
        if name.startswith(("alembert/terms/", "alembert/losses/")):
            continue
        text = subprocess.run(["git", "show", f"{rev}:{name}"], capture_output=True, text=True, check=True).stdout
        sites += [f"{name}:{i}" for i, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    return sites


def main(argv: list[str]) -> None:
    before, after = (argv + ["0592718", "HEAD"][len(argv) :])[:2]
    a, b = files_at(before), files_at(after)
    pa, pb = Counter(), Counter()
    for f, n in a.items():
        pa[package(f)] += n
    for f, n in b.items():
        pb[package(f)] += n
    print(f"| package | lines at {before} | files | lines at {after} | files |")
    print("|---|---:|---:|---:|---:|")
    for pkg in sorted(set(pa) | set(pb)):
        fa = sum(1 for f in a if package(f) == pkg)
        fb = sum(1 for f in b if package(f) == pkg)
        print(f"| {pkg} | {pa[pkg]} | {fa} | {pb[pkg]} | {fb} |")
    print(f"| total | {sum(pa.values())} | {len(a)} | {sum(pb.values())} | {len(b)} |")
    big = sorted(((n, f) for f, n in b.items()), reverse=True)[:5]
    print("largest modules at", after + ":", ", ".join(f"{f} ({n})" for n, f in big))
    sites = loss_name_sites(after)
    print(
        f"places outside alembert/terms and alembert/losses that name a loss term: {len(sites)}",
        *(f"  {s}" for s in sites),
        sep="\n",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
