"""A JSONL log of every logged step and evaluation (only the main process writes)."""

from __future__ import annotations

import json
import time
from pathlib import Path


class RunLogger:
    def __init__(self, path: str | Path | None, enabled: bool = True, append: bool = False):
        self.path = Path(path) if path else None
        self.enabled = enabled and self.path is not None
        self.start = time.time()
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not append or not self.path.exists():
                self.path.write_text("")

    def log(self, **record) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time() - self.start, 2), **record}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
