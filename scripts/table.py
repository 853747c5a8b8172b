"""Print a markdown table of finished runs from their metrics.json files.

usage: python scripts/table.py RUN_DIR [RUN_DIR ...]
"""

import json
import sys
from pathlib import Path


def row(path: Path) -> str:
    m = json.loads((path / "metrics.json").read_text())
    dev = ", ".join(f"{k} {v:.4f}" for k, v in m.get("dev", {}).items()) or "- (general stage: no task)"
    kind = m.get("recipe", "finetune")
    retention = f"{m['retention']:.1f}%" if m.get("retention") is not None else "-"
    params = m.get("student_parameters") or m.get("parameters")
    examples = m.get("train_examples", m.get("train_sequences", "-"))
    return f"| {path.name} | {m.get('task', 'corpus')} | {kind} | {examples} | {dev} | {retention} | {params / 1e6:.1f}M | {m['train_seconds']:.0f} s |"


if __name__ == "__main__":
    print("| run | task | recipe | train ex. | dev | retention | params | wall |")
    print("|---|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        if (Path(arg) / "metrics.json").is_file():
            print(row(Path(arg)))
