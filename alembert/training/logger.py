"""A JSONL log of every logged step and evaluation (only the main process writes).

With ``train.report_to`` the same scalars also go to Accelerate's trackers
(TensorBoard, Weights & Biases, MLflow, ...), under the run folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


class RunLogger:
    def __init__(
        self,
        path: str | Path | None,
        enabled: bool = True,
        append: bool = False,
        accelerator=None,
        config: dict | None = None,
    ):
        self.path = Path(path) if path else None
        self.enabled = enabled and self.path is not None
        self.start = time.time()
        self.accelerator = accelerator if accelerator is not None and accelerator.log_with else None
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not append or not self.path.exists():
                self.path.write_text("")
        if self.accelerator is not None:
            self.accelerator.project_configuration.set_directories(str(self.path.parent / "trackers"))
            self.accelerator.init_trackers("alembert", config=_flat(config or {}))

    def log(self, **record) -> None:
        if self.accelerator is not None and "step" in record:
            scalars = {f"eval/{k}": v for k, v in record.get("eval", {}).items()}
            scalars.update(
                {
                    f"train/{k}": v
                    for k, v in record.items()
                    if k not in ("step", "eval", "stage") and isinstance(v, int | float)
                }
            )
            self.accelerator.log(scalars, step=record["step"])
        if not self.enabled:
            return
        record = {"time": round(time.time() - self.start, 2), **record}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def close(self) -> None:
        if self.accelerator is not None:
            self.accelerator.end_training()


def _flat(tree: dict, prefix: str = "") -> dict:
    """Nested config -> {"train.lr": ...} with values trackers accept (numbers, strings, bools)."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, int | float | str | bool):
            out[f"{prefix}{k}"] = v
        elif v is not None:
            out[f"{prefix}{k}"] = str(v)
    return out
