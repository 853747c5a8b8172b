"""ONNX Runtime: the folders ``alembert export --onnx`` writes (format ``onnx``), on the CPU.

:class:`OnnxClassifier` takes the same keyword tensors as a Hugging Face classifier and returns
``.logits`` (a torch tensor), so ``predict_logits`` / ``evaluate_model`` accept it unchanged;
:class:`OnnxEmbedder` does the same for an exported sentence-embedding model (``.embeddings``,
``.dim``; pooling, Dense layers and normalisation are inside the graph; a static model's export, whose
weighted mean is the whole graph, too). Both also load a bare
``.onnx`` graph (no folder around it: no config, no export record), e.g. a candidate graph that
``--quantize auto`` scores before choosing, or the export's own check of what it just wrote.
This module is the only one that makes an onnxruntime session.
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

ONNX_FILE = "model.onnx"


def make_session(onnx_path: str | Path, threads: int | None = None):
    """A CPU inference session with a fixed intra-op thread count, no spin-waiting (idle
    threads that spin would steal cores from whatever runs next) and denormals flushed to
    zero: onnxruntime's masked attention softmax otherwise crawls through denormal
    numbers (2.4x slower attention at batch 32 x 128 on SST-2 text, docs/results.md). The
    flag is set on the threads that run the session, the caller's included, so PyTorch
    models run after it in the same thread flush denormals too."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise AlembertError(
            f"{onnx_path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:160]}); "
            "export it again with alembert export"
        ) from None


class OnnxModel(ArrayModel):
    """An exported folder's session behind the calling convention of a torch model (CPU only)."""

    output: ClassVar[str] = "logits"  # the graph's output name

    def __init__(self, folder: str | Path, threads: int | None = None):
        from alembert.models.load import load_config

        self.runtime = OnnxRuntime()
        self.folder = Path(folder)
        self.session = make_session(self.folder / ONNX_FILE, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        info = self.folder / EXPORT_INFO
        self.export_info = json.loads(info.read_text()) if info.is_file() else {}
        # a static model's export has no transformers config (its config.json is model2vec's): the record describes it
        self.config = None if self.export_info.get("static") else load_config(self.folder)

    @classmethod
    def from_graph(cls, onnx_path: str | Path, threads: int | None = None):
        """A bare ``.onnx`` graph (no folder around it: no config, no export record)."""
        self = cls.__new__(cls)
        self.runtime = OnnxRuntime()
        self.folder = Path(onnx_path).parent
        self.session = make_session(onnx_path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.config = None
        self.export_info = {}
        return self

    @property
    def quantization(self) -> str | None:
        return self.export_info.get("quantization")

    def prepare(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return int64_feeds(batch, self.input_names)

    def run(self, prepared: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output], prepared)[0]

    def describe(self) -> dict[str, str]:
        return {
            "kind": f"onnx-{self.quantization or 'fp32'}",
            "device": "cpu",
            "attention": self.export_info.get("attention", "?"),
        }


class OnnxClassifier(OnnxModel):
    """An exported classifier: ``model(**batch).logits`` as from a Hugging Face classifier."""

    output = "logits"
    returns = "logits"


class OnnxEmbedder(OnnxModel):
    """An exported sentence-embedding model (``alembert export`` of a sentence-transformers folder):
    ``model(**batch).embeddings`` and ``.dim`` as from an :class:`~alembert.models.sentence.EmbeddingModel`,
    so :func:`alembert.embedding.cache.encode` and the zero-shot evaluations run it unchanged.
    Pooling, Dense layers and normalisation are inside the graph."""

    output = "sentence_embedding"
    returns = "embeddings"

    def __init__(self, folder: str | Path, threads: int | None = None):
        super().__init__(folder, threads)
        embedding_record(self)


def graph_model(onnx_path: str | Path, output: str = "logits", threads: int | None = None) -> OnnxModel:
    """A bare graph whose output is ``output`` (``"logits"``, ``"sentence_embedding"``): what an
    export checks its graph with (``model.run(model.prepare(inputs))``)."""
    cls = OnnxEmbedder if output == OnnxEmbedder.output else OnnxClassifier
    return cls.from_graph(onnx_path, threads)


class OnnxRuntime(ExportRuntime):
    format = "onnx"
    library = "onnxruntime"
    title = "ONNX"
    bench_label = ""
    weights = (ONNX_FILE, "model.onnx.data", "*.onnx_data")
    classifier = OnnxClassifier
    embedder = OnnxEmbedder

    def _bare(self, cls: type, path: Path, threads: int | None, precision: str | None):
        return cls.from_graph(path, threads)  # onnxruntime computes in the graph's own precision

    def probe(self, path: Path) -> bool:
        """A folder with ``model.onnx`` (an export without a record), or a bare ``.onnx`` graph."""
        return (path / ONNX_FILE).is_file() or (path.is_file() and path.suffix == ".onnx")

    def version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def load_classifier(self, path: Path, task=None, threads: int | None = None, name: str | None = None):
        if path.is_file():  # a bare graph: nothing to check it against
            return OnnxClassifier.from_graph(path, threads)
        return super().load_classifier(path, task, threads, name)
