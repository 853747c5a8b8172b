"""The preprocessing a model was trained with, saved inside its ``config.json``.

A model trained on 64-token inputs is evaluated, benched and served on 64-token inputs
unless a flag says otherwise: training commands record the task kind, the max length
(and the QA window stride) under the ``alembert_preprocessing`` key of the model's config
(transformers keeps unknown config attributes, so the record survives ``save_pretrained``,
export and any later load); the commands that read a model take their defaults from it.
"""

from __future__ import annotations

import json
from pathlib import Path

KEY = "alembert_preprocessing"


def record(model, task_kind: str, max_length: int, **extra) -> None:
    """Attach the record to ``model.config`` (written with the next ``save_pretrained``)."""
    setattr(model.config, KEY, {"task_kind": task_kind, "max_length": int(max_length), **extra})


def saved(model_dir: str | Path) -> dict:
    """The record of a saved model folder (or ONNX export), ``{}`` when there is none."""
    path = Path(model_dir) / "config.json"
    try:
        return json.loads(path.read_text()).get(KEY) or {}
    except (OSError, ValueError, AttributeError):
        return {}


def max_length_for(model_dir: str | Path, given: int | None, default: int) -> int:
    """The flag's value when given, else the model's own, else ``default``."""
    return given if given is not None else int(saved(model_dir).get("max_length") or default)
