"""What a runtime is: the library that runs a model folder for ``evaluate``, ``predict``, ``bench``
and ``export --quantize auto``, behind one calling convention.

The commands never ask which format a folder holds. They call :func:`load_any` (a classifier) or
:func:`load_any_embedding` (a sentence-embedding model), which ask :func:`runtime_for`:

1. a folder written by ``alembert export`` records its ``format`` in ``alembert_export.json``; that
   format names the runtime (an unknown one is a one-line error naming the known formats);
2. any other folder (or a bare graph file) goes to the first runtime whose :meth:`Runtime.probe`
   recognises it, lowest ``probe_order`` first, then in registration order;
3. a folder nobody claims is read as a PyTorch folder, whose loader says what is missing.

A loaded model (:class:`RuntimeModel`) keeps the Hugging Face calling convention that the evaluations
use (``model(**batch).logits`` / ``.embeddings``) and adds what the bench times: ``prepare(batch)``
(inputs made ready once, untimed) and ``run(prepared)`` (one forward, its output array), with
``runtime`` (name and library version) and ``describe()`` (the bench row's kind, device, attention).
So a second runtime is one module and every command reaches it.

Defining a :class:`Runtime` subclass with a ``format`` registers it (:data:`RUNTIMES`), as task kinds
and loss terms register; :mod:`alembert.runtimes` imports every module of its package, and a runtime
defined elsewhere (a plug-in, a test) registers the same way once its module is imported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from alembert.errors import AlembertError

#: format -> Runtime subclass, filled by ``Runtime.__init_subclass__``, in definition order.
RUNTIMES: dict[str, type[Runtime]] = {}
EXPORT_INFO = "alembert_export.json"  # where an export records its format (and how it was made)
PYTORCH_FORMAT = "pytorch"  # transformers / sentence-transformers folders; also a folder that no runtime claims


class RuntimeModel(Protocol):
    """A model as a runtime runs it. ``__call__``, ``eval``, ``train(False)`` and ``device`` are the
    torch convention the evaluations call; ``prepare`` / ``run`` are what the bench times."""

    runtime: Runtime
    config: Any  # the transformers config (labels, sizes); None for a bare graph

    def __call__(self, **batch) -> Any: ...  # .logits or .embeddings, torch tensors on the CPU or the device

    def prepare(self, batch: Mapping[str, Any]) -> Any: ...  # tokenizer outputs -> this runtime's inputs

    def run(self, prepared) -> np.ndarray | torch.Tensor: ...  # one forward: the logits or embeddings

    def to(self, device) -> RuntimeModel: ...

    def describe(self) -> dict[str, str]: ...  # {"kind": ..., "device": ..., "attention": ...} for the bench row


class ArrayModel:
    """Base of a loaded model that is not a torch module: the torch calling convention on top of
    :meth:`run`, so ``evaluate_model``, ``encode`` and ``predict`` take it unchanged. Subclasses set
    ``returns`` and implement ``prepare`` / ``run`` (and ``describe``)."""

    runtime: Runtime
    config: Any = None
    returns: ClassVar[str] = "logits"  # the output's field name: "logits" or "embeddings"
    training = False
    device = torch.device("cpu")
    folder: Path | None = None

    def __call__(self, **batch) -> SimpleNamespace:
        out = self.run(self.prepare(batch))
        return SimpleNamespace(**{self.returns: torch.as_tensor(out)})

    def prepare(self, batch: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def run(self, prepared) -> np.ndarray | torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict[str, str]:
        return {"kind": self.runtime.format, "device": "cpu", "attention": "?"}

    def eval(self) -> ArrayModel:
        return self

    def train(self, mode: bool = True) -> ArrayModel:
        if mode:
            raise AlembertError(
                f"{self.folder or 'this model'} runs with {self.runtime.library} and cannot be trained; "
                "train the PyTorch folder it came from"
            )
        return self

    def to(self, device) -> ArrayModel:
        """Runs on the CPU whatever device is asked (``describe()`` says so)."""
        return self


class Runtime:
    """One inference library. Subclasses set ``format`` (the registry key, as ``alembert_export.json``
    records it), ``library`` (the Python package that runs it), ``title``, optionally ``probe_order``, and override
    :meth:`probe`, :meth:`version` and the loaders they support."""

    format: ClassVar[str] = ""
    library: ClassVar[str] = ""
    title: ClassVar[str] = ""  # what its folders are called in messages: "an ONNX export"
    bench_label: ClassVar[str | None] = None  # its rows' kind in the bench's short tables (None: the format)
    probe_order: ClassVar[int] = 0  # lower is asked first; a catch-all (any transformers folder) goes last
    weights: ClassVar[tuple[str, ...]] = ()  # glob patterns of its weight files (the size on disk the bench reports)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.format:
            if cls.format in RUNTIMES and RUNTIMES[cls.format].__qualname__ != cls.__qualname__:
                raise TypeError(
                    f"runtime format {cls.format!r} defined twice ({RUNTIMES[cls.format].__qualname__}, "
                    f"{cls.__qualname__})"
                )
            RUNTIMES[cls.format] = cls

    def probe(self, path: Path) -> bool:
        """True when ``path`` (a folder, or a file) holds a model in this runtime's format, for folders
        that do not record their format."""
        return False

    def version(self) -> str:
        """The running library's version, for the bench row and the export record."""
        raise NotImplementedError

    def weight_files(self, path: Path) -> list[Path]:
        """The files holding the model's weights (not its tokenizer or config)."""
        return sorted({f for pattern in self.weights for f in path.glob(pattern) if f.is_file()})

    def label(self) -> str:
        """``"onnxruntime 1.23.2"``: the library and its version, as a bench row names it."""
        return f"{self.library} {self.version()}"

    def load_classifier(
        self, path: Path, task=None, threads: int | None = None, name: str | None = None
    ) -> RuntimeModel:
        """A sequence classifier (``task``: checks the label count; None: its own labels)."""
        raise self._unsupported("classifiers", path, name)

    def load_embedding(
        self, path: Path, pooling: str | None = None, threads: int | None = None, name: str | None = None
    ) -> tuple[RuntimeModel, Any]:
        """(a sentence-embedding model, its tokenizer)."""
        raise self._unsupported("sentence-embedding models", path, name)

    def _unsupported(self, what: str, path: Path, name) -> AlembertError:
        return AlembertError(
            f"model {name or path} is a {self.title or self.format} model; its runtime ({self.library}) runs no {what}"
        )


def int64_feeds(batch: Mapping[str, Any], names: list[str]) -> dict[str, np.ndarray]:
    """The graph inputs ``names`` from tokenizer outputs (torch or numpy) as contiguous int64 arrays;
    a missing token_type_ids is all zeros (a graph exported with it, a tokenizer that gives none)."""
    ref = batch["input_ids"]
    out = {}
    for name in names:
        value = batch.get(name)
        if value is None:
            value = torch.zeros_like(ref) if isinstance(ref, torch.Tensor) else np.zeros_like(ref)
        value = value.cpu().numpy() if isinstance(value, torch.Tensor) else value
        out[name] = np.ascontiguousarray(value, dtype=np.int64)
    return out


class ExportRuntime(Runtime):
    """A runtime of the folders ``alembert export`` writes (a graph beside ``alembert_export.json``):
    ``classifier`` and ``embedder`` are its loaded-model classes (:class:`ArrayModel` subclasses taking
    ``(folder, threads)``), and the checks every such folder needs are made here once: an embedding
    export is not a classifier, a classifier's label count fits the task, an embedding export's
    pooling is inside its graph. Has no ``format`` itself, so it is not registered."""

    classifier: ClassVar[type] = ArrayModel
    embedder: ClassVar[type] = ArrayModel

    def is_embedding(self, path: Path) -> bool:
        info = path / EXPORT_INFO
        return info.is_file() and json.loads(info.read_text()).get("kind") == "embedding"

    def load_classifier(self, path: Path, task=None, threads: int | None = None, name: str | None = None):
        name = name or str(path)
        if self.is_embedding(path):
            raise AlembertError(
                f"model {name} is a sentence-embedding export; "
                "evaluate or bench it with --task stsb-zeroshot (or squad-retrieval)"
            )
        model = self.classifier(path, threads)
        if task is not None and model.config.num_labels != task.num_labels:
            raise AlembertError(
                f"model {name} has a {model.config.num_labels}-label head but task {task.name} "
                f"needs {task.num_labels}; pass a model exported from a fine-tune on this task"
            )
        return model

    def load_file(
        self, path: Path, threads: int | None = None, precision: str | None = None, embedding: dict | None = None
    ):
        """The bare weights file ``path`` (``weights[0]``, no export folder around it): what ``--quantize
        auto`` times and scores, and an export checks. ``precision``: the compute precision, where the
        runtime takes one; ``embedding``: the export record (pooling, dim, ...) that makes it a
        sentence-embedding model."""
        model = self._bare(self.classifier if embedding is None else self.embedder, path, threads, precision)
        if embedding is not None:
            model.export_info = embedding
            embedding_record(model)
        return model

    def _bare(self, cls: type, path: Path, threads: int | None, precision: str | None):
        raise NotImplementedError

    def load_embedding(self, path: Path, pooling: str | None = None, threads: int | None = None, name=None):
        from alembert.models.load import load_tokenizer

        model = self.embedder(path, threads)
        if pooling is not None and pooling != model.pooling:
            raise AlembertError(
                f"model {name or path} is an {self.title} export with {model.pooling} pooling inside its graph; "
                "drop --pooling or export again"
            )
        return model, load_tokenizer(path)


def embedding_record(model) -> None:
    """Set an exported sentence-embedding model's ``pooling``, ``normalize``, ``dim`` and ``max_seq_length``
    from its export record (pooling, Dense layers and normalisation are inside its graph)."""
    info = model.export_info
    if info.get("kind") != "embedding":
        raise AlembertError(
            f"{model.folder} is not an embedding export (alembert export of a sentence-transformers folder)"
        )
    model.pooling, model.normalize, model.dim = info["pooling"], info["normalize"], info["dim"]
    model.max_seq_length = info.get("max_seq_length")


def short_kind(kind: str) -> str:
    """A bench row's kind (``describe()["kind"]``: the format, then the variant) in the few letters of the
    short tables, by the runtime's ``bench_label``: torch, int8 / fp32 (ONNX Runtime), ov-int8 (OpenVINO)."""
    for fmt, cls in sorted(RUNTIMES.items(), key=lambda item: -len(item[0])):
        if kind == fmt or kind.startswith(fmt + "-"):
            label = fmt if cls.bench_label is None else cls.bench_label
            return "-".join(part for part in (label, kind[len(fmt) :].lstrip("-")) if part)
    return kind


def known_formats() -> str:
    return ", ".join(RUNTIMES)


def get_runtime(fmt: str, where: str | Path = "") -> Runtime:
    """The runtime registered for ``fmt``; an unknown one is one line naming the known formats."""
    cls = RUNTIMES.get(str(fmt).strip().lower())
    if cls is None:
        origin = f"model {where} records format {fmt!r} in {EXPORT_INFO}" if where else f"format {fmt!r}"
        raise AlembertError(
            f"{origin}, which no runtime here reads; known formats: {known_formats()} "
            "(a runtime registers by defining a Runtime subclass, alembert/runtimes/)"
        )
    return cls()


def recorded_format(path: str | Path) -> str | None:
    """The ``format`` an export recorded in ``alembert_export.json`` (None: no record, or no format in it)."""
    info = Path(path) / EXPORT_INFO
    if not info.is_file():
        return None
    try:
        record = json.loads(info.read_text())
    except (OSError, ValueError) as exc:
        raise AlembertError(
            f"model {path}: {EXPORT_INFO} is unreadable ({exc.__class__.__name__}); export the model again"
        ) from None
    fmt = record.get("format") if isinstance(record, dict) else None
    return str(fmt) if fmt else None


def probe_order() -> list[Runtime]:
    """Every registered runtime, in the order their probes are asked."""
    return sorted((cls() for cls in RUNTIMES.values()), key=lambda r: r.probe_order)


def runtime_for(path: str | Path) -> Runtime:
    """The runtime that runs ``path``: its recorded format, else the first probe that claims it,
    else PyTorch's (a transformers folder; its loader names what is missing)."""
    fmt = recorded_format(path)
    if fmt is not None:
        return get_runtime(fmt, path)
    for runtime in probe_order():
        if runtime.probe(Path(path)):
            return runtime
    return get_runtime(PYTORCH_FORMAT)


def load_any(name: str | Path, task=None, threads: int | None = None) -> RuntimeModel:
    """A classifier for ``name`` (a folder, alias or hub id) from whichever runtime runs it.

    With a ``task`` the label count is checked against it (a PyTorch base encoder gets a new head);
    without one the folder must hold a fine-tuned classifier and its own labels are used.
    ``threads``: intra-op threads of runtimes that own a thread pool (torch's is set by the caller)."""
    from alembert.models.resolve import resolve_model

    path = resolve_model(name)
    return runtime_for(path).load_classifier(path, task, threads, name=str(name))


def load_any_embedding(name: str | Path, pooling: str | None = None, threads: int | None = None):
    """(model, tokenizer): a sentence-embedding model for ``name`` from whichever runtime runs it
    (``pooling``: for a plain encoder folder; an export has its pooling inside)."""
    from alembert.models.resolve import resolve_model

    path = resolve_model(name)
    return runtime_for(path).load_embedding(path, pooling, threads, name=str(name))
