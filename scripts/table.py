"""Print a markdown table of finished runs from their metrics.json files.

Every training command writes the same metrics.json keys (alembert/training/runner.py
documents them), so one row format fits finetune, distill and distill-general runs.

usage: python scripts/table.py RUN_DIR [RUN_DIR ...]
"""

import json
import sys
from pathlib import Path


def _metrics(dev: dict) -> str:
    flat = (
        {f"{k} {m}": v for k, d in dev.items() for m, v in d.items()}
        if any(isinstance(v, dict) for v in dev.values())
        else dev
    )
    return ", ".join(f"{k} {v:.4f}" for k, v in flat.items()) or "-"


def row(path: Path) -> str:
    m = json.loads((path / "metrics.json").read_text())
    retention = m["retention"]
    if isinstance(retention, dict):
        retention = ", ".join(f"{k} {v:.1f}%" for k, v in retention.items())
    elif retention is not None:
        retention = f"{retention:.1f}%"
    return (
        f"| {path.name} | {m['task']} | {m['recipe'] or m['command']} | {m['train_examples']} | {_metrics(m['dev'])} "
        f"| {retention or '-'} | {m['parameters'] / 1e6:.1f}M | {m['train_seconds']:.0f} s |"
    )


if __name__ == "__main__":
    print("| run | task | recipe | train ex. | dev | retention | params | wall |")
    print("|---|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        if (Path(arg) / "metrics.json").is_file():
            print(row(Path(arg)))
