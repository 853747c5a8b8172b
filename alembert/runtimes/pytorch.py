"""PyTorch: a transformers folder (a fine-tuned classifier), a sentence-transformers folder (an
embedding model) or a static (model2vec) folder (an embedding model of token vectors, no
transformer: :mod:`alembert.models.static`), on the CPU or a GPU. The folder format that
``finetune`` and ``distill`` write, and the one read when no other runtime claims a folder.

:class:`TorchModel` wraps the loaded module so it answers the runtime calls (``prepare`` / ``run`` /
``describe``) beside its own: every other attribute (``config``, ``dim``, ``max_seq_length``,
``parameters()``, ...) is the wrapped module's, and calling it is calling the module.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alembert.errors import AlembertError
from alembert.runtimes.base import PYTORCH_FORMAT, Runtime


class TorchModel(torch.nn.Module):
    """A torch module (a classifier, or an :class:`~alembert.models.sentence.EmbeddingModel`) as a runtime model.
    ``returns``: the output field :meth:`run` gives back (``"logits"`` or ``"embeddings"``)."""

    def __init__(self, module: torch.nn.Module, returns: str = "logits"):
        super().__init__()
        self.module = module
        self.returns = returns
        self.runtime = PyTorchRuntime()
        self._accepted = set(inspect.signature(module.forward).parameters)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)

    def forward(self, **batch):
        return self.module(**batch)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def prepare(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The inputs the module's forward takes, on its device."""
        device = self.device
        return {n: torch.as_tensor(v).to(device) for n, v in batch.items() if n in self._accepted}

    @torch.inference_mode()
    def run(self, prepared: dict[str, torch.Tensor]) -> torch.Tensor:
        """One forward; on a GPU it waits for the kernels, so a timed call is the whole forward."""
        out = getattr(self.module(**prepared), self.returns)
        if out.is_cuda:
            torch.cuda.synchronize()
        return out

    def describe(self) -> dict[str, str]:
        return {"kind": "pytorch", "device": self.device.type, "attention": self.config._attn_implementation}


@dataclass
class SavedLabels:
    """The labels a fine-tuned head saved in its config.json (the ``models.load.Labels`` protocol)."""

    name: str
    label_names: tuple[str, ...] | None
    is_regression: bool


def saved_labels(config, name) -> SavedLabels:
    from alembert.models.load import is_task_model

    if not is_task_model(config):
        raise AlembertError(
            f"model {name} has no classification head; "
            "fine-tune it first (alembert finetune) or pass a fine-tuned folder"
        )
    if config.problem_type == "regression" or config.num_labels == 1:
        return SavedLabels("custom", None, True)
    return SavedLabels("custom", tuple(str(config.id2label[i]) for i in range(config.num_labels)), False)


class PyTorchRuntime(Runtime):
    format = PYTORCH_FORMAT
    library = "torch"
    title = "PyTorch"
    bench_label = "torch"
    weights = ("*.safetensors", "pytorch_model*.bin")
    probe_order = 100  # any folder with a config.json: asked after the runtimes that look for their own files

    def probe(self, path: Path) -> bool:
        return path.is_dir() and ((path / "config.json").is_file() or (path / "modules.json").is_file())

    def version(self) -> str:
        return torch.__version__

    def load_classifier(self, path: Path, task=None, threads: int | None = None, name: str | None = None):
        """``threads`` is not the model's to set: torch's thread count is the process's (the bench sets it)."""
        from alembert.models.load import load_classifier, load_config
        from alembert.models.static import is_static_folder

        name = name or str(path)
        if is_static_folder(path):
            raise AlembertError(
                f"model {name} is a static sentence-embedding model (token vectors, no classifier head); "
                "evaluate it on an embedding task: --task stsb-zeroshot or squad-retrieval"
            )
        model = load_classifier(name, task or saved_labels(load_config(path), name))
        return TorchModel(model, "logits")

    def load_embedding(self, path: Path, pooling: str | None = None, threads: int | None = None, name=None):
        """A sentence-transformers folder, an encoder with ``pooling``, or a static folder (model2vec's
        files at its root: :func:`~alembert.models.sentence.load_embedding_model` tells them apart)."""
        from alembert.models.sentence import load_embedding_model

        model, tokenizer = load_embedding_model(name or path, pooling)
        return TorchModel(model, "embeddings"), tokenizer
