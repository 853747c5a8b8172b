"""The last screen of a bench run in 80 columns: teacher vs students (dev metric, retention,
speed-up at batch 32 and 1, size on disk), how it was measured, and where the full tables and
charts are. ``make demo`` ends with it.

usage: python scripts/summary.py BENCH_DIR   (the folder `alembert bench --output` wrote)
"""

import json
import sys
import textwrap
from pathlib import Path

from alembert.measure.report import conditions, summary


def main(folder: str) -> None:
    out = Path(folder)
    result = json.loads((out / "bench.json").read_text())
    print(summary(result))
    print(textwrap.fill(conditions(result), 80))
    charts = sorted(p.name for p in out.glob("*.png"))
    print(textwrap.fill(f"full table: {out / 'bench.md'} (and bench.json); charts: {', '.join(charts)}", 80))


if __name__ == "__main__":
    main(sys.argv[1])
