"""Run an exported ONNX folder with onnxruntime, in place of a PyTorch model.

:class:`OnnxClassifier` takes the same keyword tensors as a Hugging Face
classifier and returns an object with ``.logits`` (a torch tensor), so
``predict_logits`` / ``evaluate_model`` accept it unchanged. :func:`load_any`
loads either kind of folder. :class:`OnnxEmbedder` does the same for an exported
sentence-embedding model (``.embeddings``, ``.dim``), loaded by :func:`load_any_embedding`.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from alembert.errors import AlembertError

ONNX_FILE = "model.onnx"


def is_onnx_dir(path: str | Path) -> bool:
    """True for a folder written by ``alembert export`` (or any folder with model.onnx)."""
    return (Path(path) / ONNX_FILE).is_file()


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


class OnnxModel:
    """An exported folder's session behind the calling convention of a torch model (CPU only)."""

    training = False
    device = torch.device("cpu")

    def __init__(self, folder: str | Path, threads: int | None = None):
        from alembert.models.load import load_config

        self.folder = Path(folder)
        self.session = make_session(self.folder / ONNX_FILE, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.config = load_config(self.folder)
        info = self.folder / "alembert_export.json"
        self.export_info = json.loads(info.read_text()) if info.is_file() else {}

    @classmethod
    def from_graph(cls, onnx_path: str | Path, threads: int | None = None):
        """A bare ``model.onnx`` (no folder around it: no config, no export record), e.g. a
        candidate graph that ``--quantize auto`` scores before choosing."""
        self = cls.__new__(cls)
        self.folder = Path(onnx_path).parent
        self.session = make_session(onnx_path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.config = None
        self.export_info = {}
        return self

    @property
    def quantization(self) -> str | None:
        return self.export_info.get("quantization")

    def feeds(self, batch: dict) -> dict[str, np.ndarray]:
        """The numpy inputs for the session; a missing token_type_ids is all zeros."""
        ref = batch["input_ids"]
        out = {}
        for name in self.input_names:
            value = batch.get(name)
            value = torch.zeros_like(ref) if value is None else value
            out[name] = np.asarray(value.cpu() if isinstance(value, torch.Tensor) else value, dtype=np.int64)
        return out

    def eval(self) -> OnnxModel:
        return self

    def train(self, mode: bool = True) -> OnnxModel:
        if mode:
            raise AlembertError(
                f"{self.folder} is an ONNX export and cannot be trained; train the PyTorch folder it came from"
            )
        return self


class OnnxClassifier(OnnxModel):
    """An exported classifier: ``model(**batch).logits`` as from a Hugging Face classifier."""

    output = "logits"

    def __call__(self, **batch) -> SimpleNamespace:
        logits = self.session.run(["logits"], self.feeds(batch))[0]
        return SimpleNamespace(logits=torch.from_numpy(logits))


class OnnxEmbedder(OnnxModel):
    """An exported sentence-embedding model (``alembert export`` of a sentence-transformers folder):
    ``model(**batch).embeddings`` and ``.dim`` as from an :class:`~alembert.models.sentence.EmbeddingModel`,
    so :func:`alembert.embedding.cache.encode` and the zero-shot evaluations run it unchanged.
    Pooling, Dense layers and normalisation are inside the graph."""

    output = "sentence_embedding"

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

    def __call__(self, **batch) -> SimpleNamespace:
        emb = self.session.run([self.output], self.feeds(batch))[0]
        return SimpleNamespace(embeddings=torch.from_numpy(emb))


def is_embedding_export(path: str | Path) -> bool:
    info = Path(path) / "alembert_export.json"
    return is_onnx_dir(path) and info.is_file() and json.loads(info.read_text()).get("kind") == "embedding"


def load_any_embedding(name: str | Path, pooling: str | None = None, threads: int | None = None):
    """(model, tokenizer): an :class:`OnnxEmbedder` for an embedding export, else
    :func:`alembert.models.sentence.load_embedding_model`'s PyTorch model."""
    from alembert.models.load import load_tokenizer
    from alembert.models.resolve import resolve_model
    from alembert.models.sentence import load_embedding_model

    path = resolve_model(name)
    if not is_onnx_dir(path):
        return load_embedding_model(name, pooling)
    model = OnnxEmbedder(path, threads)
    if pooling is not None and pooling != model.pooling:
        raise AlembertError(
            f"model {name} is an ONNX export with {model.pooling} pooling inside its graph; "
            "drop --pooling or export again"
        )
    return model, load_tokenizer(path)


def _task_from_config(config, name):
    from alembert.data.glue import custom_task
    from alembert.models.load import is_task_model

    if not is_task_model(config):
        raise AlembertError(
            f"model {name} has no classification head; "
            "fine-tune it first (alembert finetune) or pass a fine-tuned folder"
        )
    if config.problem_type == "regression" or config.num_labels == 1:
        return custom_task(None)
    return custom_task([config.id2label[i] for i in range(config.num_labels)])


def load_any(model_dir: str | Path, task=None, threads: int | None = None):
    """A torch classifier or an :class:`OnnxClassifier` for ``model_dir``.

    With a ``task`` the label count is checked against it (a base encoder gets a new
    head, as in ``load_classifier``); without one the folder must hold a fine-tuned
    classifier and its own labels are used.
    """
    from alembert.models.load import load_classifier, load_config
    from alembert.models.resolve import resolve_model

    path = resolve_model(model_dir)
    if not is_onnx_dir(path):
        return load_classifier(model_dir, task or _task_from_config(load_config(path), model_dir))
    if is_embedding_export(path):
        raise AlembertError(
            f"model {model_dir} is a sentence-embedding export; "
            "evaluate or bench it with --task stsb-zeroshot (or squad-retrieval)"
        )
    model = OnnxClassifier(path, threads)
    if task is not None and model.config.num_labels != task.num_labels:
        raise AlembertError(
            f"model {model_dir} has a {model.config.num_labels}-label head but task {task.name} "
            f"needs {task.num_labels}; pass a model exported from a fine-tune on this task"
        )
    return model
