"""OpenVINO: the folders ``alembert export --openvino`` writes (format ``openvino``: an IR,
``openvino_model.xml`` + ``.bin``), on the CPU.

Why a second runtime: on x86 servers OpenVINO's int8 (static scales from NNCF's post-training
quantisation, SmoothQuant and bias correction) is the path sentence-transformers' efficiency guide
recommends, and on some CPUs it beats ONNX Runtime's dynamic int8 (docs/results.md, issue 30).

The precision the CPU plugin computes in is part of the export, not left to the plugin: OpenVINO
defaults to bf16 on CPUs with AVX512-BF16 or AMX, which moves an fp32 model's logits by ~1e-3
(measured: 3.6e-3 on the demo's student). An export records ``precision`` (``f32``, or ``bf16``
when asked for) and every load compiles with it, so an "fp32" export gives PyTorch's numbers
on every CPU.

:class:`OvClassifier` / :class:`OvEmbedder` keep the calling convention of the ONNX Runtime models
(``.logits`` / ``.embeddings`` torch tensors; ``prepare`` / ``run`` for the bench), so every
command runs them unchanged. This module is the only one that compiles an OpenVINO model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from alembert.errors import AlembertError
from alembert.runtimes.base import EXPORT_INFO, ArrayModel, Runtime

IR_FILE = "openvino_model.xml"
PRECISIONS = ("f32", "bf16")  # the CPU plugin's INFERENCE_PRECISION_HINT an export may record


def require_openvino():
    """The ``openvino`` module, or one line saying how to install the optional extra."""
    try:
        import openvino
    except ImportError:
        raise AlembertError("OpenVINO is not installed: pip install 'alembert[openvino]' (openvino and nncf)") from None
    return openvino


def compile_ir(model, threads: int | None = None, precision: str = "f32"):
    """A compiled CPU model of ``model`` (an IR path or an ``openvino.Model``): a fixed thread
    count, one stream (one request at a time, as the bench and the evaluations call it) and the
    recorded precision."""
    ov = require_openvino()
    if precision not in PRECISIONS:
        raise AlembertError(f"OpenVINO precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    config = {
        "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
        "NUM_STREAMS": 1,
        "INFERENCE_PRECISION_HINT": precision,
    }
    try:
        return ov.Core().compile_model(model, "CPU", config)
    except RuntimeError as exc:
        raise AlembertError(
            f"{model if isinstance(model, str | Path) else 'the model'}: OpenVINO cannot compile it "
            f"({str(exc).strip().splitlines()[0][:160]}); export it again with alembert export --openvino"
        ) from None


class OvModel(ArrayModel):
    """An exported folder's compiled model behind the calling convention of a torch model (CPU only)."""

    output: ClassVar[str] = "logits"

    def __init__(self, folder: str | Path, threads: int | None = None):
        from alembert.models.load import load_config

        self.runtime = OpenVinoRuntime()
        self.folder = Path(folder)
        info = self.folder / EXPORT_INFO
        self.export_info = json.loads(info.read_text()) if info.is_file() else {}
        self._compile(self.folder / IR_FILE, threads, self.export_info.get("precision", "f32"))
        self.config = None if self.export_info.get("static") else load_config(self.folder)

    @classmethod
    def from_ir(cls, model, threads: int | None = None, precision: str = "f32"):
        """An IR file or an in-memory ``openvino.Model`` (no folder around it): what an export checks."""
        self = cls.__new__(cls)
        self.runtime = OpenVinoRuntime()
        self.folder = Path(model).parent if isinstance(model, str | Path) else None
        self.export_info, self.config = {}, None
        self._compile(model, threads, precision)
        return self

    def _compile(self, model, threads, precision) -> None:
        self.compiled = compile_ir(str(model) if isinstance(model, Path) else model, threads, precision)
        self.request = self.compiled.create_infer_request()
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.precision = precision

    def prepare(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """int64 arrays by input name; a missing token_type_ids is all zeros."""
        ref = batch["input_ids"]
        out = {}
        for name in self.input_names:
            value = batch.get(name)
            if value is None:
                value = torch.zeros_like(ref) if isinstance(ref, torch.Tensor) else np.zeros_like(ref)
            value = value.cpu().numpy() if isinstance(value, torch.Tensor) else value
            out[name] = np.ascontiguousarray(value, dtype=np.int64)
        return out

    def run(self, prepared: dict[str, np.ndarray]) -> np.ndarray:
        return self.request.infer(prepared)[0].copy()  # the request's buffer is reused by the next call

    def describe(self) -> dict[str, str]:
        variant = self.export_info.get("variant", "fp32")
        return {"kind": f"openvino-{variant}", "device": "cpu", "attention": self.export_info.get("attention", "?")}


class OvClassifier(OvModel):
    """An exported classifier: ``model(**batch).logits`` as from a Hugging Face classifier."""

    output = "logits"
    returns = "logits"


class OvEmbedder(OvModel):
    """An exported sentence-embedding model: ``.embeddings`` and ``.dim``, pooling, Dense layers and
    normalisation inside the graph (a static model's weighted mean too), as :class:`OnnxEmbedder`."""

    output = "sentence_embedding"
    returns = "embeddings"

    def __init__(self, folder: str | Path, threads: int | None = None):
        super().__init__(folder, threads)
        if self.export_info.get("kind") != "embedding":
            raise AlembertError(
                f"{self.folder} is not an embedding export (alembert export of a sentence-transformers folder)"
            )
        self.pooling = self.export_info["pooling"]
        self.normalize = self.export_info["normalize"]
        self.dim = self.export_info["dim"]
        self.max_seq_length = self.export_info.get("max_seq_length")


class OpenVinoRuntime(Runtime):
    format = "openvino"
    library = "openvino"
    title = "OpenVINO"
    weights = ("openvino_model.bin", IR_FILE)

    def probe(self, path: Path) -> bool:
        """A folder with ``openvino_model.xml`` (an export without a record)."""
        return (path / IR_FILE).is_file()

    def version(self) -> str:
        return require_openvino().get_version()

    def load_classifier(self, path: Path, task=None, threads: int | None = None, name: str | None = None):
        name = name or str(path)
        info = path / EXPORT_INFO
        if info.is_file() and json.loads(info.read_text()).get("kind") == "embedding":
            raise AlembertError(
                f"model {name} is a sentence-embedding export; "
                "evaluate or bench it with --task stsb-zeroshot (or squad-retrieval)"
            )
        model = OvClassifier(path, threads)
        if task is not None and model.config.num_labels != task.num_labels:
            raise AlembertError(
                f"model {name} has a {model.config.num_labels}-label head but task {task.name} "
                f"needs {task.num_labels}; pass a model exported from a fine-tune on this task"
            )
        return model

    def load_embedding(self, path: Path, pooling: str | None = None, threads: int | None = None, name=None):
        from alembert.models.load import load_tokenizer

        model = OvEmbedder(path, threads)
        if pooling is not None and pooling != model.pooling:
            raise AlembertError(
                f"model {name or path} is an OpenVINO export with {model.pooling} pooling inside its graph; "
                "drop --pooling or export again"
            )
        return model, load_tokenizer(path)
