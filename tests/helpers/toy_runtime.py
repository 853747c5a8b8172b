"""A runtime that lives outside alembert: a ``toy`` folder keeps a classifier's weights as one
``torch.save`` file (``toy_weights.pt``, a format no packaged runtime reads) beside its config.json,
its tokenizer and an ``alembert_export.json`` that records ``format: toy``. It exists to show that a
runtime is one new file: importing this module registers it, and ``evaluate``, ``bench`` and
``predict`` reach it unchanged. Its ``run`` returns numpy arrays and counts its calls, so a test can
tell that the toy runtime, and not PyTorch's, did the work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from alembert.errors import AlembertError
from alembert.runtimes import ArrayModel, Runtime

WEIGHTS = "toy_weights.pt"
CALLS = {"run": 0}


def write_toy(src: Path, dst: Path) -> Path:
    """The toy 'export' of the PyTorch classifier folder ``src``: the same weights, in the toy format."""
    model = AutoModelForSequenceClassification.from_pretrained(src)
    dst.mkdir(parents=True)
    torch.save(model.state_dict(), dst / WEIGHTS)
    model.config.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    (dst / "alembert_export.json").write_text(json.dumps({"format": ToyRuntime.format, "source": str(src)}))
    return dst


class ToyModel(ArrayModel):
    returns = "logits"

    def __init__(self, folder: Path):
        self.runtime = ToyRuntime()
        self.folder = folder
        self.config = AutoConfig.from_pretrained(folder)
        self.net = AutoModelForSequenceClassification.from_config(self.config).eval()
        self.net.load_state_dict(torch.load(folder / WEIGHTS, weights_only=True))

    def prepare(self, batch) -> dict[str, torch.Tensor]:
        names = ("input_ids", "attention_mask", "token_type_ids")
        return {k: torch.as_tensor(np.asarray(v)) for k, v in batch.items() if k in names}

    def run(self, prepared) -> np.ndarray:
        CALLS["run"] += 1
        with torch.inference_mode():
            return self.net(**prepared).logits.numpy()

    def describe(self) -> dict[str, str]:
        return {"kind": "toy", "device": "cpu", "attention": self.config._attn_implementation}


class ToyRuntime(Runtime):
    format = "toy"
    library = "toy"
    title = "toy"
    weights = (WEIGHTS,)

    def probe(self, path: Path) -> bool:
        return (path / WEIGHTS).is_file()

    def version(self) -> str:
        return "0.1"

    def load_classifier(self, path: Path, task=None, threads=None, name=None) -> ToyModel:
        model = ToyModel(path)
        if task is not None and model.config.num_labels != task.num_labels:
            raise AlembertError(f"model {name or path} has {model.config.num_labels} labels; {task.name} needs more")
        return model
