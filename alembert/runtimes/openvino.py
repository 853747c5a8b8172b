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
from alembert.runtimes.base import EXPORT_INFO, ArrayModel, ExportRuntime, embedding_record, int64_feeds

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
        return int64_feeds(batch, self.input_names)

    def run(self, prepared: dict[str, np.ndarray]) -> np.ndarray:
        return self.request.infer(prepared)[0].copy()  # the request's buffer is reused by the next call

    def describe(self) -> dict[str, str]:
        variant = self.export_info.get("variant", "fp32").removeprefix("openvino-")  # --quantize auto's names
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
        embedding_record(self)


class OpenVinoRuntime(ExportRuntime):
    format = "openvino"
    library = "openvino"
    title = "OpenVINO"
    bench_label = "ov"
    weights = (IR_FILE, "openvino_model.bin")
    classifier = OvClassifier
    embedder = OvEmbedder

    def _bare(self, cls: type, path: Path, threads: int | None, precision: str | None):
        return cls.from_ir(path, threads, precision or "f32")

    def probe(self, path: Path) -> bool:
        """A folder with ``openvino_model.xml`` (an export without a record)."""
        return (path / IR_FILE).is_file()

    def version(self) -> str:
        return require_openvino().get_version()
